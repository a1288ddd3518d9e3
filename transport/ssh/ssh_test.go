package ssh_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// newPool returns a pool using knownHosts, without ssh-agent, closed when
// the test ends.
func newPool(t testing.TB, knownHosts string, change ...func(*ssh.Config)) *ssh.Pool {
	t.Helper()
	cfg := ssh.Config{
		KnownHosts:     knownHosts,
		NoAgent:        true,
		ConnectTimeout: 10 * time.Second,
		Log:            testenv.Logger(t),
	}
	for _, c := range change {
		c(&cfg)
	}
	p, err := ssh.NewPool(cfg)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// output collects a command's output.
type output struct {
	mu             sync.Mutex
	stdout, stderr bytes.Buffer
}

func (o *output) fn(s model.Stream, p []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s == model.Stderr {
		o.stderr.Write(p)
	} else {
		o.stdout.Write(p)
	}
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("stdout %q, stderr %q", o.stdout.String(), o.stderr.String())
}

func run(t testing.TB, p *ssh.Pool, target model.Target, cmd model.Command) (stdout, stderr string, ex model.Exit, err error) {
	t.Helper()
	var o output
	ex, err = p.Exec(context.Background(), target, cmd, o.fn)
	return o.stdout.String(), o.stderr.String(), ex, err
}

// mustRun runs cmd and fails the test unless it ran.
func mustRun(t testing.TB, p *ssh.Pool, target model.Target, cmd model.Command) (stdout, stderr string, ex model.Exit) {
	t.Helper()
	stdout, stderr, ex, err := run(t, p, target, cmd)
	if err != nil {
		t.Fatalf("Exec(%q): %v (stdout %q, stderr %q)", cmd.Line, err, stdout, stderr)
	}
	return stdout, stderr, ex
}

// server starts an sshd and returns it with a pool that trusts it; a
// test run by TestNoSFTP gets the server without sftp-server it asks for.
func server(t *testing.T, host string, opts ...sshtest.Option) (*sshtest.Server, *ssh.Pool) {
	t.Helper()
	if start, ok := otherServers.Load(t.Name()); ok {
		s := start.(func(testing.TB, string) *sshtest.Server)(t, host)
		return s, newPool(t, s.KnownHosts(t))
	}
	s := sshtest.Start(t, host, opts...)
	return s, newPool(t, s.KnownHosts(t))
}

func TestExecLine(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.11")
	stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{Line: "echo out; echo err >&2; exit 3"})
	if stdout != "out\n" || stderr != "err\n" {
		t.Errorf("output = %q, %q; want %q, %q", stdout, stderr, "out\n", "err\n")
	}
	if ex.Code != 3 || ex.Signal != "" || ex.TimedOut || ex.Cancelled || ex.Transport != "ssh" {
		t.Errorf("exit = %+v; want code 3 over ssh", ex)
	}

	stdout, _, ex = mustRun(t, p, s.Target(), model.Command{Line: "true"})
	if stdout != "" || ex.Code != 0 {
		t.Errorf("true: stdout %q, exit %+v", stdout, ex)
	}
	// A command line starting with "-" is a command, not an option of sh.
	_, stderr, ex = mustRun(t, p, s.Target(), model.Command{Line: "-x"})
	if ex.Code != 127 || !strings.Contains(stderr, "not found") {
		t.Errorf(`"-x": exit %+v, stderr %q; want command not found`, ex, stderr)
	}
}

func TestExecSignal(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.12")
	_, _, ex := mustRun(t, p, s.Target(), model.Command{Line: "echo going; kill -s KILL $$"})
	if ex.Code != -1 || ex.Signal != "SIGKILL" {
		t.Errorf("exit = %+v; want code -1, SIGKILL", ex)
	}
}

func TestExecQuoting(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.13")
	base := t.TempDir()
	pwned := filepath.Join(base, "pwned")
	inject := "$(touch " + pwned + ")`touch " + pwned + "`;touch " + pwned
	dir := filepath.Join(base, "a b "+inject+" 'q\" \\")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"FELIX_A=spaces and " + inject,
		"FELIX_B=two\nlines \\n \\\\ %s %b",
		"FELIX_C=",
	}
	line := `printf '[%s]\n' "a'b" 'c"d' "$FELIX_A" "$FELIX_B" "$FELIX_C" "$(pwd)"
echo "multi
line" $((1+2))
printf 'tail\\n\n'`
	stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{Line: line, Env: env, Dir: dir})
	want := "[a'b]\n[c\"d]\n[spaces and " + inject + "]\n[two\nlines \\n \\\\ %s %b]\n[]\n[" + dir + "]\nmulti\nline 3\ntail\\n\n"
	if stdout != want || stderr != "" || ex.Code != 0 {
		t.Errorf("stdout = %q\nwant     %q\nstderr %q, exit %+v", stdout, want, stderr, ex)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("%s exists: a value was run as code", pwned)
	}

	// A relative directory is relative to the home directory, even one
	// named like an option.
	home, _ := os.UserHomeDir()
	rel := "felix-test-" + strconv.Itoa(os.Getpid()) + "-dir"
	if err := os.MkdirAll(filepath.Join(home, "-"+rel), 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(filepath.Join(home, "-"+rel))
	stdout, _, _ = mustRun(t, p, s.Target(), model.Command{Line: "pwd", Dir: "-" + rel})
	if strings.TrimSpace(stdout) != filepath.Join(home, "-"+rel) {
		t.Errorf("pwd in %q = %q", "-"+rel, stdout)
	}

	// Bad input is refused before anything runs.
	for _, cmd := range []model.Command{
		{Line: "true", Env: []string{"NOEQUALS"}},
		{Line: "true", Env: []string{"BAD-NAME=x"}},
		{Line: "true", Env: []string{"$(touch " + pwned + ")=x"}},
		{Line: "nul\x00byte"},
		{Line: "true", Dir: "a\x00b"},
	} {
		if _, _, _, err := run(t, p, s.Target(), cmd); err == nil || errors.Is(err, exec.ErrUnreachable) {
			t.Errorf("Exec(%+v) error = %v; want a plain error", cmd, err)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("%s exists: a value was run as code", pwned)
	}

	// A directory that does not exist: an error, and nothing ran.
	_, _, _, err := run(t, p, s.Target(), model.Command{Line: "touch " + pwned, Dir: filepath.Join(base, "missing")})
	if err == nil || errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), "did not run") {
		t.Errorf("Exec in a missing directory: error = %v", err)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("the command ran although its directory is missing")
	}
}

