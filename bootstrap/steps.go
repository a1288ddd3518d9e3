package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
)

// hostRun is one host's bootstrap in progress: the six steps of the package
// comment, each a method, and what each learns for the next.
type hostRun struct {
	b *Bootstrapper
	t model.Target // with the agentless inventory's SSH settings, when it knows the host
	p paths
	r *Result // filled in as the steps learn (id, arch, init, fingerprint, action)

	hostID string // the host's id in the agentless inventory; "" if not there
	url    string // the master URL for the host's minion (reach)

	// 1. probe
	pr     probe
	osName string
	old    *config.Minion // the config felix left on the host; nil if none or unreadable
	hostFP string         // the fingerprint of the minion certificate on the host; "" if none

	// 2. binary
	local string                        // the minion binary for the host, on the master (its name, for messages)
	sum   string                        // its sha256
	open  func() (io.ReadCloser, error) // opens it

	// 3. id
	known bool // the id is registered with the host's certificate

	// 4. install
	binChanged, cfgChanged, unitChanged bool

	// 5. start
	started bool      // the minion was (re)started
	booted  bool      // its boot entry was added
	since   time.Time // the registration to wait for is at or after this; zero: any

	// 6. verify
	m      inventory.Minion // the registered minion
	want   string           // the version to wait for; "": any (an upgrade sets it)
	window time.Duration    // how long the wait may take, for its error; 0: the bootstrap timeout
}

// host does Host's work, filling r as it learns; an error fails the host.
func (b *Bootstrapper) host(ctx context.Context, t model.Target, hosts map[string]inventory.Host, r *Result) error {
	h, err := b.newHostRun(t, hosts, r)
	if err != nil {
		return err
	}
	for _, step := range []func(context.Context) error{
		h.probe,          // 1
		h.pickBinary,     // 2
		h.checkInventory, // 3
		h.reach,          // 1's master URL, checked last before anything is written
		h.install,        // 4
		h.start,          // 5
		h.verify,         // 6
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	r.Action = h.action()
	return nil
}

// newHostRun checks the bootstrapper can work and finds t in the agentless
// inventory (hosts, by id and address), whose SSH settings then apply.
func (b *Bootstrapper) newHostRun(t model.Target, hosts map[string]inventory.Host, r *Result) (*hostRun, error) {
	if b.SSH == nil || b.Store == nil {
		return nil, errors.New("bootstrap is not configured on this master (no SSH transport or inventory)")
	}
	if (b.MasterURL == "" && b.MasterPort == 0) || b.MasterFingerprint == "" {
		return nil, errors.New("bootstrap is not configured on this master (no master URL or fingerprint)")
	}
	if err := ValidInstallRoot(b.InstallRoot); err != nil {
		return nil, err
	}
	if t.SSH == nil {
		return nil, errors.New("no SSH settings for this host")
	}
	h := &hostRun{b: b, t: t, p: pathsUnder(b.InstallRoot), r: r}
	if ih, ok := hosts[t.SSH.Host]; ok {
		h.t.SSH = &model.SSHTarget{Host: ih.Address, Port: ih.Port, User: ih.User, KeyPath: ih.KeyPath, Become: ih.Become,
			RemoteTmp: ih.RemoteTmp, Labels: ih.Labels}
		var err error
		if h.t.SSH.Jump, h.t.SSH.NoJump, err = model.SSHJump(ih.ProxyJump); err != nil {
			return nil, fmt.Errorf("host %s in the agentless inventory: %w", ih.ID, err)
		}
		h.hostID = ih.ID
	} else {
		login := *t.SSH
		r.Login = &login
	}
	if len(h.t.SSH.Jump) > 0 && b.MasterURL == "" {
		return nil, fmt.Errorf("no master URL for a host reached through jump hosts (%s): "+
			"nothing installed; set bootstrap.master_url to an address the host reaches the master at",
			model.FormatProxyJump(h.t.SSH.Jump))
	}
	return h, nil
}

// probe is step 1: what the host is, and what felix left there (read
// only). It also settles the id (step 3's rule: the one asked for, the
// host's config's, its inventory id, its name), so that a bad one fails
// before anything else.
func (h *hostRun) probe(ctx context.Context) error {
	out, errOut, code, err := h.b.SSH.Run(ctx, h.t, h.p.script(markProbe, probeBody))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("probe: exit status %d: %s", code, lastLine(errOut))
	}
	h.pr = parseProbe(out)
	if h.pr.OS == "" || h.pr.Arch == "" {
		return fmt.Errorf("probe: no OS or architecture in the answer %q", lastLine(out))
	}
	h.osName, h.r.Arch = strings.ToLower(h.pr.OS), goArch(h.pr.Arch)

	if h.pr.Config {
		data, err := h.b.SSH.ReadFile(ctx, h.t, h.p.conf)
		if err != nil {
			return fmt.Errorf("read existing %s: %w", h.p.conf, err)
		}
		var c config.Minion
		if _, err := toml.Decode(string(data), &c); err == nil {
			h.old = &c
		} else {
			h.b.log().Warn("bootstrap: existing minion config unreadable; rewriting it", "host", h.r.Host, "err", err)
		}
	}
	if h.pr.Cert {
		if h.hostFP, err = h.hostFingerprint(ctx); err != nil {
			return err
		}
	}

	if h.r.ID == "" && h.old != nil {
		h.r.ID = h.old.ID
	}
	if h.r.ID == "" {
		h.r.ID = h.hostID
	}
	if h.r.ID == "" {
		h.r.ID = h.pr.Hostname
	}
	if err := model.ValidID(h.r.ID); err != nil {
		return fmt.Errorf("minion id: %w (choose one with --id)", err)
	}
	return nil
}

