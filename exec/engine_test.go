package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

// execFunc is what a fakeTransport does for one host.
type execFunc func(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error)

// fakeTransport is an in-process Transport: each host's behaviour is a func.
type fakeTransport struct {
	byHost map[string]execFunc // read-only once Run starts
	def    execFunc            // for hosts not in byHost

	mu    sync.Mutex     // protects calls
	calls map[string]int // Exec calls per host id
}

func (f *fakeTransport) Name() string { return "fake" }

func (f *fakeTransport) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[t.ID]++
	f.mu.Unlock()
	fn := f.byHost[t.ID]
	if fn == nil {
		fn = f.def
	}
	if fn == nil {
		return model.Exit{}, nil
	}
	return fn(ctx, t, cmd, out)
}

func (f *fakeTransport) callCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeTransport) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func exitWith(x model.Exit, err error) execFunc {
	return func(context.Context, model.Target, model.Command, model.OutputFunc) (model.Exit, error) {
		return x, err
	}
}

// blockUntilDone is a transport that never answers: it returns when the
// engine's deadline (or cancellation) ends its context.
func blockUntilDone(ctx context.Context, _ model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
	<-ctx.Done()
	return model.Exit{}, fmt.Errorf("exec: %w", ctx.Err())
}

// resultCollector records every onResult call.
type resultCollector struct {
	mu      sync.Mutex // protects results
	results []model.Result
}

func (c *resultCollector) add(r model.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.results = append(c.results, r)
}

func (c *resultCollector) countByHost() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int)
	for _, r := range c.results {
		m[r.Host]++
	}
	return m
}

func TestEngineRunStates(t *testing.T) {
	tests := []struct {
		name       string
		cmd        model.Command
		exec       execFunc
		wantState  model.State
		wantCode   int
		wantSignal string
		wantStdout string
		wantStderr string
		wantError  bool
	}{
		{
			name: "ok",
			exec: func(_ context.Context, _ model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
				out(model.Stdout, []byte("hello "))
				out(model.Stderr, []byte("warn"))
				out(model.Stdout, []byte("world"))
				return model.Exit{Code: 0}, nil
			},
			wantState: model.StateOK, wantStdout: "hello world", wantStderr: "warn",
		},
		{name: "exit code", exec: exitWith(model.Exit{Code: 3}, nil), wantState: model.StateFailed, wantCode: 3},
		{
			name: "signal", exec: exitWith(model.Exit{Code: -1, Signal: "SIGKILL"}, nil),
			wantState: model.StateFailed, wantCode: -1, wantSignal: "SIGKILL",
		},
		{
			name: "killed at deadline", cmd: model.Command{Line: "sleep 30", Timeout: time.Second},
			exec:      exitWith(model.Exit{Code: -1, Signal: "SIGTERM", TimedOut: true}, nil),
			wantState: model.StateTimeout, wantCode: -1, wantSignal: "SIGTERM", wantError: true,
		},
		{
			name: "no answer before deadline", cmd: model.Command{Line: "sleep 30", Timeout: time.Millisecond},
			exec: blockUntilDone, wantState: model.StateTimeout, wantCode: -1, wantError: true,
		},
		{
			name: "unreachable", exec: exitWith(model.Exit{}, fmt.Errorf("dial h: connection refused: %w", ErrUnreachable)),
			wantState: model.StateUnreachable, wantCode: -1, wantError: true,
		},
		{
			name: "other error", exec: exitWith(model.Exit{}, errors.New("stream broke")),
			wantState: model.StateFailed, wantCode: -1, wantError: true,
		},
		{name: "cancelled by host", exec: exitWith(model.Exit{Code: -1, Cancelled: true}, nil), wantState: model.StateCancelled, wantCode: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &fakeTransport{def: tt.exec}
			e := &Engine{Transport: tr, Grace: time.Millisecond}
			targets := []model.Target{{ID: "h1", Addr: "10.0.0.1:4506", Fingerprint: "sha256:00"}}
			var got resultCollector
			res := e.Run(context.Background(), tt.cmd, targets, Options{}, Hooks{Result: got.add})
			if len(res) != 1 {
				t.Fatalf("Run returned %d results; want 1", len(res))
			}
			r := res[0]
			if r.State != tt.wantState {
				t.Errorf("State = %q; want %q (error %q)", r.State, tt.wantState, r.Error)
			}
			if r.ExitCode != tt.wantCode {
				t.Errorf("ExitCode = %d; want %d", r.ExitCode, tt.wantCode)
			}
			if r.Signal != tt.wantSignal {
				t.Errorf("Signal = %q; want %q", r.Signal, tt.wantSignal)
			}
			if string(r.Stdout) != tt.wantStdout || string(r.Stderr) != tt.wantStderr {
				t.Errorf("output = %q, %q; want %q, %q", r.Stdout, r.Stderr, tt.wantStdout, tt.wantStderr)
			}
			if (r.Error != "") != tt.wantError {
				t.Errorf("Error = %q; want an error: %v", r.Error, tt.wantError)
			}
			if r.Host != "h1" || r.Addr != "10.0.0.1:4506" || r.Transport != "fake" {
				t.Errorf("Host, Addr, Transport = %q, %q, %q; want h1, 10.0.0.1:4506, fake", r.Host, r.Addr, r.Transport)
			}
			if r.StartedAt.IsZero() || r.FinishedAt.Before(r.StartedAt) {
				t.Errorf("StartedAt, FinishedAt = %v, %v; want set and ordered", r.StartedAt, r.FinishedAt)
			}
			if n := tr.callCount("h1"); n != 1 {
				t.Errorf("transport called %d times; want 1", n)
			}
			if c := got.countByHost(); c["h1"] != 1 || len(c) != 1 {
				t.Errorf("onResult calls = %v; want h1 once", c)
			}
		})
	}
}

