//go:build !windows

package local

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

func TestMain(m *testing.M) {
	killGrace = 300 * time.Millisecond
	waitDelay = 500 * time.Millisecond
	os.Exit(m.Run())
}

// collector gathers a run's output per stream.
type collector struct {
	mu             sync.Mutex // protects stdout and stderr
	stdout, stderr bytes.Buffer
}

func (c *collector) out(s model.Stream, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s {
	case model.Stdout:
		c.stdout.Write(p)
	case model.Stderr:
		c.stderr.Write(p)
	}
}

func (c *collector) strings() (string, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stdout.String(), c.stderr.String()
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("FELIX_MINION_JOIN_TOKEN", "fjt_secret") // the daemon's own settings
	t.Setenv("NOT_FELIX", "kept")
	tests := []struct {
		name       string
		cmd        model.Command
		wantCode   int
		wantSignal string
		wantStdout string
		wantStderr string
	}{
		{name: "success", cmd: model.Command{Line: "true"}},
		{name: "exit code", cmd: model.Command{Line: "exit 3"}, wantCode: 3},
		{
			name:       "streams separated",
			cmd:        model.Command{Line: "echo out; echo err >&2"},
			wantStdout: "out\n",
			wantStderr: "err\n",
		},
		{
			name:       "env passed",
			cmd:        model.Command{Line: `printf %s "$FELIX_A-$FELIX_B"`, Env: []string{"FELIX_A=1", "FELIX_B=two words"}},
			wantStdout: "1-two words",
		},
		{
			name:       "daemon's FELIX_ settings withheld",
			cmd:        model.Command{Line: `env | grep -c fjt_secret; printf %s "$NOT_FELIX $FELIX_A"`, Env: []string{"FELIX_A=asked"}},
			wantCode:   0,
			wantStdout: "0\nkept asked",
		},
		{name: "dir honoured", cmd: model.Command{Line: "pwd -P", Dir: dir}, wantStdout: mustEvalSymlinks(t, dir) + "\n"},
		{name: "stdin is empty", cmd: model.Command{Line: "wc -c"}, wantStdout: "0\n"},
		{name: "killed by signal", cmd: model.Command{Line: "kill -9 $$"}, wantCode: -1, wantSignal: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c collector
			ex, err := Run(t.Context(), tt.cmd, c.out)
			if err != nil {
				t.Fatalf("Run(%q) error: %v", tt.cmd.Line, err)
			}
			if ex.Code != tt.wantCode || ex.Signal != tt.wantSignal {
				t.Errorf("Run(%q) = code %d signal %q; want %d %q", tt.cmd.Line, ex.Code, ex.Signal, tt.wantCode, tt.wantSignal)
			}
			if ex.TimedOut || ex.Cancelled {
				t.Errorf("Run(%q) TimedOut=%v Cancelled=%v; want false", tt.cmd.Line, ex.TimedOut, ex.Cancelled)
			}
			if ex.Duration <= 0 {
				t.Errorf("Run(%q) Duration = %v; want > 0", tt.cmd.Line, ex.Duration)
			}
			stdout, stderr := c.strings()
			if stdout != tt.wantStdout {
				t.Errorf("stdout = %q; want %q", stdout, tt.wantStdout)
			}
			if stderr != tt.wantStderr {
				t.Errorf("stderr = %q; want %q", stderr, tt.wantStderr)
			}
		})
	}
}

func TestRunMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, err := Run(t.Context(), model.Command{Line: "true", Dir: dir}, nil)
	if err == nil {
		t.Fatalf("Run in %s: want error", dir)
	}
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "start command: ") {
		t.Errorf("Run in %s error = %v; want wrapped ErrNotExist", dir, err)
	}
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	tests := []struct {
		name       string
		line       string
		wantSignal string
	}{
		{name: "SIGTERM", line: "sleep 300 & echo $! > pidfile; wait", wantSignal: "SIGTERM"},
		// Ignored signals are inherited, so both the shell and sleep need SIGKILL.
		{name: "SIGKILL after grace", line: `trap "" TERM; sleep 300 & echo $! > pidfile; wait`, wantSignal: "SIGKILL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ex, err := Run(t.Context(), model.Command{Line: tt.line, Dir: dir, Timeout: 300 * time.Millisecond}, nil)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !ex.TimedOut || ex.Cancelled {
				t.Errorf("TimedOut=%v Cancelled=%v; want true false", ex.TimedOut, ex.Cancelled)
			}
			if ex.Code != -1 || ex.Signal != tt.wantSignal {
				t.Errorf("code %d signal %q; want -1 %q", ex.Code, ex.Signal, tt.wantSignal)
			}
			pid := readPID(t, filepath.Join(dir, "pidfile"))
			waitGone(t, pid, 5*time.Second)
		})
	}
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	ex, err := Run(ctx, model.Command{Line: "sleep 300; true"}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !ex.Cancelled || ex.TimedOut {
		t.Errorf("Cancelled=%v TimedOut=%v; want true false", ex.Cancelled, ex.TimedOut)
	}
	if ex.Code != -1 || ex.Signal != "SIGTERM" {
		t.Errorf("code %d signal %q; want -1 SIGTERM", ex.Code, ex.Signal)
	}
}

func TestRunStreamsBeforeExit(t *testing.T) {
	first := make(chan string, 1)
	out := func(s model.Stream, p []byte) {
		select {
		case first <- string(p):
		default:
		}
	}
	done := make(chan model.Exit, 1)
	go func() {
		ex, err := Run(t.Context(), model.Command{Line: "echo first; sleep 2; echo second"}, out)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- ex
	}()
	select {
	case got := <-first:
		if got != "first\n" {
			t.Errorf("first chunk = %q; want %q", got, "first\n")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no output within 10s")
	}
	select {
	case <-done:
		t.Fatal("Run returned before the first chunk was observed; output was not streamed")
	default:
	}
	<-done
}

func TestRunBackgroundChildHoldsOutput(t *testing.T) {
	dir := t.TempDir()
	done := make(chan model.Exit, 1)
	go func() {
		ex, err := Run(t.Context(), model.Command{Line: "sleep 30 & echo $! > pidfile; echo started", Dir: dir}, nil)
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- ex
	}()
	var ex model.Exit
	select {
	case ex = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run still running 15s after the shell exited")
	}
	pid := readPID(t, filepath.Join(dir, "pidfile"))
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if ex.Code != 0 || ex.Signal != "" || ex.TimedOut || ex.Cancelled {
		t.Errorf("Run = %+v; want a clean exit", ex)
	}
	if processGone(pid) {
		t.Errorf("background child %d was killed after a normal exit", pid)
	}
}

// mustEvalSymlinks resolves dir as pwd -P would.
func mustEvalSymlinks(t *testing.T, dir string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatalf("resolve %s: %v", dir, err)
	}
	return p
}

// readPID reads the pid a test command wrote to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		t.Fatalf("pid file %s holds %q", path, b)
	}
	return pid
}

// waitGone fails the test unless pid stops running within d.
func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d still running %v after Run returned", pid, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processGone reports whether pid no longer runs: kill(pid, 0) fails with
// ESRCH, or the process is a zombie. An orphan stays a zombie when PID 1 does
// not reap (as in some containers), yet it is dead.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state == 'Z' || state == 'X'
}

func TestShellRefusedOffWindows(t *testing.T) {
	for _, shell := range []string{"cmd", "powershell"} {
		_, err := Run(context.Background(), model.Command{Line: "echo hi", Shell: shell}, nil)
		if err == nil || !strings.Contains(err.Error(), "Windows") {
			t.Errorf("Run with shell %s: %v; want refused for Windows minions only", shell, err)
		}
	}
}
