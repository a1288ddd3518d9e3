//go:build !windows

package daemon

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		ns := testenv.NotifySocket(t, abstract)
		for _, state := range []string{"READY=1\nSTATUS=serving", "STOPPING=1"} {
			if err := Notify(state); err != nil {
				t.Fatalf("Notify(%q) = %v", state, err)
			}
			if got := ns.Next(t); got != state {
				t.Errorf("abstract %v: got %q; want %q", abstract, got, state)
			}
		}
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Notify("READY=1"); err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET = %v; want nil", err)
	}
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "none"))
	if err := Notify("READY=1"); err == nil {
		t.Errorf("Notify to a missing socket = nil; want an error")
	}
}

// TestWatchdog: WATCHDOG=1 arrives while healthy says so, and stops
// while it does not.
func TestWatchdog(t *testing.T) {
	ns := testenv.NotifySocket(t, false)
	t.Setenv("WATCHDOG_USEC", "100000") // 100 ms: a ping every 50 ms
	t.Setenv("WATCHDOG_PID", "")
	var sick atomic.Bool
	var checks atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Watchdog(ctx, testenv.Logger(t), func(context.Context) error {
			checks.Add(1)
			if sick.Load() {
				return errors.New("main loop stuck")
			}
			return nil
		})
	}()
	if got := ns.Next(t); got != "WATCHDOG=1" {
		t.Errorf("got %q; want WATCHDOG=1", got)
	}
	sick.Store(true)
	waitChecks := func(k int32) {
		n := checks.Load()
		for checks.Load() < n+k {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// A check that passed just before the switch may still send one;
	// after that, none while the checks fail.
	waitChecks(2)
	sent := ns.Count("WATCHDOG=1")
	waitChecks(3)
	if got := ns.Count("WATCHDOG=1"); got != sent {
		t.Errorf("%d WATCHDOG=1 sent while the daemon is not healthy", got-sent)
	}
	cancel()
	<-done

	t.Setenv("WATCHDOG_PID", "1")
	if _, ok := WatchdogInterval(); ok {
		t.Errorf("WatchdogInterval for another pid = ok; want none")
	}
}

func TestDraining(t *testing.T) {
	for _, tt := range []struct {
		restarting bool
		want       string
	}{
		{false, "STOPPING=1\nSTATUS=draining"},
		{true, "RELOADING=1\nSTATUS=restarting"},
	} {
		if got := Draining(tt.restarting); got != tt.want {
			t.Errorf("Draining(%v) = %q; want %q", tt.restarting, got, tt.want)
		}
	}
}
