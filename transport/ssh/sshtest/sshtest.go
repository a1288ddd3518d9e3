// Package sshtest starts real OpenSSH sshd processes for tests: each with
// its own ed25519 host key, an authorized ed25519 client key and its
// configuration under a temporary directory, listening on a loopback
// address (127.0.0.x) and stopped when the test ends. The login user is
// root: the tests run as root, as sshd needs.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
)

// SSHD is the sshd binary the servers run.
const SSHD = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	Host               string // the address it listens on, e.g. "127.0.0.3"
	Addr               string // Host and Port joined, for dialling
	Port               int
	HostKeyFingerprint string        // SHA256:... of its host key
	HostKey            ssh.PublicKey // its host key
	HostKeyFile        string        // path of its private host key (see the HostKeyFile option)
	KnownHostsLine     string        // a known_hosts line for Addr and its key
	ClientKey          string        // path of an unencrypted private key authorized for User
	User               string        // the login user: "root"
	Dir                string        // the temporary directory holding its files

	authorizedKeys string // the authorized_keys file the server reads

	cmd      *osexec.Cmd
	log      *logBuffer
	exited   chan struct{} // closed when the sshd process has been waited for
	stopOnce sync.Once
}

// Option changes how Start configures sshd.
type Option func(*options)

type options struct {
	password    string
	shell       string
	maxSessions int
	port        int
	hostKeyFile string
	config      []string
	noexec      []string // paths remounted noexec
	tmpfs       []string // "path" then "exec" or "noexec", pairs
	noSFTP      bool
	sftpServer  bool
	sudoUser    [2]string // a login and whom it may sudo to
}

// SudoUserUID is the uid (and gid) of SudoUser's login.
const SudoUserUID = 4322

// SudoUser adds, in a private mount namespace of the sshd process only
// (copies of /etc/passwd, group, shadow and sudoers bind-mounted over the
// real ones), a login user (uid SudoUserUID, shell /bin/sh, a home of its
// own) that accepts ClientKey and whose sudoers entry lets it run anything
// as runas and nobody else, without a password: "user ALL=(runas)
// NOPASSWD: ALL". The test is skipped when mount namespaces or sudo are
// not available.
func SudoUser(user, runas string) Option {
	return func(o *options) { o.sudoUser = [2]string{user, runas} }
}

// Password enables password authentication and gives User this password,
// in a private mount namespace of the sshd process only (a copy of
// /etc/shadow is bind-mounted over the real one there). The test is
// skipped when mount namespaces are not available.
func Password(pw string) Option { return func(o *options) { o.password = pw } }

// Shell gives User this login shell (e.g. "/bin/sh"), in a private mount
// namespace of the sshd process only (a copy of /etc/passwd is
// bind-mounted over the real one there): sshd runs every command with the
// login shell, and bash run by sshd reads ~/.bashrc, whose cost would
// otherwise be part of every measurement. The test is skipped when mount
// namespaces are not available.
func Shell(path string) Option { return func(o *options) { o.shell = path } }

// NoExec makes each path noexec in a private mount namespace of the sshd
// process only, as a CIS-hardened host mounts /tmp: the path is
// bind-mounted on itself and remounted noexec, so its content (the test's
// own files under /tmp) stays visible and nothing there can be executed.
// The test is skipped when mount namespaces are not available.
func NoExec(paths ...string) Option {
	return func(o *options) { o.noexec = append(o.noexec, paths...) }
}

// Tmpfs mounts an empty tmpfs (mode 0700) over path in a private mount
// namespace of the sshd process only — e.g. over User's home, so what a
// test makes there never reaches the machine's — executable or not. The
// test is skipped when mount namespaces are not available.
func Tmpfs(path string, noexec bool) Option {
	flag := "exec"
	if noexec {
		flag = "noexec"
	}
	return func(o *options) { o.tmpfs = append(o.tmpfs, path, flag) }
}

// MaxSessions sets sshd's MaxSessions (sessions per connection); the
// default is OpenSSH's, 10.
func MaxSessions(n int) Option { return func(o *options) { o.maxSessions = n } }

// Port makes sshd listen on this port instead of a free one (to restart a
// "host" on the same address).
func Port(p int) Option { return func(o *options) { o.port = p } }

// HostKeyFile makes sshd use this private host key instead of a fresh one
// (a rebooted host keeps its key: pass the stopped server's HostKeyFile).
func HostKeyFile(path string) Option { return func(o *options) { o.hostKeyFile = path } }

