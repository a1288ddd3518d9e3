package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
)

const testMasterFP = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

// fakeHost is a host as bootstrap sees it over SSH: files in a map, and a
// "minion" that, when the start script runs, makes a key (once) and
// registers in the store with the join token of its config, the way the
// real one does over the API.
type fakeHost struct {
	t        *testing.T
	store    *inventory.Store
	machine  string // uname -m
	os       string // uname -s; "" means Linux
	hostname string
	systemd  bool
	openrc   bool
	// impostor, when set, registers in the minion's place with its own
	// certificate (someone racing the token) while the host keeps its own.
	impostor *pki.Identity
	// silent minions never register.
	silent bool
	// unreachable hosts cannot connect to the master (the reach script
	// answers fail); local is the master's end of the SSH connection
	// (default 192.0.2.1:40000).
	unreachable bool
	local       net.Addr
	// keepsToken minions leave the join token in their config.
	keepsToken bool

	mu      sync.Mutex // protects the fields below
	files   map[string][]byte
	modes   map[string]uint32
	scripts []string          // marker lines of the scripts run, in order
	bodies  []string          // the scripts run, in order
	uploads []string          // paths uploaded, in order
	token   string            // the join token of the last config uploaded with one
	via     []model.SSHTarget // the SSH settings of each script run
	running bool
	key     *pki.Identity
}

func newFakeHost(t *testing.T, store *inventory.Store, machine string) *fakeHost {
	return &fakeHost{t: t, store: store, machine: machine, hostname: "web-01",
		files: map[string][]byte{}, modes: map[string]uint32{}}
}

// fakeSSH routes calls to fake hosts by SSH host.
type fakeSSH map[string]*fakeHost

var _ SSH = fakeSSH(nil)

func (f fakeSSH) host(t model.Target) *fakeHost {
	h := f[t.SSH.Host]
	if h == nil {
		panic("no fake host " + t.SSH.Host)
	}
	return h
}

func (f fakeSSH) Run(ctx context.Context, t model.Target, script string) ([]byte, []byte, int, error) {
	h := f.host(t)
	h.mu.Lock()
	h.via = append(h.via, *t.SSH)
	h.mu.Unlock()
	return h.run(ctx, script)
}

func (f fakeSSH) Upload(ctx context.Context, t model.Target, path string, r io.Reader, mode uint32) error {
	h := f.host(t)
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.files[path], h.modes[path] = data, mode
	h.uploads = append(h.uploads, path)
	var c config.Minion
	if _, err := toml.Decode(string(data), &c); path == ConfigPath && err == nil && c.JoinToken != "" {
		h.token = c.JoinToken
	}
	return nil
}

func (f fakeSSH) ReadFile(ctx context.Context, t model.Target, path string) ([]byte, error) {
	h := f.host(t)
	h.mu.Lock()
	defer h.mu.Unlock()
	data, ok := h.files[path]
	if !ok {
		return nil, fmt.Errorf("open %s: file does not exist", path)
	}
	return data, nil
}

func (f fakeSSH) LocalAddr(ctx context.Context, t model.Target) (net.Addr, error) {
	if a := f.host(t).local; a != nil {
		return a, nil
	}
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 40000}, nil
}

