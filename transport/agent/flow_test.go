package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	// Past half of it, exactly what is waiting.
	s2 := b.stream()
	if n, _ := s2.grant(ctx, 1000); n != maxGrant {
		t.Fatalf("second grant = %d; want %d (still half free)", n, maxGrant)
	}
	if n, _ := s2.grant(ctx, 1000); n != 1000 {
		t.Fatalf("grant past half = %d; want the 1000 waiting", n)
	}
	if n, _ := s2.grant(ctx, 1<<30); n != maxGrant {
		t.Fatalf("grant for a huge wait = %d; want at most %d", n, maxGrant)
	}
	// Used output gives its grant back; close gives back the rest.
	if err := s.used(maxGrant); err != nil {
		t.Fatal(err)
	}
	if got := b.held.Load(); got != 2*maxGrant+1000 {
		t.Fatalf("held after use = %d; want %d", got, 2*maxGrant+1000)
	}
	s2.close()
	s.close()
	if got := b.held.Load(); got != 0 {
		t.Fatalf("held after close = %d; want 0", got)
	}
	// A stream past its initial credit is topped up unasked while the
	// budget is more than half free, and only then.
	s3 := b.stream()
	if g := s3.topUp(); g != 0 {
		t.Fatalf("top-up of a stream with initial credit left = %d; want 0", g)
	}
	s3.used(initialCredit)
	if g := s3.topUp(); g != maxGrant {
		t.Fatalf("top-up past the initial credit = %d; want %d", g, maxGrant)
	}
	if g := s3.topUp(); g != 0 {
		t.Fatalf("top-up of a stream holding a grant = %d; want 0", g)
	}
	s4 := b.stream()
	s4.used(initialCredit)
	if g := s4.topUp(); g != maxGrant {
		t.Fatalf("second top-up = %d; want %d (half free)", g, maxGrant)
	}
	s5 := b.stream()
	s5.used(initialCredit)
	if g := s5.topUp(); g != 0 {
		t.Fatalf("top-up of a half-used budget = %d; want 0", g)
	}
	s3.close()
	s4.close()
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

// Many hosts printing at once to a slow master: what they sent and the
// master did not yet read stays within the pool's budget plus each
// stream's initial credit (and one pipe read per stream counted early),
// far below gRPC's own 64 KiB per stream; and every byte arrives in order.
func TestExecFlowBoundsInFlight(t *testing.T) {
	const (
		streams = 8
		size    = 512 << 10
		chunk   = 4 << 10
		budget  = maxGrant
	)
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
			seed := cmd.Line[0]
			g := newGenReader(seed, size)
			buf := make([]byte, chunk)
			for {
				n, err := g.Read(buf)
				if n > 0 {
					sent.Add(int64(n)) // counted before it is sent: an over-estimate
					note()
					out(model.Stdout, buf[:n])
				}
				if err != nil {
					return model.Exit{}, nil
				}
			}
		}
	})
	h.pool.OutputInFlight = budget
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := byte('a' + i)
			var got bytes.Buffer
			_, err := h.pool.Exec(testCtx(t), h.target, model.Command{Line: string(seed)}, func(_ model.Stream, p []byte) {
				time.Sleep(200 * time.Microsecond) // a busy master
				got.Write(p)
				received.Add(int64(len(p)))
			})
			if err != nil {
				errs <- err
				return
			}
			want, _ := io.ReadAll(newGenReader(seed, size))
			if !bytes.Equal(got.Bytes(), want) {
				errs <- fmt.Errorf("stream %c: got %d bytes, not the %d printed", seed, got.Len(), len(want))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	bound := int64(budget + streams*(initialCredit+chunk))
	t.Logf("peak in flight %d bytes; bound %d; gRPC alone allows %d", peak.Load(), bound, streams*recvWindow)
	if peak.Load() > bound {
		t.Errorf("in flight at peak: %d bytes; want at most %d", peak.Load(), bound)
	}
	if held := h.pool.budget().held.Load(); held != 0 {
		t.Errorf("budget held after all streams ended: %d", held)
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
	tests := []struct {
		name string
		msgs func(line string) []*felixv1.ExecFlowRequest
		want codes.Code
	}{
		{"credit first", func(string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{credit} }, codes.InvalidArgument},
		{"data first", func(string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{data} }, codes.InvalidArgument},
		{"file without end", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 3), data} }, codes.InvalidArgument},
		{"credit within the file", func(l string) []*felixv1.ExecFlowRequest {
			return []*felixv1.ExecFlowRequest{file(l, 3), credit, data, end}
		}, codes.InvalidArgument},
		{"short file", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 4), data, end} }, codes.InvalidArgument},
		{"file", func(l string) []*felixv1.ExecFlowRequest { return []*felixv1.ExecFlowRequest{file(l, 3), data, end} }, codes.OK},
		{"exec", func(l string) []*felixv1.ExecFlowRequest {
			return []*felixv1.ExecFlowRequest{{Msg: &felixv1.ExecFlowRequest_Exec{Exec: execReq(l)}}}
		}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := t.TempDir() + "/ran"
			sendRaw(t, newHarness(t), func(ctx context.Context, cl felixv1.MinionClient) (rawStream[*felixv1.ExecFlowRequest], error) {
				return cl.ExecFlow(ctx)
			}, tt.msgs("touch "+marker), marker, tt.want)
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
