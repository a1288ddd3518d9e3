package master

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/transport/agent"
)

// BenchmarkExecFanout measures one exec of `true` through the real master
// (HTTPS API, job engine, SQLite results, pooled mTLS gRPC connections) to N
// minions served in-process on loopback: the time from POST /api/v1/exec to
// the answer, which comes after every host's result is committed. The first
// exec, which dials every minion, is done before the timer starts.
func BenchmarkExecFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("minions=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cfg Config
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", filepath.Join(dir, "master"), "error"
	cfg.Exec.MaxParallel, cfg.Exec.OutputCap = 5000, 1<<20
	cfg.Exec.DefaultTimeout.Duration, cfg.Exec.MaxTimeout.Duration = time.Minute, time.Hour
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = time.Hour, 5*time.Second
	m, err := New(ctx, cfg, log, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	// N minion servers sharing one identity (the pin is per minion id).
	mid, err := pki.LoadOrCreate(dir, "minion", "bench-minion", nil)
	if err != nil {
		b.Fatal(err)
	}
	tok, _, err := m.store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: true, Uses: -1}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	var servers []*grpc.Server
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		id := fmt.Sprintf("bench%05d", i)
		g := agent.NewGRPCServer(mid, m.Fingerprint, agent.NewServer(id, "bench", log))
		go g.Serve(ln)
		servers = append(servers, g)
		_, _, err = m.store.Register(ctx, inventory.Registration{JoinTokenHash: inventory.HashToken(tok), Minion: inventory.Minion{
			ID: id, Hostname: id, Addr: ln.Addr().String(), CertPEM: string(mid.CertPEM), Fingerprint: mid.Fingerprint,
			Facts: "{}"}}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
	}
	defer func() {
		for _, g := range servers {
			g.Stop()
		}
	}()
	adminTok, err := m.store.CreateAPIToken(ctx, "bench", inventory.RoleAdmin, 0, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, m.Fingerprint())}}
	url := "https://" + m.Addr().String() + "/api/v1/exec"
	run := func() {
		body, _ := json.Marshal(wire.ExecRequest{CmdLine: "true", Targets: []string{"*"}})
		req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var job wire.Job
		if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || job.Summary["ok"] != n {
			b.Fatalf("exec: status %d, summary %v; want %d ok", resp.StatusCode, job.Summary, n)
		}
	}
	run() // dial every minion once
	b.ResetTimer()
	for range b.N {
		run()
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
