package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

func TestOutputCredit(t *testing.T) {
	ctx := context.Background()
	c := newOutputCredit(10)
	asks := 0
	ask := func(int) bool { asks++; return true }
	if n := c.take(ctx, 4, ask); n != 4 {
		t.Fatalf("take 4 of 10 = %d", n)
	}
	if n := c.take(ctx, 100, ask); n != 6 {
		t.Fatalf("take 100 of the 6 left = %d", n)
	}
	if asks != 0 {
		t.Fatalf("asked for credit %d times while there was some", asks)
	}
	asked := make(chan struct{})
	go func() {
		<-asked
		c.add(3)
	}()
	ask = func(int) bool { asks++; close(asked); return true }
	if n := c.take(ctx, 5, ask); n != 3 {
		t.Fatalf("take 5 after a grant of 3 = %d", n)
	}
	if asks != 1 {
		t.Fatalf("asked for credit %d times for one wait; want once", asks)
	}
	c.end()
	if n := c.take(ctx, 5, ask); n != 0 {
		t.Fatalf("take after the end = %d; want 0", n)
	}

	c = newOutputCredit(0)
	if n := c.take(ctx, 5, func(int) bool { return false }); n != 0 {
		t.Fatalf("take whose ask failed = %d; want 0", n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if n := c.take(cctx, 5, func(int) bool { return true }); n != 0 {
		t.Fatalf("take after ctx ended = %d; want 0", n)
	}
}

func TestStreamCredit(t *testing.T) {
	ctx := context.Background()
	b := newOutputBudget(4 * maxGrant)
	s := b.stream()
	// The initial credit is the stream's own: using it holds no budget.
	if err := s.used(initialCredit); err != nil {
		t.Fatalf("use the initial credit: %v", err)
	}
	if err := s.used(1); err == nil {
		t.Fatalf("a byte beyond the initial credit without a grant was accepted")
	}
	// A free budget grants a whole maxGrant, even for a byte.
	if n, err := s.grant(ctx, 1); err != nil || n != maxGrant {
		t.Fatalf("grant on a free budget = %d, %v; want %d", n, err, maxGrant)
	}
	if got := b.held.Load(); got != maxGrant {
		t.Fatalf("held = %d; want %d", got, maxGrant)
	}
	// A stream holding a grant asks stale: the grant answers it.
	if n, err := s.grant(ctx, 1); err != nil || n != 0 {
		t.Fatalf("grant to a stream holding one = %d, %v; want 0 (stale)", n, err)
	}
	// Up to half of it, whole grants; past half, exactly what is waiting.
	s2 := b.stream()
	if n, _ := s2.grant(ctx, 1000); n != maxGrant {
		t.Fatalf("second grant = %d; want %d (still half free)", n, maxGrant)
	}
	s3 := b.stream()
	if n, _ := s3.grant(ctx, 1000); n != 1000 {
		t.Fatalf("grant past half = %d; want the 1000 waiting", n)
	}
	s4 := b.stream()
	if n, _ := s4.grant(ctx, 1<<30); n != maxGrant {
		t.Fatalf("grant for a huge wait = %d; want at most %d", n, maxGrant)
	}
	// Used output gives its grant back; close gives back the rest.
	if err := s.used(maxGrant); err != nil {
		t.Fatal(err)
	}
	if got := b.held.Load(); got != 2*maxGrant+1000 {
		t.Fatalf("held after use = %d; want %d", got, 2*maxGrant+1000)
	}
	for _, st := range []*streamCredit{s, s2, s3, s4} {
		st.close()
	}
	if got := b.held.Load(); got != 0 {
		t.Fatalf("held after close = %d; want 0", got)
	}
	// A stream past its initial credit is topped up unasked while the
	// budget is more than half free, and only then.
	t3 := b.stream()
	if g := t3.topUp(); g != 0 {
		t.Fatalf("top-up of a stream with initial credit left = %d; want 0", g)
	}
	t3.used(initialCredit)
	if g := t3.topUp(); g != maxGrant {
		t.Fatalf("top-up past the initial credit = %d; want %d", g, maxGrant)
	}
	if g := t3.topUp(); g != 0 {
		t.Fatalf("top-up of a stream holding a grant = %d; want 0", g)
	}
	t4 := b.stream()
	t4.used(initialCredit)
	if g := t4.topUp(); g != maxGrant {
		t.Fatalf("second top-up = %d; want %d (half free)", g, maxGrant)
	}
	t5 := b.stream()
	t5.used(initialCredit)
	if g := t5.topUp(); g != 0 {
		t.Fatalf("top-up of a half-used budget = %d; want 0", g)
	}
	t3.close()
	t4.close()
	// A full budget makes a grant wait for room, and gives up with ctx.
	full := newOutputBudget(maxGrant)
	hog := full.stream()
	if n, _ := hog.grant(ctx, maxGrant); n != maxGrant {
		t.Fatalf("hog grant = %d", n)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := full.stream().grant(cctx, 1); err == nil {
		t.Fatalf("a grant from a full budget did not wait")
	}
	got := make(chan uint32)
	go func() {
		n, _ := full.stream().grant(ctx, 7)
		got <- n
	}()
	hog.close()
	if n := <-got; n != 7 {
		t.Fatalf("grant once room came back = %d; want 7", n)
	}
}

// Many hosts printing on stdout and stderr at once (two goroutines, as
// os/exec copies the pipes) to a slow master: what they sent and the
// master did not yet read stays within the pool's budget plus each
// stream's initial credit (and one pipe read per writer counted early),
// every byte of both streams arrives in order, and the budget is whole
// again at the end — with a budget so tight that every grant is exact,
// and with one large enough for whole grants and top-ups.
func TestExecFlowBoundsInFlight(t *testing.T) {
	const (
		size  = 256 << 10 // per output stream
		chunk = 4 << 10
	)
	for _, tc := range []struct {
		name            string
		streams, budget int
	}{
		{"exact grants", 8, maxGrant},
		{"whole grants and top-ups", 16, 16 * maxGrant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sent, received, peak atomic.Int64
			note := func() {
				for d := sent.Load() - received.Load(); ; {
					p := peak.Load()
					if d <= p || peak.CompareAndSwap(p, d) {
						return
					}
				}
			}
			h := newHarness(t, func(s *Server) {
				s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
					var wg sync.WaitGroup
					for i, st := range []model.Stream{model.Stdout, model.Stderr} {
						wg.Add(1)
						go func() {
							defer wg.Done()
							g := newGenReader(cmd.Line[0]+byte(i), size)
							buf := make([]byte, chunk)
							for {
								n, err := g.Read(buf)
								if n > 0 {
									sent.Add(int64(n)) // counted before it is sent: an over-estimate
									note()
									out(st, buf[:n])
								}
								if err != nil {
									return
								}
							}
						}()
					}
					wg.Wait()
					return model.Exit{}, nil
				}
			})
			h.pool.OutputInFlight = int64(tc.budget)
			var wg sync.WaitGroup
			errs := make(chan error, tc.streams)
			for i := range tc.streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					seed := byte('a' + 2*i)
					var got output
					_, err := h.pool.Exec(testCtx(t), h.target, model.Command{Line: string(seed)}, func(st model.Stream, p []byte) {
						time.Sleep(100 * time.Microsecond) // a busy master
						got.add(st, p)
						received.Add(int64(len(p)))
					})
					if err != nil {
						errs <- err
						return
					}
					stdout, stderr := got.strings()
					for i, s := range []string{stdout, stderr} {
						want, _ := io.ReadAll(newGenReader(seed+byte(i), size))
						if s != string(want) {
							errs <- fmt.Errorf("host %c, stream %d: got %d bytes, not the %d printed", seed, i+1, len(s), len(want))
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			bound := int64(tc.budget + tc.streams*(initialCredit+2*chunk))
			t.Logf("peak in flight %d bytes; bound %d; gRPC alone allows %d", peak.Load(), bound, tc.streams*recvWindow)
			if peak.Load() > bound {
				t.Errorf("in flight at peak: %d bytes; want at most %d", peak.Load(), bound)
			}
			if held := h.pool.budget().held.Load(); held != 0 {
				t.Errorf("budget held after all streams ended: %d", held)
			}
		})
	}
}

// oldServer is a minion from before ExecFlow.
type oldServer struct {
	*Server
	flows atomic.Int32
}

func (s *oldServer) ExecFlow(felixv1.Minion_ExecFlowServer) error {
	s.flows.Add(1)
	return status.Error(codes.Unimplemented, "method ExecFlow not implemented")
}

// A master falls back to Exec and ExecFile for a minion without ExecFlow,
// runs each command once, and asks ExecFlow only once per connection.
func TestExecFlowFallback(t *testing.T) {
	var runs atomic.Int32
	var old *oldServer
	h := newHarnessServing(t, func(s *Server) felixv1.MinionServer {
		old = &oldServer{Server: s}
		return old
	}, func(s *Server) {
		s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
			runs.Add(1)
			out(model.Stdout, []byte(strings.Repeat("x", 3*initialCredit)))
			return model.Exit{Code: 3}, nil
		}
	})
	pool, target := h.pool, h.target
	cmds := []model.Command{{Line: "a"}, {Line: "./s", File: bytesFile("s", []byte("#!/bin/sh\n"))}, {Line: "b"}}
	for _, cmd := range cmds {
		var out output
		exit, err := pool.Exec(testCtx(t), target, cmd, out.add)
		if stdout, _ := out.strings(); err != nil || exit.Code != 3 || len(stdout) != 3*initialCredit {
			t.Fatalf("Exec %q on an old minion = exit %d, %d bytes, %v; want exit 3, %d bytes", cmd.Line, exit.Code, len(stdout), err, 3*initialCredit)
		}
	}
	if n := runs.Load(); n != int32(len(cmds)) {
		t.Errorf("commands run: %d; want %d", n, len(cmds))
	}
	if n := old.flows.Load(); n != 1 {
		t.Errorf("ExecFlow asked %d times; want once per connection", n)
	}

	// The minion is upgraded: the same address, a new process that knows
	// ExecFlow. Its new connection is asked again.
	h.stop()
	ln, err := net.Listen("tcp", h.target.Addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", h.target.Addr, err)
	}
	srv := NewServer("m1", "new", testenv.Logger(t))
	srv.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
		out(model.Stdout, []byte(strings.Repeat("y", 3*initialCredit)))
		return model.Exit{Code: 4}, nil
	}
	upgraded := &flowCounter{Server: srv}
	g := NewGRPCServer(h.minion, func() string { return h.master.Fingerprint }, upgraded)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	for try := 0; ; try++ {
		var out output
		exit, err := pool.Exec(testCtx(t), target, model.Command{Line: "c"}, out.add)
		if errors.Is(err, exec.ErrUnreachable) && try < 200 {
			time.Sleep(50 * time.Millisecond) // the old connection's end is not seen yet
			continue
		}
		if stdout, _ := out.strings(); err != nil || exit.Code != 4 || len(stdout) != 3*initialCredit {
			t.Fatalf("Exec on the upgraded minion = exit %d, %d bytes, %v; want exit 4, %d bytes", exit.Code, len(stdout), err, 3*initialCredit)
		}
		break
	}
	if n := upgraded.flows.Load(); n != 1 {
		t.Errorf("the upgraded minion got %d ExecFlow calls; want 1", n)
	}
}

// flowCounter counts ExecFlow calls.
type flowCounter struct {
	*Server
	flows atomic.Int32
}

func (s *flowCounter) ExecFlow(stream felixv1.Minion_ExecFlowServer) error {
	s.flows.Add(1)
	return s.Server.ExecFlow(stream)
}

// greedyServer sends more output than it was granted.
type greedyServer struct{ *Server }

func (s *greedyServer) ExecFlow(stream felixv1.Minion_ExecFlowServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Started{Started: &felixv1.Started{}}}); err != nil {
		return err
	}
	big := bytes.Repeat([]byte("y"), initialCredit+1)
	if err := stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Output{Output: &felixv1.OutputChunk{Data: big}}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func TestExecFlowOverrun(t *testing.T) {
	h := newHarnessServing(t, func(s *Server) felixv1.MinionServer { return &greedyServer{s} })
	pool, target := h.pool, h.target
	_, err := pool.Exec(testCtx(t), target, model.Command{Line: "x"}, func(model.Stream, []byte) {})
	if err == nil || !strings.Contains(err.Error(), "more than it was granted") {
		t.Fatalf("Exec on a minion ignoring its credit = %v; want an error saying so", err)
	}
	if held := pool.budget().held.Load(); held != 0 {
		t.Errorf("budget held after the stream ended: %d", held)
	}
}

