package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/metrics"
	"github.com/felix-ops/felix/model"
)

// BenchmarkScrape10kMinions: one scrape of a master whose real SQLite
// inventory holds 10,000 accepted minions, with the job counters of 100
// jobs of 100 hosts each: what a Prometheus scrape costs the master.
func BenchmarkScrape10kMinions(b *testing.B) {
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(b.TempDir(), "felix.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: true, Uses: -1}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		id := fmt.Sprintf("m%05d", i)
		if _, _, err := store.Register(ctx, inventory.Registration{
			Minion:        inventory.Minion{ID: id, Hostname: id, Addr: "127.0.0.1:4510", CertPEM: "x", Fingerprint: "sha256:" + id},
			JoinTokenHash: inventory.HashToken(tok),
		}, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	m := metrics.New(metrics.Sources{Minions: store.MinionCounts, Outbox: store.OutboxCounts,
		RunningJobs: func() int { return 0 }}, slog.New(slog.DiscardHandler))
	results := make([]model.Result, 100)
	t0 := time.Now()
	for i := range results {
		results[i] = model.Result{State: model.StateOK, Transport: "agent", StartedAt: t0, FinishedAt: t0.Add(time.Duration(i) * time.Millisecond)}
	}
	for range 100 {
		m.JobEnded(model.CmdLine, model.JobDone, results)
	}
	h := m.Handler()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if rec.Code != 200 {
			b.Fatalf("scrape: %d", rec.Code)
		}
		io.Copy(io.Discard, rec.Body)
	}
}
