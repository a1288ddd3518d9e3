// Package bootstrap installs felix minions on hosts over SSH, in one command
// (felix bootstrap, POST /api/v1/bootstrap), and repairs or upgrades them
// when run again.
//
// A host in the agentless inventory (felix hosts, matched by id or
// address) is reached with its SSH settings there; any other with the
// user, port and key given. The login must be able to write the install
// paths (root): files go over SFTP as that user.
//
// For each host, over one SSH connection of the agentless transport:
//
//  1. Probe with a fixed script (it changes nothing): OS and architecture
//     (uname; x86_64 is amd64, aarch64 is arm64), whether systemd runs
//     (/run/systemd/system), the host name, and what felix already left there:
//     the minion binary's sha256 and version, its config, its certificate,
//     its systemd unit, whether it runs. The existing config and certificate
//     are read over SFTP.
//  2. Pick the binary minion-linux-ARCH from the master's minion directory
//     (built by make dist). No binary for the host's OS and architecture:
//     the host fails with "no minion binary for linux/ARCH" and nothing has
//     been written on it.
//  3. The minion id is the one asked for, else the one in the host's existing
//     config (so a rerun keeps it), else the host's id in the agentless
//     inventory, else the host's name. An id registered in
//     the inventory with a certificate other than the host's is refused before
//     anything is written (re-keying is an operator's decision: felix keys
//     delete ID).
//  4. Install, each step only when needed: the binary to
//     /usr/local/bin/felix-minion (0755, uploaded atomically, only when its
//     sha256 differs); the config /etc/felix/minion.toml (0600) with the
//     master URL and fingerprint, the id, listen and data_dir
//     /var/lib/felix/minion, encoded by a TOML encoder, never spliced into a
//     shell. A minion not yet registered with the host's certificate gets a
//     single-use join token valid for ten minutes in it — not auto-accept:
//     the minion registers pending and is accepted only once step 6 has
//     matched its certificate, so whoever reads or races the token gets at
//     most a pending key; one
//     already registered needs none (it proves its key). The data directory is
//     never touched, so the minion keeps its key and a rerun re-registers the
//     same certificate instead of getting 409.
//  5. Start it. Where systemd runs: the unit
//     /etc/systemd/system/felix-minion.service (Restart=always), daemon-reload,
//     enable, and start, or restart when the binary, config or unit changed.
//     Elsewhere (a container, a network namespace): the old minion is stopped
//     through its pid file, the new one started detached with setsid nohup,
//     logging to /var/log/felix-minion.log, and started at boot by an @reboot
//     crontab line where crontab exists, else a line in /etc/rc.local.
//  6. Wait, up to Timeout for the whole host, until the inventory shows the
//     minion registered (after the restart, when there was one). Then read the
//     minion's certificate over the same SSH connection and compare its
//     fingerprint with the registered one, so nobody can race the
//     registration with the token: a mismatch fails the host and rejects the
//     minion. A pending minion (registered earlier with a manual token) whose
//     certificate checks out is accepted.
//
// The result of a host says what was done: installed (no minion binary
// before), upgraded (a different binary was replaced), repaired (config,
// unit, boot entry or a stopped minion fixed) or unchanged.
//
// InstallRoot puts every one of those paths under a directory and never
// touches systemd or the crontab (the minion is started detached and the
// boot line goes to ROOT/etc/rc.local). It exists for tests, whose "hosts"
// are network namespaces sharing this machine's file system, and for
// chroot-like setups.
package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/pki"
)

// SSH is the part of the agentless transport bootstrap uses; satisfied by
// *ssh.Pool (transport/ssh).
type SSH interface {
	// Run runs script with /bin/sh, the script given on stdin.
	Run(ctx context.Context, t exec.Target, script string) (stdout, stderr []byte, code int, err error)
	// Upload writes r to path with mode, atomically.
	Upload(ctx context.Context, t exec.Target, path string, r io.Reader, mode uint32) error
	// ReadFile reads a file.
	ReadFile(ctx context.Context, t exec.Target, path string) ([]byte, error)
}

