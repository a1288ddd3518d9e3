package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felix-ops/felix/model"
)

// ErrUnreachable marks a transport error that happened before the command
// was sent: nothing ran on the host.
var ErrUnreachable = errors.New("host unreachable")

// ErrLost marks a host that stopped answering while its command ran (a
// hung or cut-off minion): its outcome is unknown, the command may still
// be running there. The host ends StateLost.
var ErrLost = errors.New("host lost")

// Transport runs one command on one host. The agent (gRPC) and agentless
// (SSH) transports satisfy it.
type Transport interface {
	// Name is recorded in each result ("agent", "ssh").
	Name() string
	// Exec runs cmd on t, streaming output to out. It returns an error
	// wrapping ErrUnreachable when the command was never sent.
	Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error)
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
	// OutputMemory, when positive, bounds the output running hosts hold in
	// memory, all together; past it a host's output goes to an unlinked
	// file in SpoolDir (see spool.go). 0: no bound.
	OutputMemory int64
	// SpoolDir is where spilled output goes; "" is the system's temp dir.
	SpoolDir string

	budget budgets
}

// Options tune one run.
type Options struct {
	// Limit bounds how many hosts run at once (a rolling batch); 0 means the
	// engine's Limit.
	Limit int
	// FailThreshold, when positive, stops launching hosts once that many
	// have ended in a state other than ok; the rest end cancelled.
	FailThreshold int
	// KeepTail, when positive, bounds the output Run keeps of each host
	// once the Result hook has had it whole (and stored it): its last
	// KeepTail bytes of stdout and of stderr, copied, with Truncated set
	// when that cut it — so a finished job's memory does not grow with
	// output × hosts.
	KeepTail int
	// KeepPackages, when positive, bounds the same way the entries of a
	// host's package report Run keeps (model.Result.CutPackages).
	KeepPackages int
}

// Hooks are told about a run's progress; any may be nil. They are called
// from many goroutines at once.
type Hooks struct {
	// Start is called when a host starts running.
	Start func(t model.Target, at time.Time)
	// Output is called with each output chunk of a host; p is only valid
	// during the call.
	Output func(host string, s model.Stream, p []byte)
	// Result is called once per target with its final result.
	Result func(r model.Result)
}

// Run runs cmd on every target and returns one Result per target, in target
// order. A failed host is a result, never an error; Run returns when every
// host has its final state.
func (e *Engine) Run(ctx context.Context, cmd model.Command, targets []model.Target, opts Options, h Hooks) []model.Result {
	limit := opts.Limit
	if limit <= 0 || (e.Limit > 0 && limit > e.Limit) {
		limit = e.Limit
	}
	if limit <= 0 {
		limit = DefaultLimit
	}
	results := make([]model.Result, len(targets))
	sem := make(chan struct{}, limit)
	var failed atomic.Int64
	var wg sync.WaitGroup
	finish := func(i int, r model.Result) {
		if h.Result != nil {
			h.Result(r)
		}
		if opts.KeepTail > 0 {
			r = keepTail(r, opts.KeepTail)
			if r.Apply != nil {
				r.Apply = r.Apply.CutDiffs(opts.KeepTail)
			}
		}
		if opts.KeepPackages > 0 {
			r.CutPackages(opts.KeepPackages)
		}
		results[i] = r
	}
	skip := func(i int, t model.Target, st model.State, why string) {
		now := time.Now()
		finish(i, model.Result{Host: t.ID, Addr: t.Addr, State: st, Error: why, ExitCode: -1, StartedAt: now, FinishedAt: now})
	}
	for i, t := range targets {
		if t.Skip != "" {
			skip(i, t, t.Skip, t.Error)
			continue
		}
		// A slot is taken only while ctx is live: with both ready, select
		// would pick at random and could start hosts of a cancelled job.
		if ctx.Err() == nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			skip(i, t, model.StateCancelled, "job cancelled before this host started")
			continue
		}
		if opts.FailThreshold > 0 && failed.Load() >= int64(opts.FailThreshold) {
			<-sem
			skip(i, t, model.StateCancelled, fmt.Sprintf("not started: %d hosts failed (fail threshold %d)", failed.Load(), opts.FailThreshold))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, release := e.runOne(ctx, cmd, t, h)
			if r.State != model.StateOK {
				failed.Add(1) // only hosts that ran count towards the threshold
			}
			finish(i, r)
			release() // the hook has the output: its memory may go
		}()
	}
	wg.Wait()
	return results
}