func TestEngineRunMixed(t *testing.T) {
	tr := &fakeTransport{byHost: map[string]execFunc{
		"ok":          exitWith(model.Exit{}, nil),
		"fail":        exitWith(model.Exit{Code: 3}, nil),
		"signal":      exitWith(model.Exit{Code: -1, Signal: "SIGKILL"}, nil),
		"killed":      exitWith(model.Exit{Code: -1, TimedOut: true}, nil),
		"silent":      blockUntilDone,
		"unreachable": exitWith(model.Exit{}, fmt.Errorf("x: %w", ErrUnreachable)),
		"broken":      exitWith(model.Exit{}, errors.New("broken pipe")),
	}}
	targets := []model.Target{
		{ID: "unreachable"},
		{ID: "pending", Skip: model.StateNotAccepted, Error: "minion is pending"},
		{ID: "ok"},
		{ID: "silent"},
		{ID: "ghost", Skip: model.StateUnknown, Error: "no minion with id ghost"},
		{ID: "fail"},
		{ID: "broken"},
		{ID: "signal"},
		{ID: "killed"},
	}
	want := map[string]model.State{
		"unreachable": model.StateUnreachable, "pending": model.StateNotAccepted, "ok": model.StateOK, "silent": model.StateTimeout,
		"ghost": model.StateUnknown, "fail": model.StateFailed, "broken": model.StateFailed, "signal": model.StateFailed, "killed": model.StateTimeout,
	}
	e := &Engine{Transport: tr, Limit: 2, Grace: time.Millisecond}
	var got resultCollector
	res := e.Run(context.Background(), model.Command{Line: "x", Timeout: time.Millisecond}, targets, Options{}, Hooks{Result: got.add})

	if len(res) != len(targets) {
		t.Fatalf("Run returned %d results; want %d", len(res), len(targets))
	}
	for i, r := range res {
		if r.Host != targets[i].ID {
			t.Errorf("results[%d].Host = %q; want %q (target order)", i, r.Host, targets[i].ID)
		}
		if r.State != want[r.Host] {
			t.Errorf("%s: State = %q; want %q (error %q)", r.Host, r.State, want[r.Host], r.Error)
		}
	}
	counts := got.countByHost()
	for _, tg := range targets {
		if counts[tg.ID] != 1 {
			t.Errorf("onResult called %d times for %s; want 1", counts[tg.ID], tg.ID)
		}
	}
	if len(counts) != len(targets) {
		t.Errorf("onResult called for %d hosts; want %d", len(counts), len(targets))
	}
	for _, id := range []string{"pending", "ghost"} {
		if n := tr.callCount(id); n != 0 {
			t.Errorf("skipped host %s reached the transport %d times; want 0", id, n)
		}
	}
	for i, r := range res {
		if targets[i].Skip != "" && (r.Error != targets[i].Error || r.ExitCode != -1) {
			t.Errorf("%s: Error, ExitCode = %q, %d; want %q, -1", r.Host, r.Error, r.ExitCode, targets[i].Error)
		}
	}
}