// Result states.
const (
	StateOK     = "ok"
	StateFailed = "failed"
)

// Actions: what a successful bootstrap did.
const (
	ActionInstalled = "installed" // there was no minion binary
	ActionUpgraded  = "upgraded"  // a different minion binary was replaced
	ActionRepaired  = "repaired"  // config, unit, boot entry or a stopped minion was fixed
	ActionUnchanged = "unchanged" // everything was in place and running
)

// How the minion is run on the host.
const (
	InitSystemd = "systemd"
	InitNohup   = "nohup"
)

// Defaults of a Bootstrapper's zero fields.
const (
	DefaultTimeout  = 2 * time.Minute // the master's bootstrap.timeout default
	DefaultParallel = 32
	// TokenTTL is how long a bootstrap's join token is valid.
	TokenTTL = 10 * time.Minute
)

// Result is one host's outcome.
type Result struct {
	Host        string `json:"host"`
	ID          string `json:"id"`
	State       string `json:"state"`
	Reason      string `json:"reason,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Arch        string `json:"arch,omitempty"`
	Init        string `json:"init,omitempty"`
	Action      string `json:"action,omitempty"`
}

// Bootstrapper installs minions over SSH. Its fields are set once, before
// the first call; its methods are safe for concurrent use.
type Bootstrapper struct {
	SSH   SSH
	Store *inventory.Store
	// MasterURL (https://host:port) and MasterFingerprint (sha256:...) go
	// into the minions' config.
	MasterURL         string
	MasterFingerprint string
	// MinionDir holds minion-linux-amd64, minion-linux-arm64 (make dist).
	MinionDir string
	// Timeout bounds one host, from the probe to the fingerprint check.
	Timeout time.Duration
	// Port is the minions' gRPC listen port; 0 means the minion's default
	// listen (config.Minion, :4510).
	Port int
	// Parallel bounds the hosts bootstrapped at once by Many; 0 means 32.
	Parallel int
	// InstallRoot, when set, prefixes every install path and keeps bootstrap
	// away from systemd and the crontab (see the package comment).
	InstallRoot string
	// Log receives one line per host; may be nil.
	Log *slog.Logger

	mu   sync.Mutex
	sums map[string]fileSum // sha256 of local binaries by path; protected by mu
}

type fileSum struct {
	size int64
	mod  time.Time
	sum  string
}

func (b *Bootstrapper) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Many bootstraps targets in parallel (at most Parallel at once); ids[i],
// when given and not empty, is the id of targets[i]. It returns one result
// per target, in order.
func (b *Bootstrapper) Many(ctx context.Context, targets []exec.Target, ids []string) []Result {
	limit := b.Parallel
	if limit <= 0 {
		limit = DefaultParallel
	}
	out := make([]Result, len(targets))
	hosts, err := b.hostIndex(ctx)
	if err != nil {
		for i, t := range targets {
			out[i] = Result{Host: hostName(t), State: StateFailed, Reason: err.Error()}
		}
		return out
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, t := range targets {
		id := ""
		if i < len(ids) {
			id = ids[i]
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			out[i] = Result{Host: hostName(t), ID: id, State: StateFailed, Reason: "cancelled before this host started"}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = b.bootstrap(ctx, t, id, hosts)
		}()
	}
	wg.Wait()
	return out
}

// hostName is how a target is named in results: its ID (what the caller
// asked for), else user@host:port.
func hostName(t exec.Target) string {
	if t.ID != "" || t.SSH == nil {
		return t.ID
	}
	s := net.JoinHostPort(t.SSH.Host, strconv.Itoa(orDefault(t.SSH.Port, 22)))
	if t.SSH.User != "" {
		s = t.SSH.User + "@" + s
	}
	return s
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Host bootstraps one host; id may be empty (see the package comment). A
// failure is a result with the reason, never an error.
func (b *Bootstrapper) Host(ctx context.Context, t exec.Target, id string) Result {
	hosts, err := b.hostIndex(ctx)
	if err != nil {
		return Result{Host: hostName(t), ID: id, State: StateFailed, Reason: err.Error()}
	}
	return b.bootstrap(ctx, t, id, hosts)
}

// bootstrap is Host with the agentless inventory loaded.
func (b *Bootstrapper) bootstrap(ctx context.Context, t exec.Target, id string, hosts map[string]inventory.Host) Result {
	timeout := b.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	r := Result{Host: hostName(t), ID: id}
	if err := b.host(ctx, t, hosts, &r); err != nil {
		r.State, r.Reason = StateFailed, err.Error()
		if errors.Is(err, context.DeadlineExceeded) && !strings.Contains(r.Reason, "within") {
			r.Reason = fmt.Sprintf("timed out after %s: %s", timeout, r.Reason)
		}
		b.log().Warn("bootstrap failed", "host", r.Host, "id", r.ID, "reason", r.Reason, "took", time.Since(start).Round(time.Millisecond))
		return r
	}
	r.State = StateOK
	b.log().Info("bootstrapped", "host", r.Host, "id", r.ID, "action", r.Action, "arch", r.Arch, "init", r.Init,
		"fingerprint", r.Fingerprint, "took", time.Since(start).Round(time.Millisecond))
	return r
}

var archRE = regexp.MustCompile(`^[a-z0-9_]{1,16}$`)

// host does Host's work, filling r as it learns; an error fails the host.
func (b *Bootstrapper) host(ctx context.Context, t exec.Target, hosts map[string]inventory.Host, r *Result) error {
	if b.SSH == nil || b.Store == nil {
		return errors.New("bootstrap is not configured on this master (no SSH transport or inventory)")
	}
	if b.MasterURL == "" || b.MasterFingerprint == "" {
		return errors.New("bootstrap is not configured on this master (no master URL or fingerprint)")
	}
	if err := ValidInstallRoot(b.InstallRoot); err != nil {
		return err
	}
	if t.SSH == nil {
		return errors.New("no SSH settings for this host")
	}
	hostID := ""
	if h, ok := hosts[t.SSH.Host]; ok {
		t.SSH = &exec.SSHTarget{Host: h.Address, Port: h.Port, User: h.User, KeyPath: h.KeyPath, Become: h.Become}
		hostID = h.ID
	}
	p := pathsUnder(b.InstallRoot)

	// 1. Probe.
	pr, err := b.probe(ctx, t, p)
	if err != nil {
		return err
	}
	osName, arch := strings.ToLower(pr.OS), goArch(pr.Arch)
	r.Arch = arch

	// What felix left on the host before (read only), and the id.
	var old *config.Minion
	if pr.Config {
		data, err := b.SSH.ReadFile(ctx, t, p.conf)
		if err != nil {
			return fmt.Errorf("read existing %s: %w", p.conf, err)
		}
		var c config.Minion
		if _, err := toml.Decode(string(data), &c); err == nil {
			old = &c
		} else {
			b.log().Warn("bootstrap: existing minion config unreadable; rewriting it", "host", r.Host, "err", err)
		}
	}
	hostFP := ""
	if pr.Cert {
		if hostFP, err = b.hostFingerprint(ctx, t, p); err != nil {
			return err
		}
	}

	if r.ID == "" && old != nil {
		r.ID = old.ID
	}
	if r.ID == "" {
		r.ID = hostID
	}
	if r.ID == "" {
		r.ID = pr.Hostname
	}
	if err := wire.ValidID(r.ID); err != nil {
		return fmt.Errorf("minion id: %w (choose one with --id)", err)
	}

	// 2. The binary for the host: without one, nothing is written.
	local := filepath.Join(b.MinionDir, "minion-"+osName+"-"+arch)
	if osName != "linux" || !archRE.MatchString(arch) {
		return fmt.Errorf("no minion binary for %s/%s: felix minions run on linux/amd64 and linux/arm64", osName, arch)
	}
	sum, err := b.sha256(local)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no minion binary for linux/%s in %s (make dist builds linux/amd64 and linux/arm64)", arch, b.MinionDir)
	}
	if err != nil {
		return fmt.Errorf("no usable minion binary for linux/%s: %w", arch, err)
	}

	// 3. What the inventory knows of the id.
	known := false
	m, err := b.Store.Minion(ctx, r.ID)
	switch {
	case err == nil:
		if m.State == inventory.StateRejected {
			return fmt.Errorf("minion %s is rejected in the inventory; delete it (felix keys delete %s) to bootstrap it again", r.ID, r.ID)
		}
		if hostFP == "" {
			return fmt.Errorf("minion %s is already registered (certificate %s) and this host has no minion key: "+
				"another host has this id, or this one was re-imaged (felix keys delete %s to re-key it, or choose another --id)",
				r.ID, m.Fingerprint, r.ID)
		}
		if hostFP != m.Fingerprint {
			return fmt.Errorf("minion %s is registered with certificate %s but the host has %s: "+
				"delete it (felix keys delete %s) to re-key it", r.ID, m.Fingerprint, hostFP, r.ID)
		}
		known = true
	case errors.Is(err, inventory.ErrNotFound):
	default:
		return err
	}

	// 4. Install what differs.
	cfg := config.DefaultMinion()
	cfg.Master, cfg.MasterFingerprint, cfg.ID, cfg.DataDir = b.MasterURL, b.MasterFingerprint, r.ID, p.data
	if b.Port != 0 {
		cfg.Listen = ":" + strconv.Itoa(b.Port)
	}
	if old != nil { // what an operator tuned by hand stays
		cfg.Advertise = old.Advertise
		cfg.FileRoots = old.FileRoots
		if old.LogLevel != "" {
			cfg.LogLevel = old.LogLevel
		}
	}
	binChanged := !pr.Bin || pr.BinSHA256 != sum
	cfgChanged := old == nil || !sameConfig(*old, cfg) || !known
	r.Init = InitNohup
	if pr.Systemd && b.InstallRoot == "" {
		r.Init = InitSystemd
	}
	unit := unitFile(p)
	unitChanged := r.Init == InitSystemd && pr.UnitSHA256 != sha256Hex([]byte(unit))
	if binChanged || cfgChanged || unitChanged {
		if err := b.run(ctx, t, "prepare directories", p.script(markPrepare, prepareBody, "SYSTEMD", flag(r.Init == InitSystemd))); err != nil {
			return err
		}
	}
	if binChanged {
		f, err := os.Open(local)
		if err != nil {
			return fmt.Errorf("open %s: %w", local, err)
		}
		err = b.SSH.Upload(ctx, t, p.bin, f, 0o755)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", p.bin, err)
		}
	}
	if cfgChanged {
		if !known {
			tok, _, err := b.Store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: false, Uses: 1, TTL: TokenTTL}, time.Now())
			if err != nil {
				return err
			}
			cfg.JoinToken = tok
		}
		data, err := renderConfig(cfg)
		if err != nil {
			return err
		}
		if err := b.SSH.Upload(ctx, t, p.conf, bytes.NewReader(data), 0o600); err != nil {
			return fmt.Errorf("upload %s: %w", p.conf, err)
		}
	}
	if unitChanged {
		if err := b.SSH.Upload(ctx, t, p.unit, strings.NewReader(unit), 0o644); err != nil {
			return fmt.Errorf("upload %s: %w", p.unit, err)
		}
	}

	// 5. Start (or restart) it and make it start at boot.
	restart := binChanged || cfgChanged || unitChanged
	body := startDetached
	if r.Init == InitSystemd {
		body = startSystemd
	}
	since := time.Now().Truncate(time.Millisecond)
	out, errOut, code, err := b.SSH.Run(ctx, t, p.script(markStart, body, "RESTART", flag(restart),
		"CRON", flag(pr.Crontab && b.InstallRoot == "")))
	if err != nil {
		return fmt.Errorf("start the minion: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("start the minion: exit status %d: %s", code, lastLine(errOut))
	}
	started := restart || strings.Contains(string(out), "started=1")
	booted := strings.Contains(string(out), "boot=1")
	if !started {
		since = time.Time{} // the running minion's registration is the one to check
	}

	// 6. Wait for the registration, then check its certificate is the host's.
	m, err = b.waitRegistered(ctx, t, p, r, since)
	if err != nil {
		return err
	}
	fp, err := b.hostFingerprint(ctx, t, p)
	if err != nil {
		return err
	}
	if fp != m.Fingerprint {
		if err := b.Store.SetMinionState(context.WithoutCancel(ctx), r.ID, inventory.StateRejected, time.Now()); err != nil {
			b.log().Error("bootstrap: reject minion with a foreign certificate", "id", r.ID, "err", err)
		}
		return fmt.Errorf("fingerprint mismatch: registered %s, host has %s (minion %s rejected)", m.Fingerprint, fp, r.ID)
	}
	if m.State == inventory.StatePending {
		if err := b.Store.SetMinionState(ctx, r.ID, inventory.StateAccepted, time.Now()); err != nil {
			return fmt.Errorf("accept minion %s: %w", r.ID, err)
		}
	}
	r.Fingerprint = fp
	switch {
	case !pr.Bin:
		r.Action = ActionInstalled
	case binChanged:
		r.Action = ActionUpgraded
	case cfgChanged || unitChanged || started || booted || m.State == inventory.StatePending:
		r.Action = ActionRepaired
	default:
		r.Action = ActionUnchanged
	}
	return nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// hostIndex returns the agentless inventory by id and by address (an id
// wins over another host's address).
func (b *Bootstrapper) hostIndex(ctx context.Context) (map[string]inventory.Host, error) {
	if b.Store == nil {
		return nil, nil
	}
	hs, err := b.Store.Hosts(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the agentless inventory: %w", err)
	}
	idx := make(map[string]inventory.Host, 2*len(hs))
	for _, h := range hs {
		idx[h.Address] = h
	}
	for _, h := range hs {
		idx[h.ID] = h
	}
	return idx, nil
}

// probe runs the probe script and checks its answer.
func (b *Bootstrapper) probe(ctx context.Context, t exec.Target, p paths) (probe, error) {
	out, errOut, code, err := b.SSH.Run(ctx, t, p.script(markProbe, probeBody))
	if err != nil {
		return probe{}, fmt.Errorf("probe: %w", err)
	}
	if code != 0 {
		return probe{}, fmt.Errorf("probe: exit status %d: %s", code, lastLine(errOut))
	}
	pr := parseProbe(out)
	if pr.OS == "" || pr.Arch == "" {
		return pr, fmt.Errorf("probe: no OS or architecture in the answer %q", lastLine(out))
	}
	return pr, nil
}

// run runs a script that must exit 0.
func (b *Bootstrapper) run(ctx context.Context, t exec.Target, what, script string) error {
	_, errOut, code, err := b.SSH.Run(ctx, t, script)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != 0 {
		return fmt.Errorf("%s: exit status %d: %s", what, code, lastLine(errOut))
	}
	return nil
}

// hostFingerprint reads the minion's certificate on the host.
func (b *Bootstrapper) hostFingerprint(ctx context.Context, t exec.Target, p paths) (string, error) {
	path := p.data + "/" + certFile
	data, err := b.SSH.ReadFile(ctx, t, path)
	if err != nil {
		return "", fmt.Errorf("read the minion certificate %s: %w", path, err)
	}
	_, fp, err := pki.ParseCertPEM(data)
	if err != nil {
		return "", fmt.Errorf("the minion certificate %s: %w", path, err)
	}
	return fp, nil
}

// waitRegistered polls the inventory until the minion r.ID is registered
// (at or after since, when since is set) and not rejected.
func (b *Bootstrapper) waitRegistered(ctx context.Context, t exec.Target, p paths, r *Result, since time.Time) (inventory.Minion, error) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := b.Store.Minion(ctx, r.ID)
		switch {
		case err == nil && m.State == inventory.StateRejected:
			return m, fmt.Errorf("minion %s registered but is rejected in the inventory", r.ID)
		case err == nil && !m.UpdatedAt.Before(since):
			return m, nil
		case err != nil && !errors.Is(err, inventory.ErrNotFound) && ctx.Err() == nil:
			return m, err
		}
		select {
		case <-ctx.Done():
			return m, fmt.Errorf("minion %s did not register within %s%s", r.ID, b.timeout(), b.logTail(ctx, t, p, r.Init))
		case <-tick.C:
		}
	}
}

func (b *Bootstrapper) timeout() time.Duration {
	if b.Timeout > 0 {
		return b.Timeout
	}
	return DefaultTimeout
}

// logTail returns the minion's last log lines on the host, for a reason.
func (b *Bootstrapper) logTail(ctx context.Context, t exec.Target, p paths, init string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	body := logsDetached
	if init == InitSystemd {
		body = logsSystemd
	}
	out, _, _, err := b.SSH.Run(ctx, t, p.script(markLogs, body))
	lines := strings.Fields(strings.Join(strings.Split(strings.TrimSpace(string(out)), "\n"), " | "))
	if err != nil || len(lines) == 0 {
		return ""
	}
	s := strings.Join(lines, " ")
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return "; its last log lines: " + s
}

// sha256 returns the hex sha256 of a local file, cached while its size and
// modification time stay the same.
func (b *Bootstrapper) sha256(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	b.mu.Lock()
	c, ok := b.sums[path]
	b.mu.Unlock()
	if ok && c.size == fi.Size() && c.mod.Equal(fi.ModTime()) {
		return c.sum, nil
	}
	sum, _, err := content.SumFile(path)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	if b.sums == nil {
		b.sums = map[string]fileSum{}
	}
	b.sums[path] = fileSum{size: fi.Size(), mod: fi.ModTime(), sum: sum}
	b.mu.Unlock()
	return sum, nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// lastLine returns the last non-empty line of out, for an error message.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	s := strings.TrimSpace(lines[len(lines)-1])
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// sameConfig compares two minion configs but for the join token, which a
// registered minion no longer needs.
func sameConfig(a, b config.Minion) bool {
	a.JoinToken, b.JoinToken = "", ""
	if !slices.Equal(a.FileRoots, b.FileRoots) {
		return false
	}
	a.FileRoots, b.FileRoots = nil, nil
	return reflect.DeepEqual(a, b)
}

// renderConfig encodes a minion config as commented TOML: every value
// quoted by the encoder.
func renderConfig(c config.Minion) ([]byte, error) {
	data, err := config.Render("# felix minion configuration, written by felix bootstrap; a rerun rewrites it.\n"+
		"# Flags and FELIX_MINION_* environment variables override what is set here.\n", c)
	if err != nil {
		return nil, fmt.Errorf("encode minion config: %w", err)
	}
	return data, nil
}

// unitFile is the systemd unit of the minion.
func unitFile(p paths) string {
	return `# felix minion, installed by felix bootstrap; a rerun rewrites it.
[Unit]
Description=felix minion
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=` + p.bin + ` start --config ` + p.conf + `
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=45

[Install]
WantedBy=multi-user.target
`
}
