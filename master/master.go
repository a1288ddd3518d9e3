// Package master is the master daemon: it wires the inventory, the agent
// and SSH transports (behind the selecting transport), the job engine, the
// REST API and the health checker together and runs them until its
// context ends, then drains.
package master

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/metrics"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/notify"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/transport"
	"github.com/felix-ops/felix/transport/agent"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/version"
)

// minFreeDisk is the free space below which /healthz reports the master
// degraded: SQLite, payloads and the content store need room to write, and
// a job cannot end without it.
const minFreeDisk = 16 << 20

// Paths inside the data directory.
const (
	certName   = "master" // master.crt, master.key
	dbFile     = "felix.db"
	tokenFile  = "admin.token"
	pidFile    = "master.pid"
	secretFile = "callback.secret"
	drainLimit = 30 * time.Second
)

// Master is a running master.
type Master struct {
	cfg      Config
	log      *slog.Logger
	id       *pki.Identity
	store    *inventory.Store
	pool     *agent.Pool
	sshPool  *ssh.Pool // nil: the master runs without SSH (hosts needing it end unreachable)
	content  *content.Store
	writer   *inventory.ResultWriter
	srv      *http.Server
	ln       net.Listener
	debug    *http.Server // the profiling listener (debug_listen); nil when off
	debugLn  net.Listener
	jobs     *jobs.Service
	notifier *notify.Notifier
	// baseCtx is every request's parent; cancelRequests ends the requests
	// still running when the drain time is up, so their jobs record
	// cancelled hosts before the store closes.
	baseCtx        context.Context
	cancelRequests context.CancelFunc

	// api is the REST API as New built it; a reload serves a copy with
	// the new settings through handler (reload.go).
	api     *api.Server
	handler atomic.Pointer[http.Handler]
	// logVar is the logger's level and format when the logger was made
	// with them (config.DaemonLogger); nil: a reload cannot change them.
	logVar *config.LogVar

	// retention is retention.* in force: read by the prune loop, replaced
	// by a reload.
	retention atomic.Pointer[retentionLimits]

	// restarting says whether Run's context ended for a re-exec in place
	// (SIGUSR2; nil: never), which systemd is told as a reload.
	restarting func() bool

	// applied is the configuration in effect, as reloads changed it, and
	// notifyCfg the notifier's share of it (secret resolved); used by the
	// reload goroutine only.
	applied   Config
	notifyCfg notify.Config

	metrics *metrics.Metrics
	// metricsSrv serves /metrics alone on metrics_listen; nil when unset
	// (then the API serves it, behind its tokens).
	metricsSrv *http.Server
	metricsLn  net.Listener
	soon       *healthSoon   // minions to check at once (healthsoon.go)
	memLimit   memoryLimiter // memory_limit (memlimit.go)
}

// privateDataDir makes the data directory 0700 and its files, the
// database before SQLite opens it included, 0600 (see daemon.PrivateDir),
// logging what it had to tighten.
func privateDataDir(dir string, log *slog.Logger) error {
	fixed, err := daemon.PrivateDir(dir)
	for _, f := range fixed {
		log.Warn("data dir: made private", "path", f)
	}
	if err != nil {
		return err
	}
	return daemon.PrivateFile(filepath.Join(dir, dbFile))
}