// Config adds sshd_config lines. They come before the defaults, so they
// override them (sshd keeps the first value of a keyword); no Match blocks.
func Config(lines ...string) Option {
	return func(o *options) { o.config = append(o.config, lines...) }
}

// NoSFTP leaves the sftp subsystem out of sshd_config (a server without
// sftp-server): OpenSSH then refuses the subsystem request. A Config line
// "Subsystem sftp PATH" replaces the default one instead.
func NoSFTP() Option { return func(o *options) { o.noSFTP = true } }

// SFTPServer makes StartDropbear leave the installed sftp-server visible
// (Dropbear then runs OpenSSH's for the sftp subsystem).
func SFTPServer() Option { return func(o *options) { o.sftpServer = true } }

// Start starts sshd on host (e.g. "127.0.0.3"; "" means 127.0.0.1) and a
// free port, and waits until it listens. Host "0.0.0.0" serves every
// loopback address (127.x.y.z) at once: many "hosts" on one sshd (OpenSSH
// takes at most 16 ListenAddress lines). It is stopped in t.Cleanup. When
// sshd is missing or the test does not run as root, the test is skipped,
// or fails when the environment variable CI is "true".
func Start(t testing.TB, host string, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if _, err := os.Stat(SSHD); err != nil {
		testenv.Missing(t, "sshd is not installed (%v); install openssh-server", err)
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "sshd tests need root (running as uid %d)", os.Geteuid())
	}
	if o.sudoUser[0] != "" {
		if _, err := osexec.LookPath("sudo"); err != nil {
			testenv.Missing(t, "sudo is not installed (make deps installs it): %v", err)
		}
	}
	if o.password != "" || o.shell != "" || len(o.noexec) > 0 || len(o.tmpfs) > 0 || o.sudoUser[0] != "" {
		if err := osexec.Command("unshare", "-m", "true").Run(); err != nil {
			testenv.Missing(t, "sshd with its own password, shell or mounts needs mount namespaces (unshare -m): %v", err)
		}
	}
	// sshd's privilege separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("create /run/sshd: %v", err)
	}

	dir := t.TempDir()
	s := &Server{Host: host, User: "root", Dir: dir}
	s.authorizedKeys = filepath.Join(dir, "authorized_keys")
	s.HostKeyFile = o.hostKeyFile
	if s.HostKeyFile == "" {
		s.HostKeyFile = filepath.Join(dir, "host_key")
		WriteKey(t, s.HostKeyFile, "")
	}
	pemBytes, err := os.ReadFile(s.HostKeyFile)
	if err != nil {
		t.Fatalf("read host key: %v", err)
	}
	hostSigner, err := ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatalf("parse host key %s: %v", s.HostKeyFile, err)
	}
	s.HostKey = hostSigner.PublicKey()
	s.HostKeyFingerprint = ssh.FingerprintSHA256(s.HostKey)
	s.ClientKey = filepath.Join(dir, "client_key")
	clientPub := WriteKey(t, s.ClientKey, "")
	s.AuthorizeKey(t, clientPub)

	// Mounts in sshd's mount namespace, triples of an operation and two
	// paths: files bind-mounted over /etc ones, noexec paths, tmpfs.
	var overlays []string
	shadow, passwd := filepath.Join(dir, "shadow"), filepath.Join(dir, "passwd")
	if o.password != "" {
		writeShadow(t, shadow, s.User, o.password)
	}
	if o.shell != "" {
		writePasswd(t, passwd, s.User, o.shell, "")
	}
	if u := o.sudoUser[0]; u != "" {
		home := filepath.Join(dir, "home-"+u)
		if err := os.Mkdir(home, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(home, SudoUserUID, SudoUserUID); err != nil {
			t.Fatal(err)
		}
		id := strconv.Itoa(SudoUserUID)
		appendCopy(t, passwd, "/etc/passwd", u+":x:"+id+":"+id+":felix test:"+home+":/bin/sh", 0o644)
		appendCopy(t, filepath.Join(dir, "group"), "/etc/group", u+":x:"+id+":", 0o644)
		// sudo's PAM account check wants an entry: no password, not locked.
		appendCopy(t, shadow, "/etc/shadow", u+":*:19000:0:99999:7:::", 0o640)
		appendCopy(t, filepath.Join(dir, "sudoers"), "/etc/sudoers", u+" ALL=("+o.sudoUser[1]+") NOPASSWD: ALL", 0o440)
		// sshd reads the authorized keys as the user: give it the way there
		// (the private keys in dir stay 0600).
		for p, mode := range map[string]os.FileMode{filepath.Dir(dir): 0o755, dir: 0o755, s.authorizedKeys: 0o644} {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
		}
		overlays = append(overlays, "bind", filepath.Join(dir, "group"), "/etc/group", "bind", filepath.Join(dir, "sudoers"), "/etc/sudoers")
	}
	if o.password != "" || o.sudoUser[0] != "" {
		overlays = append(overlays, "bind", shadow, "/etc/shadow")
	}
	if o.shell != "" || o.sudoUser[0] != "" {
		overlays = append(overlays, "bind", passwd, "/etc/passwd")
	}
	for _, p := range o.noexec {
		overlays = append(overlays, "noexec", p, p)
	}
	for i := 0; i+1 < len(o.tmpfs); i += 2 {
		overlays = append(overlays, "tmpfs", o.tmpfs[i], o.tmpfs[i+1])
	}

	s.serve(t, "sshd", o.port, func() error { return s.start(t, o, overlays) })
	return s
}