// gone reports whether process pid has ended; a zombie counts as ended
// (this container's init does not reap).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) == 0 || f[0] == "Z" || f[0] == "X"
}

// waitGone fails the test unless pid ends within a generous bound.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for range 300 {
		if gone(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("process %d still runs", pid)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// readPID waits for a pid file written by a remote command.
func readPID(t *testing.T, path string) int {
	t.Helper()
	for range 300 {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %q: %v", b, err)
			}
			return pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no pid file %s", path)
	return 0
}

func TestExecTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.14")
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, _, ex, err := run(t, p, s.Target(), model.Command{
		Line:    "sleep 300 & echo $! > " + pidFile + "; wait",
		Timeout: time.Second,
	})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if !ex.TimedOut || ex.Cancelled {
		t.Errorf("exit = %+v; want TimedOut", ex)
	}
	if ex.Signal != "SIGTERM" && ex.Signal != "SIGKILL" {
		t.Errorf("exit signal = %q; want SIGTERM or SIGKILL", ex.Signal)
	}
	waitGone(t, readPID(t, pidFile))
}

func TestExecCancelKillsGroup(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.15")
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		ex  model.Exit
		err error
	}
	res := make(chan result, 1)
	go func() {
		// The child ignores SIGTERM: only the SIGKILL that follows ends it.
		ex, err := p.Exec(ctx, s.Target(), model.Command{
			Line: "sh -c 'trap \"\" TERM; echo $$ > " + pidFile + "; while :; do sleep 1; done' & wait",
		}, func(model.Stream, []byte) {})
		res <- result{ex, err}
	}()
	pid := readPID(t, pidFile)
	cancel()
	r := <-res
	if r.err != nil {
		t.Fatalf("Exec: %v", r.err)
	}
	if !r.ex.Cancelled || r.ex.TimedOut {
		t.Errorf("exit = %+v; want Cancelled", r.ex)
	}
	waitGone(t, pid)
}

func TestExecBackgroundChildDoesNotHang(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.16")
	pidFile := filepath.Join(t.TempDir(), "pid")
	stdout, _, ex := mustRun(t, p, s.Target(), model.Command{Line: "sleep 120 & echo $! > " + pidFile + "; echo started"})
	if stdout != "started\n" || ex.Code != 0 || ex.TimedOut {
		t.Errorf("stdout %q, exit %+v", stdout, ex)
	}
	pid := readPID(t, pidFile)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

func TestExecScript(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.17")
	script := "#!/bin/sh\nprintf '<%s>\\n' \"$@\"\npwd\nstat -c '%a %n' . x.sh\n"
	stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{
		Line: "./x.sh 'a b' c",
		File: fileOf("x.sh", []byte(script)),
	})
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if ex.Code != 0 || len(lines) != 5 || lines[0] != "<a b>" || lines[1] != "<c>" || lines[3] != "700 ." || lines[4] != "700 x.sh" {
		t.Fatalf("stdout %q, stderr %q, exit %+v", stdout, stderr, ex)
	}
	dir := lines[2]
	if !strings.HasPrefix(dir, "/tmp/felix-job-") {
		t.Errorf("working directory %q; want a felix-job directory", dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stat %s after the run: %v; want it removed", dir, err)
	}

	// Removed after a failure too; a content of the wrong size never runs.
	pwdFile := filepath.Join(t.TempDir(), "pwd")
	_, _, ex = mustRun(t, p, s.Target(), model.Command{Line: "pwd > " + pwdFile + "; exit 7", File: fileOf("y", []byte("data"))})
	if ex.Code != 7 {
		t.Errorf("exit %+v; want 7", ex)
	}
	if b, err := os.ReadFile(pwdFile); err != nil {
		t.Errorf("read pwd: %v", err)
	} else if _, err := os.Stat(strings.TrimSpace(string(b))); !os.IsNotExist(err) {
		t.Errorf("stat %s after a failed run: %v; want it removed", b, err)
	}
	f := fileOf("z", []byte("data"))
	f.Size = 10
	if _, _, _, err := run(t, p, s.Target(), model.Command{Line: "echo ran", File: f}); err == nil || !strings.Contains(err.Error(), "did not run") {
		t.Errorf("short content: error = %v", err)
	}
	for _, name := range []string{"", "..", "a/b", "/etc/passwd"} {
		if _, _, _, err := run(t, p, s.Target(), model.Command{Line: "true", File: fileOf(name, nil)}); err == nil || errors.Is(err, exec.ErrUnreachable) {
			t.Errorf("file name %q: error = %v; want a plain error", name, err)
		}
	}
}

func fileOf(name string, content []byte) *model.File {
	return &model.File{Name: name, Size: int64(len(content)), Open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}}
}

