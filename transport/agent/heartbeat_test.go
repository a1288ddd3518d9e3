package agent

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// cutProxy forwards TCP to addr until cut, after which it drops every
// byte both ways without closing anything: a network partition.
type cutProxy struct {
	ln  net.Listener
	cut atomic.Bool
}

func newCutProxy(t *testing.T, addr string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go p.pipe(c, s)
			go p.pipe(s, c)
		}
	}()
	return p
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestHeartbeats: a quiet command outlives LostAfter on heartbeats; a
// partition while a command runs ends it ErrLost, saying the command may
// still run, well before keepalive would.
func TestHeartbeats(t *testing.T) {
	started := make(chan struct{}, 2)
	h := newHarness(t, func(s *Server) {
		s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
			started <- struct{}{}
			select {
			case <-time.After(cmd.Timeout): // "sleep": quiet for that long
				return model.Exit{}, nil
			case <-ctx.Done():
				return model.Exit{Code: -1, Cancelled: true}, nil
			}
		}
	})
	proxy := newCutProxy(t, h.target.Addr)
	target := h.target
	target.Addr = proxy.ln.Addr().String()
	h.pool.Heartbeat, h.pool.LostAfter = 100*time.Millisecond, 600*time.Millisecond

	exit, err := h.pool.Exec(testCtx(t), target, model.Command{Line: "quiet", Timeout: 2 * time.Second}, nil)
	if err != nil || exit.Code != 0 {
		t.Fatalf("a quiet command of 2 s with heartbeats = %+v, %v; want it to finish", exit, err)
	}
	<-started

	for _, tc := range []struct {
		name, want string
		wait       time.Duration // after the command started, before the cut
	}{
		{"cut as it starts", "may ", 0}, // Started may or may not have crossed
		{"cut while it runs", "may still be running", 500 * time.Millisecond},
	} {
		proxy.cut.Store(false)
		done := make(chan error, 1)
		go func() {
			_, err := h.pool.Exec(testCtx(t), target, model.Command{Line: "hangs", Timeout: time.Hour}, nil)
			done <- err
		}()
		<-started
		time.Sleep(tc.wait)
		proxy.cut.Store(true)
		begin := time.Now()
		select {
		case err := <-done:
			t.Logf("%s: lost after %s: %v", tc.name, time.Since(begin), err)
			if !errors.Is(err, exec.ErrLost) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: Exec across a partition = %v; want ErrLost saying %q", tc.name, err, tc.want)
			}
		case <-time.After(time.Minute): // a hang bound, not a timing assertion
			t.Fatalf("%s: Exec across a partition did not end", tc.name)
		}
		h.pool.Forget(target.ID) // a fresh connection through the proxy
	}
}

// fakeStream replays events, then blocks until released.
type fakeStream struct {
	events  []*felixv1.ExecEvent
	release chan struct{}
	ctx     context.Context
}

func (f *fakeStream) Recv() (*felixv1.ExecEvent, error) {
	if len(f.events) > 0 {
		ev := f.events[0]
		f.events = f.events[1:]
		return ev, nil
	}
	select {
	case <-f.release:
		return &felixv1.ExecEvent{Event: &felixv1.ExecEvent_Exit{Exit: &felixv1.ExitStatus{}}}, nil
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
}

// TestNoWatchdogForOldMinions: a minion that promised no heartbeat (an
// older one) is not given up for being quiet.
func TestNoWatchdogForOldMinions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		beat     time.Duration
		answers  bool // the minion answers the probe (it is alive, the master reads late)
		wantLost bool
	}{
		{"old minion", 0, false, false},
		{"new minion gone quiet", 50 * time.Millisecond, false, true},
		{"new minion quiet but answering", 50 * time.Millisecond, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			started := &felixv1.Started{}
			if tc.beat > 0 {
				started.Heartbeat = durationpb.New(tc.beat)
			}
			f := &fakeStream{events: []*felixv1.ExecEvent{{Event: &felixv1.ExecEvent_Started{Started: started}}},
				release: make(chan struct{}), ctx: ctx}
			var once sync.Once
			time.AfterFunc(time.Second, func() { once.Do(func() { close(f.release) }) })
			w := &watchdog{lostAfter: 100 * time.Millisecond, cancel: cancel, probe: func() bool { return tc.answers }}
			w.arm(0) // as Exec does once the request is sent
			_, err := recvEvents(model.Target{ID: "m"}, f, func(model.Stream, []byte) {}, w, nil)
			if got := errors.Is(err, exec.ErrLost); got != tc.wantLost {
				t.Errorf("recvEvents = %v; want lost %v", err, tc.wantLost)
			}
		})
	}
}

