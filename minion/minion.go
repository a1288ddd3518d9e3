// Package minion is the minion daemon: it keeps its own key and certificate,
// registers with the master over HTTPS (pinning the master's certificate),
// and serves the agent transport's gRPC service to that master only.
package minion

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/internal/backoff"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/transport/agent"
	"github.com/felix-ops/felix/version"
)

// Files in the data directory.
const (
	certName   = "minion" // minion.crt, minion.key
	pinFile    = "master.fingerprint"
	pidFile    = "minion.pid"
	drainLimit = 30 * time.Second
)

// ErrPermanent marks a registration failure that retrying cannot fix (a bad
// join token, an id already pinned to another certificate).
var ErrPermanent = errors.New("registration refused")

// Minion is a running minion.
type Minion struct {
	cfg config.Minion
	log *slog.Logger
	id  *pki.Identity

	// ConfigPath, when set, is the config file the minion was started
	// with: once registered, a join token in it is blanked.
	ConfigPath string

	hooks hooks

	// Self-upgrade (upgrade.go): the binary an upgrade replaces and the
	// arguments the new one is started with; unset in a swarm.
	exe         string
	args        []string
	handoverOut io.Writer   // the new binary's output; nil: this process's stdout/stderr
	upgrading   atomic.Bool // an Upgrade is in progress or handing over

	// logVar is the logger's level and format, for reloads (nil: fixed);
	// applied is the configuration in effect as reloads changed it, used
	// by the reload goroutine only (reload.go).
	logVar  *config.LogVar
	applied config.Minion

	// restarting says whether Run's context ended for a re-exec in place
	// (SIGUSR2; nil: never), which systemd is told as a reload.
	restarting func() bool

	mu           sync.Mutex
	pinned       string             // master fingerprint; protected by mu
	stop         context.CancelFunc // stops Run; protected by mu
	pending      *handover          // an upgrade installed, to hand over to; protected by mu
	handoverPipe *os.File           // to the old process that started this one; protected by mu
}

// hooks are what a swarm (swarm.go) changes in its minions; the zero value
// is the minion as it runs on a host.
type hooks struct {
	run      agent.Runner                               // nil: local.Run, /bin/sh as the real minion
	gather   func(context.Context) (facts.Facts, error) // nil: facts.Gather
	slots    chan struct{}                              // registrations in flight, shared; nil: no bound
	onJoined func()                                     // called once registration succeeded
}

// New loads or creates the minion's identity and its pinned master fingerprint.
func New(cfg config.Minion, log *slog.Logger) (*Minion, error) {
	fixed, err := daemon.PrivateDir(cfg.DataDir)
	for _, f := range fixed {
		log.Warn("data dir: made private", "path", f)
	}
	if err != nil {
		return nil, err
	}
	hostname, _ := os.Hostname()
	id, err := pki.LoadOrCreate(cfg.DataDir, certName, cfg.ID, []string{cfg.ID, hostname})
	if err != nil {
		return nil, fmt.Errorf("minion certificate: %w", err)
	}
	m := &Minion{cfg: cfg, log: log, id: id, pinned: cfg.MasterFingerprint, applied: cfg}
	if m.pinned == "" {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, pinFile))
		if err == nil {
			if m.pinned, err = pki.ParseFingerprint(string(b)); err != nil {
				return nil, fmt.Errorf("%s: %w", pinFile, err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", pinFile, err)
		}
	}
	return m, nil
}

// Fingerprint returns the minion certificate's fingerprint.
func (m *Minion) Fingerprint() string { return m.id.Fingerprint }

// MasterFingerprint returns the pinned master fingerprint, "" before trust on
// first use.
func (m *Minion) MasterFingerprint() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pinned
}