func TestEngineRunLimit(t *testing.T) {
	const limit, hosts = 3, 20
	// The first limit hosts wait until limit of them run at once: an engine
	// without parallelism would never get there (the test would time out,
	// not pass). Later hosts return at once.
	full := make(chan struct{})
	var fullOnce sync.Once
	var inFlight, maxInFlight atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := &fakeTransport{def: func(ctx context.Context, _ model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if n <= m || maxInFlight.CompareAndSwap(m, n) {
				break
			}
		}
		if n >= limit {
			fullOnce.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-ctx.Done():
			return model.Exit{}, ctx.Err()
		}
		return model.Exit{}, nil
	}}
	targets := make([]model.Target, hosts)
	for i := range targets {
		targets[i] = model.Target{ID: fmt.Sprintf("h%02d", i)}
	}
	e := &Engine{Transport: tr, Limit: limit}
	res := e.Run(ctx, model.Command{Line: "true"}, targets, Options{}, Hooks{})

	if m := maxInFlight.Load(); m > limit || m <= 1 {
		t.Errorf("max in flight = %d; want 1 < max <= %d", m, limit)
	}
	if n := tr.totalCalls(); n != hosts {
		t.Errorf("transport called %d times; want %d", n, hosts)
	}
	for i, r := range res {
		if r.Host != targets[i].ID || r.State != model.StateOK {
			t.Errorf("results[%d] = %s %s; want %s ok", i, r.Host, r.State, targets[i].ID)
		}
	}
}

func TestEngineRunCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The transport ignores ctx on purpose: a cancelled job must not start
	// any host, whatever its transport would do.
	tr := &fakeTransport{def: exitWith(model.Exit{}, nil)}
	targets := []model.Target{{ID: "a"}, {ID: "b"}, {ID: "c"}, {ID: "d", Skip: model.StateUnknown}, {ID: "e"}, {ID: "f"}}
	var got resultCollector
	res := (&Engine{Transport: tr, Limit: 10}).Run(ctx, model.Command{Line: "true"}, targets, Options{}, Hooks{Result: got.add})
	for i, r := range res {
		want := model.StateCancelled
		if targets[i].Skip != "" {
			want = targets[i].Skip
		}
		if r.Host != targets[i].ID || r.State != want {
			t.Errorf("results[%d] = %s %s; want %s %s", i, r.Host, r.State, targets[i].ID, want)
		}
	}
	if n := tr.totalCalls(); n != 0 {
		t.Errorf("transport called %d times for a cancelled job; want 0", n)
	}
	if n := len(got.countByHost()); n != len(targets) {
		t.Errorf("onResult called for %d hosts; want %d", n, len(targets))
	}
}