func (e *Engine) runOne(ctx context.Context, cmd model.Command, t model.Target, h Hooks) (model.Result, func()) {
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
	b := e.budgets()
	stdout, stderr := newHostOutput(capBytes, b, e.SpoolDir), newHostOutput(capBytes, b, e.SpoolDir)
	release := func() { stdout.release(); stderr.release() }
	var mu sync.Mutex // serialises out: the transport may call it from two goroutines
	out := func(s model.Stream, p []byte) {
		if h.Output != nil {
			h.Output(t.ID, s, p)
		}
		mu.Lock()
		defer mu.Unlock()
		if s == model.Stderr {
			stderr.Write(p)
		} else {
			stdout.Write(p)
		}
	}
	r := model.Result{Host: t.ID, Addr: t.Addr, Transport: e.Transport.Name(), StartedAt: time.Now()}
	if h.Start != nil {
		h.Start(t, r.StartedAt)
	}
	exit, err := e.Transport.Exec(ctx, t, cmd, out)
	r.FinishedAt = time.Now()
	mu.Lock()
	r.Stdout, r.Stderr = stdout.Bytes(), stderr.Bytes()
	r.Truncated = stdout.Truncated() || stderr.Truncated()
	mu.Unlock()
	r.ExitCode, r.Signal, r.Files, r.Packages, r.Apply = exit.Code, exit.Signal, exit.Files, exit.Packages, exit.Apply
	if exit.Transport != "" {
		r.Transport = exit.Transport // a selecting transport says which one ran
	}
	switch {
	case err != nil && errors.Is(err, ErrUnreachable):
		r.State, r.ExitCode, r.Error = model.StateUnreachable, -1, err.Error()
	case err != nil && errors.Is(err, ErrLost) && ctx.Err() == nil:
		r.State, r.ExitCode, r.Error = model.StateLost, -1, err.Error()
	case err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded):
		// The runner stopped at the deadline and says why (a package
		// manager still waiting for its lock).
		r.State, r.ExitCode, r.Error = model.StateTimeout, -1, err.Error()
	case err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		r.State, r.ExitCode, r.Error = model.StateTimeout, -1, "no answer from host before the deadline: "+err.Error()
	case err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)):
		r.State, r.ExitCode, r.Error = model.StateCancelled, -1, err.Error()
	case err != nil:
		r.State, r.ExitCode, r.Error = model.StateFailed, -1, err.Error()
	case exit.TimedOut:
		r.State, r.Error = model.StateTimeout, "killed at the deadline of "+cmd.Timeout.String()
	case exit.Cancelled:
		r.State = model.StateCancelled
	case exit.Code == 0 && exit.Signal == "":
		r.State = model.StateOK
	default:
		r.State = model.StateFailed
	}
	return r, release
}

// truncMarker stands between the head and the tail of cut output.
const truncMarker = "\n[... output truncated by felix ...]\n"

// CappedBuffer keeps at most n bytes of what is written to it: the first n/2
// and the last n/2, and remembers whether anything in between was dropped.
// The bytes live in a region — memory, or a spool file once a running
// host's output is moved out of memory (see spool.go) — laid out the same
// way: the head at [0, n/2), the tail as a ring at [n/2, n).
type CappedBuffer struct {
	n          int
	st         region
	head, tail int // bytes held in each
	tailStart  int // index in the tail ring of its oldest byte once full
	truncated  bool
	err        error // the region's first failure (a spool file's); nothing is written after it
}

// region is where a CappedBuffer keeps its bytes.
type region interface {
	WriteAt(p []byte, off int64) (int, error)
	ReadAt(p []byte, off int64) (int, error)
}

// memRegion is a region in memory that grows as it is written, in pages
// of regionPage bytes: a buffer holds about what it was given (its first
// page grows by appending, so a short output takes only its length), and
// growing never copies what was written before (a growing slice would
// allocate and copy its whole length at each step: megabytes of garbage
// per host of large output).
type memRegion struct {
	pages [][]byte
	alloc int64 // bytes of the pages' capacity: what the region costs
}

// regionPage is the page size of a memRegion.
const regionPage = 64 << 10