// serve gives s its address on s.Host and port (0: a free one) and calls
// start, again on another free port when the one picked was taken in
// between; it fails the test if the server does not start. The server is
// stopped when the test ends, its log shown if the test failed.
func (s *Server) serve(t testing.TB, name string, port int, start func() error) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		s.Port = port
		if port == 0 {
			s.Port = freePort(t, s.Host)
		}
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		err := start()
		if err == nil {
			break
		}
		// Another process may have taken the free port in between.
		if port == 0 && attempt < 4 && strings.Contains(s.Log(), "Address already in use") {
			continue
		}
		t.Fatalf("start %s on %s: %v\n%s log:\n%s", name, s.Addr, err, name, s.Log())
	}
	s.KnownHostsLine = knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey)
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("%s %s log:\n%s", name, s.Addr, s.Log())
		}
	})
}

// start writes the configuration and starts sshd, waiting until it listens.
func (s *Server) start(t testing.TB, o options, overlays []string) error {
	maxSessions := o.maxSessions
	if maxSessions == 0 {
		maxSessions = 10
	}
	passwords := "no"
	if o.password != "" {
		passwords = "yes"
	}
	// Extra lines first: sshd keeps the first value of a keyword.
	cfg := append([]string{"ListenAddress " + s.Addr}, o.config...)
	cfg = append(cfg,
		"HostKey "+s.HostKeyFile,
		"AuthorizedKeysFile "+filepath.Join(s.Dir, "authorized_keys"),
		"PidFile "+filepath.Join(s.Dir, "sshd.pid"),
		"PermitRootLogin yes",
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication "+passwords,
		"KbdInteractiveAuthentication no",
		"MaxSessions "+strconv.Itoa(maxSessions),
		"MaxStartups 2000",
		"UseDNS no",
		"PrintMotd no",
		"LogLevel VERBOSE",
	)
	if !o.noSFTP && !hasKeyword(o.config, "subsystem") {
		cfg = append(cfg, "Subsystem sftp internal-sftp")
	}
	cfgPath := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(strings.Join(cfg, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("write sshd_config: %v", err)
	}

	var cmd *osexec.Cmd
	if len(overlays) == 0 {
		cmd = osexec.Command(SSHD, "-D", "-e", "-f", cfgPath)
	} else {
		// unshare execs (no fork), and so does the script: the process
		// is sshd. Arguments: sshd, its config, then triples of an
		// operation and two paths.
		script := `d=$1 c=$2; shift 2; while [ $# -gt 0 ]; do case $1 in ` +
			`bind) mount --bind "$2" "$3";; ` +
			`noexec) mount --bind "$2" "$2" && mount -o remount,bind,noexec "$2" "$2";; ` +
			`tmpfs) mount -t tmpfs -o "mode=700,$3" tmpfs "$2";; ` +
			`*) false;; esac || exit 1; shift 3; done; exec "$d" -D -e -f "$c"`
		cmd = osexec.Command("unshare", append([]string{"-m", "--", "/bin/sh", "-c", script, "sh", SSHD, cfgPath}, overlays...)...)
	}
	// sshd writes its pid file once it listens.
	return s.launch(cmd, filepath.Join(s.Dir, "sshd.pid"))
}

// hasKeyword reports whether a config line sets keyword (any case).
func hasKeyword(lines []string, keyword string) bool {
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], keyword) {
			return true
		}
	}
	return false
}