func TestEngineRunOutputCap(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 100)
	tr := &fakeTransport{def: func(_ context.Context, _ model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		out(model.Stdout, big)
		out(model.Stderr, []byte("small"))
		return model.Exit{}, nil
	}}
	res := (&Engine{Transport: tr, OutputCap: 10}).Run(context.Background(), model.Command{}, []model.Target{{ID: "h"}}, Options{}, Hooks{})
	r := res[0]
	if !r.Truncated {
		t.Errorf("Truncated = false; want true")
	}
	if want := "xxxxx" + truncMarker + "xxxxx"; string(r.Stdout) != want {
		t.Errorf("Stdout = %q; want %q", r.Stdout, want)
	}
	if string(r.Stderr) != "small" {
		t.Errorf("Stderr = %q; want %q", r.Stderr, "small")
	}
}

// capReference is what a CappedBuffer of n holds after data was written.
func capReference(data []byte, n int) ([]byte, bool) {
	if len(data) <= n {
		return data, false
	}
	out := slices.Clone(data[:n/2])
	out = append(out, truncMarker...)
	return append(out, data[len(data)-(n-n/2):]...), true
}

func TestCappedBuffer(t *testing.T) {
	tests := []struct {
		name          string
		n             int
		writes        []string
		want          string
		wantTruncated bool
	}{
		{name: "empty", n: 10, want: ""},
		{name: "under cap", n: 10, writes: []string{"abc", "de"}, want: "abcde"},
		{name: "exactly cap", n: 10, writes: []string{"01234", "56789"}, want: "0123456789"},
		{name: "one over", n: 10, writes: []string{"0123456789a"}, want: "01234" + truncMarker + "6789a", wantTruncated: true},
		{name: "over in small writes", n: 4, writes: []string{"a", "b", "c", "d", "e", "f", "g"}, want: "ab" + truncMarker + "fg", wantTruncated: true},
		{name: "odd n keeps the larger half at the tail", n: 5, writes: []string{"abcdefghij"}, want: "ab" + truncMarker + "hij", wantTruncated: true},
		{name: "odd n small writes", n: 5, writes: []string{"abc", "def", "g", "hij"}, want: "ab" + truncMarker + "hij", wantTruncated: true},
		{name: "n 1", n: 1, writes: []string{"abc"}, want: truncMarker + "c", wantTruncated: true},
		{name: "n 0", n: 0, writes: []string{"abc"}, want: truncMarker, wantTruncated: true},
		{name: "wrap ring then big write", n: 6, writes: []string{"abcde", "f", "gh", "ijklmnop"}, want: "abc" + truncMarker + "nop", wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewCappedBuffer(tt.n)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := string(b.Bytes()); got != tt.want {
				t.Errorf("Bytes() = %q; want %q", got, tt.want)
			}
			if b.Truncated() != tt.wantTruncated {
				t.Errorf("Truncated() = %v; want %v", b.Truncated(), tt.wantTruncated)
			}
		})
	}
}

// TestCappedBufferChunking checks that however the data is split into
// writes, the buffer holds what capReference computes from all of it.
func TestCappedBufferChunking(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte('a' + rng.IntN(26))
	}
	chunkings := map[string]func(n int) int{
		"one write":     func(int) int { return len(data) },
		"bytes":         func(int) int { return 1 },
		"random small":  func(n int) int { return 1 + rng.IntN(max(1, n/2+1)) },
		"random large":  func(n int) int { return 1 + rng.IntN(3*n+1) },
		"exact tail":    func(n int) int { return max(1, n-n/2) },
		"tail plus one": func(n int) int { return n - n/2 + 1 },
	}
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 16, 17, 100, 101} {
		for _, size := range []int{0, 1, n - 1, n, n + 1, 2 * n, 2*n + 1, 5*n + 3, 1000, 3000} {
			if size < 0 {
				continue
			}
			full := data[:size]
			want, wantTrunc := capReference(full, n)
			for name, chunk := range chunkings {
				b := NewCappedBuffer(n)
				for rest := full; len(rest) > 0; {
					k := min(chunk(n), len(rest))
					b.Write(rest[:k])
					rest = rest[k:]
				}
				if got := b.Bytes(); !bytes.Equal(got, want) {
					t.Errorf("n=%d size=%d %s: Bytes() = %q; want %q", n, size, name, got, want)
				}
				if b.Truncated() != wantTrunc {
					t.Errorf("n=%d size=%d %s: Truncated() = %v; want %v", n, size, name, b.Truncated(), wantTrunc)
				}
			}
		}
	}
}

