package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/pki"
)

// netns is a separate "host" for bootstrap: a network namespace joined to
// this one by a veth pair. It shares this machine's file system, so what
// is installed into it goes under an install root in a temp directory.
type netns struct {
	name  string
	local string // the root namespace's end, 10.250.X.1 (newNetnsBehind: the front namespace's end)
	peer  string // the namespace's end, 10.250.X.2
	// behind is set by newNetnsBehind: the root namespace cannot reach peer.
	behind bool
	// sshdOnlyFrom, when set, is the one address startNsSSHD's sshd takes
	// logins from (newNetnsBehindWith, routed: front's inner address).
	sshdOnlyFrom string
}

func run(t *testing.T, name string, args ...string) error {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Missing(t, "no ip command (iproute2) for a network namespace: %v", err)
	}
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		testenv.Missing(t, "no /usr/sbin/sshd (openssh-server): %v", err)
	}
	var b [4]byte
	rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	n := &netns{name: "felix-bs-" + tag}
	x := 1 + int(b[0])%250 // 10.250.X.0/30
	// One not in use on this machine (tests, maybe of other checkouts, run
	// at once): the same subnet on two veths would misroute replies.
	for i := 0; i < 250; i++ {
		if out, err := exec.Command("ip", "-4", "-o", "addr", "show", "to", fmt.Sprintf("10.250.%d.0/30", x)).Output(); err == nil && len(bytes.TrimSpace(out)) == 0 {
			break
		}
		x = 1 + x%250
	}
	n.local, n.peer = fmt.Sprintf("10.250.%d.1", x), fmt.Sprintf("10.250.%d.2", x)
	if err := run(t, "ip", "netns", "add", n.name); err != nil {
		testenv.Missing(t, "network namespaces are not permitted here: %v", err)
	}
	t.Cleanup(func() {
		// Whatever still runs in the namespace was started by this test.
		if out, err := exec.Command("ip", "netns", "pids", n.name).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := run(t, "ip", "netns", "del", n.name); err != nil {
			t.Errorf("remove the namespace: %v", err)
		}
	})
	veth, peer := "fbs"+tag, "fbp"+tag
	steps := [][]string{
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", peer, "netns", n.name},
		{"ip", "addr", "add", n.local + "/30", "dev", veth},
		{"ip", "link", "set", veth, "up"},
		{"ip", "netns", "exec", n.name, "ip", "addr", "add", n.peer + "/30", "dev", peer},
		{"ip", "netns", "exec", n.name, "ip", "link", "set", peer, "up"},
		{"ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up"},
	}
	for i, s := range steps {
		if err := run(t, s[0], s[1:]...); err != nil {
			if i == 0 {
				testenv.Missing(t, "veth pairs are not permitted here: %v", err)
			}
			t.Fatal(err)
		}
		if i == 0 {
			t.Cleanup(func() { exec.Command("ip", "link", "del", veth).Run() }) // gone with the namespace, normally
		}
	}
	return n
}

// nsSSHD is an OpenSSH sshd running inside the namespace on port 22 with
// its own host key, accepting root (and sudoUser, when set) with the
// test's client key.
type nsSSHD struct {
	hostKeyLine string // the known_hosts line for the namespace's address
	clientKey   string // private key file
}

// sudoUser is the non-root login with passwordless sudo that
// startNsSSHDWith(t, n, true) adds: it exists in sshd's own mount
// namespace only (copies of /etc/passwd, group, shadow and sudoers
// bind-mounted over the real ones there), and so for everything run through that sshd.
const sudoUser = "felixbs"

func startNsSSHD(t *testing.T, n *netns) *nsSSHD { return startNsSSHDWith(t, n, false) }

