package agent

import (
	"net"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

// TestForgetDropsDialBackoff: after a minion was down long enough for the
// pool's connection to back off, a new minion on the same address is not
// reachable through that connection until its backoff ends; Forget (which
// a registration calls) makes the next call dial at once.
func TestForgetDropsDialBackoff(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	h.stop()
	// Fail a few dials: gRPC's backoff grows (250 ms × 1.6ⁿ, up to 5 s).
	for range 8 {
		h.pool.Ping(ctx, h.target)
		time.Sleep(300 * time.Millisecond)
	}
	ln, err := net.Listen("tcp", h.target.Addr)
	if err != nil {
		t.Skipf("the old port was taken meanwhile: %v", err)
	}
	srv := NewServer("m1", "test", testenv.Logger(t))
	srv.TempDir = t.TempDir()
	g := NewGRPCServer(h.minion, func() string { return h.master.Fingerprint }, srv)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	_, stale := h.pool.Ping(ctx, h.target)
	t.Logf("ping through the backed-off connection: %v", stale)
	h.pool.Forget(h.target.ID)
	if _, err := h.pool.Ping(ctx, h.target); err != nil {
		t.Errorf("Ping after Forget: %v; want the new server's answer at once", err)
	}
}