func TestExecFileBinary(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.18")
	content := make([]byte, 3<<20+12345)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{Line: "sha256sum data.bin", File: fileOf("data.bin", content)})
	want := hex.EncodeToString(sum[:]) + "  data.bin\n"
	if stdout != want || ex.Code != 0 {
		t.Errorf("sha256sum = %q (stderr %q); want %q", stdout, stderr, want)
	}
}

func TestStrictUnknownHost(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, "127.0.0.19")
	kh := filepath.Join(t.TempDir(), "sub", "known_hosts")
	p := newPool(t, kh)
	if fi, err := os.Stat(kh); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts: %v, mode %v; want created 0600", err, fi)
	}
	if fi, err := os.Stat(filepath.Dir(kh)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("known_hosts dir: %v, mode %v; want created 0700", err, fi)
	}
	_, _, _, err := run(t, p, s.Target(), model.Command{Line: "true"})
	if !errors.Is(err, ssh.ErrHostKey) || !errors.Is(err, exec.ErrUnreachable) {
		t.Fatalf("error = %v; want ErrHostKey and ErrUnreachable", err)
	}
	wantCmd := fmt.Sprintf("felix hosts trust %s %s", s.Addr, s.HostKeyFingerprint)
	if !strings.Contains(err.Error(), wantCmd) {
		t.Errorf("error = %q; want it to contain %q", err, wantCmd)
	}
	// sshd saw the connection end during key exchange, before any
	// authentication.
	if !s.WaitLog("[preauth]", 10*time.Second) {
		t.Fatalf("sshd did not log the connection's end")
	}
	for _, word := range []string{"Accepted", "Failed", "Postponed", "publickey", "password"} {
		if strings.Contains(s.Log(), word) {
			t.Errorf("sshd log has %q: authentication was attempted\n%s", word, s.Log())
		}
	}
	if b, _ := os.ReadFile(kh); len(b) != 0 {
		t.Errorf("known_hosts = %q; want nothing recorded under strict", b)
	}
}

func TestAcceptNew(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, "127.0.0.20")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	p := newPool(t, kh, func(c *ssh.Config) { c.Policy = ssh.PolicyAcceptNew })
	mustRun(t, p, s.Target(), model.Command{Line: "true"})
	b, err := os.ReadFile(kh)
	if err != nil || strings.TrimSpace(string(b)) != s.KnownHostsLine {
		t.Errorf("known_hosts = %q, %v; want %q", b, err, s.KnownHostsLine)
	}
	strict := newPool(t, kh)
	mustRun(t, strict, s.Target(), model.Command{Line: "true"})
	if b2, _ := os.ReadFile(kh); !bytes.Equal(b, b2) {
		t.Errorf("known_hosts changed to %q", b2)
	}
}

func TestChangedHostKey(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, "127.0.0.21")
	kh := s.KnownHosts(t)
	s.Stop()
	s2 := sshtest.Start(t, "127.0.0.21", sshtest.Port(s.Port)) // a new host key
	for _, policy := range []string{ssh.PolicyStrict, ssh.PolicyAcceptNew} {
		p := newPool(t, kh, func(c *ssh.Config) { c.Policy = policy })
		_, _, _, err := run(t, p, s2.Target(), model.Command{Line: "true"})
		if !errors.Is(err, ssh.ErrHostKey) || !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), "CHANGED") ||
			!strings.Contains(err.Error(), s2.HostKeyFingerprint) {
			t.Errorf("%s: error = %v; want a changed host key", policy, err)
		}
	}
	if b, _ := os.ReadFile(kh); strings.TrimSpace(string(b)) != s.KnownHostsLine {
		t.Errorf("known_hosts = %q; want it unchanged", b)
	}
}

func TestHostKeyAndTrust(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, "127.0.0.22")
	kh := filepath.Join(t.TempDir(), "known_hosts")
	p := newPool(t, kh)
	ctx := context.Background()
	fp, err := p.HostKey(ctx, s.Target())
	if err != nil || fp != s.HostKeyFingerprint {
		t.Fatalf("HostKey = %q, %v; want %q", fp, err, s.HostKeyFingerprint)
	}
	if s.WaitLog("Accepted", time.Second) {
		t.Errorf("HostKey authenticated")
	}
	if err := p.Trust(ctx, s.Target(), "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, ssh.ErrHostKey) {
		t.Errorf("Trust with a wrong fingerprint: %v; want ErrHostKey", err)
	}
	if b, _ := os.ReadFile(kh); len(b) != 0 {
		t.Errorf("known_hosts = %q after a refused trust", b)
	}
	if err := p.Trust(ctx, s.Target(), fp); err != nil {
		t.Fatalf("Trust: %v", err)
	}
	mustRun(t, p, s.Target(), model.Command{Line: "true"})

	// The host is re-installed with a new key: refused until trusted
	// again, and then only the new key is recorded.
	s.Stop()
	s2 := sshtest.Start(t, "127.0.0.22", sshtest.Port(s.Port))
	p2 := newPool(t, kh)
	if _, _, _, err := run(t, p2, s2.Target(), model.Command{Line: "true"}); !errors.Is(err, ssh.ErrHostKey) {
		t.Fatalf("changed key: %v", err)
	}
	if err := p2.Trust(ctx, s2.Target(), s2.HostKeyFingerprint); err != nil {
		t.Fatalf("Trust the new key: %v", err)
	}
	mustRun(t, p2, s2.Target(), model.Command{Line: "true"})
	if b, _ := os.ReadFile(kh); strings.TrimSpace(string(b)) != s2.KnownHostsLine {
		t.Errorf("known_hosts = %q; want only %q", b, s2.KnownHostsLine)
	}
}