// launch starts cmd, a server that writes pidFile once it listens, and
// waits for that.
func (s *Server) launch(cmd *osexec.Cmd, pidFile string) error {
	_ = os.Remove(pidFile)
	// sshd dies with the test binary, even one killed by a test timeout.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s.log = &logBuffer{}
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(s.exited)
	}()
	s.stopOnce = sync.Once{}
	deadline := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(pidFile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			break
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the server exited: %v", cmd.ProcessState)
		case <-deadline:
			s.Stop()
			return errors.New("the server did not start listening within 15s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Stop kills sshd and every process it started (connections, sessions), as
// if the host went down. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd == nil || s.cmd.Process == nil {
			return
		}
		pid := s.cmd.Process.Pid
		select {
		case <-s.exited:
			return
		default:
		}
		_ = syscall.Kill(pid, syscall.SIGSTOP) // no new children while we look
		for _, d := range descendants(pid) {
			_ = syscall.Kill(d, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
		<-s.exited
	})
}

// Log returns what sshd logged so far (LogLevel VERBOSE).
func (s *Server) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// WaitLog waits until the log contains substr, for at most d, and reports
// whether it does.
func (s *Server) WaitLog(substr string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if strings.Contains(s.Log(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// KnownHosts returns the path of a new known_hosts file holding this
// server's key.
func (s *Server) KnownHosts(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(s.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatalf("write known_hosts: %v", err)
	}
	return p
}

// Target returns a target for this server, logging in as User with
// ClientKey.
func (s *Server) Target() model.Target {
	return model.Target{ID: s.Host, SSH: &model.SSHTarget{Host: s.Host, Port: s.Port, User: s.User, KeyPath: s.ClientKey}}
}

// AuthorizeKey adds a public key to the server's authorized keys.
func (s *Server) AuthorizeKey(t testing.TB, pub ssh.PublicKey) {
	t.Helper()
	f, err := os.OpenFile(s.authorizedKeys, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("authorize key: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(ssh.MarshalAuthorizedKey(pub)); err != nil {
		t.Fatalf("authorize key: %v", err)
	}
}

// WriteKey writes a new ed25519 private key in OpenSSH format to path (mode
// 0600), encrypted with passphrase when it is not empty, and returns its
// public key.
func WriteKey(t testing.TB, path, passphrase string) ssh.PublicKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "felix test key")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "felix test key", []byte(passphrase))
	}
	if err != nil {
		t.Fatalf("marshal key: %v", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatalf("write key: %v", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("public key: %v", err)
	}
	return sshPub
}

// freePort returns a TCP port free on host at the time of the call.
func freePort(t testing.TB, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// writeShadow writes a copy of /etc/shadow in which user has password pw.
func writeShadow(t testing.TB, path, user, pw string) {
	t.Helper()
	old, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatalf("read /etc/shadow: %v", err)
	}
	salt := make([]byte, 12)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	hash := sha512Crypt(pw, b64Encode(salt)[:16])
	var out []string
	found := false
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 2 && f[0] == user {
			f[1] = hash
			line = strings.Join(f, ":")
			found = true
		}
		out = append(out, line)
	}
	if !found {
		out = append(out, user+":"+hash+":19000:0:99999:7:::")
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o640); err != nil {
		t.Fatalf("write shadow: %v", err)
	}
}

// writePasswd writes a copy of /etc/passwd in which user has shell and,
// when home is not empty, that home directory.
func writePasswd(t testing.TB, path, user, shell, home string) {
	t.Helper()
	old, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatalf("read /etc/passwd: %v", err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimRight(string(old), "\n"), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 7 && f[0] == user {
			f[6] = shell
			if home != "" {
				f[5] = home
			}
			line = strings.Join(f, ":")
		}
		out = append(out, line)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatalf("write passwd: %v", err)
	}
}

// appendCopy writes to path a copy of itself, if it exists, else of src,
// with line added at the end, and gives it mode.
func appendCopy(t testing.TB, path, src, line string, mode os.FileMode) {
	t.Helper()
	old, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		old, err = os.ReadFile(src)
	}
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	if err := os.WriteFile(path, append(old, line+"\n"...), mode); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// descendants returns the pids of every process below pid, read from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]int)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// logBuffer collects sshd's log; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Silent listens on host (a loopback address) and returns the port: it
// accepts TCP connections and never says a word, as a hung server does.
// Connections stay open until the test ends.
func Silent(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