func startNsSSHDWith(t *testing.T, n *netns, withSudoUser bool) *nsSSHD {
	t.Helper()
	dir := t.TempDir()
	// The authorized keys are read as the user logging in: a directory
	// anyone may enter.
	keysDir, err := os.MkdirTemp("", "felix-bs-keys-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(keysDir) })
	os.Chmod(keysDir, 0o755)
	hostKey, clientKey := filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "client_ed25519")
	for _, k := range []string{hostKey, clientKey} {
		if err := run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "felix-e2e", "-f", k); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keysDir, "authorized_keys"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`ListenAddress %s:22
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
LogLevel VERBOSE
%s`, n.peer, hostKey, filepath.Join(dir, "sshd.pid"), filepath.Join(keysDir, "authorized_keys"), onlyFrom(n))), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // its privilege separation directory
	var mu sync.Mutex
	var out bytes.Buffer
	cmd := nsSSHDCmd(t, n, keysDir, cfg, withSudoUser)
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd in %s: %v", n.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("--- sshd in %s ---\n%s", n.name, out.String())
			mu.Unlock()
		}
	})
	waitFor(t, "sshd in the namespace", 20*time.Second, func() bool {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("sshd exited: %s", out.String())
		default:
		}
		if n.behind { // not reachable from here: sshd writes its pid file once it listens
			_, err := os.Stat(filepath.Join(dir, "sshd.pid"))
			return err == nil
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort(n.peer, "22"), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	hp, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(hp))
	return &nsSSHD{hostKeyLine: n.peer + " " + f[0] + " " + f[1] + "\n", clientKey: clientKey}
}

// onlyFrom is the sshd_config line keeping logins to n.sshdOnlyFrom, if set.
func onlyFrom(n *netns) string {
	if n.sshdOnlyFrom == "" {
		return ""
	}
	return fmt.Sprintf("AllowUsers root@%s %s@%s\n", n.sshdOnlyFrom, sudoUser, n.sshdOnlyFrom)
}

// nsSSHDCmd is the command that runs sshd in the namespace, in a mount
// namespace of its own where root's login shell is /bin/sh (root's own
// shell start-up files, whatever this machine puts there, stay out of
// every session) and, withSudoUser, sudoUser exists with passwordless sudo.
// Without mount namespaces: sshd as it is (and no sudoUser: skipped).
func nsSSHDCmd(t *testing.T, n *netns, dir, cfg string, withSudoUser bool) *exec.Cmd {
	t.Helper()
	if err := exec.Command("unshare", "-m", "true").Run(); err != nil {
		if withSudoUser {
			testenv.Missing(t, "a login of its own needs mount namespaces (unshare -m): %v", err)
		}
		return exec.Command("ip", "netns", "exec", n.name, "/usr/sbin/sshd", "-D", "-e", "-f", cfg)
	}
	type overlay struct{ etc, add string }
	files := []overlay{{"/etc/passwd", ""}}
	if withSudoUser {
		if _, err := exec.LookPath("sudo"); err != nil {
			testenv.Missing(t, "sudo is not installed (make deps installs it): %v", err)
		}
		home := filepath.Join(dir, "home")
		if err := os.Mkdir(home, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(home, 4321, 4321)
		files = []overlay{
			{"/etc/passwd", sudoUser + ":x:4321:4321:felix e2e:" + home + ":/bin/sh\n"},
			{"/etc/group", sudoUser + ":x:4321:\n"},
			{"/etc/sudoers", sudoUser + " ALL=(ALL) NOPASSWD: ALL\n"},
			// sudo's PAM account check wants an entry: no password, not locked.
			{"/etc/shadow", sudoUser + ":*:19000:0:99999:7:::\n"},
		}
	}
	var overlays []string
	for _, f := range files {
		old, err := os.ReadFile(f.etc)
		if err != nil {
			testenv.Missing(t, "read %s: %v", f.etc, err)
		}
		if len(old) > 0 && old[len(old)-1] != '\n' {
			old = append(old, '\n')
		}
		if f.etc == "/etc/passwd" {
			old = rootShell(old, "/bin/sh")
		}
		copyPath := filepath.Join(dir, filepath.Base(f.etc))
		if err := os.WriteFile(copyPath, append(old, f.add...), 0o440); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o444)
		switch f.etc {
		case "/etc/sudoers":
			mode = 0o440
		case "/etc/shadow":
			mode = 0o640
		}
		os.Chmod(copyPath, mode)
		overlays = append(overlays, copyPath, f.etc)
	}
	script := `c=$1; shift; while [ $# -gt 0 ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; exec /usr/sbin/sshd -D -e -f "$c"`
	return exec.Command("ip", append([]string{"netns", "exec", n.name, "unshare", "-m", "--", "/bin/sh", "-c", script, "sh", cfg}, overlays...)...)
}