func TestWrongKey(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.23")
	target := s.Target()
	target.SSH.KeyPath = filepath.Join(t.TempDir(), "other")
	sshtest.WriteKey(t, target.SSH.KeyPath, "")
	_, _, _, err := run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) || errors.Is(err, ssh.ErrHostKey) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("error = %v; want unreachable: unable to authenticate", err)
	}
	target.SSH.KeyPath = filepath.Join(t.TempDir(), "missing")
	_, _, _, err = run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing key: error = %v; want unreachable naming the key", err)
	}
}

func TestSSHDDown(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.24")
	up := sshtest.Start(t, "127.0.0.25")
	s.Stop()
	_, _, _, err := run(t, p, s.Target(), model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("error = %v; want unreachable", err)
	}
	p2 := newPool(t, up.KnownHosts(t))
	mustRun(t, p2, up.Target(), model.Command{Line: "true"})
}

func TestRedialAfterRestart(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.26")
	mustRun(t, p, s.Target(), model.Command{Line: "true"})
	s.Stop() // the host reboots: the pooled connection dies with it
	s2 := sshtest.Start(t, "127.0.0.26", sshtest.Port(s.Port), sshtest.HostKeyFile(s.HostKeyFile))
	stdout, _, _ := mustRun(t, p, s2.Target(), model.Command{Line: "echo back"})
	if stdout != "back\n" {
		t.Errorf("stdout %q", stdout)
	}
	if st := p.Stats(); st.Dials != 2 {
		t.Errorf("dials = %d; want 2", st.Dials)
	}
}

func TestConnectionReuse(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.27")
	for range 3 {
		mustRun(t, p, s.Target(), model.Command{Line: "true"})
	}
	mustRun(t, p, s.Target(), model.Command{Line: "true", File: fileOf("f", []byte("x"))})
	if st := p.Stats(); st.Dials != 1 || st.Conns != 1 || st.Sessions != 0 {
		t.Errorf("stats = %+v; want 1 dial, 1 connection, no session open", st)
	}
	if n := strings.Count(s.Log(), "Accepted publickey"); n != 1 {
		t.Errorf("sshd accepted %d logins; want 1", n)
	}
}

func TestIdleTimeoutAndMaxConns(t *testing.T) {
	t.Parallel()
	a := sshtest.Start(t, "127.0.0.28")
	b := sshtest.Start(t, "127.0.0.29")
	kh := a.KnownHosts(t)
	f, _ := os.OpenFile(kh, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(b.KnownHostsLine + "\n")
	f.Close()

	p := newPool(t, kh, func(c *ssh.Config) { c.MaxConns = 1 })
	mustRun(t, p, a.Target(), model.Command{Line: "true"})
	mustRun(t, p, b.Target(), model.Command{Line: "true"}) // evicts a's idle connection
	mustRun(t, p, a.Target(), model.Command{Line: "true"})
	if st := p.Stats(); st.Conns != 1 || st.Dials != 3 {
		t.Errorf("stats = %+v; want 1 connection, 3 dials", st)
	}
	// Busy connections are not evicted: the other host waits.
	var wg sync.WaitGroup
	for _, s := range []*sshtest.Server{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mustRun(t, p, s.Target(), model.Command{Line: "sleep 0.2"})
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.Conns != 1 {
		t.Errorf("stats = %+v; want 1 connection", st)
	}

	idle := newPool(t, kh, func(c *ssh.Config) { c.IdleTimeout = 100 * time.Millisecond })
	mustRun(t, idle, a.Target(), model.Command{Line: "true"})
	for i := 0; idle.Stats().Conns != 0; i++ {
		if i > 200 {
			t.Fatalf("idle connection not closed: %+v", idle.Stats())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestConcurrentSessions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxSessions int
		n           int
	}{
		{"MaxSessions 10", 10, 20},
		{"MaxSessions 3", 3, 12}, // fewer than the pool assumes: learnt from refusals
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, p := server(t, "127.0.0.30", sshtest.MaxSessions(tc.maxSessions))
			var wg sync.WaitGroup
			for i := range tc.n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					stdout, _, _, err := run(t, p, s.Target(), model.Command{Line: "sleep 0.3; echo " + strconv.Itoa(i)})
					if err != nil || stdout != strconv.Itoa(i)+"\n" {
						t.Errorf("exec %d: stdout %q, %v", i, stdout, err)
					}
				}()
			}
			wg.Wait()
			if st := p.Stats(); st.Dials != 1 {
				t.Errorf("stats = %+v; want a single connection", st)
			}
			// Within OpenSSH's default the pool never asks for too many.
			if n := strings.Count(s.Log(), "no more sessions"); tc.maxSessions == 10 && n != 0 {
				t.Errorf("sshd refused %d sessions", n)
			}
		})
	}
}