var archRE = regexp.MustCompile(`^[a-z0-9_]{1,16}$`)

// reachHostRE is what a master host may be to go into the reach script:
// a name or an address, nothing a shell could read otherwise (it is
// quoted as well).
var reachHostRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.:_-]*$`)

// reachTimeout bounds the reach script on the host: 3 connects of 5 s,
// the rest is for a login shell that is slow to start (killing one in the
// middle of its own start-up files can leave their locks behind).
const reachTimeout = 30 * time.Second

// reach settles the master URL for the host (step 1, see the package
// comment) and checks the host can connect to it, before anything is
// written there.
func (h *hostRun) reach(ctx context.Context) error {
	h.url = h.b.MasterURL
	if h.url == "" {
		addr, err := h.b.SSH.LocalAddr(ctx, h.t)
		if err != nil {
			return fmt.Errorf("the master URL for this host: %w", err)
		}
		ta, ok := addr.(*net.TCPAddr)
		if !ok || ta.IP == nil || ta.IP.IsUnspecified() {
			return fmt.Errorf("no master URL for this host: the SSH connection's local address is %v "+
				"(through a jump host or tunnel?): nothing installed; set bootstrap.master_url to an address the host reaches the master at", addr)
		}
		h.url = (&url.URL{Scheme: "https", Host: net.JoinHostPort(ta.IP.String(), strconv.Itoa(h.b.MasterPort))}).String()
	}
	u, err := url.Parse(h.url)
	if err != nil || u.Hostname() == "" || !reachHostRE.MatchString(u.Hostname()) {
		return fmt.Errorf("master URL %q: want https://host:port", h.url)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	out, errOut, code, err := h.b.SSH.Run(ctx, h.t, h.p.script(markReach, reachBody, "HOST", u.Hostname(), "PORT", port))
	if err != nil {
		return fmt.Errorf("check the host reaches the master at %s: %w", h.url, err)
	}
	if code != 0 {
		return fmt.Errorf("check the host reaches the master at %s: exit status %d: %s", h.url, code, lastLine(errOut))
	}
	switch res, why := parseReach(out); res {
	case "ok":
		return nil
	case "fail":
		return fmt.Errorf("the host cannot reach the master at %s (no TCP connection from it in 3 attempts of 5s: %s); "+
			"nothing installed: set bootstrap.master_url to an address it can reach", h.url, why)
	default:
		h.b.log().Warn("bootstrap: cannot check the host reaches the master (no bash or nc there)", "host", h.r.Host, "master", h.url)
		return nil
	}
}

// pickBinary is step 2: the minion binary for the host's OS and
// architecture; without one, nothing is written.
func (h *hostRun) pickBinary(context.Context) error {
	arch := h.r.Arch
	h.local = filepath.Join(h.b.MinionDir, "minion-"+h.osName+"-"+arch)
	if h.osName != "linux" || !archRE.MatchString(arch) {
		return fmt.Errorf("no minion binary for %s/%s: bootstrap installs minions on Linux hosts (amd64, arm64, 386, arm, ppc64le, s390x, riscv64); "+
			"install a FreeBSD or macOS minion by hand (README: Platforms)", h.osName, arch)
	}
	var err error
	h.sum, err = h.b.sha256(h.local)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no minion binary for linux/%s in %s (make dist builds minion-linux-ARCH for amd64, arm64, 386, arm, ppc64le, s390x and riscv64)", arch, h.b.MinionDir)
	}
	if err != nil {
		return fmt.Errorf("no usable minion binary for linux/%s: %w", arch, err)
	}
	h.open = func() (io.ReadCloser, error) { return os.Open(h.local) }
	return nil
}

// checkInventory is step 3: an id the inventory knows must be registered
// with the host's own certificate (re-keying is an operator's decision).
func (h *hostRun) checkInventory(ctx context.Context) error {
	id := h.r.ID
	m, err := h.b.Store.Minion(ctx, id)
	switch {
	case err == nil:
		if m.State == model.KeyRejected {
			return fmt.Errorf("minion %s is rejected in the inventory; delete it (felix keys delete %s) to bootstrap it again", id, id)
		}
		if h.hostFP == "" {
			return fmt.Errorf("minion %s is already registered (certificate %s) and this host has no minion key: "+
				"another host has this id, or this one was re-imaged (felix keys delete %s to re-key it, or choose another --id)",
				id, m.Fingerprint, id)
		}
		if h.hostFP != m.Fingerprint {
			return fmt.Errorf("minion %s is registered with certificate %s but the host has %s: "+
				"delete it (felix keys delete %s) to re-key it", id, m.Fingerprint, h.hostFP, id)
		}
		h.known = true
	case errors.Is(err, inventory.ErrNotFound):
	default:
		return err
	}
	return nil
}

// install is step 4: the binary, the config and the systemd unit, each
// only when it differs from what the host has.
func (h *hostRun) install(ctx context.Context) error {
	b, t, p := h.b, h.t, h.p
	cfg := config.DefaultMinion()
	cfg.Master, cfg.MasterFingerprint, cfg.ID, cfg.DataDir = h.url, b.MasterFingerprint, h.r.ID, p.data
	if b.Port != 0 {
		cfg.Listen = ":" + strconv.Itoa(b.Port)
	}
	if h.old != nil { // what an operator tuned by hand stays
		cfg.Advertise = h.old.Advertise
		cfg.FileRoots = h.old.FileRoots
		if h.old.LogLevel != "" {
			cfg.LogLevel = h.old.LogLevel
		}
		if h.old.LogFormat != "" {
			cfg.LogFormat = h.old.LogFormat
		}
	}
	h.binChanged = !h.pr.Bin || h.pr.BinSHA256 != h.sum
	h.cfgChanged = h.old == nil || !sameConfig(*h.old, cfg) || !h.known
	h.r.Init = InitSupervise
	switch {
	case h.pr.Systemd && b.InstallRoot == "":
		h.r.Init = InitSystemd
	case h.pr.OpenRC && b.InstallRoot == "":
		h.r.Init = InitOpenRC
	}
	// The service file: systemd's unit, or OpenRC's script.
	unit, unitPath, unitMode, unitSum := unitFile(p), p.unit, uint32(0o644), h.pr.UnitSHA256
	if h.r.Init == InitOpenRC {
		unit, unitPath, unitMode, unitSum = openrcScript(p), p.initd, 0o755, h.pr.InitdSHA256
	}
	h.unitChanged = h.r.Init != InitSupervise && unitSum != sha256Hex([]byte(unit))
	if h.binChanged || h.cfgChanged || h.unitChanged {
		if err := h.run(ctx, "prepare directories", p.script(markPrepare, prepareBody, "SYSTEMD", flag(h.r.Init == InitSystemd),
			"OPENRC", flag(h.r.Init == InitOpenRC))); err != nil {
			return err
		}
	}
	if h.binChanged {
		f, err := h.open()
		if err != nil {
			return fmt.Errorf("open %s: %w", h.local, err)
		}
		err = b.SSH.Upload(ctx, t, p.bin, f, 0o755)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", p.bin, err)
		}
	}
	if h.cfgChanged {
		if !h.known {
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
	if h.unitChanged {
		if err := b.SSH.Upload(ctx, t, unitPath, strings.NewReader(unit), unitMode); err != nil {
			return fmt.Errorf("upload %s: %w", unitPath, err)
		}
	}
	return nil
}

// start is step 5: start (or restart) the minion and make it start at boot.
func (h *hostRun) start(ctx context.Context) error {
	restart := h.binChanged || h.cfgChanged || h.unitChanged
	body := startDetached
	switch h.r.Init {
	case InitSystemd:
		body = startSystemd
	case InitOpenRC:
		body = startOpenRC
	}
	h.since = time.Now().Truncate(time.Millisecond)
	out, errOut, code, err := h.b.SSH.Run(ctx, h.t, h.p.script(markStart, body, "RESTART", flag(restart),
		"CRON", flag(h.pr.Crontab && h.b.InstallRoot == "")))
	if err != nil {
		return fmt.Errorf("start the minion: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("start the minion: exit status %d: %s", code, lastLine(errOut))
	}
	h.started = restart || strings.Contains(string(out), "started=1")
	h.booted = strings.Contains(string(out), "boot=1")
	if !h.started {
		h.since = time.Time{} // the running minion's registration is the one to check
	}
	return nil
}

// verify is step 6: wait for the registration, then check its certificate
// is the host's: a mismatch rejects the minion, a match accepts a pending one.
func (h *hostRun) verify(ctx context.Context) error {
	b, id := h.b, h.r.ID
	m, err := h.waitRegistered(ctx)
	if err != nil {
		return err
	}
	fp, err := h.hostFingerprint(ctx)
	if err != nil {
		return err
	}
	if fp != m.Fingerprint {
		if err := b.Store.SetMinionState(context.WithoutCancel(ctx), id, model.KeyRejected, time.Now()); err != nil {
			b.log().Error("bootstrap: reject minion with a foreign certificate", "id", id, "err", err)
		}
		return fmt.Errorf("fingerprint mismatch: registered %s, host has %s (minion %s rejected)", m.Fingerprint, fp, id)
	}
	if m.State == model.KeyPending {
		if err := b.Store.SetMinionState(ctx, id, model.KeyAccepted, time.Now()); err != nil {
			return fmt.Errorf("accept minion %s: %w", id, err)
		}
	}
	h.m, h.r.Fingerprint = m, fp
	return h.tokenGone(ctx)
}

// tokenWait is how long verify waits for a registered minion to remove
// the join token from its config before bootstrap removes it itself.
var tokenWait = 10 * time.Second

// tokenGone makes sure the join token written into the host's config is
// gone once the minion is registered: the minion removes it itself
// (config.ScrubJoinToken, an atomic rewrite) right after registering; one
// that has not within tokenWait gets the config rewritten without it (an
// atomic upload).
func (h *hostRun) tokenGone(ctx context.Context) error {
	if !h.cfgChanged || h.known {
		return nil // no token was written
	}
	wait, cancel := context.WithTimeout(ctx, tokenWait)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		data, err := h.b.SSH.ReadFile(wait, h.t, h.p.conf)
		var c config.Minion
		if err == nil {
			if _, err = toml.Decode(string(data), &c); err == nil && c.JoinToken == "" {
				return nil
			}
		}
		select {
		case <-tick.C:
			continue
		case <-wait.Done():
		}
		if err != nil {
			return fmt.Errorf("read %s to check the join token is gone: %w", h.p.conf, err)
		}
		h.b.log().Warn("bootstrap: the minion left its join token in its config; removing it", "host", h.r.Host, "id", h.r.ID)
		c.JoinToken = ""
		out, err := renderConfig(c)
		if err != nil {
			return err
		}
		if err := h.b.SSH.Upload(ctx, h.t, h.p.conf, bytes.NewReader(out), 0o600); err != nil {
			return fmt.Errorf("remove the join token from %s: %w", h.p.conf, err)
		}
		return nil
	}
}

// action says what the bootstrap did (see the Action constants).
func (h *hostRun) action() string {
	switch {
	case !h.pr.Bin:
		return ActionInstalled
	case h.binChanged:
		return ActionUpgraded
	case h.cfgChanged || h.unitChanged || h.started || h.booted || h.m.State == model.KeyPending:
		return ActionRepaired
	}
	return ActionUnchanged
}

// run runs a script that must exit 0.
func (h *hostRun) run(ctx context.Context, what, script string) error {
	_, errOut, code, err := h.b.SSH.Run(ctx, h.t, script)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != 0 {
		return fmt.Errorf("%s: exit status %d: %s", what, code, lastLine(errOut))
	}
	return nil
}

// hostFingerprint reads the minion's certificate on the host.
func (h *hostRun) hostFingerprint(ctx context.Context) (string, error) {
	path := h.p.data + "/" + certFile
	data, err := h.b.SSH.ReadFile(ctx, h.t, path)
	if err != nil {
		return "", fmt.Errorf("read the minion certificate %s: %w", path, err)
	}
	_, fp, err := pki.ParseCertPEM(data)
	if err != nil {
		return "", fmt.Errorf("the minion certificate %s: %w", path, err)
	}
	return fp, nil
}

// waitRegistered polls the inventory until the minion is registered (at or
// after h.since, when set) and not rejected.
func (h *hostRun) waitRegistered(ctx context.Context) (inventory.Minion, error) {
	id := h.r.ID
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		m, err := h.b.Store.Minion(ctx, id)
		switch {
		case err == nil && m.State == model.KeyRejected:
			return m, fmt.Errorf("minion %s registered but is rejected in the inventory", id)
		case err == nil && !m.UpdatedAt.Before(h.since) && (h.want == "" || m.Version == h.want):
			return m, nil
		case err != nil && !errors.Is(err, inventory.ErrNotFound) && ctx.Err() == nil:
			return m, err
		}
		select {
		case <-ctx.Done():
			within := h.b.timeout()
			if h.window > 0 {
				within = h.window
			}
			what := ""
			if h.want != "" {
				what = " with version " + h.want
			}
			return m, fmt.Errorf("minion %s did not register%s within %s%s", id, what, within, h.logTail(ctx))
		case <-tick.C:
		}
	}
}

// logTail returns the minion's last log lines on the host, for a reason.
func (h *hostRun) logTail(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	body := logsDetached
	if h.r.Init == InitSystemd {
		body = logsSystemd
	}
	out, _, _, err := h.b.SSH.Run(ctx, h.t, h.p.script(markLogs, body))
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

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
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