// maxTracker records how many hosts are in the transport at once.
type maxTracker struct {
	inFlight, max atomic.Int64
}

// enter counts a host in and returns how many are in now.
func (m *maxTracker) enter() int64 {
	n := m.inFlight.Add(1)
	for {
		old := m.max.Load()
		if n <= old || m.max.CompareAndSwap(old, n) {
			return n
		}
	}
}

func (m *maxTracker) leave() { m.inFlight.Add(-1) }

func TestEngineRunOptionsLimit(t *testing.T) {
	tests := []struct {
		name                   string
		engineLimit, optsLimit int
		want                   int64
	}{
		{name: "options below the default", optsLimit: 2, want: 2},
		{name: "options below the engine's", engineLimit: 4, optsLimit: 3, want: 3},
		{name: "engine's caps options", engineLimit: 3, optsLimit: 10, want: 3},
		{name: "options of one", engineLimit: 8, optsLimit: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// Hosts wait until want of them run at once, then all return:
			// an engine running fewer at once would never get there (the
			// test would time out, not pass), one running more is caught
			// by the recorded maximum.
			full := make(chan struct{})
			var fullOnce sync.Once
			var m maxTracker
			tr := &fakeTransport{def: func(ctx context.Context, _ model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
				defer m.leave()
				if m.enter() >= tt.want {
					fullOnce.Do(func() { close(full) })
				}
				select {
				case <-full:
					return model.Exit{}, nil
				case <-ctx.Done():
					return model.Exit{}, ctx.Err()
				}
			}}
			targets := make([]model.Target, 12)
			for i := range targets {
				targets[i] = model.Target{ID: fmt.Sprintf("h%02d", i)}
			}
			e := &Engine{Transport: tr, Limit: tt.engineLimit}
			res := e.Run(ctx, model.Command{Line: "true"}, targets, Options{Limit: tt.optsLimit}, Hooks{})
			if got := m.max.Load(); got != tt.want {
				t.Errorf("max in flight = %d; want %d", got, tt.want)
			}
			for i, r := range res {
				if r.State != model.StateOK {
					t.Errorf("results[%d] = %s %s (%s); want ok", i, r.Host, r.State, r.Error)
				}
			}
		})
	}
}

func TestEngineRunFailThreshold(t *testing.T) {
	tr := &fakeTransport{byHost: map[string]execFunc{
		"a-ok":          exitWith(model.Exit{}, nil),
		"b-fail":        exitWith(model.Exit{Code: 1}, nil),
		"c-ok":          exitWith(model.Exit{}, nil),
		"d-unreachable": exitWith(model.Exit{}, fmt.Errorf("dial: %w", ErrUnreachable)),
		"e-ok":          exitWith(model.Exit{}, nil),
		"f-fail":        exitWith(model.Exit{Code: 1}, nil),
	}}
	targets := []model.Target{{ID: "a-ok"}, {ID: "b-fail"}, {ID: "c-ok"}, {ID: "d-unreachable"}, {ID: "e-ok"}, {ID: "f-fail"}}
	want := []model.State{model.StateOK, model.StateFailed, model.StateOK, model.StateUnreachable, model.StateCancelled, model.StateCancelled}
	var got resultCollector
	// Limit 1: each host ends before the next is considered, so which hosts
	// run is decided, not raced.
	res := (&Engine{Transport: tr}).Run(context.Background(), model.Command{Line: "x"}, targets,
		Options{Limit: 1, FailThreshold: 2}, Hooks{Result: got.add})
	for i, r := range res {
		if r.Host != targets[i].ID || r.State != want[i] {
			t.Errorf("results[%d] = %s %s (%q); want %s %s", i, r.Host, r.State, r.Error, targets[i].ID, want[i])
		}
		if want[i] != model.StateCancelled {
			continue
		}
		if !strings.Contains(r.Error, "fail threshold 2") {
			t.Errorf("%s: Error = %q; want it to name the fail threshold", r.Host, r.Error)
		}
		if n := tr.callCount(r.Host); n != 0 {
			t.Errorf("%s reached the transport %d times after the threshold; want 0", r.Host, n)
		}
	}
	if n := tr.totalCalls(); n != 4 {
		t.Errorf("transport called %d times; want 4", n)
	}
	if c := got.countByHost(); len(c) != len(targets) {
		t.Errorf("Result hook called for %v; want every target once", c)
	}
}