// Run serves gRPC and registers (retrying with backoff) until ctx ends or
// registration is refused for good.
func (m *Minion) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.cfg.Listen, err)
	}
	srv := agent.NewServer(m.cfg.ID, version.String(), m.log)
	srv.Run = m.hooks.run
	// Scripts run from the data directory: /tmp is often mounted noexec.
	// What a crash left there is swept first.
	srv.TempDir = filepath.Join(m.cfg.DataDir, "work")
	os.RemoveAll(srv.TempDir)
	if err := os.MkdirAll(srv.TempDir, 0o700); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	// The master's exec.max_file_size is the limit operators set; this is
	// a guard against a runaway upload filling the disk.
	srv.MaxFileSize = 1 << 30
	// File distribution: where the master may write, and the journal of
	// transfers in flight, whose temp files a crash may have left behind.
	srv.Files = &hostfile.Store{Roots: m.cfg.FileRoots, JournalDir: filepath.Join(m.cfg.DataDir, "inflight"), Log: m.log}
	if err := srv.Files.Sweep(); err != nil {
		m.log.Warn("sweep the temp files of interrupted transfers", "err", err)
	}
	m.serveUpgrade(srv) // fleet upgrade (upgrade_rpc.go)
	g := agent.NewGRPCServer(m.id, m.MasterFingerprint, srv)
	m.log.Info("minion serving", "id", m.cfg.ID, "grpc", ln.Addr().String(), "fingerprint", m.id.Fingerprint)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m.mu.Lock()
	m.stop = cancel
	m.mu.Unlock()
	errc := make(chan error, 2)
	go func() { errc <- g.Serve(ln) }()
	m.notifySystemd("READY=1\nSTATUS=serving gRPC on " + ln.Addr().String())
	go daemon.Watchdog(ctx, m.log, func(context.Context) error { return nil })
	go func() {
		if err := m.registerLoop(ctx, ln.Addr()); err != nil {
			errc <- err
		}
	}()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	if m.Handover() {
		// The old process stays systemd's main process until the new one
		// reached the master (HandOver); STOPPING=1 would end the service.
		m.notifySystemd("STATUS=draining: handing over to the new binary")
	} else {
		m.notifySystemd(daemon.Draining(m.restarting != nil && m.restarting()))
	}
	m.log.Info("minion stopping", "drain_limit", drainLimit)
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(drainLimit):
		g.Stop()
	}
	return err
}

// scrubJoinToken blanks the join token in the config file once the
// minion is registered: its key is its credential from then on.
func (m *Minion) scrubJoinToken() {
	if m.ConfigPath == "" {
		return
	}
	changed, err := config.ScrubJoinToken(m.ConfigPath)
	switch {
	case err != nil:
		m.log.Warn("join token left in the config file", "err", err)
	case changed:
		m.log.Info("join token removed from the config file: registered", "config", m.ConfigPath)
	}
}

// registerBackoff spaces registration attempts while the master is
// unreachable: a ceiling of 1 s doubling to 1 min, each wait drawn from
// zero to it (full jitter), so minions that lost the master together do
// not come back together.
var registerBackoff = backoff.Policy{Base: time.Second, Cap: time.Minute, Jitter: backoff.Full}

