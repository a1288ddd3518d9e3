//go:build !windows

package daemon

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
)

// TestLockDataDir checks a second lock on the same directory fails naming
// the holder's pid, and that the lock is free again once released.
func TestLockDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description: a second open in
	// this process conflicts like another process would.
	_, err = LockDataDir(dir)
	want := fmt.Sprintf("data dir %s is in use by pid %d", dir, os.Getpid())
	if !errors.Is(err, ErrInUse) || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second lock: %v; want %q", err, want)
	}
	unlock()
	unlock2, err := LockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// TestLockHeldByOtherProcess checks the lock against a real other process
// (flock(1) holding the file), and that the descriptor is not inherited by
// children (close-on-exec).
func TestLockHeldByOtherProcess(t *testing.T) {
	flock, err := exec.LookPath("flock")
	if err != nil {
		testenv.Missing(t, "no flock(1) (util-linux): %v", err)
	}
	dir := t.TempDir()
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A child of ours trying the lock without blocking must fail only
	// because we hold it; it must not have inherited our descriptor.
	out, err := exec.Command("sh", "-c", "ls -l /proc/self/fd | grep -c '"+filepath.Join(dir, LockFile)+"' || true").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "0" {
		t.Errorf("a child inherited the lock descriptor: %s", out)
	}
	if err := exec.Command(flock, "-n", filepath.Join(dir, LockFile), "true").Run(); err == nil {
		t.Errorf("flock -n succeeded while the lock is held")
	}
	unlock()
	if err := exec.Command(flock, "-n", filepath.Join(dir, LockFile), "true").Run(); err != nil {
		t.Errorf("flock -n after unlock: %v", err)
	}
}
