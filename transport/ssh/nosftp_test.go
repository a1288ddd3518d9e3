package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// otherServers maps a test's name to the server its server helper starts
// instead of sshd with SFTP (see TestNoSFTP).
var otherServers sync.Map

// noSFTPServers are the hosts without sftp-server the transfer tests run
// against: Dropbear (no sftp-server of its own, none installed: the
// subsystem is accepted, then the shell says "not found"), OpenSSH with no
// Subsystem line (the request refused) and OpenSSH naming a missing
// sftp-server (exit status 127, nothing on standard error). The OpenSSH
// login shell is /bin/sh, as root's ~/.bashrc may be slow.
var noSFTPServers = []struct {
	name  string
	start func(testing.TB, string) *sshtest.Server
}{
	{"dropbear", func(t testing.TB, host string) *sshtest.Server { return sshtest.StartDropbear(t, host) }},
	{"openssh-no-subsystem", func(t testing.TB, host string) *sshtest.Server {
		return sshtest.Start(t, host, sshtest.NoSFTP(), sshtest.Shell("/bin/sh"))
	}},
	{"openssh-missing-sftp-server", func(t testing.TB, host string) *sshtest.Server {
		return sshtest.Start(t, host, sshtest.Config("Subsystem sftp /nonexistent/felix/sftp-server"), sshtest.Shell("/bin/sh"))
	}},
}

// TestNoSFTP runs the transfer tests against hosts without sftp-server:
// everything goes through the exec channel with the same results.
func TestNoSFTP(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Put", TestPut},
		{"PutAttrsInPlace", TestPutAttrsInPlace},
		{"PutRefused", TestPutRefused},
		{"Get", TestGet},
		{"PutDir", TestPutDir},
		{"PutSymlink", TestPutSymlink},
		{"PutRoot", TestPutRoot},
		{"PutFollow", TestPutFollow},
		{"PutBadInput", TestPutBadInput},
		{"UploadAndReadFile", TestUploadAndReadFile},
		{"ExecScript", TestExecScript},
		{"ExecFileBinary", TestExecFileBinary},
	}
	for _, srv := range noSFTPServers {
		t.Run(srv.name, func(t *testing.T) {
			for _, tt := range tests {
				name := t.Name() + "/" + tt.name
				otherServers.Store(name, srv.start)
				t.Cleanup(func() { otherServers.Delete(name) })
				t.Run(tt.name, tt.fn)
			}
		})
	}
}

// logLines collects what a pool logs.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Level.String()+" "+r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

// count returns how many lines contain substr.
func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// TestNoSFTPReasonOnce checks the reason a host has no sftp-server is
// logged once per login, naming the real cause, however many transfers
// follow, and again after a Reconfigure (a new settings generation).
func TestNoSFTPReasonOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		server int
		host   string
		reason string
	}{
		{0, "127.0.0.91", "the sftp session exited 127 (command not found) before its version packet: sh: 1: /usr/lib/sftp-server: not found"},
		{1, "127.0.0.92", "the server refused the sftp subsystem"},
		{2, "127.0.0.93", "the sftp session exited 127 (command not found) before its version packet"},
	} {
		t.Run(noSFTPServers[tt.server].name, func(t *testing.T) {
			t.Parallel()
			s := noSFTPServers[tt.server].start(t, tt.host)
			logs := &logLines{}
			cfg := ssh.Config{KnownHosts: s.KnownHosts(t), NoAgent: true}
			p := newPool(t, cfg.KnownHosts, func(c *ssh.Config) { c.Log = slog.New(logs) })
			dir := t.TempDir()
			for i := range 3 {
				content := []byte(strings.Repeat("x", i*1000))
				dest := filepath.Join(dir, "f")
				if _, err := p.Put(context.Background(), s.Target(), putFile(dest, content, nil)); err != nil {
					t.Fatalf("Put: %v", err)
				}
				mustContent(t, dest, string(content))
			}
			want := "no sftp-server on root@" + s.Addr + ": "
			if n := logs.count(want); n != 1 {
				t.Errorf("%q logged %d times; want once", want, n)
			}
			if n := logs.count(tt.reason + "; transferring through the exec channel"); n != 1 {
				t.Errorf("reason %q logged %d times; want once; log:\n%s", tt.reason, n, strings.Join(logs.lines, "\n"))
			}
			if err := p.Reconfigure(ssh.Config{KnownHosts: cfg.KnownHosts, NoAgent: true, Log: slog.New(logs)}); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, _, err := p.Get(context.Background(), s.Target(), model.GetFile{Path: filepath.Join(dir, "f")}, &buf); err != nil {
				t.Fatalf("Get: %v", err)
			}
			if n := logs.count(want); n != 2 {
				t.Errorf("%q logged %d times after a Reconfigure; want twice", want, n)
			}
		})
	}
}

// TestDropbearScriptExecs runs 100 script commands in a row on Dropbear
// without sftp-server (each stages its file through exec sessions):
// every one runs, none fails.
func TestDropbearScriptExecs(t *testing.T) {
	t.Parallel()
	s := sshtest.StartDropbear(t, "127.0.0.94")
	p := newPool(t, s.KnownHosts(t))
	script := make([]byte, 4096)
	_, _ = rand.Read(script)
	content := append([]byte("#!/bin/sh\necho ran \"$1\"\nexit 0\n# "), script...)
	for i := range 100 {
		stdout, stderr, ex, err := run(t, p, s.Target(), model.Command{Line: "./job.sh " + strings.Repeat("a", i%3+1), File: fileOf("job.sh", content)})
		if err != nil || ex.Code != 0 || stdout != "ran "+strings.Repeat("a", i%3+1)+"\n" {
			t.Fatalf("exec %d: %v, exit %d, stdout %q, stderr %q", i, err, ex.Code, stdout, stderr)
		}
	}
}

// TestDropbearExecAfterSFTP alternates SFTP puts and commands on Dropbear
// with an sftp-server, where an exec session opened right after an SFTP
// session closed now and then gets closed unanswered (2022.83): every
// command runs, and exactly once (a retried request never ran).
func TestDropbearExecAfterSFTP(t *testing.T) {
	t.Parallel()
	s := sshtest.StartDropbear(t, "127.0.0.96", sshtest.SFTPServer())
	logs := &logLines{}
	p := newPool(t, s.KnownHosts(t), func(c *ssh.Config) { c.Log = slog.New(logs) })
	dir := t.TempDir()
	counter := filepath.Join(dir, "ran")
	const n = 60
	for i := range n {
		if _, err := p.Put(context.Background(), s.Target(), putFile(filepath.Join(dir, "f"), []byte{byte(i)}, nil)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if _, stderr, ex, err := run(t, p, s.Target(), model.Command{Line: "echo x >> " + counter}); err != nil || ex.Code != 0 {
			t.Fatalf("exec %d: %v, exit %d, stderr %q", i, err, ex.Code, stderr)
		}
	}
	b, err := os.ReadFile(counter)
	if err != nil || strings.Count(string(b), "x\n") != n {
		t.Errorf("the commands ran %d times (%v); want %d", strings.Count(string(b), "x\n"), err, n)
	}
	if logs.count("no sftp-server") != 0 {
		t.Errorf("Dropbear with sftp-server was taken for one without")
	}
	t.Logf("exec requests retried: %d", logs.count("retrying on a new session"))
}
