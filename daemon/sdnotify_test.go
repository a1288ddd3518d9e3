package daemon

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

// listenNotify makes a unixgram socket as systemd's NOTIFY_SOCKET would
// be and returns a channel of the datagrams it gets.
func listenNotify(t *testing.T, abstract bool) <-chan string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify")
	env := name
	if abstract {
		name = "\x00felix-test-" + filepath.Base(t.TempDir())
		env = "@" + name[1:]
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", env)
	ch := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s := <-ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no datagram")
		return ""
	}
}

func TestNotify(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		ch := listenNotify(t, abstract)
		for _, state := range []string{"READY=1\nSTATUS=serving", "STOPPING=1"} {
			if err := Notify(state); err != nil {
				t.Fatalf("Notify(%q) = %v", state, err)
			}
			if got := recv(t, ch); got != state {
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
	ch := listenNotify(t, false)
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
	if got := recv(t, ch); got != "WATCHDOG=1" {
		t.Errorf("got %q; want WATCHDOG=1", got)
	}
	sick.Store(true)
	// Drain what was sent before the switch, then no datagram may come
	// while more health checks fail.
	for len(ch) > 0 {
		<-ch
	}
	n := checks.Load()
	for checks.Load() < n+3 {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case s := <-ch:
		if !strings.HasPrefix(s, "WATCHDOG") {
			t.Errorf("unexpected datagram %q", s)
		}
		// One sent by a check that passed just before the switch is fine;
		// after that, none.
		n = checks.Load()
		for checks.Load() < n+3 {
			time.Sleep(10 * time.Millisecond)
		}
		if len(ch) > 0 {
			t.Errorf("WATCHDOG=1 sent while the daemon is not healthy")
		}
	default:
	}
	cancel()
	<-done

	t.Setenv("WATCHDOG_PID", "1")
	if _, ok := WatchdogInterval(); ok {
		t.Errorf("WatchdogInterval for another pid = ok; want none")
	}
}