// rootShell returns passwd with root's login shell set to shell.
func rootShell(passwd []byte, shell string) []byte {
	lines := strings.Split(string(passwd), "\n")
	for i, l := range lines {
		if f := strings.Split(l, ":"); len(f) == 7 && f[0] == "root" {
			f[6] = shell
			lines[i] = strings.Join(f, ":")
		}
	}
	return []byte(strings.Join(lines, "\n"))
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// bootstrapConfig is the master's [ssh] and [bootstrap] config for the test.
func bootstrapConfig(knownHosts, key, masterURL, minionDir, root string) string {
	return bootstrapConfigKeys(knownHosts, []string{key}, masterURL, minionDir, root)
}

// bootstrapConfigKeys is bootstrapConfig with several key files (a
// bastion's and its target's).
func bootstrapConfigKeys(knownHosts string, keys []string, masterURL, minionDir, root string) string {
	quoted := make([]string, len(keys))
	for i, k := range keys {
		quoted[i] = strconv.Quote(k)
	}
	return fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%s]\nagent = false\n"+
		"[bootstrap]\nmaster_url = %q\nminion_dir = %q\ntimeout = \"60s\"\ninstall_root = %q\n",
		knownHosts, strings.Join(quoted, ", "), masterURL, minionDir, root)
}

func (c *cluster) bootstrap(args ...string) (wire.BootstrapResponse, int, string) {
	c.t.Helper()
	out, errOut, code := c.felix(append([]string{"bootstrap", "-o", "json"}, args...)...)
	var resp wire.BootstrapResponse
	if code == 0 || code == 1 {
		json.Unmarshal([]byte(out), &resp)
	}
	return resp, code, out + errOut
}

// bootstrapEnv is a master set up to bootstrap minions into a network
// namespace under an install root, from minionDir. A minion bootstrapped
// there is stopped when the test ends (its log shown if it failed).
type bootstrapEnv struct {
	c                                       *cluster
	n                                       *netns
	sshd                                    *nsSSHD
	dir, knownHosts, root, masterURL, extra string
	// With bootstrapOpts.behindBastion: n is behind front, whose sshd is
	// bastion.
	front   *netns
	bastion *nsSSHD
}

func newBootstrapEnv(t *testing.T, minionDir string) *bootstrapEnv {
	t.Helper()
	return newBootstrapEnvWith(t, minionDir, bootstrapOpts{})
}

// bootstrapOpts vary newBootstrapEnvWith's setup.
type bootstrapOpts struct {
	// allAddrs: the master listens on 0.0.0.0 with no bootstrap.master_url
	// (each host gets the address the SSH connection comes from).
	allAddrs bool
	// sudoUser: the namespace's sshd also has sudoUser.
	sudoUser bool
	// behindBastion: the namespace is behind another, front
	// (newNetnsBehindWith, routed), whose sshd is the only one its sshd
	// takes logins from; the master listens on front's outer link.
	behindBastion bool
}