func (m *memRegion) WriteAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		i, o := int(off)/regionPage, int(off)%regionPage
		for len(m.pages) <= i {
			m.pages = append(m.pages, nil)
		}
		k := min(len(p), regionPage-o)
		pg := m.pages[i]
		if end := o + k; end > len(pg) {
			switch {
			case end <= cap(pg):
				pg = pg[:end]
			default:
				// The first page doubles up to a page; the others are
				// whole pages at once.
				c := regionPage
				if i == 0 {
					c = min(max(2*cap(pg), end), regionPage)
				}
				q := make([]byte, end, c)
				copy(q, pg)
				m.alloc += int64(c - cap(pg))
				pg = q
			}
			m.pages[i] = pg
		}
		copy(pg[o:], p[:k])
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

// ReadAt fills p from off; bytes never written read as zeros.
func (m *memRegion) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		i, o := int(off)/regionPage, int(off)%regionPage
		k := min(len(p), regionPage-o)
		var pg []byte
		if i < len(m.pages) {
			pg = m.pages[i]
		}
		c := 0
		if o < len(pg) {
			c = copy(p[:k], pg[o:])
		}
		clear(p[c:k])
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

// writeTo writes the region's bytes to w at their offsets.
func (m *memRegion) writeTo(w io.WriterAt) error {
	for i, pg := range m.pages {
		if len(pg) == 0 {
			continue
		}
		if _, err := w.WriteAt(pg, int64(i)*regionPage); err != nil {
			return err
		}
	}
	return nil
}

// NewCappedBuffer returns a buffer that keeps at most n bytes in memory.
func NewCappedBuffer(n int) *CappedBuffer {
	return &CappedBuffer{n: n, st: &memRegion{}}
}

// Write never fails; a region that fails (a full spool) is remembered in
// b.err and written no more.
func (b *CappedBuffer) Write(p []byte) (int, error) {
	written := len(p)
	if b.err == nil {
		b.err = b.write(p)
	}
	return written, nil
}

func (b *CappedBuffer) write(p []byte) error {
	at := func(q []byte, off int) error {
		_, err := b.st.WriteAt(q, int64(off))
		return err
	}
	half := b.n / 2
	if room := half - b.head; room > 0 {
		k := min(room, len(p))
		if err := at(p[:k], b.head); err != nil {
			return err
		}
		b.head += k
		p = p[k:]
	}
	tailCap := b.n - half
	for len(p) > 0 && tailCap > 0 {
		if b.tail < tailCap {
			k := min(tailCap-b.tail, len(p))
			if err := at(p[:k], half+b.tail); err != nil {
				return err
			}
			b.tail += k
			p = p[k:]
			continue
		}
		b.truncated = true
		if len(p) >= tailCap {
			// Only the last tailCap bytes of p can survive.
			b.tailStart = 0
			return at(p[len(p)-tailCap:], half)
		}
		k := min(tailCap-b.tailStart, len(p))
		if err := at(p[:k], half+b.tailStart); err != nil {
			return err
		}
		if k < len(p) {
			if err := at(p[k:], half); err != nil {
				return err
			}
		}
		b.tailStart = (b.tailStart + len(p)) % tailCap
		p = nil
	}
	if len(p) > 0 {
		b.truncated = true
	}
	return nil
}

// Bytes returns head and tail joined; when bytes were dropped between them a
// marker line says so. A region that cannot be read back keeps what was
// read, with a note.
func (b *CappedBuffer) Bytes() []byte {
	half := b.n / 2
	out := make([]byte, 0, b.head+b.tail+len(truncMarker))
	read := func(off, n int) { // straight into out: one copy
		if n <= 0 {
			return
		}
		at := len(out)
		out = slices.Grow(out, n)[:at+n]
		if _, err := b.st.ReadAt(out[at:], int64(off)); err != nil {
			out = append(out[:at], "\n[... output lost by felix: read the spool: "+err.Error()+" ...]\n"...)
		}
	}
	read(0, b.head)
	if b.truncated {
		out = append(out, truncMarker...)
	}
	read(half+b.tailStart, b.tail-b.tailStart)
	read(half, b.tailStart)
	return out
}

// Truncated reports whether bytes were dropped.
func (b *CappedBuffer) Truncated() bool { return b.truncated }

// size is the bytes the buffer holds.
func (b *CappedBuffer) size() int { return b.head + b.tail }

// keepTail returns r with its stdout and stderr cut to copies of their last
// n bytes, Truncated set when that cut.
func keepTail(r model.Result, n int) model.Result {
	cut := func(b []byte) []byte {
		if len(b) <= n {
			return b
		}
		r.Truncated = true
		return append([]byte(nil), model.RuneStart(b[len(b)-n:])...)
	}
	r.Stdout, r.Stderr = cut(r.Stdout), cut(r.Stderr)
	return r
}