func TestEngineRunHooks(t *testing.T) {
	tr := &fakeTransport{def: func(_ context.Context, tg model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		out(model.Stdout, []byte("out-"+tg.ID))
		out(model.Stderr, []byte("err-"+tg.ID))
		if tg.ID == "fail" {
			return model.Exit{Code: 2}, nil
		}
		return model.Exit{}, nil
	}}
	targets := []model.Target{
		{ID: "a"}, {ID: "ghost", Skip: model.StateUnknown, Error: "no minion"}, {ID: "b"}, {ID: "fail"},
		{ID: "pend", Skip: model.StateNotAccepted, Error: "pending"}, {ID: "c"},
	}

	var mu sync.Mutex // protects log, starts, output
	var log []string  // "start h" and "result h" in call order
	starts := map[string]time.Time{}
	output := map[string][]string{} // by host: "stream:data"
	hooks := Hooks{
		Start: func(tg model.Target, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, "start "+tg.ID)
			starts[tg.ID] = at
		},
		Output: func(host string, s model.Stream, p []byte) {
			mu.Lock()
			defer mu.Unlock()
			output[host] = append(output[host], s.String()+":"+string(p))
		},
		Result: func(r model.Result) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, "result "+r.Host)
		},
	}
	res := (&Engine{Transport: tr, Limit: 3}).Run(context.Background(), model.Command{Line: "x"}, targets, Options{}, hooks)

	mu.Lock()
	defer mu.Unlock()
	for i, tg := range targets {
		startAt, resultAt := -1, -1
		nStart, nResult := 0, 0
		for j, l := range log {
			switch l {
			case "start " + tg.ID:
				nStart++
				startAt = j
			case "result " + tg.ID:
				nResult++
				resultAt = j
			}
		}
		if nResult != 1 {
			t.Errorf("%s: model.Result hook called %d times; want 1", tg.ID, nResult)
		}
		if tg.Skip != "" {
			if nStart != 0 || len(output[tg.ID]) != 0 {
				t.Errorf("skipped %s: Start called %d times, output %q; want neither", tg.ID, nStart, output[tg.ID])
			}
			continue
		}
		if nStart != 1 || startAt > resultAt {
			t.Errorf("%s: Start called %d times, at %d, model.Result at %d; want once, before model.Result", tg.ID, nStart, startAt, resultAt)
		}
		if !starts[tg.ID].Equal(res[i].StartedAt) {
			t.Errorf("%s: Start told %v; result started %v", tg.ID, starts[tg.ID], res[i].StartedAt)
		}
		wantOut := []string{"stdout:out-" + tg.ID, "stderr:err-" + tg.ID}
		if !slices.Equal(output[tg.ID], wantOut) {
			t.Errorf("%s: Output hook got %q; want %q", tg.ID, output[tg.ID], wantOut)
		}
	}
	if len(output) != 4 {
		t.Errorf("Output hook called for hosts %v; want a, b, c and fail only", slices.Sorted(maps.Keys(output)))
	}
}

