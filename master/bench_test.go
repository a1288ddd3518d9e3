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
	"net/http/httptest"
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
// minions served in-process on loopback: the time from POST /api/v1/exec
// (?wait) to the answer, which comes after every host's result is committed.
// The first exec, which dials every minion, is done before the timer starts.
func BenchmarkExecFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("minions=%d", n), func(b *testing.B) {
			bm := newBench(b, n, "")
			bm.run(b, "/api/v1/exec?wait=5m", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"*"}}, CmdLine: "true"}) // dial every minion
			b.ResetTimer()
			for range b.N {
				bm.run(b, "/api/v1/exec?wait=5m", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"*"}}, CmdLine: "true"})
			}
		})
	}
}

// BenchmarkJobWithCallback measures the seed's flow on 1000 minions: POST an
// async job whose hosts each print 1 KiB, until the last result is stored
// and the signed callback carrying all results has reached its receiver.
func BenchmarkJobWithCallback(b *testing.B) {
	const n = 1000
	got := make(chan string, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var cb wire.Callback
		json.NewDecoder(r.Body).Decode(&cb)
		got <- cb.JobID
	}))
	defer rcv.Close()
	bm := newBench(b, n, "127.0.0.0/8")
	req := wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"*"}, CallbackURL: rcv.URL}, CmdLine: "printf '%01024d' 0"}
	await := func(job wire.Job) {
		for id := range got {
			if id == job.JobID {
				return
			}
		}
	}
	await(bm.run(b, "/api/v1/exec", req)) // dial every minion
	b.ResetTimer()
	for range b.N {
		await(bm.run(b, "/api/v1/exec", req))
	}
}

type bench struct {
	m      *Master
	client *http.Client
	token  string
	url    string
	n      int
}

func newBench(b *testing.B, n int, allow string) *bench {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cfg Config
	cfg.Listen, cfg.DataDir, cfg.LogLevel = "127.0.0.1:0", filepath.Join(dir, "master"), "error"
	cfg.Exec.MaxParallel, cfg.Exec.OutputCap = 5000, 1<<20
	cfg.Exec.DefaultTimeout.Duration, cfg.Exec.MaxTimeout.Duration = time.Minute, time.Hour
	cfg.Health.Interval.Duration, cfg.Health.Timeout.Duration = time.Hour, 5*time.Second
	if allow != "" {
		cfg.Callbacks.Allow = []string{allow}
	}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
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
	adminTok, err := m.store.CreateAPIToken(ctx, "bench", inventory.RoleAdmin, 0, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		for _, g := range servers {
			g.Stop()
		}
	})
	return &bench{m: m, n: n, token: adminTok, url: "https://" + m.Addr().String(),
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, m.Fingerprint())}}}
}

// run posts an exec and returns the answer (the job when ?wait, else the
// accepted job's id).
func (bm *bench) run(b *testing.B, path string, r wire.ExecRequest) wire.Job {
	body, _ := json.Marshal(r)
	req, _ := http.NewRequest("POST", bm.url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+bm.token)
	resp, err := bm.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var job wire.Job
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
		b.Fatal(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if job.Summary["ok"] != bm.n {
			b.Fatalf("exec: summary %v; want %d ok", job.Summary, bm.n)
		}
	case http.StatusAccepted:
	default:
		b.Fatalf("exec: status %d", resp.StatusCode)
	}
	return job
}