// New opens everything the master needs: identity, inventory, listener.
// Announcements for the operator (fingerprint, first admin token) go to out.
func New(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer) (*Master, error) {
	if err := privateDataDir(cfg.DataDir, log); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	hostname, _ := os.Hostname()
	hosts := append([]string{"localhost", "127.0.0.1", "::1", hostname, host}, cfg.CertHosts...)
	id, err := pki.LoadOrCreate(cfg.DataDir, certName, "felix-master", hosts)
	if err != nil {
		return nil, fmt.Errorf("master certificate: %w", err)
	}
	store, err := inventory.Open(ctx, filepath.Join(cfg.DataDir, dbFile))
	if err != nil {
		return nil, err
	}
	m := &Master{cfg: cfg, log: log, id: id, store: store, soon: newHealthSoon()}
	m.retention.Store(retentionOf(cfg))
	if err := m.ensureAdminToken(ctx, out); err != nil {
		store.Close()
		return nil, err
	}
	secret, err := m.callbackSecret(cfg.Callbacks.Secret)
	if err != nil {
		store.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	m.ln = ln
	if cfg.DebugListen != "" {
		if m.debugLn, err = net.Listen("tcp", cfg.DebugListen); err != nil {
			ln.Close()
			store.Close()
			return nil, fmt.Errorf("listen on %s (debug_listen): %w", cfg.DebugListen, err)
		}
		m.debug = &http.Server{Handler: pprofMux(), ReadHeaderTimeout: 10 * time.Second}
		log.Info("profiling listener", "addr", m.debugLn.Addr().String())
	}
	m.metrics = metrics.New(m.metricsSources(), log)
	if cfg.MetricsListen != "" {
		if m.metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			ln.Close()
			if m.debugLn != nil {
				m.debugLn.Close()
			}
			store.Close()
			return nil, fmt.Errorf("listen on %s (metrics_listen): %w", cfg.MetricsListen, err)
		}
		m.metricsSrv = &http.Server{Handler: metricsMux(m.metrics.Handler()), ReadHeaderTimeout: 10 * time.Second}
		log.Info("metrics listener", "addr", "http://"+m.metricsLn.Addr().String()+"/metrics")
	}
	m.pool = agent.NewPool(id)
	m.pool.LostAfter = cfg.Health.LostAfter.Duration
	m.pool.Heartbeat = min(agent.DefaultHeartbeat, m.pool.LostAfter/3)
	m.pool.IdleTimeout = cfg.Exec.IdleTimeout.Duration
	// What minions may send ahead of the master's reading: a quarter of
	// what running hosts may keep in memory (16 MiB by default).
	if cfg.Exec.OutputMemory > 0 {
		m.pool.OutputInFlight = cfg.Exec.OutputMemory / 4
	}
	m.sshPool = newSSHPool(cfg, log)
	sel := &transport.Select{Agent: m.pool}
	if m.sshPool != nil {
		sel.SSH = m.sshPool // never a typed nil in the interface
	}
	m.writer = inventory.NewResultWriter(store, log)
	m.notifyCfg = m.notifyConfig(cfg, secret)
	m.notifier, err = notify.New(store, m.notifyCfg, log)
	if err != nil {
		m.closeEarly()
		return nil, err
	}
	m.content, err = content.Open(filepath.Join(cfg.DataDir, "content"), content.Options{
		MaxFileSize: cfg.Files.MaxSize, MaxTotalSize: cfg.Files.MaxStoreSize, KeepUnused: cfg.Files.KeepUnused.Duration, Log: log,
		// The content stored state documents name stays, however long unused.
		Keep: func() ([]string, error) { return m.store.ConfigSources(context.Background()) }})
	if err != nil {
		m.closeEarly()
		return nil, err
	}
	// Output spilled by running hosts (exec.Engine.OutputMemory): unlinked
	// files, so the directory is empty whenever the master is not running.
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		m.closeEarly()
		return nil, fmt.Errorf("create the output spool: %w", err)
	}
	m.jobs = &jobs.Service{
		Content: m.content,
		Store:   store,
		Writer:  m.writer,
		Engine: &exec.Engine{Transport: sel, Limit: cfg.Exec.MaxParallel, OutputCap: cfg.Exec.OutputCap,
			OutputMemory: cfg.Exec.OutputMemory, SpoolDir: spool},
		Log:        log,
		PayloadDir: filepath.Join(cfg.DataDir, "payloads"),
		Announcer:  m.notifier,
		Started: func(ctx context.Context, jobID string) context.Context {
			return agent.WithJobID(ctx, jobID)
		},
		CheckURL: m.notifier.CheckURL,
		Finished: func(string) { m.notifier.Kick() },
		Observer: m.metrics,
		// Fleet upgrades pick minion-<os>-<arch> from the directory
		// bootstrap installs minions from.
		Upgrader:    m.pool,
		DistDir:     cfg.Bootstrap.MinionDir,
		LastUpgrade: upgradeReason(store), // master/upgrade_reason.go
	}
	// Bootstrap installs minions over the same SSH pool (see bootstrap.go),
	// and upgrades bootstrapped hosts the fleet upgrade reaches over SSH.
	var bs *bootstrap.Bootstrapper
	if m.sshPool != nil {
		bs = m.bootstrapper(m.sshPool)
		m.jobs.SSHUpgrader = bs // never a typed nil in the interface
		m.jobs.HostFacts = m.sshPool
	}
	m.jobs.SetFactsTTL(cfg.SSH.FactsTTL.Duration)
	if err := m.jobs.Recover(ctx); err != nil {
		m.closeEarly()
		return nil, err
	}
	a := &api.Server{Store: store, Jobs: m.jobs, Log: log, Forget: m.pool.Forget, CheckCallback: m.notifier.CheckURL,
		Content: m.content, Degraded: api.DiskCheck(cfg.DataDir, minFreeDisk), Config: apiConfig(cfg), Requests: m.metrics,
		CheckHealth: m.checkSoon}
	if m.metricsSrv == nil {
		a.Metrics = m.metrics.Handler()
	}
	if m.sshPool != nil {
		a.SSH = hostKeys{m.sshPool}
	}
	if bs != nil {
		a.Bootstrap = bs
	}
	m.baseCtx, m.cancelRequests = context.WithCancel(context.Background())
	m.api, m.applied = a, cfg
	m.memLimit.log = log
	m.memLimit.set(cfg.MemoryLimit, cfg.Exec.OutputMemory)
	h := a.Handler()
	m.handler.Store(&h)
	m.srv = &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*m.handler.Load()).ServeHTTP(w, r) }),
		BaseContext: func(net.Listener) context.Context { return m.baseCtx },
		TLSConfig: &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{id.Cert},
			// Minions prove they hold their key by presenting their
			// certificate when they register; nobody else needs one.
			ClientAuth: tls.RequestClientCert,
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute, // the request only; a synchronous exec may answer much later
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(out, "felix master %s listening on https://%s\nmaster fingerprint: %s\n", version.String(), ln.Addr(), id.Fingerprint)
	return m, nil
}

