package ssh_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// pwdScript prints its working directory and the mode of the directory
// that holds it.
const pwdScript = "#!/bin/sh\npwd\nstat -c %a ..\n"

// stagedIn runs pwdScript as a script command and returns its working
// directory, the parent's mode and stderr; the directory must be gone
// afterwards when the test can see it.
func stagedIn(t *testing.T, p *ssh.Pool, target model.Target) (dir, mode, stderr string) {
	t.Helper()
	stdout, stderr, ex := mustRun(t, p, target, model.Command{Line: "./pwd.sh", File: fileOf("pwd.sh", []byte(pwdScript))})
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if ex.Code != 0 || len(lines) != 2 {
		t.Fatalf("pwd.sh: stdout %q, stderr %q, exit %+v", stdout, stderr, ex)
	}
	return lines[0], lines[1], stderr
}

// binaryFile is this machine's echo program, a real executable.
func binaryFile(t *testing.T) *model.File {
	t.Helper()
	b, err := os.ReadFile("/bin/echo")
	if err != nil {
		t.Fatalf("read /bin/echo: %v", err)
	}
	return fileOf("echo", b)
}

// TestStageFallsBackFromNoexec runs script and file commands on hosts whose
// /tmp (and /var/tmp) are mounted noexec: the next candidate that can
// execute is used, the operator is told once, the directory is removed.
func TestStageFallsBackFromNoexec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		host     string
		noexec   []string
		wantIn   string // the job directory's parent
		wantNote string
	}{
		{"tmp noexec", "127.0.0.81", []string{"/tmp"}, "/var/tmp", "felix: staging in /var/tmp: /tmp (noexec)\n"},
		{"tmp and var/tmp noexec", "127.0.0.82", []string{"/tmp", "/var/tmp"}, "/root/.felix/tmp", "felix: staging in ~/.felix/tmp: /tmp (noexec), /var/tmp (noexec)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// root's home is a tmpfs of sshd's own: ~/.felix/tmp is made there.
			s, p := server(t, tt.host, sshtest.NoExec(tt.noexec...), sshtest.Tmpfs("/root", false))
			dir, mode, stderr := stagedIn(t, p, s.Target())
			if filepath.Dir(dir) != tt.wantIn || !strings.HasPrefix(filepath.Base(dir), "felix-job-") {
				t.Errorf("working directory %s; want a felix-job directory in %s", dir, tt.wantIn)
			}
			if stderr != tt.wantNote {
				t.Errorf("first run: stderr %q; want the note %q", stderr, tt.wantNote)
			}
			if tt.wantIn == "/root/.felix/tmp" && mode != "700" {
				t.Errorf("%s has mode %s; want 700", tt.wantIn, mode)
			}
			if tt.wantIn == "/var/tmp" {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("stat %s after the run: %v; want it removed", dir, err)
				}
			}
			// Remembered: the same directory, no second note.
			dir2, _, stderr := stagedIn(t, p, s.Target())
			if filepath.Dir(dir2) != tt.wantIn || stderr != "" {
				t.Errorf("second run in %s, stderr %q; want %s and no note", dir2, stderr, tt.wantIn)
			}
			// A binary runs from there too.
			stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{Line: "./echo hi", File: binaryFile(t)})
			if stdout != "hi\n" || ex.Code != 0 {
				t.Errorf("binary: stdout %q, stderr %q, exit %+v; want hi", stdout, stderr, ex)
			}
		})
	}
}

