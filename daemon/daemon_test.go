//go:build !windows

package daemon

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

// startSleeper starts `sleep 30` as a child, reaps it in the background and
// kills it when the test ends. The returned channel closes once it is reaped.
func startSleeper(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep: %v", err)
	}
	reaped := make(chan struct{})
	go func() {
		cmd.Wait()
		close(reaped)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-reaped
	})
	return cmd, reaped
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	return cmd.Process.Pid
}

func writePIDFile(t *testing.T, path string, pid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWritePID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pid")
	remove, err := WritePID(path)
	if err != nil {
		t.Fatalf("WritePID: %v", err)
	}
	pid, err := ReadPID(path)
	if err != nil {
		t.Fatalf("ReadPID: %v", err)
	}
	if pid != os.Getpid() {
		t.Errorf("pid file holds %d; want our pid %d", pid, os.Getpid())
	}
	if got, ok := Running(path); !ok || got != os.Getpid() {
		t.Errorf("Running = %d, %v; want %d, true", got, ok, os.Getpid())
	}
	remove()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("pid file still there after remove: %v", err)
	}
	if _, ok := Running(path); ok {
		t.Errorf("Running reports a process without a pid file")
	}
}

func TestWritePIDRefusesLiveProcess(t *testing.T) {
	cmd, _ := startSleeper(t)
	path := filepath.Join(t.TempDir(), "x.pid")
	writePIDFile(t, path, cmd.Process.Pid)
	remove, err := WritePID(path)
	if err == nil {
		remove()
		t.Fatalf("WritePID over the live pid %d succeeded", cmd.Process.Pid)
	}
	if !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Errorf("error %q does not name the running pid %d", err, cmd.Process.Pid)
	}
	if pid, _ := ReadPID(path); pid != cmd.Process.Pid {
		t.Errorf("pid file now holds %d; want it left at %d", pid, cmd.Process.Pid)
	}
}

func TestWritePIDReplacesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pid")
	dead := deadPID(t)
	writePIDFile(t, path, dead)
	if _, ok := Running(path); ok {
		t.Fatalf("Running reports the dead pid %d as running", dead)
	}
	remove, err := WritePID(path)
	if err != nil {
		t.Fatalf("WritePID over the stale pid %d: %v", dead, err)
	}
	defer remove()
	if pid, _ := ReadPID(path); pid != os.Getpid() {
		t.Errorf("pid file holds %d; want our pid %d", pid, os.Getpid())
	}
}

func TestReadPIDBadContent(t *testing.T) {
	dir := t.TempDir()
	for _, content := range []string{"", "abc\n", "-3\n", "0\n"} {
		path := filepath.Join(dir, "bad.pid")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if pid, err := ReadPID(path); err == nil {
			t.Errorf("ReadPID(%q) = %d, nil; want an error", content, pid)
		}
		if _, ok := Running(path); ok {
			t.Errorf("Running with pid file %q reports a process", content)
		}
	}
}

func TestStop(t *testing.T) {
	cmd, reaped := startSleeper(t)
	path := filepath.Join(t.TempDir(), "x.pid")
	writePIDFile(t, path, cmd.Process.Pid)
	if err := Stop(path, 20*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-reaped:
	case <-time.After(20 * time.Second):
		t.Fatalf("sleep %d still not reaped after Stop returned", cmd.Process.Pid)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("sleep ended with %v; want killed by SIGTERM", cmd.ProcessState)
	}
}

func TestStopNotRunning(t *testing.T) {
	dir := t.TempDir()
	if err := Stop(filepath.Join(dir, "none.pid"), time.Second); err == nil {
		t.Errorf("Stop without a pid file succeeded")
	}
	stale := filepath.Join(dir, "stale.pid")
	writePIDFile(t, stale, deadPID(t))
	if err := Stop(stale, time.Second); err == nil {
		t.Errorf("Stop with a stale pid file succeeded")
	}
}

// TestZombieIsNotAlive: a process that exited but was not reaped (its parent
// is gone and nobody reaps orphans, as in some containers) will never remove
// its pid file; it must not count as running, or stop would wait in vain.
func TestZombieIsNotAlive(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		testenv.Missing(t, "no procfs")
	}
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait() // reap it in the end
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for procState(t, pid) != 'Z' {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became a zombie (state %c)", pid, procState(t, pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("alive(%d) = true for a zombie; want false", pid)
	}
	path := filepath.Join(t.TempDir(), "z.pid")
	writePIDFile(t, path, pid)
	if _, ok := Running(path); ok {
		t.Errorf("Running reports the zombie %d as running", pid)
	}
}

// procState returns the state letter from /proc/PID/stat.
func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("read stat of %d: %v", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		t.Fatalf("stat of %d: unexpected %q", pid, b)
	}
	return b[i+2]
}
