//go:build !windows

package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestUnitOf(t *testing.T) {
	tests := []struct{ cgroup, want string }{
		{"0::/system.slice/felix-minion.service\n", "felix-minion.service"},
		{"12:pids:/system.slice/felix-master.service\n1:name=systemd:/system.slice/felix-master.service\n0::/system.slice/felix-master.service\n", "felix-master.service"},
		{"0::/user.slice/user-1000.slice/user@1000.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-1.scope\n", ""},
		{"0::/user.slice/user-1000.slice/user@1000.service\n", ""},
		{"0::/system.slice/docker-0123abcd.scope\n", ""},
		{"0::/\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := unitOf(tt.cgroup); got != tt.want {
			t.Errorf("unitOf(%q) = %q; want %q", tt.cgroup, got, tt.want)
		}
	}
}

// Restart without a running daemon says so; a pid file whose process
// never comes back times out saying why.
func TestRestartErrors(t *testing.T) {
	dir := t.TempDir()
	r := Restart{PIDFile: filepath.Join(dir, "x.pid")}
	if _, _, err := r.Do(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Do with no pid file = %v; want ErrNotRunning", err)
	}
	os.WriteFile(r.PIDFile, []byte("999999999\n"), 0o600)
	if _, _, err := r.Do(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Do with a dead pid = %v; want ErrNotRunning", err)
	}
	// A live process that never writes the pid file again: the wait ends
	// with ctx, saying what is missing.
	cmd, _ := startSleeper(t)
	os.WriteFile(r.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	before, _ := stampOf(r.PIDFile)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := r.wait(ctx, cmd.Process.Pid, before, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait for a pid file never rewritten = %v; want the deadline", err)
	}
}

// WritePID takes over a file naming this very process (re-executed in
// place), and its remove func leaves a file another process rewrote.
func TestWritePIDHandover(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.pid")
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	remove, err := WritePID(path)
	if err != nil {
		t.Fatalf("WritePID over our own pid = %v; want it taken over", err)
	}
	cmd, _ := startSleeper(t)
	os.WriteFile(path, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
	remove()
	if pid, err := ReadPID(path); err != nil || pid != cmd.Process.Pid {
		t.Errorf("after remove, pid file = %d, %v; want the other process's %d kept", pid, err, cmd.Process.Pid)
	}
}