func TestFacts(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.31")
	f, err := p.Facts(context.Background(), s.Target())
	if err != nil {
		t.Fatalf("Facts: %v", err)
	}
	host, _ := os.Hostname()
	var uts syscall.Utsname
	_ = syscall.Uname(&uts)
	if f.Hostname != host || f.Kernel == "" || f.Arch == "" || f.CPUs <= 0 || f.MemoryBytes == 0 || f.UptimeSeconds <= 0 || f.OSName == "" {
		t.Errorf("facts = %+v", f)
	}
	if !slices.ContainsFunc(f.IPs, func(ip string) bool { return strings.HasPrefix(ip, "127.") }) {
		t.Errorf("IPs = %q; want 127.x among them", f.IPs)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.32")
	stdout, stderr, code, err := p.Run(context.Background(), s.Target(), "x='it''s'\necho \"$x\"\necho oops >&2\nexit 4\n")
	if err != nil || string(stdout) != "its\n" || string(stderr) != "oops\n" || code != 4 {
		t.Errorf("Run = %q, %q, %d, %v", stdout, stderr, code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, _, _, err := p.Run(ctx, s.Target(), "sleep 60"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run past its context: %v; want DeadlineExceeded", err)
	}
}

func TestUploadAndReadFile(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.33")
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "app.conf")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	var before syscall.Stat_t
	_ = syscall.Stat(path, &before)
	content := bytes.Repeat([]byte("felix\n"), 100000)
	if err := p.Upload(ctx, s.Target(), path, bytes.NewReader(content), 0o640); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("uploaded content differs (%d bytes, %v)", len(got), err)
	}
	var after syscall.Stat_t
	_ = syscall.Stat(path, &after)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v; want 0640", fi.Mode())
	}
	if after.Ino == before.Ino {
		t.Errorf("the file was rewritten in place, not renamed into place")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only app.conf (no temporary files)", len(entries))
	}
	if err := p.Upload(ctx, s.Target(), filepath.Join(dir, "setuid"), strings.NewReader("#!/bin/sh\n"), 0o4755); err != nil {
		t.Fatalf("Upload: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "setuid")); fi.Mode() != os.ModeSetuid|0o755 {
		t.Errorf("mode = %v; want setuid 0755", fi.Mode())
	}
	// A failed upload leaves the old file and no temporary file.
	failing := io.MultiReader(strings.NewReader("partial"), errReader{})
	if err := p.Upload(ctx, s.Target(), path, failing, 0o600); err == nil {
		t.Errorf("Upload from a failing reader succeeded")
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Errorf("a failed upload changed the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("directory holds %d entries after a failed upload; want 2", len(entries))
	}
	if err := p.Upload(ctx, s.Target(), "relative", strings.NewReader(""), 0o600); err == nil {
		t.Errorf("Upload to a relative path succeeded")
	}

	read, err := p.ReadFile(ctx, s.Target(), path)
	if err != nil || !bytes.Equal(read, content) {
		t.Errorf("ReadFile = %d bytes, %v", len(read), err)
	}
	if _, err := p.ReadFile(ctx, s.Target(), filepath.Join(dir, "missing")); err == nil {
		t.Errorf("ReadFile of a missing file succeeded")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestBecome(t *testing.T) {
	t.Parallel()
	if _, err := osexec.LookPath("sudo"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sudo is not installed (make deps installs it)")
		}
		testenv.Missing(t, "sudo is not installed (make deps installs it)")
	}
	s, p := server(t, "127.0.0.34")
	target := s.Target()
	target.SSH.Become = true
	stdout, stderr, ex := mustRun(t, p, target, model.Command{Line: "id -u; echo $FELIX_X", Env: []string{"FELIX_X=kept"}})
	if stdout != "0\nkept\n" || ex.Code != 0 {
		t.Errorf("stdout %q, stderr %q, exit %+v", stdout, stderr, ex)
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	_, _, ex, err := run(t, p, target, model.Command{Line: "sleep 300 & echo $! > " + pidFile + "; wait", Timeout: time.Second})
	if err != nil || !ex.TimedOut {
		t.Errorf("exit %+v, %v; want TimedOut", ex, err)
	}
	waitGone(t, readPID(t, pidFile))

	stdout, _, ex = mustRun(t, p, target, model.Command{Line: "./s.sh; stat -c %U .", File: fileOf("s.sh", []byte("#!/bin/sh\nid -u\n"))})
	if stdout != "0\nroot\n" || ex.Code != 0 {
		t.Errorf("script under sudo: stdout %q, exit %+v", stdout, ex)
	}
	path := filepath.Join(t.TempDir(), "f")
	if err := p.Upload(context.Background(), target, path, strings.NewReader("x"), 0o600); err != nil {
		t.Errorf("Upload under sudo: %v", err)
	}
	if b, err := p.ReadFile(context.Background(), target, path); err != nil || string(b) != "x" {
		t.Errorf("ReadFile under sudo = %q, %v", b, err)
	}
}

// nobodyDir returns a directory the user nobody owns, on a path it can
// reach (the test's temporary directories are opened to all).
func nobodyDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(dir, "nobody")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return sub
}

// TestBecomeUser runs commands, scripts and file transfers as another
// user (sudo -n -u nobody), kills its command at the deadline as that
// user, and refuses a user that is no name; logged in as root, whom
// sudoers allows anything, and as a user whose sudoers allows nobody only
// (so nothing may need root).
func TestBecomeUser(t *testing.T) {
	t.Parallel()
	if _, err := osexec.LookPath("sudo"); err != nil {
		testenv.Missing(t, "sudo is not installed (make deps installs it)")
	}
	tests := []struct {
		name, host, login string
		opts              []sshtest.Option
	}{
		{"root login", "127.0.0.61", "root", nil},
		{"login allowed nobody only", "127.0.0.62", "felixbu", []sshtest.Option{sshtest.SudoUser("felixbu", "nobody")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, p := server(t, tt.host, tt.opts...)
			target := s.Target()
			target.SSH.User = tt.login
			testBecomeUser(t, s, p, target)
			if tt.login == "root" {
				return
			}
			// The test means something: this login may not become root.
			target.SSH.Become, target.SSH.BecomeUser = true, ""
			if stdout, _, ex, err := run(t, p, target, model.Command{Line: "id -un"}); err == nil && ex.Code == 0 {
				t.Errorf("become root as %s: stdout %q, exit %+v; want sudo to refuse", tt.login, stdout, ex)
			}
		})
	}
}

func testBecomeUser(t *testing.T, s *sshtest.Server, p *ssh.Pool, target model.Target) {
	target.SSH.BecomeUser = "nobody" // implies Become
	dir := nobodyDir(t)
	ctx := context.Background()

	stdout, stderr, ex := mustRun(t, p, target, model.Command{Line: "id -un; echo $FELIX_X", Env: []string{"FELIX_X=kept"}})
	if stdout != "nobody\nkept\n" || ex.Code != 0 {
		t.Errorf("id -un = %q (stderr %q, exit %+v); want nobody", stdout, stderr, ex)
	}
	stdout, _, ex = mustRun(t, p, target, model.Command{Line: "./s.sh; stat -c %U .", File: fileOf("s.sh", []byte("#!/bin/sh\nid -un\n"))})
	if stdout != "nobody\nnobody\n" || ex.Code != 0 {
		t.Errorf("script as nobody: stdout %q, exit %+v; want it run by nobody in nobody's directory", stdout, ex)
	}

	pidFile := filepath.Join(dir, "pid")
	_, _, ex, err := run(t, p, target, model.Command{Line: "sleep 300 & echo $! > " + pidFile + "; wait", Timeout: time.Second})
	if err != nil || !ex.TimedOut {
		t.Errorf("exit %+v, %v; want TimedOut", ex, err)
	}
	waitGone(t, readPID(t, pidFile))

	up := filepath.Join(dir, "up")
	if err := p.Upload(ctx, target, up, strings.NewReader("x"), 0o600); err != nil {
		t.Errorf("Upload as nobody: %v", err)
	}
	put := filepath.Join(dir, "put")
	if res, err := p.Put(ctx, target, putFile(put, []byte("y"), nil)); err != nil || !res.Changed {
		t.Errorf("Put as nobody = %+v, %v", res, err)
	}
	for _, path := range []string{up, put} {
		if st, err := os.Stat(path); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
			t.Errorf("stat %s = %v, %v; want it owned by nobody", path, st, err)
		}
	}
	if b, err := p.ReadFile(ctx, target, up); err != nil || string(b) != "x" {
		t.Errorf("ReadFile as nobody = %q, %v", b, err)
	}
	// nobody cannot write where root alone may.
	if err := p.Upload(ctx, target, filepath.Join(t.TempDir(), "f"), strings.NewReader("x"), 0o600); err == nil {
		t.Errorf("Upload as nobody into root's 0700 directory: no error")
	}

	for _, user := range []string{"no body", "-u", "x'y", "Root"} {
		st := *target.SSH
		st.BecomeUser = user
		bad := model.Target{ID: target.ID, SSH: &st}
		_, _, _, err := run(t, p, bad, model.Command{Line: "true"})
		if err == nil || !strings.Contains(err.Error(), "become user") {
			t.Errorf("become user %q: error = %v; want it refused", user, err)
		}
	}
}

// The tests below set environment variables, so they do not run in
// parallel with others.

func TestPasswordFromEnv(t *testing.T) {
	s := sshtest.Start(t, "127.0.0.35", sshtest.Password("correct horse"))
	p := newPool(t, s.KnownHosts(t), func(c *ssh.Config) {
		c.KeyFiles = []string{filepath.Join(t.TempDir(), "none")}
		c.PasswordHosts = []string{"127.0.0.35"}
	})
	target := s.Target()
	target.SSH.KeyPath = ""

	_, _, _, err := run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("without a password: %v; want unreachable", err)
	}
	t.Setenv(ssh.EnvPassword, "wrong")
	_, _, _, err = run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("wrong password: %v; want unreachable: unable to authenticate", err)
	}
	t.Setenv(ssh.EnvPassword, "correct horse")
	stdout, _, _ := mustRun(t, p, target, model.Command{Line: "echo in"})
	if stdout != "in\n" || !strings.Contains(s.Log(), "Accepted password") {
		t.Errorf("stdout %q; want a password login", stdout)
	}

	// Only hosts the master's config names get the password: any API
	// caller can add a host pointing at a server it runs.
	for _, allowed := range [][]string{nil, {"127.0.0.36"}, {"10.0.0.0/8"}, {"other.example"}} {
		none := newPool(t, s.KnownHosts(t), func(c *ssh.Config) {
			c.KeyFiles = []string{filepath.Join(t.TempDir(), "none")}
			c.PasswordHosts = allowed
		})
		before := strings.Count(s.Log(), "password for")
		_, _, _, err := run(t, none, target, model.Command{Line: "true"})
		if !errors.Is(err, exec.ErrUnreachable) {
			t.Errorf("password hosts %q: %v; want unreachable, no password offered", allowed, err)
		}
		if n := strings.Count(s.Log(), "password for"); n != before {
			t.Errorf("password hosts %q: the server saw a password (%d more)", allowed, n-before)
		}
	}
	for _, allowed := range [][]string{{"127.0.0.35"}, {"127.0.0.0/24"}} {
		ok := newPool(t, s.KnownHosts(t), func(c *ssh.Config) {
			c.KeyFiles = []string{filepath.Join(t.TempDir(), "none")}
			c.PasswordHosts = allowed
		})
		if stdout, _, _ := mustRun(t, ok, target, model.Command{Line: "echo in"}); stdout != "in\n" {
			t.Errorf("password hosts %q: stdout %q; want a password login", allowed, stdout)
		}
	}
}