// Addr returns the API's listening address.
func (m *Master) Addr() net.Addr { return m.ln.Addr() }

// Fingerprint returns the master certificate's fingerprint.
func (m *Master) Fingerprint() string { return m.id.Fingerprint }

// Store returns the inventory (for tests and benchmarks in other packages).
func (m *Master) Store() *inventory.Store { return m.store }

// ensureAdminToken creates the first admin token when the inventory has
// none and keeps it 0600 in the data directory, saying where: the token
// itself is never printed, so it lands in no journal or terminal log.
func (m *Master) ensureAdminToken(ctx context.Context, out io.Writer) error {
	path := filepath.Join(m.cfg.DataDir, tokenFile)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tok, err := m.store.CreateAPIToken(ctx, "admin", inventory.RoleAdmin, 0, time.Now())
	if errors.Is(err, inventory.ErrConflict) {
		return nil // issued before; its file was removed on purpose
	}
	if err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "admin API token written to %s (0600): export FELIX_TOKEN=$(cat %s)\n", path, path)
	return nil
}

// notifyConfig is the notifier's share of cfg, with the callbacks' secret
// worked out (callbackSecret); Reload hands it to notify.Reconfigure.
func (m *Master) notifyConfig(cfg Config, secret string) notify.Config {
	return notify.Config{
		Secret: secret, SlackURL: cfg.Slack.WebhookURL, Allow: cfg.Callbacks.Allow, CallbackBody: api.CallbackBody,
		SlackBody: api.SlackBody,
		OwnAddrs:  func() []net.IP { return ownAddrs(m.ln.Addr()) },
		Timeout:   cfg.Callbacks.Timeout.Duration, MaxAge: cfg.Callbacks.MaxAge.Duration,
		Delivered: m.metrics.Delivered,
	}
}

// sshConfig is the SSH pool's share of cfg (the [ssh] table); Reload hands
// it to ssh.Pool.Reconfigure.
func sshConfig(cfg Config) ssh.Config {
	return ssh.Config{
		KnownHosts: cfg.SSH.KnownHosts,
		Policy:     cfg.SSH.HostKeys,
		KeyFiles:   cfg.SSH.KeyFiles, PasswordHosts: cfg.SSH.PasswordHosts,
		KeyDirs:     cfg.SSH.KeyDirs,
		NoAgent:     !cfg.SSH.Agent,
		User:        cfg.SSH.User,
		IdleTimeout: cfg.SSH.IdleTimeout.Duration,
		MaxConns:    cfg.SSH.MaxConns,

		ConnectTimeout: cfg.SSH.ConnectTimeout.Duration,
		RemoteTmp:      cfg.SSH.RemoteTmp,

		Jump:      cfg.SSH.Jump,
		SSHConfig: sshConfigFile(cfg),
	}
}

// sshConfigFile is the ssh_config file the pool reads, "" for none.
func sshConfigFile(cfg Config) string {
	if !cfg.SSH.UseSSHConfig {
		return ""
	}
	if cfg.SSH.SSHConfig != "" {
		return cfg.SSH.SSHConfig
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "config")
}

