package minion_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/felix-ops/felix/minion"
	"github.com/felix-ops/felix/model"
)

// A small swarm against an in-process master: each minion registers with its
// own certificate and address, and the master's health checks reach each
// one's gRPC server over mutual TLS. --offset runs a later part of the
// sequence, with the ids and addresses it has there. Cancelling stops the
// swarm with 0.
func TestSwarm(t *testing.T) {
	ma := startMaster(t, 200*time.Millisecond)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- minion.Main(ctx, []string{"swarm", "--count", "3", "--base-dir", dir, "--first-ip", "127.3.0.1", "--offset", "253",
			"--port", "0", "--master", "https://" + ma.Addr().String(), "--join-token", joinToken(t, ma, false),
			"--exec", "noop", "--id-prefix", "t-", "--register-parallel", "2"}, &testWriter{t}, &testWriter{t})
	}()
	store := ma.Store()
	fps := map[string]bool{}
	for i, ip := range []string{"127.3.0.254", "127.3.1.1", "127.3.1.2"} {
		id := fmt.Sprintf("t-%05d", 254+i) // the 254th to 256th of the sequence
		poll(t, id+" to register", func() bool {
			_, err := store.Minion(context.Background(), id)
			return err == nil
		})
		// Not an auto-accept token: the operator accepts each key.
		if err := store.SetMinionState(context.Background(), id, model.KeyAccepted, time.Now()); err != nil {
			t.Fatalf("accept %s: %v", id, err)
		}
		poll(t, id+" to be healthy", func() bool {
			m, err := store.Minion(context.Background(), id)
			return err == nil && m.Health == model.HealthOK
		})
		m, _ := store.Minion(context.Background(), id)
		if host, _, _ := net.SplitHostPort(m.Addr); host != ip {
			t.Errorf("%s at %s; want %s", id, m.Addr, ip)
		}
		if fps[m.Fingerprint] {
			t.Errorf("%s shares its certificate", id)
		}
		fps[m.Fingerprint] = true
		if _, err := os.Stat(filepath.Join(dir, id, "minion.crt")); err != nil {
			t.Errorf("%s has no certificate of its own: %v", id, err)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("minion swarm after cancel = %d; want 0", code)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("minion swarm did not return after cancel")
	}
}

// testWriter sends a command's output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