func TestPassphraseKey(t *testing.T) {
	s := sshtest.Start(t, "127.0.0.36")
	key := filepath.Join(t.TempDir(), "enc_key")
	s.AuthorizeKey(t, sshtest.WriteKey(t, key, "open sesame"))
	target := s.Target()
	target.SSH.KeyPath = key

	t.Setenv(ssh.EnvPassphrase, "")
	p := newPool(t, s.KnownHosts(t))
	_, _, _, err := run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), ssh.EnvPassphrase) {
		t.Errorf("without a passphrase: %v; want unreachable naming %s", err, ssh.EnvPassphrase)
	}

	prompted := 0
	withPrompt := newPool(t, s.KnownHosts(t), func(c *ssh.Config) {
		c.Prompt = func(path string) ([]byte, error) {
			prompted++
			return []byte("open sesame"), nil
		}
	})
	mustRun(t, withPrompt, target, model.Command{Line: "true"})
	if prompted != 1 {
		t.Errorf("prompted %d times; want 1", prompted)
	}

	t.Setenv(ssh.EnvPassphrase, "open sesame")
	mustRun(t, newPool(t, s.KnownHosts(t)), target, model.Command{Line: "true"})
}

func TestAgent(t *testing.T) {
	s := sshtest.Start(t, "127.0.0.37")
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s.AuthorizeKey(t, signer.PublicKey())
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	target := s.Target()
	target.SSH.KeyPath = ""
	p := newPool(t, s.KnownHosts(t), func(c *ssh.Config) { c.NoAgent = false; c.KeyFiles = []string{"/nonexistent"} })
	mustRun(t, p, target, model.Command{Line: "true"})

	off := newPool(t, s.KnownHosts(t), func(c *ssh.Config) { c.KeyFiles = []string{"/nonexistent"} })
	if _, _, _, err := run(t, off, target, model.Command{Line: "true"}); !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("with NoAgent: %v; want unreachable", err)
	}
}