// scriptedStream returns its events, then err.
type scriptedStream struct {
	events []*felixv1.ExecEvent
	err    error
}

func (s *scriptedStream) Recv() (*felixv1.ExecEvent, error) {
	if len(s.events) > 0 {
		ev := s.events[0]
		s.events = s.events[1:]
		return ev, nil
	}
	return nil, s.err
}

// A stream that breaks says whether the command can have run: before the
// minion confirmed the start, it may or may not have; after, it did.
func TestBrokenStreamSaysWhetherItRan(t *testing.T) {
	started := []*felixv1.ExecEvent{{Event: &felixv1.ExecEvent_Started{Started: &felixv1.Started{}}}}
	broken := status.Error(codes.Unavailable, "error reading from server: EOF")
	for _, tc := range []struct {
		name   string
		events []*felixv1.ExecEvent
		err    error
		want   string
	}{
		{"broken after the start", started, broken, "it ran, and may still be running there"},
		{"broken before the start", nil, broken, "may or may not have run"},
		{"ended after the start", started, io.EOF, "the command started there"},
		{"ended before the start", nil, io.EOF, "may or may not have run"},
		{"refused", nil, status.Error(codes.InvalidArgument, "bad cwd"), "the command did not run"},
		{"deadline after the start", started, status.Error(codes.DeadlineExceeded, "deadline"), "context deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &watchdog{lostAfter: time.Minute, cancel: func() {}, probe: func() bool { return true }}
			_, err := recvEvents(model.Target{ID: "m"}, &scriptedStream{events: tc.events, err: tc.err}, func(model.Stream, []byte) {}, w, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("recvEvents = %v; want it to say %q", err, tc.want)
			}
		})
	}
}

// TestHealthClosesUnansweredConnection: a health ping that gets no answer
// over an open connection closes it when no call uses it, so the next
// command dials again; a connection with a call in flight is left to
// that call's own watch.
func TestHealthClosesUnansweredConnection(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := newHarness(t, func(s *Server) {
		s.Run = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return model.Exit{}, nil
		}
	})
	proxy := newCutProxy(t, h.target.Addr)
	target := h.target
	target.Addr = proxy.ln.Addr().String()
	h.pool.LostAfter = 0 // the call in flight below is not watched by heartbeats
	health := func() error {
		ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
		defer cancel()
		return h.pool.Health(ctx, target)
	}

	if err := health(); err != nil {
		t.Fatalf("Health = %v", err)
	}
	proxy.cut.Store(true)
	if err := health(); !errors.Is(err, exec.ErrUnreachable) {
		t.Fatalf("Health across a partition = %v; want unreachable", err)
	}
	if n := h.pool.Conns(); n != 0 {
		t.Errorf("after an unanswered ping the pool holds %d connections; want 0", n)
	}
	proxy.cut.Store(false)
	if err := health(); err != nil {
		t.Fatalf("Health once the network is back = %v; want a new connection", err)
	}

	// A call in flight keeps its connection.
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := h.pool.Exec(ctx, target, model.Command{Line: "waits"}, nil)
		done <- err
	}()
	for h.pool.active(target.ID) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	proxy.cut.Store(true)
	if err := health(); !errors.Is(err, exec.ErrUnreachable) {
		t.Fatalf("Health across a partition = %v; want unreachable", err)
	}
	if n := h.pool.Conns(); n != 1 {
		t.Errorf("with a call in flight the pool holds %d connections after an unanswered ping; want 1", n)
	}
	cancel()
	<-done
}
