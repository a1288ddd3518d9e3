package minion

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

// TestSupervisor: a child that exits is started again; when the context
// ends, the running child gets SIGTERM and the supervisor returns once it
// is gone.
func TestSupervisor(t *testing.T) {
	dir := t.TempDir()
	runs, stopped := filepath.Join(dir, "runs"), filepath.Join(dir, "stopped")
	// The first run exits at once; the second stays until SIGTERM, which it
	// records.
	// Each run records itself once it is ready for SIGTERM.
	script := `if [ ! -s "$1" ]; then echo $$ >>"$1"; exit 3; fi
trap 'echo term >"$2"; exit 0' TERM
echo $$ >>"$1"
while :; do sleep 0.1; done`
	s := &supervisor{exe: "/bin/sh", args: []string{"-c", script, "sh", runs, stopped},
		minionPID: filepath.Join(dir, "minion.pid"), log: testenv.Logger(t), stdout: os.Stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(runs)
		if strings.Count(string(b), "\n") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the child was not started again after it exited: runs %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if b, err := os.ReadFile(stopped); err != nil || string(b) != "term\n" {
		t.Errorf("the child's SIGTERM record: %q, %v; want it stopped with SIGTERM", b, err)
	}
	if b, _ := os.ReadFile(runs); strings.Count(string(b), "\n") != 2 {
		t.Errorf("runs %q; want exactly two", b)
	}
}

func TestCutBool(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		rest string
		ok   bool
	}{
		{[]string{"--config", "x", "--supervise"}, "--config x", true},
		{[]string{"--supervise=true"}, "", true},
		{[]string{"--config", "x"}, "--config x", false},
	} {
		rest, ok := cutBool(tc.in, "supervise")
		if strings.Join(rest, " ") != tc.rest || ok != tc.ok {
			t.Errorf("cutBool(%q) = %q, %v; want %q, %v", tc.in, rest, ok, tc.rest, tc.ok)
		}
	}
}