func TestNewPoolErrors(t *testing.T) {
	t.Parallel()
	if _, err := ssh.NewPool(ssh.Config{KnownHosts: filepath.Join(t.TempDir(), "kh"), Policy: "yolo"}); err == nil {
		t.Errorf("bad policy accepted")
	}
	bad := filepath.Join(t.TempDir(), "kh")
	os.WriteFile(bad, []byte("not a known hosts line\n"), 0o600)
	if _, err := ssh.NewPool(ssh.Config{KnownHosts: bad}); err == nil {
		t.Errorf("malformed known_hosts accepted")
	}
	if _, err := ssh.NewPool(ssh.Config{}); err == nil {
		t.Errorf("no known_hosts accepted")
	}
	p := newPool(t, filepath.Join(t.TempDir(), "kh"))
	for _, target := range []model.Target{
		{ID: "none"},
		{ID: "h", SSH: &model.SSHTarget{Host: "-oProxyCommand=x"}},
		{ID: "h", SSH: &model.SSHTarget{Host: "a b"}},
		{ID: "h", SSH: &model.SSHTarget{Host: "h", Port: 70000}},
		{ID: "h", SSH: &model.SSHTarget{Host: "h", User: "-l"}},
	} {
		if _, err := p.Exec(context.Background(), target, model.Command{Line: "true"}, nil); err == nil {
			t.Errorf("Exec on %+v succeeded", target.SSH)
		}
	}
	if st := p.Stats(); st.Dials != 0 {
		t.Errorf("bad targets were dialled: %+v", st)
	}
}

