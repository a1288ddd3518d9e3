package agent

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// TestClientStaysOnItsPin: a client handed out for one address and pin
// never reaches another connection made for the same minion id (a new
// address and certificate): its calls fail, unsent, once its connection was
// replaced.
func TestClientStaysOnItsPin(t *testing.T) {
	h := newHarness(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Another server that accepts this master, under another certificate.
	other := NewGRPCServer(h.evil, func() string { return h.master.Fingerprint }, NewServer("m1", "OTHER", testenv.Logger(t)))
	go other.Serve(ln)
	t.Cleanup(other.Stop)
	ctx := testCtx(t)

	clA, relA, err := h.pool.client(ctx, h.target)
	if err != nil {
		t.Fatal(err)
	}
	defer relA()
	moved := model.Target{ID: h.target.ID, Addr: ln.Addr().String(), Fingerprint: h.evil.Fingerprint}
	clB, relB, err := h.pool.client(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	defer relB()
	if r, err := clB.Ping(ctx, &felixv1.PingRequest{}); err != nil || r.Version != "OTHER" {
		t.Fatalf("Ping over the new connection = %v, %v; want the other server", r, err)
	}
	if r, err := clA.Ping(ctx, &felixv1.PingRequest{}); err == nil {
		t.Fatalf("Ping over a replaced connection was answered by %q; want it refused unsent", r.Version)
	} else if rerr := rpcError("ping", h.target, err, true); !errors.Is(rerr, exec.ErrUnreachable) {
		t.Errorf("Ping over a replaced connection = %v; want Unavailable (not sent)", err)
	}
}

// TestCloseEndsWaitingCalls: a call waiting for its connection to be set
// up ends when the pool closes, not when its own context does.
func TestCloseEndsWaitingCalls(t *testing.T) {
	h := newHarness(t)
	// A server that accepts and never answers: the handshake hangs.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	target := model.Target{ID: "m9", Addr: ln.Addr().String(), Fingerprint: h.minion.Fingerprint}
	done := make(chan error, 1)
	go func() {
		_, err := h.pool.Ping(context.Background(), target)
		done <- err
	}()
	for h.pool.active(target.ID) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	h.pool.Close()
	select {
	case err := <-done:
		if !errors.Is(err, exec.ErrUnreachable) {
			t.Errorf("Ping ended by Close = %v; want unreachable", err)
		}
	case <-time.After(30 * time.Second): // a hang bound, not a timing assertion
		t.Fatal("a call waiting for its connection outlived Pool.Close")
	}
}

// TestHealthLeavesConnectingAlone: a health check that times out while the
// connection is still being set up leaves it to finish; only a ping left
// unanswered over a ready connection closes one.
func TestHealthLeavesConnectingAlone(t *testing.T) {
	h := newHarness(t)
	proxy := newCutProxy(t, h.target.Addr)
	proxy.cut.Store(true) // the handshake stalls
	target := h.target
	target.Addr = proxy.ln.Addr().String()
	ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
	defer cancel()
	if err := h.pool.Health(ctx, target); !errors.Is(err, exec.ErrUnreachable) {
		t.Fatalf("Health while connecting = %v; want unreachable", err)
	}
	if n := h.pool.Conns(); n != 1 {
		t.Errorf("after a health check timed out while connecting the pool holds %d connections; want 1 (still connecting)", n)
	}
}

// active is how many calls use the minion's connection.
func (p *Pool) active(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[id]; ok {
		return c.active
	}
	return 0
}