// TestStageEveryCandidateNoexec: with /tmp, /var/tmp and the home all
// noexec, scripts run through their #! interpreter (or /bin/sh), and a
// binary is refused without running.
func TestStageEveryCandidateNoexec(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.83", sshtest.NoExec("/tmp", "/var/tmp"), sshtest.Tmpfs("/root", true))
	tests := []struct {
		name, content, line, want string
	}{
		{"sh.sh", "#!/bin/sh -e\necho \"sh $1\"; pwd\n", "./sh.sh a", "sh a\n"},
		{"env.sh", "#!/usr/bin/env sh\necho \"env $1\"; pwd\n", "./env.sh 'b c'", "env b c\n"},
		{"plain", "echo \"plain $#\"; pwd\n", "./plain x y", "plain 2\n"},
		{"other", "echo other; pwd\n", "sh other", "other\n"},
	}
	first := true
	for _, tt := range tests {
		stdout, stderr, ex := mustRun(t, p, s.Target(), model.Command{Line: tt.line, File: fileOf(tt.name, []byte(tt.content))})
		got, dir, _ := strings.Cut(stdout, "\n")
		dir = strings.TrimSpace(dir)
		if got+"\n" != tt.want || ex.Code != 0 {
			t.Errorf("%s: stdout %q, stderr %q, exit %+v; want %q first", tt.line, stdout, stderr, ex, tt.want)
			continue
		}
		if filepath.Dir(dir) != "/tmp" {
			t.Errorf("%s ran in %s; want a job directory in /tmp, the first candidate", tt.line, dir)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("stat %s after the run: %v; want it removed", dir, err)
		}
		note := "felix: every staging directory is noexec (/tmp (noexec), /var/tmp (noexec), ~/.felix/tmp (noexec))"
		if first != strings.Contains(stderr, note) {
			t.Errorf("%s: stderr %q; want the note %q on the first run only", tt.line, stderr, note)
		}
		first = false
	}
	stdout, stderr, _, err := run(t, p, s.Target(), model.Command{Line: "./echo ran", File: binaryFile(t)})
	want := "every staging directory is noexec (/tmp, /var/tmp, ~/.felix/tmp) and echo is a binary, not a script: it cannot run (the command did not run)"
	if err == nil || !strings.Contains(err.Error(), want) || stdout != "" {
		t.Errorf("binary: error %v, stdout %q, stderr %q; want %q", err, stdout, stderr, want)
	}
	// A binary used as data is fine.
	if stdout, _, _ := mustRun(t, p, s.Target(), model.Command{Line: "test -s echo && echo data", File: binaryFile(t)}); stdout != "data\n" {
		t.Errorf("binary as data: stdout %q", stdout)
	}
}

// TestStageRemoteTmp: a host's remote_tmp, else the pool's, is the first
// candidate; a missing one is made private (0700); ~/DIR is in the home.
func TestStageRemoteTmp(t *testing.T) {
	t.Parallel()
	global := filepath.Join(t.TempDir(), "global")
	s := sshtest.Start(t, "127.0.0.84", sshtest.Tmpfs("/root", false))
	p := newPool(t, s.KnownHosts(t), func(c *ssh.Config) { c.RemoteTmp = global })
	own := filepath.Join(t.TempDir(), "own", "tmp")
	tests := []struct {
		remoteTmp, wantIn string
	}{
		{"", global},
		{own, own},
		{"~/work/tmp", "/root/work/tmp"},
	}
	for _, tt := range tests {
		target := s.Target()
		target.SSH.RemoteTmp = tt.remoteTmp
		dir, mode, stderr := stagedIn(t, p, target)
		if filepath.Dir(dir) != tt.wantIn || mode != "700" || stderr != "" {
			t.Errorf("remote_tmp %q: ran in %s (parent mode %s, stderr %q); want a directory in %s, mode 700, no note", tt.remoteTmp, dir, mode, stderr, tt.wantIn)
		}
	}
	target := s.Target()
	target.SSH.RemoteTmp = "../x"
	if _, _, _, err := run(t, p, target, model.Command{Line: "./pwd.sh", File: fileOf("pwd.sh", []byte(pwdScript))}); err == nil || !strings.Contains(err.Error(), "remote_tmp") {
		t.Errorf("remote_tmp ../x: error %v; want one naming remote_tmp", err)
	}
}

// BenchmarkExecScript runs a script command on one host over a warm pool:
// staged in /tmp; in /var/tmp with /tmp noexec (the choice remembered); and
// through its #! interpreter with every candidate noexec.
func BenchmarkExecScript(b *testing.B) {
	cases := []struct {
		name string
		host string
		opts []sshtest.Option
	}{
		{"tmp", "127.0.0.85", nil},
		{"tmp-noexec", "127.0.0.86", []sshtest.Option{sshtest.NoExec("/tmp")}},
		{"every-noexec", "127.0.0.87", []sshtest.Option{sshtest.NoExec("/tmp", "/var/tmp"), sshtest.Tmpfs("/root", true)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			// The login shell is /bin/sh: ~/.bashrc is not what is measured.
			s := sshtest.Start(b, c.host, append([]sshtest.Option{sshtest.Shell("/bin/sh")}, c.opts...)...)
			p := newPool(b, s.KnownHosts(b))
			cmd := model.Command{Line: "./s.sh", File: fileOf("s.sh", []byte("#!/bin/sh\ntrue\n"))}
			mustRun(b, p, s.Target(), cmd)
			for b.Loop() {
				mustRun(b, p, s.Target(), cmd)
			}
		})
	}
}