// registerLoop registers until it succeeds or is refused for good, backing
// off (registerBackoff) while the master is unreachable.
func (m *Minion) registerLoop(ctx context.Context, addr net.Addr) error {
	for attempt := 1; ; attempt++ {
		err := m.registerSlot(ctx, addr)
		if err == nil {
			m.scrubJoinToken()
			m.reportJoined()
		}
		if err == nil && m.hooks.onJoined != nil {
			m.hooks.onJoined()
		}
		if err == nil || errors.Is(err, ErrPermanent) {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := retryWait(err, attempt)
		m.log.Warn("register failed; retrying", "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// registerSlot registers once, within one of hooks.slots when the swarm
// bounds how many registrations are in flight.
func (m *Minion) registerSlot(ctx context.Context, addr net.Addr) error {
	if m.hooks.slots != nil {
		select {
		case m.hooks.slots <- struct{}{}:
			defer func() { <-m.hooks.slots }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return m.Register(ctx, addr)
}

// grpcAddr is what the minion tells the master to dial.
func (m *Minion) grpcAddr(ln net.Addr) string {
	if m.cfg.Advertise != "" {
		return m.cfg.Advertise
	}
	host, _, _ := net.SplitHostPort(m.cfg.Listen)
	_, port, _ := net.SplitHostPort(ln.String())
	return net.JoinHostPort(host, port)
}

// joinToken is the token a registration presents: join_token, or what
// join_token_file holds. A file that is gone (deleted once the minion was
// accepted, as it may be) means no token: an accepted minion needs none.
func (m *Minion) joinToken() string {
	if m.cfg.JoinTokenFile == "" {
		return m.cfg.JoinToken
	}
	b, err := os.ReadFile(m.cfg.JoinTokenFile)
	if err != nil {
		m.log.Warn("join token file unreadable: registering without a token", "err", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Register registers once. It presents the minion's certificate as TLS
// client certificate (proof of possession) and checks the master's against
// the pin, pinning the first one seen when none is set.
func (m *Minion) Register(ctx context.Context, ln net.Addr) error {
	gather := facts.Gather
	if m.hooks.gather != nil {
		gather = m.hooks.gather
	}
	f, err := gather(ctx)
	if err != nil {
		m.log.Warn("gather facts", "err", err)
	}
	factsJSON, _ := json.Marshal(f)
	body, err := json.Marshal(model.RegisterRequest{
		ID: m.cfg.ID, Hostname: f.Hostname, IPs: f.IPs, GRPCAddr: m.grpcAddr(ln), Version: version.String(),
		Facts: factsJSON, CertPEM: string(m.id.CertPEM), JoinToken: m.joinToken(),
		LastUpgrade: m.lastUpgrade(),
	})
	if err != nil {
		return fmt.Errorf("encode registration: %w", err)
	}
	tlsCfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{m.id.Cert},
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyConnection: pki.VerifyPinned(func(peer string) error {
			if pinned := m.MasterFingerprint(); pinned != "" {
				return pki.Match(pinned, peer)
			}
			return nil // trust on first use; pinned below once registration succeeds
		}),
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer client.CloseIdleConnections()
	url := strings.TrimSuffix(m.cfg.Master, "/") + "/api/v1/minions/register"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("register with %s: %w", m.cfg.Master, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, pki.ErrFingerprintMismatch) {
			return fmt.Errorf("register with %s: %w: %w (pinned %s)", m.cfg.Master, ErrPermanent, err, m.MasterFingerprint())
		}
		return fmt.Errorf("register with %s: %w", m.cfg.Master, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"` // the API's error body
		}
		json.Unmarshal(data, &e)
		err := fmt.Errorf("register with %s: %s: %s", m.cfg.Master, resp.Status, e.Error)
		switch resp.StatusCode {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusConflict:
			return fmt.Errorf("%w: %w", ErrPermanent, err)
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			if ra, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && ra > 0 {
				return retryAfterError{err: err, after: time.Duration(ra) * time.Second}
			}
		}
		return err
	}
	var rr model.RegisterResponse
	if err := json.Unmarshal(data, &rr); err != nil {
		return fmt.Errorf("register with %s: bad answer: %w", m.cfg.Master, err)
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return fmt.Errorf("register with %s: no TLS peer certificate", m.cfg.Master)
	}
	seen := pki.Fingerprint(resp.TLS.PeerCertificates[0].Raw)
	if err := m.pin(seen); err != nil {
		return err
	}
	m.log.Info("registered", "master", m.cfg.Master, "state", rr.State, "address", rr.Address,
		"master_fingerprint", seen)
	return nil
}

// pin keeps the master fingerprint seen on first use.
func (m *Minion) pin(fp string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pinned != "" {
		return nil
	}
	if err := pki.WriteFileAtomic(filepath.Join(m.cfg.DataDir, pinFile), []byte(fp+"\n"), 0o600); err != nil {
		return fmt.Errorf("pin master fingerprint: %w", err)
	}
	m.pinned = fp
	m.log.Info("pinned master certificate on first use", "fingerprint", fp)
	return nil
}