func (h *fakeHost) run(ctx context.Context, script string) ([]byte, []byte, int, error) {
	mark, _, _ := strings.Cut(script, "\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scripts = append(h.scripts, mark)
	h.bodies = append(h.bodies, script)
	var out strings.Builder
	switch mark {
	case markProbe:
		osName := h.os
		if osName == "" {
			osName = "Linux"
		}
		fmt.Fprintf(&out, "os=%s\narch=%s\nhostname=%s\n", osName, h.machine, h.hostname)
		if h.systemd {
			out.WriteString("systemd=1\n")
		}
		if bin, ok := h.files[BinPath]; ok {
			sum := sha256.Sum256(bin)
			fmt.Fprintf(&out, "bin=1\nbin_sha256=%s\nbin_version=%s\n", hex.EncodeToString(sum[:]), binVersion(bin))
		}
		if _, ok := h.files[ConfigPath]; ok {
			out.WriteString("config=1\n")
		}
		if _, ok := h.files[DataDir+"/"+certFile]; ok {
			out.WriteString("cert=1\n")
		}
		if h.openrc {
			out.WriteString("openrc=1\n")
		}
		if initd, ok := h.files[InitdPath]; ok {
			sum := sha256.Sum256(initd)
			fmt.Fprintf(&out, "initd_sha256=%s\n", hex.EncodeToString(sum[:]))
		}
		if unit, ok := h.files[UnitPath]; ok {
			sum := sha256.Sum256(unit)
			fmt.Fprintf(&out, "unit_sha256=%s\n", hex.EncodeToString(sum[:]))
		}
		if h.running {
			out.WriteString("running=1\nactive=1\n")
		}
	case markKeep:
		h.files[BinPath+".prev"] = h.files[BinPath]
	case markRestore:
		prev, ok := h.files[BinPath+".prev"]
		if !ok {
			return nil, []byte("no .prev to restore"), 1, nil
		}
		h.files[BinPath] = prev
		delete(h.files, BinPath+".prev")
	case markReach:
		if h.unreachable {
			out.WriteString("reach=fail\n")
		} else {
			out.WriteString("reach=ok\n")
		}
	case markPrepare, markLogs:
		if mark == markLogs {
			out.WriteString("level=ERROR msg=\"cannot reach the master\"\n")
		}
	case markStart:
		if !strings.Contains(script, "RESTART='1'") && h.running {
			break
		}
		if err := h.startLocked(ctx); err != nil {
			return nil, []byte(err.Error()), 1, nil
		}
		out.WriteString("started=1\n")
	default:
		h.t.Errorf("unexpected script:\n%s", script)
		return nil, []byte("unknown script"), 2, nil
	}
	return []byte(out.String()), nil, 0, nil
}

// startLocked plays the minion starting: key on first start, registration
// with its config's join token.
func (h *fakeHost) startLocked(ctx context.Context) error {
	var cfg config.Minion
	if _, err := toml.Decode(string(h.files[ConfigPath]), &cfg); err != nil {
		return fmt.Errorf("minion config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("minion config: %w", err)
	}
	if h.key == nil {
		id, err := pki.LoadOrCreate(h.t.TempDir(), "minion", cfg.ID, nil)
		if err != nil {
			return err
		}
		h.key = id
		h.files[DataDir+"/"+certFile] = id.CertPEM
	}
	h.running = true
	if h.silent {
		return nil
	}
	if strings.Contains(string(h.files[BinPath]), "exits at once") {
		h.running = false
		return nil
	}
	who := h.key
	if h.impostor != nil {
		who = h.impostor
	}
	reg := inventory.Registration{Minion: inventory.Minion{ID: cfg.ID, Hostname: h.hostname, Addr: "192.0.2.7:4510",
		CertPEM: string(who.CertPEM), Fingerprint: who.Fingerprint, Facts: "{}", Version: binVersion(h.files[BinPath])}}
	if cfg.JoinToken != "" {
		reg.JoinTokenHash = inventory.HashToken(cfg.JoinToken)
	}
	// A minion whose registration is refused logs it and exits; the
	// bootstrap then times out, which the tests check where they want it.
	if _, _, err := h.store.Register(ctx, reg, time.Now()); err != nil {
		h.running = false
		h.t.Logf("fake minion %s: register: %v", cfg.ID, err)
		return nil
	}
	if !h.keepsToken { // registered: the token goes, as the real minion scrubs it
		cfg.JoinToken = ""
		data, err := renderConfig(cfg)
		if err != nil {
			return err
		}
		h.files[ConfigPath] = data
	}
	return nil
}

// binVersion is what a fake minion binary answers to version: the rest
// of its first line after "version:", else v-test.
func binVersion(bin []byte) string {
	line, _, _ := strings.Cut(string(bin), "\n")
	if v, ok := strings.CutPrefix(line, "version:"); ok {
		return v
	}
	return "v-test"
}

func (h *fakeHost) snapshot() (scripts, uploads []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.scripts), slices.Clone(h.uploads)
}

func (h *fakeHost) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.scripts, h.bodies, h.uploads = nil, nil, nil
}