// BenchmarkExecTrue runs `true` on many hosts at once (127.0.2.1 ... N, one
// sshd listening on all of them; N from FELIX_BENCH_HOSTS, default 200): cold
// with a new pool (new connections) each time, warm on pooled connections.
func BenchmarkExecTrue(b *testing.B) {
	n := 200
	if v, err := strconv.Atoi(os.Getenv("FELIX_BENCH_HOSTS")); err == nil && v > 0 && v < 255 {
		n = v
	}
	var hosts []string
	for i := 1; i <= n; i++ {
		hosts = append(hosts, "127.0.2."+strconv.Itoa(i))
	}
	// The login shell is /bin/sh: this machine's ~/.bashrc (which bash run
	// by sshd reads for every command) is not what is measured.
	s := sshtest.Start(b, "0.0.0.0", sshtest.Shell("/bin/sh"))
	var kh bytes.Buffer
	targets := make([]model.Target, n)
	for i, h := range hosts {
		kh.WriteString(strings.Replace(s.KnownHostsLine, "[0.0.0.0]", "["+h+"]", 1) + "\n")
		targets[i] = s.Target()
		targets[i].ID = h
		targets[i].SSH.Host = h
	}
	khPath := filepath.Join(b.TempDir(), "known_hosts")
	if err := os.WriteFile(khPath, kh.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	fanOut := func(p *ssh.Pool) {
		var wg sync.WaitGroup
		for _, t := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ex, err := p.Exec(context.Background(), t, model.Command{Line: "true"}, nil)
				if err != nil || ex.Code != 0 {
					b.Errorf("%s: %+v, %v", t.ID, ex, err)
				}
			}()
		}
		wg.Wait()
	}
	cfg := ssh.Config{KnownHosts: khPath, NoAgent: true}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			p, err := ssh.NewPool(cfg)
			if err != nil {
				b.Fatal(err)
			}
			fanOut(p)
			p.Close()
		}
	})
	b.Run("warm", func(b *testing.B) {
		p, err := ssh.NewPool(cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		fanOut(p)
		for b.Loop() {
			fanOut(p)
		}
	})
}

// Environment entries reach only the command: names the wrapper uses for
// itself cannot change what runs or which group is killed.
func TestEnvCannotRewriteTheWrapper(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.38")
	stdout, _, ex := mustRun(t, p, s.Target(), model.Command{Line: "echo ran $c $g",
		Env: []string{"c=echo hijacked", "x=/bin/false", "g=1", "t=x", "d=/", "n=9"}})
	if ex.Code != 0 || strings.TrimSpace(stdout) != "ran echo hijacked 1" {
		t.Errorf("got %q exit %d; want the command itself run, seeing its env", stdout, ex.Code)
	}
}

// Reconfigure: operations that start afterwards use the new settings (here
// the known_hosts file and the host-key policy); a command running across
// it goes on over its connection; bad settings are refused and the old
// ones kept.
func TestReconfigure(t *testing.T) {
	t.Parallel()
	s := sshtest.Start(t, "127.0.0.60")
	cfg := ssh.Config{KnownHosts: s.KnownHosts(t), NoAgent: true, ConnectTimeout: 10 * time.Second, Log: testenv.Logger(t)}
	p := newPool(t, cfg.KnownHosts)
	type res struct {
		stdout string
		err    error
	}
	done := make(chan res, 1)
	go func() {
		stdout, _, _, err := run(t, p, s.Target(), model.Command{Line: "sleep 1; echo survived"})
		done <- res{stdout, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for p.Stats().Sessions == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	empty := filepath.Join(t.TempDir(), "known_hosts")
	tests := []struct {
		name    string
		change  func(*ssh.Config)
		wantErr bool  // from Reconfigure
		want    error // from the next command; nil: it runs
	}{
		{"new known_hosts, strict", func(c *ssh.Config) { c.KnownHosts = empty }, false, ssh.ErrHostKey},
		{"bad policy keeps the old settings", func(c *ssh.Config) { c.KnownHosts, c.Policy = "", "trusting" }, true, ssh.ErrHostKey},
		{"accept-new", func(c *ssh.Config) { c.KnownHosts, c.Policy = empty, ssh.PolicyAcceptNew }, false, nil},
	}
	for _, tt := range tests {
		c := cfg
		tt.change(&c)
		if err := p.Reconfigure(c); (err != nil) != tt.wantErr {
			t.Errorf("%s: Reconfigure = %v; want error %v", tt.name, err, tt.wantErr)
		}
		_, _, _, err := run(t, p, s.Target(), model.Command{Line: "true"})
		if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("%s: Exec = %v; want %v", tt.name, err, tt.want)
		}
	}
	if b, _ := os.ReadFile(empty); strings.TrimSpace(string(b)) != s.KnownHostsLine {
		t.Errorf("new known_hosts = %q; want the host accepted into it", b)
	}
	r := <-done
	if r.err != nil || r.stdout != "survived\n" {
		t.Errorf("command running across Reconfigure = %q, %v; want survived", r.stdout, r.err)
	}
}

// A host that accepts TCP and never says anything is unreachable after
// ConnectTimeout, and the error names the limit.
func TestConnectTimeout(t *testing.T) {
	port := sshtest.Silent(t, "127.0.0.1")
	key := filepath.Join(t.TempDir(), "id")
	sshtest.WriteKey(t, key, "")
	p := newPool(t, filepath.Join(t.TempDir(), "known_hosts"), func(c *ssh.Config) {
		c.ConnectTimeout = 500 * time.Millisecond
		c.KeyFiles = []string{key}
	})
	target := model.Target{ID: "silent", SSH: &model.SSHTarget{Host: "127.0.0.1", Port: port, User: "root"}}
	_, _, _, err := run(t, p, target, model.Command{Line: "true"})
	if !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), "no SSH handshake within 500ms (ssh.connect_timeout)") {
		t.Errorf("Exec on a silent host = %v; want unreachable, no SSH handshake within 500ms", err)
	}
}
