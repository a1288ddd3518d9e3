package exec

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrUnreachable marks a transport error that happened before the command
// was sent: nothing ran on the host.
var ErrUnreachable = errors.New("host unreachable")

// Target is one host a job runs on, as resolved from the inventory.
type Target struct {
	ID          string
	Addr        string // what the transport dials
	Fingerprint string // the host's pinned certificate
	// Skip, when set, is the final state the host gets without running
	// anything (StateNotAccepted, StateUnknown).
	Skip  State
	Error string // with Skip: why
}

// Transport runs one command on one host. The agent (gRPC) and agentless
// (SSH) transports satisfy it.
type Transport interface {
	// Name is recorded in each result ("agent", "ssh").
	Name() string
	// Exec runs cmd on t, streaming output to out. It returns an error
	// wrapping ErrUnreachable when the command was never sent.
	Exec(ctx context.Context, t Target, cmd Command, out OutputFunc) (Exit, error)
}

// Defaults for an Engine's zero fields.
const (
	DefaultLimit     = 5000
	DefaultOutputCap = 1 << 20
	DefaultGrace     = 10 * time.Second
)

// Engine fans commands out to hosts.
type Engine struct {
	Transport Transport
	// Limit bounds how many hosts run at once.
	Limit int
	// OutputCap bounds the bytes kept per stream per host; head and tail are kept.
	OutputCap int
	// Grace is added to a command's timeout for the master's own deadline, so
	// the host's kill (and its report) normally wins over a cut connection.
	Grace time.Duration
}

// Run runs cmd on every target and returns one Result per target, in target
// order. onResult, if not nil, is called as each host finishes (from many
// goroutines at once). A failed host is a result, never an error; Run
// returns when every host has its final state.
func (e *Engine) Run(ctx context.Context, cmd Command, targets []Target, onResult func(Result)) []Result {
	limit := e.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, t := range targets {
		if t.Skip != "" {
			now := time.Now()
			results[i] = Result{Host: t.ID, Addr: t.Addr, State: t.Skip, Error: t.Error, ExitCode: -1, StartedAt: now, FinishedAt: now}
			if onResult != nil {
				onResult(results[i])
			}
			continue
		}
		// A cancelled job starts no more hosts: when a slot is free and ctx is
		// done, select alone would pick either case at random.
		acquired := false
		if ctx.Err() == nil {
			select {
			case sem <- struct{}{}:
				acquired = true
			case <-ctx.Done():
			}
		}
		if !acquired {
			now := time.Now()
			results[i] = Result{Host: t.ID, Addr: t.Addr, State: StateCancelled, ExitCode: -1, Error: ctx.Err().Error(),
				Transport: e.Transport.Name(), StartedAt: now, FinishedAt: now}
			if onResult != nil {
				onResult(results[i])
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = e.runOne(ctx, cmd, t)
			if onResult != nil {
				onResult(results[i])
			}
		}()
	}
	wg.Wait()
	return results
}

func (e *Engine) runOne(ctx context.Context, cmd Command, t Target) Result {
	capBytes := e.OutputCap
	if capBytes <= 0 {
		capBytes = DefaultOutputCap
	}
	grace := e.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cmd.Timeout+grace)
		defer cancel()
	}
	stdout, stderr := NewCappedBuffer(capBytes), NewCappedBuffer(capBytes)
	var mu sync.Mutex // serialises out: the transport may call it from two goroutines
	out := func(s Stream, p []byte) {
		mu.Lock()
		defer mu.Unlock()
		if s == Stderr {
			stderr.Write(p)
		} else {
			stdout.Write(p)
		}
	}
	r := Result{Host: t.ID, Addr: t.Addr, Transport: e.Transport.Name(), StartedAt: time.Now()}
	exit, err := e.Transport.Exec(ctx, t, cmd, out)
	r.FinishedAt = time.Now()
	mu.Lock()
	r.Stdout, r.Stderr = stdout.Bytes(), stderr.Bytes()
	r.Truncated = stdout.Truncated() || stderr.Truncated()
	mu.Unlock()
	r.ExitCode, r.Signal = exit.Code, exit.Signal
	switch {
	case err != nil && errors.Is(err, ErrUnreachable):
		r.State, r.ExitCode, r.Error = StateUnreachable, -1, err.Error()
	case err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		r.State, r.ExitCode, r.Error = StateTimeout, -1, "no answer from host before the deadline: "+err.Error()
	case err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)):
		r.State, r.ExitCode, r.Error = StateCancelled, -1, err.Error()
	case err != nil:
		r.State, r.ExitCode, r.Error = StateFailed, -1, err.Error()
	case exit.TimedOut:
		r.State, r.Error = StateTimeout, "killed at the deadline of "+cmd.Timeout.String()
	case exit.Cancelled:
		r.State = StateCancelled
	case exit.Code == 0 && exit.Signal == "":
		r.State = StateOK
	default:
		r.State = StateFailed
	}
	return r
}

// CappedBuffer keeps at most n bytes of what is written to it: the first n/2
// and the last n/2, and remembers whether anything in between was dropped.
type CappedBuffer struct {
	n         int
	head      []byte
	tail      []byte // ring of at most n - n/2 bytes
	tailStart int    // index of the oldest byte in tail once full
	truncated bool
}

// NewCappedBuffer returns a buffer that keeps at most n bytes.
func NewCappedBuffer(n int) *CappedBuffer {
	return &CappedBuffer{n: n}
}

// Write never fails.
func (b *CappedBuffer) Write(p []byte) (int, error) {
	written := len(p)
	if room := b.n/2 - len(b.head); room > 0 {
		k := min(room, len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	tailCap := b.n - b.n/2
	for len(p) > 0 && tailCap > 0 {
		if len(b.tail) < tailCap {
			k := min(tailCap-len(b.tail), len(p))
			b.tail = append(b.tail, p[:k]...)
			p = p[k:]
			continue
		}
		b.truncated = true
		if len(p) >= tailCap {
			// Only the last tailCap bytes of p can survive.
			copy(b.tail, p[len(p)-tailCap:])
			b.tailStart = 0
			break
		}
		k := copy(b.tail[b.tailStart:], p)
		if k < len(p) {
			k += copy(b.tail, p[k:])
		}
		b.tailStart = (b.tailStart + len(p)) % tailCap
		p = nil
	}
	if len(p) > 0 {
		b.truncated = true
	}
	return written, nil
}

// Bytes returns head and tail joined; when bytes were dropped between them a
// marker line says so.
func (b *CappedBuffer) Bytes() []byte {
	out := make([]byte, 0, len(b.head)+len(b.tail)+40)
	out = append(out, b.head...)
	if b.truncated {
		out = append(out, "\n[... output truncated by felix ...]\n"...)
	}
	out = append(out, b.tail[b.tailStart:]...)
	return append(out, b.tail[:b.tailStart]...)
}

// Truncated reports whether bytes were dropped.
func (b *CappedBuffer) Truncated() bool { return b.truncated }
