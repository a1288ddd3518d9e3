package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// waitConns polls until the pool holds want connections; the test context
// is the only limit (no timing is asserted).
func waitConns(t *testing.T, h *harness, want int) {
	t.Helper()
	ctx := testCtx(t)
	for h.pool.Conns() != want {
		select {
		case <-ctx.Done():
			t.Fatalf("pool holds %d connections; want %d", h.pool.Conns(), want)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestIdleConnectionCloses: a connection no call uses is closed after the
// idle timeout, the next call dials a new one, and a call running longer
// than the timeout is never cut off.
func TestIdleConnectionCloses(t *testing.T) {
	h := newHarness(t)
	h.pool.IdleTimeout = 50 * time.Millisecond
	ctx := testCtx(t)
	noOut := func(model.Stream, []byte) {}

	if _, err := h.pool.Exec(ctx, h.target, model.Command{Line: "true"}, noOut); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	waitConns(t, h, 0)
	if n := h.ln.accepted.Load(); n != 1 {
		t.Fatalf("server accepted %d connections before the second Exec; want 1", n)
	}

	// The next exec dials again (a cold connection) and runs once.
	marker := filepath.Join(t.TempDir(), "ran")
	exit, err := h.pool.Exec(ctx, h.target, model.Command{Line: "echo x >> " + marker}, noOut)
	if err != nil || exit.Code != 0 {
		t.Fatalf("Exec after the idle close = %+v, %v; want exit 0", exit, err)
	}
	if n := h.ln.accepted.Load(); n != 2 {
		t.Errorf("server accepted %d connections; want 2 (the idle one closed, a new one dialled)", n)
	}
	if b, err := os.ReadFile(marker); err != nil || string(b) != "x\n" {
		t.Errorf("marker = %q, %v; want the command run exactly once", b, err)
	}

	// A command outlasting the idle timeout many times over keeps its
	// connection: it ends ok, on the same connection.
	before := h.ln.accepted.Load()
	var o output
	exit, err = h.pool.Exec(ctx, h.target, model.Command{Line: "sleep 0.5; echo done"}, o.add)
	if err != nil || exit.Code != 0 {
		t.Fatalf("long Exec = %+v, %v; want exit 0", exit, err)
	}
	if out, _ := o.strings(); out != "done\n" {
		t.Errorf("long Exec stdout = %q; want %q", out, "done\n")
	}
	if n := h.ln.accepted.Load(); n != before {
		t.Errorf("server accepted %d connections during a long Exec; want %d (no reconnect)", n, before)
	}
	waitConns(t, h, 0)

	// Close stops the reaper; the pool still works after it.
	if err := h.pool.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Fatalf("Ping after Close: %v", err)
	}
	waitConns(t, h, 0)
}

// TestHealthWithoutConnection: with idle connections closing, Health answers for a minion the pool holds
// no connection to without leaving one open, checks both pins, tells a
// stopped minion, and its pings over an open connection do not keep that
// connection from closing.
func TestHealthWithoutConnection(t *testing.T) {
	h := newHarness(t)
	h.pool.IdleTimeout = time.Hour // idle connections close: health holds none
	ctx := testCtx(t)

	if err := h.pool.Health(ctx, h.target); err != nil {
		t.Fatalf("Health of a running minion: %v", err)
	}
	if n := h.pool.Conns(); n != 0 {
		t.Errorf("pool holds %d connections after a probe; want 0", n)
	}
	if n := h.ln.accepted.Load(); n != 1 {
		t.Errorf("server accepted %d connections for one probe; want 1", n)
	}

	tests := []struct {
		name  string
		setup func(t *testing.T) model.Target
	}{
		{"wrong minion pin", func(t *testing.T) model.Target {
			tg := h.target
			tg.Fingerprint = h.evil.Fingerprint
			return tg
		}},
		{"no pin", func(t *testing.T) model.Target {
			tg := h.target
			tg.Fingerprint = ""
			return tg
		}},
		{"minion refuses the master's certificate", func(t *testing.T) model.Target {
			h.serverPin.Store(h.evil.Fingerprint)
			t.Cleanup(func() { h.serverPin.Store(h.master.Fingerprint) })
			return h.target
		}},
		{"nothing listening", func(t *testing.T) model.Target {
			tg := h.target
			tg.Addr = "127.0.0.1:1"
			return tg
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.pool.Health(ctx, tt.setup(t))
			if !errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Health = %v; want it to wrap exec.ErrUnreachable", err)
			}
		})
	}

	// With an open connection Health pings over it, and those pings do
	// not count as use: the connection still closes when idle.
	h.pool.IdleTimeout = 100 * time.Millisecond
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	accepted := h.ln.accepted.Load()
	for h.pool.Conns() != 0 {
		if err := h.pool.Health(ctx, h.target); err != nil {
			t.Fatalf("Health over an open connection: %v", err)
		}
		if ctx.Err() != nil {
			t.Fatal("the connection stayed open under health checks")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := h.ln.accepted.Load(); n > accepted+1 {
		// At most the last Health, after the close, probes by hand.
		t.Errorf("server accepted %d connections while one was open; want at most %d", n, accepted+1)
	}

	h.stop()
	if err := h.pool.Health(ctx, h.target); !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("Health of a stopped minion = %v; want it to wrap exec.ErrUnreachable", err)
	}
}

// BenchmarkExecColdWarm: `true` on one minion over a connection already
// open (warm) and over a new one, as after an idle close (cold: TCP, the
// mutual-TLS handshake and HTTP/2 set-up first).
func BenchmarkExecColdWarm(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	noOut := func(model.Stream, []byte) {}
	for _, cold := range []bool{false, true} {
		name := "warm"
		if cold {
			name = "cold"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if cold {
					h.pool.Forget(h.target.ID)
				}
				if _, err := h.pool.Exec(ctx, h.target, model.Command{Line: "true"}, noOut); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHealthProbe: one health check of a minion the pool holds no
// connection to (dial, mutual-TLS handshake, first HTTP/2 frame, hang up;
// both sides' CPU in this process), and one over an open connection.
func BenchmarkHealthProbe(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	b.Run("probe", func(b *testing.B) {
		for b.Loop() {
			if err := h.pool.Health(ctx, h.target); err != nil {
				b.Fatal(err)
			}
		}
	})
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		b.Fatal(err)
	}
	b.Run("open", func(b *testing.B) {
		for b.Loop() {
			if err := h.pool.Health(ctx, h.target); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestHandshakeSlots: dials and health probes shake hands only in one of
// the pool's slots; while none is free they wait, and one that cannot get
// a slot in time fails unreachable without having connected, so nothing
// ran.
func TestHandshakeSlots(t *testing.T) {
	h := newHarness(t)
	h.pool.handshakes = make(chan struct{}, 1)
	h.pool.handshakes <- struct{}{} // the only slot, taken

	short, cancel := context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	if err := h.pool.Health(short, h.target); !errors.Is(err, exec.ErrUnreachable) {
		t.Errorf("Health without a free slot = %v; want unreachable", err)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	short, cancel = context.WithTimeout(testCtx(t), 200*time.Millisecond)
	defer cancel()
	if _, err := h.pool.Exec(short, h.target, model.Command{Line: "touch " + marker}, func(model.Stream, []byte) {}); err == nil {
		t.Errorf("Exec without a free handshake slot succeeded")
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran without a handshake: stat = %v", err)
	}
	h.pool.Forget(h.target.ID)

	// Freed, the slot serves both, one at a time.
	<-h.pool.handshakes
	ctx := testCtx(t)
	if err := h.pool.Health(ctx, h.target); err != nil {
		t.Errorf("Health with a free slot: %v", err)
	}
	if _, err := h.pool.Exec(ctx, h.target, model.Command{Line: "touch " + marker}, func(model.Stream, []byte) {}); err != nil {
		t.Errorf("Exec with a free slot: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the command did not run: %v", err)
	}
	if n := len(h.pool.handshakes); n != 0 {
		t.Errorf("%d handshake slots still taken; want 0", n)
	}
}