func TestEngineRunThresholdHostsGetNoStart(t *testing.T) {
	tr := &fakeTransport{def: exitWith(model.Exit{Code: 1}, nil)}
	var mu sync.Mutex // protects started
	var started []string
	hooks := Hooks{Start: func(tg model.Target, _ time.Time) {
		mu.Lock()
		defer mu.Unlock()
		started = append(started, tg.ID)
	}}
	targets := []model.Target{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	res := (&Engine{Transport: tr}).Run(context.Background(), model.Command{}, targets, Options{Limit: 1, FailThreshold: 1}, hooks)
	if res[0].State != model.StateFailed || res[1].State != model.StateCancelled || res[2].State != model.StateCancelled {
		t.Errorf("states = %s, %s, %s; want failed, cancelled, cancelled", res[0].State, res[1].State, res[2].State)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(started, []string{"a"}) {
		t.Errorf("Start called for %q; want only a", started)
	}
}

// With KeepTail, the Result hook gets a host's whole output and Run keeps
// only a copy of its tail, marked truncated when that cut.
func TestEngineRunKeepTail(t *testing.T) {
	long := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	tr := &fakeTransport{def: func(_ context.Context, tg model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		if tg.ID == "long" {
			out(model.Stdout, long)
			out(model.Stderr, long[:50])
			return model.Exit{Packages: &model.PkgReport{Packages: make([]model.PkgChange, 40), Changed: 40}}, nil
		}
		out(model.Stdout, []byte("short"))
		return model.Exit{Packages: &model.PkgReport{Packages: make([]model.PkgChange, 3)}}, nil
	}}
	var mu sync.Mutex // protects hooked
	hooked := map[string]model.Result{}
	hooks := Hooks{Result: func(r model.Result) {
		mu.Lock()
		defer mu.Unlock()
		hooked[r.Host] = r
	}}
	res := (&Engine{Transport: tr}).Run(context.Background(), model.Command{Line: "x"},
		[]model.Target{{ID: "long"}, {ID: "short"}}, Options{KeepTail: 100, KeepPackages: 16}, hooks)
	if got := hooked["long"]; !bytes.Equal(got.Stdout, long) || got.Truncated || len(got.Packages.Packages) != 40 {
		t.Errorf("hook got %d bytes of stdout, %d packages, truncated %v; want all %d and 40, not truncated",
			len(got.Stdout), len(got.Packages.Packages), got.Truncated, len(long))
	}
	if p := res[0].Packages; len(p.Packages) != 16 || p.Changed != 40 || len(hooked["long"].Packages.Packages) != 40 {
		t.Errorf("kept long's report: %d packages, %d changed (hook's now %d); want 16 kept, the counts whole, the hook's untouched",
			len(p.Packages), p.Changed, len(hooked["long"].Packages.Packages))
	}
	if p := res[1].Packages; len(p.Packages) != 3 {
		t.Errorf("kept short's report: %d packages; want all 3", len(p.Packages))
	}
	if r := res[0]; !bytes.Equal(r.Stdout, long[900:]) || string(r.Stderr) != string(long[:50]) || !r.Truncated {
		t.Errorf("kept long = stdout %q, stderr %q, truncated %v; want its last 100 bytes, all of stderr, truncated", r.Stdout, r.Stderr, r.Truncated)
	}
	if r := res[1]; string(r.Stdout) != "short" || r.Truncated {
		t.Errorf("kept short = %q, truncated %v; want all of it, not truncated", r.Stdout, r.Truncated)
	}
}

// TestLostHost: a transport that lost its host mid-command (exec.ErrLost)
// ends it lost, not failed; a cancelled run stays cancelled.
func TestLostHost(t *testing.T) {
	lost := fmt.Errorf("no word from it: %w", ErrLost)
	e := &Engine{Transport: &fakeTransport{def: func(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
		return model.Exit{Code: -1}, lost
	}}}
	rs := e.Run(context.Background(), model.Command{Line: "x"}, []model.Target{{ID: "a"}}, Options{}, Hooks{})
	if rs[0].State != model.StateLost || rs[0].Error != lost.Error() {
		t.Errorf("result = %s %q; want lost with the transport's reason", rs[0].State, rs[0].Error)
	}
}

// TestMemRegion: a paged region reads back what a flat slice written the
// same way holds, whatever the writes' offsets and lengths (within a page,
// across pages, past a gap, over written bytes), and keeps its pages near
// what was written.
func TestMemRegion(t *testing.T) {
	type w struct{ off, n int }
	const P = regionPage
	tests := []struct {
		name   string
		writes []w
	}{
		{"small", []w{{0, 10}, {10, 5}}},
		{"first page by appends", []w{{0, 100}, {100, P - 100}}},
		{"across a page boundary", []w{{0, P - 3}, {P - 3, 10}}},
		{"many pages in one write", []w{{0, 3*P + 17}}},
		{"gap reads as zeros", []w{{0, 5}, {2*P + 1, 9}}},
		{"overwrite across pages", []w{{0, 3 * P}, {P - 7, P + 14}, {5, 3}}},
		{"ring-like rewrites", []w{{0, P / 2}, {P / 2, 2 * P}, {P, P / 3}, {P / 2, 7}}},
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m memRegion
			var flat []byte
			for _, wr := range tt.writes {
				p := make([]byte, wr.n)
				for i := range p {
					p[i] = byte(1 + rng.IntN(255))
				}
				if n, err := m.WriteAt(p, int64(wr.off)); n != wr.n || err != nil {
					t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", wr.n, wr.off, n, err)
				}
				if end := wr.off + wr.n; end > len(flat) {
					flat = append(flat, make([]byte, end-len(flat))...)
				}
				copy(flat[wr.off:], p)
			}
			got := make([]byte, len(flat))
			if n, err := m.ReadAt(got, 0); n != len(flat) || err != nil {
				t.Fatalf("ReadAt = %d, %v; want %d, nil", n, err, len(flat))
			}
			if !bytes.Equal(got, flat) {
				t.Errorf("read back differs from what was written")
			}
			// A read at an offset within and across pages.
			if len(flat) > 10 {
				off := len(flat) / 3
				part := make([]byte, len(flat)-off)
				m.ReadAt(part, int64(off))
				if !bytes.Equal(part, flat[off:]) {
					t.Errorf("ReadAt(%d) differs", off)
				}
			}
			held := 0
			for _, pg := range m.pages {
				held += cap(pg)
			}
			if held > len(flat)+2*P {
				t.Errorf("pages hold %d bytes for %d written; want at most two pages more", held, len(flat))
			}
		})
	}
}

// TestCappedBufferPages: buffers of several pages keep what capReference
// computes, however the output is chunked.
func TestCappedBufferPages(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, 5*regionPage+123)
	for i := range data {
		data[i] = byte('a' + rng.IntN(26))
	}
	for _, n := range []int{regionPage, 2*regionPage + 1, 3*regionPage + 77, 8 * regionPage} {
		for _, chunk := range []int{1000, 16 << 10, 64 << 10, 100 << 10} {
			b := NewCappedBuffer(n)
			for rest := data; len(rest) > 0; {
				k := min(len(rest), 1+rng.IntN(chunk))
				b.Write(rest[:k])
				rest = rest[k:]
			}
			want, wantTrunc := capReference(data, n)
			if got := b.Bytes(); !bytes.Equal(got, want) || b.Truncated() != wantTrunc {
				t.Errorf("n %d, chunks up to %d: %d bytes (truncated %v); want %d (truncated %v)",
					n, chunk, len(got), b.Truncated(), len(want), wantTrunc)
			}
		}
	}
}