// newSSHPool builds the agentless transport from the [ssh] config. When it
// cannot be built the master still runs, without SSH: hosts that need it
// end unreachable with a clear error, and the reason is logged here.
func newSSHPool(cfg Config, log *slog.Logger) *ssh.Pool {
	sc := sshConfig(cfg)
	sc.Prompt, sc.Log = terminalPrompt(), log.With("transport", ssh.Name)
	p, err := ssh.NewPool(sc)
	if err != nil {
		log.Warn("running without the ssh transport: agentless hosts are unreachable", "err", err)
		return nil
	}
	return p
}

// hostKeys adapts the SSH pool to api.HostKeys: its host-key errors are
// the API's (a 400, not a 502).
type hostKeys struct{ pool *ssh.Pool }

func (h hostKeys) Trust(ctx context.Context, t model.Target, fingerprint string) error {
	err := h.pool.Trust(ctx, t, fingerprint)
	if errors.Is(err, ssh.ErrHostKey) {
		return hostKeyError{err}
	}
	return err
}

// hostKeyError is an ssh.ErrHostKey error that is also api.ErrHostKey.
type hostKeyError struct{ error }

func (e hostKeyError) Unwrap() error        { return e.error }
func (e hostKeyError) Is(target error) bool { return target == api.ErrHostKey }

// closeEarly undoes New after the listener and writer exist.
func (m *Master) closeEarly() {
	if m.sshPool != nil {
		m.sshPool.Close()
	}
	m.ln.Close()
	if m.debugLn != nil {
		m.debugLn.Close()
	}
	if m.metricsLn != nil {
		m.metricsLn.Close()
	}
	m.writer.Close()
	m.store.Close()
}

// callbackSecret returns the callbacks' HMAC key: the configured one, or
// one made on first start and kept 0600 in the data directory.
func (m *Master) callbackSecret(configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(m.cfg.DataDir, secretFile)
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read callback secret: %w", err)
	}
	b := make([]byte, 32)
	rand.Read(b)
	secret := hex.EncodeToString(b)
	if err := pki.WriteFileAtomic(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

// ownAddrs are the master's addresses, which callbacks may not target.
func ownAddrs(listen net.Addr) []net.IP {
	var out []net.IP
	if ta, ok := listen.(*net.TCPAddr); ok && !ta.IP.IsUnspecified() {
		out = append(out, ta.IP)
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out = append(out, ipn.IP)
		}
	}
	return out
}