func newBootstrapEnvWith(t *testing.T, minionDir string, o bootstrapOpts) *bootstrapEnv {
	t.Helper()
	if runtime.GOOS != "linux" {
		testenv.Missing(t, "bootstrap is tested on Linux")
	}
	e := &bootstrapEnv{n: newNetns(t), dir: t.TempDir()}
	outer := e.n // the namespace on the master's side
	var hostKeys string
	keys := []string{}
	if o.behindBastion {
		e.front, e.bastion = e.n, startNsSSHD(t, e.n)
		e.n = newNetnsBehindWith(t, e.front, true)
		hostKeys, keys = e.bastion.hostKeyLine, append(keys, e.bastion.clientKey)
	}
	e.sshd = startNsSSHDWith(t, e.n, o.sudoUser)
	hostKeys, keys = hostKeys+e.sshd.hostKeyLine, append(keys, e.sshd.clientKey)
	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	if err := os.WriteFile(e.knownHosts, []byte(hostKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	e.root = filepath.Join(e.dir, "hostroot")
	// The master URL is known once the port is: write it after the start.
	port := freePort(t, outer.local)
	_, p, _ := net.SplitHostPort(port)
	e.masterURL = "https://" + net.JoinHostPort(outer.local, p)
	configured := e.masterURL
	if o.allAddrs {
		port, configured = net.JoinHostPort("0.0.0.0", p), ""
	}
	e.extra = bootstrapConfigKeys(e.knownHosts, keys, configured, minionDir, e.root)
	e.c = startMasterAtAddr(t, port, e.extra)

	// The minion runs in the namespace until the test ends, under its
	// supervisor, stopped first (it would start the minion again).
	t.Cleanup(func() {
		for _, name := range []string{"supervisor.pid", "minion.pid"} {
			b, err := os.ReadFile(filepath.Join(e.root, "var/lib/felix/minion", name))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGTERM)
				deadline := time.Now().Add(45 * time.Second)
				for !gone(pid) && time.Now().Before(deadline) {
					time.Sleep(100 * time.Millisecond)
				}
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(e.root, "var/log/felix-minion.log")); err == nil {
				t.Logf("--- minion log ---\n%s", b)
			}
		}
	})
	return e
}