// The minion's side of ExecFlow refuses a malformed request before anything
// runs.
func TestExecFlowProtocol(t *testing.T) {
	execReq := func(line string) *felixv1.ExecRequest { return &felixv1.ExecRequest{JobId: "j1", CmdLine: line} }
	file := func(line string, size int64) *felixv1.ExecFlowRequest {
		return &felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_File{File: &felixv1.ExecFileHeader{
			Exec: execReq(line), FileName: "f", Size: size}}}
	}
	data := &felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_Data{Data: []byte("abc")}}
	end := &felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_FileEnd{FileEnd: &felixv1.FileEnd{}}}
	credit := &felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_Credit{Credit: &felixv1.Credit{Bytes: 10}}}
	exec := func(l string) *felixv1.ExecFlowRequest {
		return &felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_Exec{Exec: execReq(l)}}
	}
	tests := []struct {
		name  string
		msgs  func(line string) []*felixv1.ExecFlowRequest
		close bool // the master closes its side after the messages
		want  codes.Code
	}{
		{"credit first", func(string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{credit} }, false, codes.InvalidArgument},
		{"data first", func(string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{data} }, false, codes.InvalidArgument},
		{"file closed without end", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 3), data} }, true, codes.InvalidArgument},
		{"credit within the file", func(l string) []*felixv1.ExecFlowRequest {
			return []*felixv1.ExecFlowRequest{file(l, 3), credit, data, end}
		}, false, codes.InvalidArgument},
		{"short file", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 4), data, end} }, false, codes.InvalidArgument},
		{"file", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 3), data, end} }, false, codes.OK},
		{"exec", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{exec(l)} }, false, codes.OK},
		// Once it runs, the master may send credit only, and keeps its
		// side open: else the command is killed (its output could not go).
		{"closed while it runs", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{exec("sleep 3; " + l)} }, true, codes.InvalidArgument},
		{"data while it runs", func(l string) []*felixv1.ExecFlowRequest {
			return []*felixv1.ExecFlowRequest{exec("sleep 3; " + l), credit, data}
		}, false, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := t.TempDir() + "/ran"
			sendRaw(t, newHarness(t), func(ctx context.Context, cl felixv1.MinionClient) (rawStream[*felixv1.ExecFlowRequest], error) {
				return cl.ExecFlow(ctx)
			}, tt.msgs("touch "+marker), tt.close, marker, tt.want)
		})
	}
}

// BenchmarkExecOutput: one minion printing 64 MiB in 32 KiB pipe reads,
// over ExecFlow and over the Exec of a minion without it:
// go test -run '^$' -bench ExecOutput ./transport/agent/
func BenchmarkExecOutput(b *testing.B) {
	const size = 64 << 20
	chunk := bytes.Repeat([]byte("felix output line\n"), 32<<10/18)
	print := func(s *Server) {
		s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
			for n := 0; n < size; n += len(chunk) {
				out(model.Stdout, chunk)
			}
			return model.Exit{}, nil
		}
	}
	for _, bc := range []struct {
		name string
		wrap func(*Server) felixv1.MinionServer
	}{
		{"flow", nil},
		{"exec", func(s *Server) felixv1.MinionServer { return &oldServer{Server: s} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHarnessServing(b, bc.wrap, print)
			b.SetBytes(size)
			for b.Loop() {
				var got int64
				if _, err := h.pool.Exec(context.Background(), h.target, model.Command{Line: "x"}, func(_ model.Stream, p []byte) {
					got += int64(len(p))
				}); err != nil || got < size {
					b.Fatalf("Exec: %d bytes, %v", got, err)
				}
			}
		})
	}
}