// setup returns a bootstrapper with a real SQLite store and a minion
// directory holding the binaries for archs, and the fake SSH it uses.
func setup(t *testing.T, archs ...string) (*Bootstrapper, fakeSSH) {
	t.Helper()
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	dir := t.TempDir()
	for _, a := range archs {
		if err := os.WriteFile(filepath.Join(dir, "minion-linux-"+a), []byte("minion binary for "+a), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ssh := fakeSSH{}
	b := &Bootstrapper{SSH: ssh, Store: store, MasterURL: "https://master.example:8443", MasterFingerprint: testMasterFP,
		MinionDir: dir, Timeout: 5 * time.Second, Log: testenv.Logger(t)}
	return b, ssh
}

func target(host string) model.Target {
	return model.Target{ID: "root@" + host, SSH: &model.SSHTarget{Host: host, User: "root"}}
}

func (h *fakeHost) config(t *testing.T) config.Minion {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var c config.Minion
	md, err := toml.Decode(string(h.files[ConfigPath]), &c)
	if err != nil {
		t.Fatalf("uploaded config does not decode: %v\n%s", err, h.files[ConfigPath])
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("uploaded config has unknown keys %v", und)
	}
	return c
}

func TestGoArch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"x86_64", "amd64"}, {"aarch64", "arm64"}, {"arm64", "arm64"}, {"amd64", "amd64"},
		{"i686", "386"}, {"i386", "386"}, {"armv7l", "arm"}, {"riscv64", "riscv64"}, {" X86_64\n", "amd64"},
		{"ppc64le", "ppc64le"}, {"s390x", "s390x"}, {"mips", "mips"},
	} {
		if got := goArch(tc.in); got != tc.want {
			t.Errorf("goArch(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseHost(t *testing.T) {
	good := []struct {
		in   string
		want model.SSHTarget
	}{
		{"10.0.0.5", model.SSHTarget{Host: "10.0.0.5", Port: 22}},
		{"root@10.0.0.5:2222", model.SSHTarget{Host: "10.0.0.5", User: "root", Port: 2222}},
		{"deploy@web-01.example.net", model.SSHTarget{Host: "web-01.example.net", User: "deploy", Port: 22}},
		{"[::1]:2200", model.SSHTarget{Host: "::1", Port: 2200}},
		{"admin@fe80::1", model.SSHTarget{Host: "fe80::1", User: "admin", Port: 22}},
		{"[2001:db8::5]", model.SSHTarget{Host: "2001:db8::5", Port: 22}},
	}
	for _, tc := range good {
		got, err := ParseHost(tc.in, 0, "")
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseHost(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	if got, err := ParseHost("h1", 2200, "/root/.ssh/id_ed25519"); err != nil || got.Port != 2200 || got.KeyPath != "/root/.ssh/id_ed25519" {
		t.Errorf("ParseHost with default port and key = %+v, %v", got, err)
	}
	bad := []struct{ host, key string }{
		{"", ""}, {"-oProxyCommand=sh", ""}, {"root@-h", ""}, {"-l@host", ""}, {"host;reboot", ""},
		{"host$(id)", ""}, {"ro ot@host", ""}, {"host:0", ""}, {"host:70000", ""}, {"host:22x", ""},
		{"a@b@c", ""}, {"host`id`", ""}, {"host|x", ""}, {"[::1", ""}, {"host", "-i/etc/passwd"},
		{"host", "/root/key;rm -rf /"}, {"host", "relative/key"}, {"host", "~/.ssh/id_rsa"},
		{"host", "/root/my key"}, {"host\n", ""}, {"user'@host", ""},
	}
	for _, tc := range bad {
		if got, err := ParseHost(tc.host, 0, tc.key); err == nil {
			t.Errorf("ParseHost(%q, key %q) = %+v; want an error", tc.host, tc.key, got)
		}
	}
}

func TestMissingBinary(t *testing.T) {
	for _, tc := range []struct{ os, machine, want string }{
		{"", "aarch64", "no minion binary for linux/arm64"},
		{"", "sparc64", "no minion binary for linux/sparc64"},
		{"FreeBSD", "amd64", "no minion binary for freebsd/amd64"},
	} {
		b, ssh := setup(t, "amd64")
		h := newFakeHost(t, b.Store, tc.machine)
		h.os = tc.os
		ssh["h1"] = h
		r := b.Host(context.Background(), target("h1"), "")
		if r.State != StateFailed || !strings.Contains(r.Reason, tc.want) {
			t.Errorf("%s/%s: %+v; want failed with %q", tc.os, tc.machine, r, tc.want)
		}
		scripts, uploads := h.snapshot()
		if len(uploads) != 0 || !slices.Equal(scripts, []string{markProbe}) {
			t.Errorf("%s/%s: scripts %q, uploads %q; want the probe only", tc.os, tc.machine, scripts, uploads)
		}
		if ms, _ := b.Store.Minions(context.Background()); len(ms) != 0 {
			t.Errorf("minions registered: %+v", ms)
		}
	}
}

func TestInstallRerunUpgrade(t *testing.T) {
	for _, wantInit := range []string{InitSupervise, InitSystemd, InitOpenRC} {
		t.Run(wantInit, func(t *testing.T) {
			ctx := context.Background()
			b, ssh := setup(t, "amd64", "arm64")
			h := newFakeHost(t, b.Store, "x86_64")
			systemd := wantInit == InitSystemd
			h.systemd, h.openrc = systemd, wantInit == InitOpenRC
			ssh["10.0.0.5"] = h

			r := b.Host(ctx, target("10.0.0.5"), "")
			if r.State != StateOK || r.Action != ActionInstalled || r.ID != "web-01" || r.Arch != "amd64" || r.Init != wantInit {
				t.Fatalf("first bootstrap: %+v; want ok installed web-01 amd64 %s", r, wantInit)
			}
			if r.Fingerprint != h.key.Fingerprint {
				t.Errorf("fingerprint %s; want the host's %s", r.Fingerprint, h.key.Fingerprint)
			}
			m, err := b.Store.Minion(ctx, "web-01")
			if err != nil || m.State != model.KeyAccepted || m.Fingerprint != h.key.Fingerprint {
				t.Errorf("registered minion %+v, %v; want accepted with the host's certificate", m, err)
			}
			_, uploads := h.snapshot()
			want := []string{BinPath, ConfigPath}
			switch wantInit {
			case InitSystemd:
				want = append(want, UnitPath)
			case InitOpenRC:
				want = append(want, InitdPath)
			}
			if !slices.Equal(uploads, want) {
				t.Errorf("uploads %q; want %q", uploads, want)
			}
			if h.modes[BinPath] != 0o755 || h.modes[ConfigPath] != 0o600 {
				t.Errorf("modes: binary %o, config %o; want 755 and 600", h.modes[BinPath], h.modes[ConfigPath])
			}
			if string(h.files[BinPath]) != "minion binary for amd64" {
				t.Errorf("uploaded binary %q; want the amd64 one", h.files[BinPath])
			}
			c := h.config(t)
			if c.Master != b.MasterURL || c.MasterFingerprint != testMasterFP || c.ID != "web-01" || c.Listen != ":4510" ||
				c.DataDir != DataDir || c.JoinToken != "" || !strings.HasPrefix(h.token, "fjt_") {
				t.Errorf("config %+v, token uploaded %q; want one uploaded, gone once registered", c, h.token)
			}
			if systemd && !strings.Contains(string(h.files[UnitPath]), "ExecStart="+BinPath+" start --config "+ConfigPath+"\n") {
				t.Errorf("unit:\n%s", h.files[UnitPath])
			}
			if wantInit == InitOpenRC && (h.modes[InitdPath] != 0o755 || string(h.files[InitdPath]) != openrcScript(pathsUnder(""))) {
				t.Errorf("OpenRC script, mode %o:\n%s", h.modes[InitdPath], h.files[InitdPath])
			}
			h.mu.Lock()
			started := strings.Join(h.bodies, "\n")
			h.mu.Unlock()
			if wantInit == InitOpenRC && !strings.Contains(started, "rc-update add felix-minion default") ||
				wantInit == InitSupervise && !strings.Contains(started, `"$BIN" start --supervise --config "$CONF"`) {
				t.Errorf("%s: the start script does not start the minion that way:\n%s", wantInit, started)
			}

			// A rerun changes nothing, consumes nothing, duplicates nothing.
			h.reset()
			r = b.Host(ctx, target("10.0.0.5"), "")
			if r.State != StateOK || r.Action != ActionUnchanged || r.ID != "web-01" || r.Fingerprint != h.key.Fingerprint {
				t.Errorf("rerun: %+v; want ok unchanged web-01", r)
			}
			if _, uploads := h.snapshot(); len(uploads) != 0 {
				t.Errorf("rerun uploaded %q", uploads)
			}
			if ms, _ := b.Store.Minions(ctx); len(ms) != 1 {
				t.Errorf("%d minions after a rerun; want 1", len(ms))
			}

			// The minion stopped: a rerun starts it again (repaired).
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
			if r = b.Host(ctx, target("10.0.0.5"), ""); r.State != StateOK || r.Action != ActionRepaired {
				t.Errorf("rerun with the minion stopped: %+v; want ok repaired", r)
			}

			// A new binary: uploaded alone, the minion restarted with its
			// key, still one minion.
			if err := os.WriteFile(filepath.Join(b.MinionDir, "minion-linux-amd64"), []byte("minion binary v2"), 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(filepath.Join(b.MinionDir, "minion-linux-amd64"), time.Now(), time.Now().Add(time.Minute))
			h.reset()
			r = b.Host(ctx, target("10.0.0.5"), "")
			if r.State != StateOK || r.Action != ActionUpgraded || r.Fingerprint != h.key.Fingerprint {
				t.Errorf("upgrade: %+v; want ok upgraded", r)
			}
			if _, uploads := h.snapshot(); !slices.Equal(uploads, []string{BinPath}) || string(h.files[BinPath]) != "minion binary v2" {
				t.Errorf("upgrade uploaded %q", uploads)
			}
			if ms, _ := b.Store.Minions(ctx); len(ms) != 1 {
				t.Errorf("%d minions after an upgrade; want 1", len(ms))
			}
		})
	}
}

func TestConfigEncoding(t *testing.T) {
	weird := []string{
		`https://m.example:8443/a"b`, `https://m.example:8443/back\slash`, "https://m.example:8443/new\nline = \"x\"",
		`https://m.example:8443/'$(touch /tmp/pwned)'`, "https://m.example:8443/\"\"\"triple'''", "https://m.example/tab\there\x01\x7f",
		"https://m.example/ünïcødé",
	}
	for _, url := range weird {
		in := config.Minion{Master: url, MasterFingerprint: testMasterFP, JoinToken: "fjt_" + url, ID: "web-01", Listen: ":4510",
			DataDir: "/var/lib/felix/minion", LogLevel: "info", Advertise: "a]b=c#d"}
		data, err := renderConfig(in)
		if err != nil {
			t.Fatalf("renderConfig(%q): %v", url, err)
		}
		var out config.Minion
		if _, err := toml.Decode(string(data), &out); err != nil {
			t.Fatalf("config for %q does not decode: %v\n%s", url, err, data)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("round trip of %q:\n got %+v\nwant %+v", url, out, in)
		}
	}

	// Through a whole bootstrap: what the host gets is what was meant, and
	// no script carries the URL or the token.
	b, ssh := setup(t, "amd64")
	b.MasterURL = `https://m.example:8443/x'"; touch /tmp/pwned; echo "`
	h := newFakeHost(t, b.Store, "x86_64")
	ssh["h1"] = h
	if r := b.Host(context.Background(), target("h1"), "db-7"); r.State != StateOK || r.ID != "db-7" {
		t.Fatalf("bootstrap: %+v", r)
	}
	c := h.config(t)
	if c.Master != b.MasterURL || c.ID != "db-7" {
		t.Errorf("config master %q id %q; want %q db-7", c.Master, c.ID, b.MasterURL)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.bodies {
		if strings.Contains(s, "pwned") || h.token == "" || strings.Contains(s, h.token) || strings.Contains(s, "db-7") {
			t.Errorf("a script carries request data:\n%s", s)
		}
	}
}

func TestFingerprintMismatch(t *testing.T) {
	ctx := context.Background()
	b, ssh := setup(t, "amd64")
	h := newFakeHost(t, b.Store, "x86_64")
	imp, err := pki.LoadOrCreate(t.TempDir(), "impostor", "web-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.impostor = imp
	ssh["h1"] = h
	r := b.Host(ctx, target("h1"), "")
	want := fmt.Sprintf("fingerprint mismatch: registered %s, host has %s", imp.Fingerprint, h.key.Fingerprint)
	if r.State != StateFailed || !strings.Contains(r.Reason, want) {
		t.Errorf("result %+v; want failed with %q", r, want)
	}
	if m, err := b.Store.Minion(ctx, "web-01"); err != nil || m.State != model.KeyRejected {
		t.Errorf("impostor minion %+v, %v; want rejected", m, err)
	}
}

func TestKnownIDOtherHost(t *testing.T) {
	ctx := context.Background()
	b, ssh := setup(t, "amd64")
	first := newFakeHost(t, b.Store, "x86_64")
	ssh["h1"] = first
	if r := b.Host(ctx, target("h1"), "web-01"); r.State != StateOK {
		t.Fatalf("first host: %+v", r)
	}
	// Another host asked to be web-01 too: refused before anything is written.
	second := newFakeHost(t, b.Store, "x86_64")
	ssh["h2"] = second
	r := b.Host(ctx, target("h2"), "web-01")
	if r.State != StateFailed || !strings.Contains(r.Reason, "already registered") || !strings.Contains(r.Reason, "felix keys delete web-01") {
		t.Errorf("second host: %+v; want failed: already registered", r)
	}
	if scripts, uploads := second.snapshot(); len(uploads) != 0 || !slices.Equal(scripts, []string{markProbe}) {
		t.Errorf("second host: scripts %q, uploads %q; want the probe only", scripts, uploads)
	}
	if m, _ := b.Store.Minion(ctx, "web-01"); m.Fingerprint != first.key.Fingerprint || m.State != model.KeyAccepted {
		t.Errorf("web-01 is now %+v; want the first host's, accepted", m)
	}
}

func TestNoRegistrationTimesOut(t *testing.T) {
	b, ssh := setup(t, "amd64")
	b.Timeout = 700 * time.Millisecond
	h := newFakeHost(t, b.Store, "x86_64")
	h.silent = true
	ssh["h1"] = h
	r := b.Host(context.Background(), target("h1"), "")
	if r.State != StateFailed || !strings.Contains(r.Reason, "did not register within") || !strings.Contains(r.Reason, "cannot reach the master") {
		t.Errorf("result %+v; want failed: did not register, with the log tail", r)
	}
}

func TestMany(t *testing.T) {
	b, ssh := setup(t, "amd64")
	b.Parallel = 2
	var targets []model.Target
	for i := range 5 {
		host := fmt.Sprintf("10.0.0.%d", i+1)
		h := newFakeHost(t, b.Store, "x86_64")
		h.hostname = fmt.Sprintf("node%d", i+1)
		if i == 3 {
			h.machine = "ppc64le"
		}
		ssh[host] = h
		targets = append(targets, target(host))
	}
	rs := b.Many(context.Background(), targets, []string{"", "custom"})
	for i, r := range rs {
		wantID := fmt.Sprintf("node%d", i+1)
		if i == 1 {
			wantID = "custom"
		}
		if r.Host != targets[i].ID || r.ID != wantID {
			t.Errorf("result %d: host %s id %s; want %s %s", i, r.Host, r.ID, targets[i].ID, wantID)
		}
		if wantOK := i != 3; (r.State == StateOK) != wantOK {
			t.Errorf("result %d: %+v", i, r)
		}
		if r.Login == nil || !reflect.DeepEqual(*r.Login, *targets[i].SSH) {
			t.Errorf("result %d: login %v; want the one given, %+v", i, r.Login, *targets[i].SSH)
		}
	}
	if ms, _ := b.Store.Minions(context.Background()); len(ms) != 4 {
		t.Errorf("%d minions; want 4", len(ms))
	}
}

// TestScripts checks every script is valid sh, and runs the probe on this
// machine under an empty install root.
func TestScripts(t *testing.T) {
	root := t.TempDir()
	p := pathsUnder(root)
	for name, s := range map[string]string{
		"probe": p.script(markProbe, probeBody), "prepare": p.script(markPrepare, prepareBody, "SYSTEMD", "0"),
		"start systemd":  p.script(markStart, startSystemd, "RESTART", "1", "CRON", "0"),
		"start detached": p.script(markStart, startDetached, "RESTART", "0", "CRON", "1"),
		"start openrc":   p.script(markStart, startOpenRC, "RESTART", "1", "CRON", "0"),
		"openrc service": openrcScript(p),
		"logs":           p.script(markLogs, logsDetached),
	} {
		cmd := exec.Command("/bin/sh", "-n")
		cmd.Stdin = strings.NewReader(s)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s script: sh -n: %v\n%s\n%s", name, err, out, s)
		}
	}
	cmd := exec.Command("/bin/sh")
	cmd.Stdin = strings.NewReader(p.script(markProbe, probeBody))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, stderr.String())
	}
	pr := parseProbe(out)
	if pr.OS != "Linux" || pr.Arch == "" || pr.Hostname == "" || pr.Bin || pr.Config || pr.Cert || pr.Running {
		t.Errorf("probe on an empty root: %+v\n%s", pr, out)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the probe wrote into the install root")
	}
	if err := ValidInstallRoot(root); err != nil {
		t.Errorf("ValidInstallRoot(%q): %v", root, err)
	}
	for _, bad := range []string{"/", "relative", "/a b", "/a/../b", "/a;b", "/a/"} {
		if ValidInstallRoot(bad) == nil {
			t.Errorf("ValidInstallRoot(%q) = nil; want an error", bad)
		}
	}
}

// TestOpenRCScript reads the OpenRC service script as openrc-run would
// (it sources it): the minion's command line with the install paths, and
// the minion's own supervisor in the background where OpenRC has no
// supervise-daemon (this machine has no /sbin/supervise-daemon, or the
// other branch is checked).
func TestOpenRCScript(t *testing.T) {
	p := pathsUnder("/srv/root")
	cmd := exec.Command("/bin/sh", "-c", `. "$1"; depend() { :; }; printf '%s|%s|%s|%s|%s|%s\n' "$command" "$command_args" "$supervisor" "$command_background" "$pidfile" "$output_log"`, "sh", "/dev/stdin")
	cmd.Stdin = strings.NewReader(openrcScript(p))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("source the OpenRC script: %v\n%s", err, out)
	}
	want := "/srv/root/usr/local/bin/felix-minion|start --supervise --config /srv/root/etc/felix/minion.toml|" +
		"|true|/run/felix-minion.pid|/srv/root/var/log/felix-minion.log\n"
	if _, err := os.Stat("/sbin/supervise-daemon"); err == nil {
		want = "/srv/root/usr/local/bin/felix-minion|start --config /srv/root/etc/felix/minion.toml|supervise-daemon|||" +
			"/srv/root/var/log/felix-minion.log\n"
	}
	if string(out) != want {
		t.Errorf("OpenRC script variables:\n%s want\n%s", out, want)
	}
	if first, _, _ := strings.Cut(openrcScript(p), "\n"); first != "#!/sbin/openrc-run" {
		t.Errorf("first line %q; want the openrc-run interpreter", first)
	}
}

func TestAgentlessInventory(t *testing.T) {
	ctx := context.Background()
	b, ssh := setup(t, "amd64")
	if _, err := b.Store.AddHost(ctx, inventory.Host{ID: "db1", Address: "10.0.0.9", Port: 2222, User: "admin",
		KeyPath: "/etc/felix/db.key", ProxyJump: "ops@bastion:2200", Labels: map[string]string{"group": "db"}}, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := newFakeHost(t, b.Store, "aarch64")
	ssh["10.0.0.9"] = h
	b.MinionDir = t.TempDir()
	os.WriteFile(filepath.Join(b.MinionDir, "minion-linux-arm64"), []byte("arm"), 0o755)
	r := b.Host(ctx, target("10.0.0.9"), "")
	if r.State != StateOK || r.ID != "db1" || r.Arch != "arm64" {
		t.Errorf("result %+v; want ok, id db1 from the inventory, arm64", r)
	}
	if r.Login != nil {
		t.Errorf("login %+v of an inventory host; want none (nothing for the caller to record)", *r.Login)
	}
	// Its jump hosts and labels (which the transport's ssh.jump rules
	// match) go with it.
	want := model.SSHTarget{Host: "10.0.0.9", Port: 2222, User: "admin", KeyPath: "/etc/felix/db.key",
		Jump: []model.SSHHop{{Host: "bastion", Port: 2200, User: "ops"}}, Labels: map[string]string{"group": "db"}}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.via {
		if !reflect.DeepEqual(v, want) {
			t.Errorf("ran over %+v; want the inventory's %+v", v, want)
			break
		}
	}
}

// TestMasterURL: the master URL a host's minion gets, and the check that
// the host reaches it, before anything is written.
func TestMasterURL(t *testing.T) {
	for _, tc := range []struct {
		name        string
		configured  string
		port        int
		local       net.Addr
		unreachable bool
		jump        string // the target's proxy jump
		want        string // the config's master; "" when the host fails
		reason      string // in the failure's reason
	}{
		{name: "configured", configured: "https://master.example:8443", want: "https://master.example:8443"},
		{name: "derived", port: 9443, local: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 50123}, want: "https://10.1.2.3:9443"},
		{name: "derived v6", port: 9443, local: &net.TCPAddr{IP: net.ParseIP("fd00::7"), Port: 50123}, want: "https://[fd00::7]:9443"},
		{name: "tunnel", port: 9443, local: &net.TCPAddr{IP: net.IPv4zero}, reason: "set bootstrap.master_url"},
		{name: "jump host", port: 9443, jump: "root@10.0.0.1", reason: "no master URL for a host reached through jump hosts (root@10.0.0.1): " +
			"nothing installed; set bootstrap.master_url"},
		{name: "jump host configured", configured: "https://10.0.0.1:8443", jump: "root@10.0.0.1", want: "https://10.0.0.1:8443"},
		{name: "unreachable", configured: "https://10.9.9.9:8443", unreachable: true,
			reason: "the host cannot reach the master at https://10.9.9.9:8443"},
		{name: "unreachable derived", port: 9443, local: &net.TCPAddr{IP: net.ParseIP("10.1.2.3")}, unreachable: true,
			reason: "the host cannot reach the master at https://10.1.2.3:9443"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ssh := setup(t, "amd64")
			b.MasterURL, b.MasterPort = tc.configured, tc.port
			h := newFakeHost(t, b.Store, "x86_64")
			h.local, h.unreachable = tc.local, tc.unreachable
			ssh["h1"] = h
			tg := target("h1")
			tg.SSH.Jump, _ = model.ParseProxyJump(tc.jump)
			r := b.Host(context.Background(), tg, "")
			if tc.want == "" {
				scripts, uploads := h.snapshot()
				if r.State != StateFailed || !strings.Contains(r.Reason, tc.reason) || len(uploads) != 0 ||
					slices.Contains(scripts, markPrepare) || slices.Contains(scripts, markStart) {
					t.Errorf("result %+v, scripts %q, uploads %q; want failed with %q, nothing written", r, scripts, uploads, tc.reason)
				}
				return
			}
			if r.State != StateOK {
				t.Fatalf("result %+v", r)
			}
			if c := h.config(t); c.Master != tc.want {
				t.Errorf("config master %q; want %q", c.Master, tc.want)
			}
		})
	}
}

// TestTokenRemoved: a minion that registered but left the join token in
// its config gets the config rewritten without it.
func TestTokenRemoved(t *testing.T) {
	old := tokenWait
	tokenWait = 300 * time.Millisecond
	t.Cleanup(func() { tokenWait = old })
	b, ssh := setup(t, "amd64")
	h := newFakeHost(t, b.Store, "x86_64")
	h.keepsToken = true
	ssh["h1"] = h
	if r := b.Host(context.Background(), target("h1"), ""); r.State != StateOK {
		t.Fatalf("result %+v", r)
	}
	if c := h.config(t); c.JoinToken != "" || h.token == "" || c.ID != "web-01" || c.Master != b.MasterURL {
		t.Errorf("config %+v after the bootstrap (token uploaded %q); want the token gone, the rest kept", c, h.token)
	}
	if h.modes[ConfigPath] != 0o600 {
		t.Errorf("config mode %o; want 600", h.modes[ConfigPath])
	}
}

// TestReachScript runs the reach script here: a port that listens is
// reached, a closed one is not.
func TestReachScript(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	p := pathsUnder(t.TempDir())
	for _, tc := range []struct{ port, want string }{
		{strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "ok"},
		{closedPort, "fail"},
	} {
		cmd := exec.Command("/bin/sh")
		cmd.Stdin = strings.NewReader(p.script(markReach, reachBody, "HOST", "127.0.0.1", "PORT", tc.port))
		out, err := cmd.CombinedOutput()
		got, why := parseReach(out)
		if err != nil || got != tc.want || (got == "fail") != strings.Contains(why, "refused") {
			t.Errorf("reach 127.0.0.1:%s = %q %q (%v, %s); want %q, refused when it fails", tc.port, got, why, err, out, tc.want)
		}
	}
}

// TestBecome: a login with become does everything with it, and the login
// returned for recording keeps it.
func TestBecome(t *testing.T) {
	b, ssh := setup(t, "amd64")
	h := newFakeHost(t, b.Store, "x86_64")
	ssh["h1"] = h
	tg := model.Target{ID: "admin@h1", SSH: &model.SSHTarget{Host: "h1", User: "admin", Become: true}}
	r := b.Host(context.Background(), tg, "")
	if r.State != StateOK || r.Login == nil || !r.Login.Become || r.Login.User != "admin" {
		t.Fatalf("result %+v (login %+v); want ok, the login admin with become", r, r.Login)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range h.via {
		if !v.Become {
			t.Errorf("a script ran without become: %+v", v)
		}
	}
}

// TestRCLocal runs the detached start script on an install root whose
// rc.local has an older felix line (without the supervisor): it is
// replaced by the supervised one, before "exit 0", the rest kept.
func TestRCLocal(t *testing.T) {
	root := t.TempDir()
	p := pathsUnder(root)
	if err := os.MkdirAll(filepath.Dir(p.rc), 0o755); err != nil {
		t.Fatal(err)
	}
	old := p.bin + " start --config " + p.conf + " >>" + p.log + " 2>&1 &"
	if err := os.WriteFile(p.rc, []byte("#!/bin/sh\necho other\n"+old+"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh")
	cmd.Stdin = strings.NewReader(p.script(markStart, startDetached, "RESTART", "0", "CRON", "0"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("start script: %v\n%s", err, out)
	}
	b, err := os.ReadFile(p.rc)
	want := "#!/bin/sh\necho other\n" + p.bin + " start --supervise --config " + p.conf + " >>" + p.log + " 2>&1 &\nexit 0\n"
	if err != nil || string(b) != want {
		t.Errorf("rc.local:\n%s(%v)\nwant\n%s", b, err, want)
	}
	if !strings.Contains(string(out), "boot=1") {
		t.Errorf("the script did not report the boot entry: %s", out)
	}
}