// TestBootstrap installs a minion over SSH into a network namespace: it
// registers, is accepted, runs commands over gRPC, and its certificate on
// the host is the registered one; a rerun changes nothing and adds no
// minion; without a binary for the host's architecture nothing is written.
func TestBootstrap(t *testing.T) {
	e := newBootstrapEnv(t, distDir)
	c, n, sshd, dir, knownHosts, root, masterURL, extra := e.c, e.n, e.sshd, e.dir, e.knownHosts, e.root, e.masterURL, e.extra
	pidFile := filepath.Join(root, "var/lib/felix/minion/minion.pid")
	supervisorFile := filepath.Join(root, "var/lib/felix/minion/supervisor.pid")

	// Bad input: refused before any connection.
	if out, errOut, code := c.felix("bootstrap", "root@"+n.peer+";touch "+filepath.Join(dir, "pwned")); code != 1 ||
		!strings.Contains(errOut, "HTTP 400") {
		t.Errorf("bootstrap of a host with a ';': exit %d %s%s; want 1 and a 400", code, out, errOut)
	}

	// First bootstrap: installed, started detached, registered, accepted;
	// with --no-ssh-fallback, not recorded as an agentless host.
	resp, code, out := c.bootstrap("root@"+n.peer, "--id", "bs-host", "--no-ssh-fallback")
	if code != 0 || len(resp.Results) != 1 {
		t.Fatalf("felix bootstrap: exit %d\n%s", code, out)
	}
	r := resp.Results[0]
	if r.State != "ok" || r.ID != "bs-host" || r.Action != "installed" || r.Init != "supervise" || r.Arch != runtime.GOARCH {
		t.Errorf("first bootstrap: %+v; want ok, bs-host, installed, supervise, %s", r, runtime.GOARCH)
	}
	if hs := c.sshHosts(); len(hs) != 0 || r.SSHHost != "" || r.Note != "" {
		t.Errorf("bootstrap --no-ssh-fallback: hosts %+v, result %+v; want nothing recorded", hs, r)
	}
	m, ok := c.minions()["bs-host"]
	if !ok || m.State != "accepted" || !strings.HasPrefix(m.Address, n.peer+":") {
		t.Fatalf("minion bs-host: %+v; want accepted at %s", m, n.peer)
	}
	// The fingerprint the master checked is the one of the key on the host.
	certPEM, err := os.ReadFile(filepath.Join(root, "var/lib/felix/minion/minion.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, fp, err := pki.ParseCertPEM(certPEM); err != nil || fp != m.Fingerprint || r.Fingerprint != fp {
		t.Errorf("fingerprints: on the host %s (%v), registered %s, result %s; want all equal", fp, err, m.Fingerprint, r.Fingerprint)
	}
	for path, mode := range map[string]os.FileMode{"usr/local/bin/felix-minion": 0o755, "etc/felix/minion.toml": 0o600} {
		if fi, err := os.Stat(filepath.Join(root, path)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %o", path, fi.Mode(), err, mode)
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/rc.local")); err != nil || !strings.Contains(string(b), root+"/usr/local/bin/felix-minion start --supervise --config") {
		t.Errorf("rc.local: %q, %v; want the minion's boot line", b, err)
	}

	// Exec over gRPC reaches the minion inside the namespace.
	out, errOut, code := c.felix("exec", "-t", "bs-host", "-o", "json", "--", "ip -4 -o addr show")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil || code != 0 || len(job.Results) != 1 {
		t.Fatalf("exec on bs-host: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if res := job.Results[0]; res.State != "ok" || res.Transport != "agent" || !strings.Contains(res.Stdout, n.peer+"/30") {
		t.Errorf("exec on bs-host: %+v; want ok over the agent, inside the namespace", res)
	}

	// A rerun (the id comes from the host's config now): nothing changes,
	// still one minion.
	resp, code, out = c.bootstrap("root@" + n.peer)
	if code != 0 || len(resp.Results) != 1 || resp.Results[0].State != "ok" || resp.Results[0].ID != "bs-host" ||
		resp.Results[0].Action != "unchanged" || resp.Results[0].Fingerprint != m.Fingerprint {
		t.Errorf("rerun: exit %d %+v\n%s; want ok, bs-host, unchanged", code, resp.Results, out)
	}
	if ms := c.minions(); len(ms) != 1 || ms["bs-host"].Fingerprint != m.Fingerprint {
		t.Errorf("minions after the rerun: %+v; want bs-host alone, same key", ms)
	}
	// That rerun, by address and without felix hosts add, recorded the
	// host with the login used: its minion's SSH fallback.
	if r := resp.Results[0]; r.SSHHost != "bs-host" || r.Note != "recorded as SSH host bs-host" {
		t.Errorf("rerun: %+v; want recorded as SSH host bs-host", r)
	}
	if h, ok := c.sshHosts()["bs-host"]; !ok || h.Host != n.peer || h.Port != 22 || h.User != "root" || h.Key != "" || h.Become {
		t.Errorf("felix hosts: bs-host %+v (%v); want %s:22 as root", h, ok, n.peer)
	}

	// The minion killed: its supervisor starts it again within seconds,
	// and it registers again (minion.ready names the new process once it
	// has) and runs commands.
	pid := killPID(t, pidFile)
	ready := filepath.Join(root, "var/lib/felix/minion/minion.ready")
	waitFor(t, "the supervisor to restart the minion and it to register", 20*time.Second, func() bool {
		b, _ := os.ReadFile(ready)
		f := strings.Fields(string(b))
		return len(f) > 0 && f[0] != strconv.Itoa(pid) && f[0] == pidIn(pidFile)
	})
	if out, errOut, code := c.felix("exec", "-t", "bs-host", "--transport", "agent", "--", "true"); code != 0 {
		t.Errorf("exec after the supervisor restarted the minion: exit %d %s%s", code, out, errOut)
	}

	// A second supervisor is refused: the first holds its lock.
	bin, conf := filepath.Join(root, "usr/local/bin/felix-minion"), filepath.Join(root, "etc/felix/minion.toml")
	if b, err := exec.Command(bin, "start", "--supervise", "--config", conf).CombinedOutput(); err == nil ||
		!strings.Contains(string(b), "in use by pid "+pidIn(supervisorFile)) {
		t.Errorf("a second supervisor: %v %s; want it refused, the first named", err, b)
	}

	// minion stop stops the supervisor, and so the minion; a rerun starts
	// them again with the minion's key (repaired), and it runs commands.
	superPID, minionPID := pidIn(supervisorFile), pidIn(pidFile)
	if b, err := exec.Command(bin, "stop", "--config", conf).CombinedOutput(); err != nil {
		t.Errorf("felix-minion stop: %v %s", err, b)
	}
	for _, p := range []string{superPID, minionPID} {
		pid, _ := strconv.Atoi(p)
		if !gone(pid) {
			t.Errorf("pid %d (supervisor %s, minion %s) runs after minion stop", pid, superPID, minionPID)
		}
	}
	resp, code, out = c.bootstrap("root@" + n.peer)
	if code != 0 || len(resp.Results) != 1 || resp.Results[0].Action != "repaired" || resp.Results[0].Fingerprint != m.Fingerprint {
		t.Errorf("rerun with the minion stopped: exit %d %+v\n%s; want ok, repaired, same key", code, resp.Results, out)
	}
	if out, errOut, code := c.felix("exec", "-t", "bs-host", "--", "true"); code != 0 {
		t.Errorf("exec after the repair: exit %d %s%s", code, out, errOut)
	}
	if ms := c.minions(); len(ms) != 1 {
		t.Errorf("minions after the repair: %+v; want bs-host alone", ms)
	}

	// Its minion dead, exec falls back to SSH with the recorded login.
	killPID(t, supervisorFile)
	killPID(t, pidFile)
	out, errOut, code = c.felix("exec", "-t", "bs-host", "-o", "json", "--", "true")
	job = wire.Job{}
	if err := json.Unmarshal([]byte(out), &job); err != nil || code != 0 || len(job.Results) != 1 ||
		job.Results[0].State != "ok" || job.Results[0].Transport != "ssh" {
		t.Errorf("exec with the minion dead: exit %d %v\n%s%s; want ok over ssh", code, err, out, errOut)
	}

	// A master whose minion directory has no binary for the host's
	// architecture: a clear error, and nothing written on the host.
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	noArch := filepath.Join(dir, "dist-without-"+runtime.GOARCH)
	os.MkdirAll(noArch, 0o755)
	os.WriteFile(filepath.Join(noArch, "minion-linux-"+other), []byte("not for this host"), 0o755)
	root2 := filepath.Join(dir, "hostroot2")
	c.master.stop(t)
	cfg, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	newCfg := strings.TrimSuffix(string(cfg), extra) + bootstrapConfig(knownHosts, sshd.clientKey, masterURL, noArch, root2)
	if err := os.WriteFile(c.config, []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.startMasterProc()
	resp, code, out = c.bootstrap("root@" + n.peer)
	want := "no minion binary for linux/" + runtime.GOARCH
	if code != 1 || len(resp.Results) != 1 || resp.Results[0].State != "failed" || !strings.Contains(resp.Results[0].Reason, want) {
		t.Errorf("bootstrap without a binary: exit %d %+v\n%s; want 1, failed with %q", code, resp.Results, out, want)
	}
	if _, err := os.Stat(root2); !os.IsNotExist(err) {
		t.Errorf("the install root %s was written: %v", root2, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pwned")); err == nil {
		t.Errorf("a host name ran as a command")
	}
	c.master.stop(t)
}

// pidIn is the pid in a pid file, "" when there is none.
func pidIn(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// killPID kills the process of a pid file with SIGKILL, waits for it to be
// gone and returns its pid.
func killPID(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(pidIn(path))
	if err != nil {
		t.Fatalf("pid file %s: %v", path, err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "pid "+strconv.Itoa(pid)+" to die", 10*time.Second, func() bool { return gone(pid) })
	return pid
}

// sshHosts is the agentless inventory (felix hosts list) by id.
func (c *cluster) sshHosts() map[string]wire.Host {
	c.t.Helper()
	out, errOut, code := c.felix("hosts", "list", "-o", "json")
	var list wire.HostList
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		c.t.Fatalf("felix hosts list: exit %d %v\n%s%s", code, err, out, errOut)
	}
	hs := make(map[string]wire.Host, len(list.Hosts))
	for _, h := range list.Hosts {
		hs[h.ID] = h
	}
	return hs
}

// startMasterAtAddr starts a master listening on addr (host:port) whose
// config ends with extra, like startMasterWith.
func startMasterAtAddr(t *testing.T, addr, extra string) *cluster {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "master.toml")
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\n[exec]\nmax_parallel = 100\noutput_cap = 65536\n"+
		"[health]\ninterval = \"1s\"\ntimeout = \"2s\"\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, url: "https://" + addr, config: cfg}
	c.startMasterProc()
	return c
}

// TestBootstrapReach: a master listening on all addresses with no
// bootstrap.master_url gives the host the address its SSH connection came
// from, which the minion reaches; the login is not root (--become, sudo
// -n); the join token is gone from the config once the minion registered.
// A master URL the host cannot reach fails before anything is installed.
func TestBootstrapReach(t *testing.T) {
	e := newBootstrapEnvWith(t, distDir, bootstrapOpts{allAddrs: true, sudoUser: true})
	c, n, root := e.c, e.n, e.root
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(c.url, "https://"))
	derived := "https://" + net.JoinHostPort(n.local, port)

	resp, code, out := c.bootstrap(sudoUser+"@"+n.peer, "--become", "--id", "bs-become")
	if code != 0 || len(resp.Results) != 1 {
		t.Fatalf("felix bootstrap --become: exit %d\n%s", code, out)
	}
	if r := resp.Results[0]; r.State != "ok" || r.Action != "installed" || r.Init != "supervise" || r.SSHHost != "bs-become" {
		t.Errorf("bootstrap: %+v; want ok, installed, supervise, recorded as bs-become", r)
	}
	cfg, _, err := config.ReadMinion(filepath.Join(root, "etc/felix/minion.toml"))
	if err != nil || cfg.Master != derived || cfg.JoinToken != "" {
		t.Errorf("minion config: master %q, join token %q, %v; want %s and no token", cfg.Master, cfg.JoinToken, err, derived)
	}
	if fi, err := os.Stat(filepath.Join(root, "usr/local/bin/felix-minion")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the minion binary: %v; want it installed as root, through sudo", err)
	}
	if m, ok := c.minions()["bs-become"]; !ok || m.State != "accepted" || !strings.HasPrefix(m.Address, n.peer+":") {
		t.Errorf("minion bs-become: %+v; want accepted at %s", m, n.peer)
	}
	if out, errOut, code := c.felix("exec", "-t", "bs-become", "--transport", "agent", "--", "id -u"); code != 0 || !strings.Contains(out, "0") {
		t.Errorf("exec over the agent: exit %d %s%s", code, out, errOut)
	}
	if h := c.sshHosts()["bs-become"]; h.User != sudoUser || !h.Become {
		t.Errorf("recorded SSH host %+v; want %s with become", h, sudoUser)
	}

	// A master URL the host cannot reach (its own loopback): the host
	// fails naming it, and nothing is installed.
	root2 := filepath.Join(e.dir, "hostroot2")
	unreachable := "https://" + net.JoinHostPort("127.0.0.1", port)
	c.master.stop(t)
	old, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	newCfg := strings.TrimSuffix(string(old), e.extra) + bootstrapConfig(e.knownHosts, e.sshd.clientKey, unreachable, distDir, root2)
	if err := os.WriteFile(c.config, []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c.startMasterProc()
	resp, code, out = c.bootstrap(sudoUser+"@"+n.peer, "--become", "--id", "bs-other")
	want := "cannot reach the master at " + unreachable
	if code != 1 || len(resp.Results) != 1 || resp.Results[0].State != "failed" || !strings.Contains(resp.Results[0].Reason, want) {
		t.Errorf("bootstrap with an unreachable master URL: exit %d %+v\n%s; want 1, failed with %q", code, resp.Results, out, want)
	}
	if _, err := os.Stat(root2); !os.IsNotExist(err) {
		t.Errorf("the install root %s was written: %v", root2, err)
	}
	c.master.stop(t)
}