// Run serves until ctx ends, then stops accepting, drains in-flight requests
// and jobs (bounded by drainLimit) and closes everything.
func (m *Master) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	hctx, stopHealth := context.WithCancel(ctx)
	wg.Add(4)
	go func() {
		defer wg.Done()
		m.healthLoop(hctx)
	}()
	go func() {
		defer wg.Done()
		m.healthSoonLoop(hctx)
	}()
	go func() {
		defer wg.Done()
		m.pruneLoop(hctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.memLimit.run(hctx)
	}()
	// Deliveries go on while the master drains: jobs that end then are announced.
	nctx, stopNotifier := context.WithCancel(context.Background())
	go func() {
		defer wg.Done()
		m.notifier.Run(nctx)
	}()
	if m.debug != nil {
		go m.debug.Serve(m.debugLn)
		defer m.debug.Close()
	}
	if m.metricsSrv != nil {
		go m.metricsSrv.Serve(m.metricsLn)
		defer m.metricsSrv.Close()
	}
	errc := make(chan error, 1)
	go func() { errc <- m.srv.ServeTLS(m.ln, "", "") }()
	// Under systemd (Type=notify): ready once serving, the watchdog petted
	// while the inventory answers (sdnotify.go).
	m.notifySystemd("READY=1\nSTATUS=serving on https://" + m.ln.Addr().String())
	wg.Add(1)
	go func() {
		defer wg.Done()
		daemon.Watchdog(hctx, m.log, m.healthy)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		m.notifySystemd(daemon.Draining(m.restarting != nil && m.restarting()))
		m.log.Info("draining", "limit", drainLimit)
		sctx, cancel := context.WithTimeout(context.Background(), drainLimit)
		err = m.srv.Shutdown(sctx)
		cancel()
		if err != nil {
			m.log.Warn("drain time is up: cancelling the requests still running")
			m.cancelRequests()
			sctx, cancel := context.WithTimeout(context.Background(), drainLimit)
			err = m.srv.Shutdown(sctx)
			cancel()
		}
	}
	m.cancelRequests()
	jctx, cancel := context.WithTimeout(context.Background(), drainLimit)
	m.jobs.Shutdown(jctx)
	cancel()
	stopHealth()
	stopNotifier()
	wg.Wait()
	m.writer.Close()
	var sshErr error
	if m.sshPool != nil {
		sshErr = m.sshPool.Close()
	}
	return errors.Join(ignoreClosed(err), m.pool.Close(), sshErr, m.store.Close())
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// retentionLimits are retention.*: how long and how many finished jobs
// are kept.
type retentionLimits struct {
	maxAge  time.Duration
	maxJobs int
}

// retentionOf is cfg's retention.*.
func retentionOf(cfg Config) *retentionLimits {
	return &retentionLimits{maxAge: cfg.Retention.MaxAge.Duration, maxJobs: cfg.Retention.MaxJobs}
}

// pruneLoop deletes jobs past the retention limits and content unused for
// files.keep_unused, at start and hourly.
func (m *Master) pruneLoop(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		r := m.retention.Load()
		n, err := m.store.Prune(ctx, time.Now().Add(-r.maxAge), r.maxJobs)
		if err != nil && ctx.Err() == nil {
			m.log.Warn("prune jobs", "err", err)
		} else if n > 0 {
			m.log.Info("pruned old jobs", "jobs", n)
			m.jobs.PrunePayloads(ctx)
		}
		if n, freed, err := m.content.GC(time.Now()); err != nil {
			m.log.Warn("collect unused content", "err", err)
		} else if n > 0 {
			m.log.Info("collected unused content", "blobs", n, "bytes", freed)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// healthLoop checks every accepted minion each interval and records the
// result: a ping over its connection when one is open, else a probe that
// shakes hands and hangs up (agent.Pool.Health), so health keeps no
// connection open.
func (m *Master) healthLoop(ctx context.Context) {
	t := time.NewTicker(m.cfg.Health.Interval.Duration)
	defer t.Stop()
	for {
		m.checkHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *Master) checkHealth(ctx context.Context) {
	ms, err := m.store.Minions(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("health check: list minions", "err", err)
		}
		return
	}
	m.pingMinions(ctx, ms)
}

// pingMinions pings the accepted minions among ms and records their health.
func (m *Master) pingMinions(ctx context.Context, ms []inventory.Minion) {
	var (
		mu  sync.Mutex
		ups []inventory.HealthUpdate
		wg  sync.WaitGroup
		sem = make(chan struct{}, 128) // as many as the pool's handshake slots: a wait for one would count towards the timeout
	)
	for _, mn := range ms {
		if mn.State != model.KeyAccepted {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, m.cfg.Health.Timeout.Duration)
			defer cancel()
			err := m.pool.Health(pctx, model.Target{ID: mn.ID, Addr: mn.Addr, Fingerprint: mn.Fingerprint})
			u := inventory.HealthUpdate{ID: mn.ID, Health: model.HealthOK, Seen: time.Now()}
			if err != nil {
				u = inventory.HealthUpdate{ID: mn.ID, Health: model.HealthUnreachable}
				if mn.Health != model.HealthUnreachable && ctx.Err() == nil {
					m.log.Warn("minion unreachable", "id", mn.ID, "addr", mn.Addr, "err", err)
				}
			}
			mu.Lock()
			ups = append(ups, u)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	if err := m.store.UpdateHealth(ctx, ups); err != nil {
		m.log.Warn("health check: store", "err", err)
	}
}

// terminalPrompt asks for a key's passphrase on the terminal when the master
// runs in the foreground on one (FELIX_SSH_PASSPHRASE is asked first); a
// daemon without a terminal gets nil and skips encrypted keys it cannot open.
func terminalPrompt() func(keyPath string) ([]byte, error) {
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		return nil
	}
	var mu sync.Mutex // one prompt at a time
	return func(keyPath string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stderr, "passphrase for %s: ", keyPath)
		pw, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return pw, err
	}
}

// metricsSources are what the metrics' gauges read at each scrape. They
// are called only once the master runs, when every part exists.
func (m *Master) metricsSources() metrics.Sources {
	src := metrics.Sources{
		RunningJobs: func() int { return m.jobs.Running() },
		Minions:     m.store.MinionCounts,
		Connected:   func() int { return m.pool.Connected() },
		Outbox:      m.store.OutboxCounts,
		Content: func() (int, int64) {
			return m.content.Usage()
		},
		SSHPool: func() (int, int) {
			if m.sshPool == nil {
				return 0, 0
			}
			st := m.sshPool.Stats()
			return st.Conns, st.Sessions
		},
	}
	return src
}

// metricsMux serves the metrics alone, at /metrics (metrics_listen).
func metricsMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
}

// pprofMux serves Go's runtime profiles (net/http/pprof) for debug_listen.
func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
