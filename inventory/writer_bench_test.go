package inventory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

// BenchmarkResultWriter10k stores a job of 10,000 hosts through the result
// writer into a real SQLite file (WAL, synchronous NORMAL), with each
// host's output small or 64 KiB, and reports results a second.
//
//	go test -run '^$' -bench ResultWriter10k -benchtime 3x ./inventory/
func BenchmarkResultWriter10k(b *testing.B) {
	for _, size := range []int{16, 64 << 10} {
		b.Run(fmt.Sprintf("output %d bytes", size), func(b *testing.B) {
			ctx := context.Background()
			out := bytes.Repeat([]byte("x"), size)
			const hosts = 10000
			pending := make([]model.Result, hosts)
			for i := range pending {
				pending[i] = model.Result{Host: fmt.Sprintf("h%05d", i), State: model.StatePending}
			}
			var total time.Duration
			for i := range b.N {
				b.StopTimer()
				s, _ := newStoreB(b)
				id := fmt.Sprint("job", i)
				if err := s.CreateJob(ctx, Job{ID: id, CmdLine: "x", CmdType: "line", State: model.JobRunning, CreatedAt: time.Now()}, pending); err != nil {
					b.Fatal(err)
				}
				w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
				b.StartTimer()
				start := time.Now()
				for h := range hosts {
					w.Add(id, model.Result{Host: pending[h].Host, State: model.StateOK, Stdout: out, StartedAt: start, FinishedAt: start})
				}
				if err := w.Finish(ctx, id, model.JobDone, time.Now()); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				b.StopTimer()
				w.Close()
				s.Close()
			}
			b.ReportMetric(float64(hosts*b.N)/total.Seconds(), "results/s")
		})
	}
}

// newStoreB opens a store in a temporary directory for a benchmark.
func newStoreB(b *testing.B) (*Store, string) {
	b.Helper()
	dir := b.TempDir()
	s, err := Open(context.Background(), dir+"/felix.db")
	if err != nil {
		b.Fatal(err)
	}
	return s, dir
}
