package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Output flow control (the ExecFlow RPC). gRPC's own flow control lets every
// stream send 64 KiB (its smallest window) ahead of the master's reading:
// thousands of hosts printing at once would fill the master with their
// windows faster than it stores them (2,000 hosts: 128 MiB, 10,000: 640
// MiB). With ExecFlow the master hands out output credit from one budget
// for all streams (Pool.OutputInFlight): a stream starts with a small
// credit of its own (initialCredit, enough for most commands' whole
// output), and a minion with more output asks (CreditWanted) and waits
// until the master has room. What all hosts have sent and the master not
// yet stored is then at most the budget plus initialCredit per stream.

const (
	// initialCredit is each ExecFlow stream's credit before any grant.
	initialCredit = 4 << 10
	// maxGrant is the most credit one grant gives, and what a stream is
	// granted while the budget is more than half free: a minion streaming
	// a large output then asks once per 64 KiB (gRPC's window), not per
	// pipe read.
	maxGrant = 64 << 10
	// DefaultOutputInFlight is Pool.OutputInFlight's default.
	DefaultOutputInFlight = 16 << 20
)

// execEvents is the minion's side of an Exec, ExecFile or ExecFlow stream.
type execEvents interface {
	Send(*felixv1.ExecEvent) error
}

// ExecFlow runs an Exec or ExecFile request whose output is sent only as
// far as the master grants credit (see the proto). Once the request is
// complete, Credits are all the master may send until the exit: anything
// else, or closing its side, ends the stream with InvalidArgument and the
// command is killed (its output could not be sent).
func (s *Server) ExecFlow(stream felixv1.Minion_ExecFlowServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(stream.Context())
	defer cancel(nil)
	var credit *outputCredit
	readCredits := func() {
		go func() {
			defer credit.end()
			for {
				m, err := stream.Recv()
				if err == io.EOF {
					cancel(status.Error(codes.InvalidArgument, "exec flow: the master closed its side while the command ran"))
					return
				}
				if err != nil {
					return // the stream ended
				}
				c := m.GetCredit()
				if c == nil {
					cancel(status.Error(codes.InvalidArgument, "exec flow: a message other than credit after the request"))
					return
				}
				credit.add(c.Bytes)
			}
		}()
	}
	switch m := first.Msg.(type) {
	case *felixv1.ExecFlowRequest_Exec:
		req := m.Exec
		credit = newOutputCredit(req.OutputCredit)
		readCredits()
		s.Log.Info("exec", "job", req.JobId, "cmd", req.CmdLine)
		return s.run(ctx, req.JobId, newCommand(req), req.Heartbeat.AsDuration(), stream, credit, nil)
	case *felixv1.ExecFlowRequest_File:
		credit = newOutputCredit(m.File.GetExec().GetOutputCredit())
		return s.execFile(ctx, m.File, stream, credit, func() ([]byte, bool, error) {
			m, err := stream.Recv()
			if err == io.EOF {
				return nil, false, status.Error(codes.InvalidArgument, "exec flow: the client closed its side before file_end")
			}
			if err != nil {
				return nil, false, err
			}
			switch m := m.Msg.(type) {
			case *felixv1.ExecFlowRequest_Data:
				return m.Data, true, nil
			case *felixv1.ExecFlowRequest_FileEnd:
				readCredits() // next is not called again
				return nil, false, io.EOF
			}
			return nil, false, status.Error(codes.InvalidArgument, "exec flow: a message other than data or file_end within the file")
		})
	default:
		return status.Error(codes.InvalidArgument, "exec flow: the first message must be the command or a file header")
	}
}

// outputCredit is the output an ExecFlow stream's minion may still send.
// Its one user at a time (the stream's output is sent under one lock, so
// that all output granted goes out before the next CreditWanted) takes
// from it; the stream's reader adds the master's grants.
type outputCredit struct {
	mu     sync.Mutex
	n      int64 // protected by mu
	asking bool  // a CreditWanted is unanswered: no Credit came since; protected by mu
	ended  bool  // the master sends no more credit; protected by mu
	more   chan struct{}
}

func newOutputCredit(initial uint32) *outputCredit {
	return &outputCredit{n: int64(initial), more: make(chan struct{}, 1)}
}

// add grants n more bytes, answering a CreditWanted if one is out.
func (c *outputCredit) add(n uint32) {
	c.mu.Lock()
	c.n += int64(n)
	c.asking = false
	c.mu.Unlock()
	c.wake()
}

// end notes that no more credit comes.
func (c *outputCredit) end() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
	c.wake()
}

func (c *outputCredit) wake() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// take returns how many of want bytes may be sent now (1 to want), taking
// them from the credit. Without credit it asks for more (ask, which says
// whether the request went out) unless a request is still unanswered, and
// waits; it returns 0 when no credit can come: the stream or ctx ended,
// or ask failed. One caller at a time.
func (c *outputCredit) take(ctx context.Context, want int, ask func(want int) bool) int {
	for {
		c.mu.Lock()
		if c.n > 0 {
			n := min(c.n, int64(want))
			c.n -= n
			c.mu.Unlock()
			return int(n)
		}
		ended, asking := c.ended, c.asking
		c.asking = true
		c.mu.Unlock()
		if ended {
			return 0
		}
		if !asking && !ask(want) {
			return 0
		}
		select {
		case <-c.more:
		case <-ctx.Done():
			return 0
		}
	}
}

// outputBudget is the output credit all of a pool's ExecFlow streams may
// hold beyond their initial credit.
type outputBudget struct {
	size int64
	sem  *semaphore.Weighted
	held atomic.Int64 // granted and not yet given back
	// generous serialises the check and taking of whole grants, so that
	// they never take the budget past half.
	generous sync.Mutex
}

func newOutputBudget(size int64) *outputBudget {
	size = max(size, maxGrant)
	return &outputBudget{size: size, sem: semaphore.NewWeighted(size)}
}

// tryWhole takes a whole grant (maxGrant) if the budget stays at most half
// held with it.
func (b *outputBudget) tryWhole() bool {
	b.generous.Lock()
	defer b.generous.Unlock()
	if b.held.Load()+maxGrant > b.size/2 || !b.sem.TryAcquire(maxGrant) {
		return false
	}
	b.held.Add(maxGrant)
	return true
}

// streamCredit is the master's account of one ExecFlow stream's credit.
type streamCredit struct {
	b       *outputBudget
	initial int64 // of initialCredit, what the minion has not used
	held    int64 // granted from b and not yet used
}

func (b *outputBudget) stream() *streamCredit {
	return &streamCredit{b: b, initial: initialCredit}
}

// used accounts for n bytes of output received, giving the granted ones
// back to the budget. A minion sending more than it was granted breaks
// the protocol.
func (s *streamCredit) used(n int) error {
	k := min(int64(n), s.initial)
	s.initial -= k
	rest := int64(n) - k
	if rest > s.held {
		return fmt.Errorf("the minion sent %d bytes of output more than it was granted", rest-s.held)
	}
	s.held -= rest
	s.b.give(rest)
	return nil
}

// grant answers a CreditWanted for want bytes: 0 when it is stale — the
// stream still holds a grant, sent after the minion asked (a top-up), which
// answers it —, else, once the budget has room, the size of the grant:
// maxGrant while the budget is more than half free, else exactly what is
// waiting (up to maxGrant), so that streams that fall silent never hold
// much of a busy budget. Holding nothing, a stream waiting here has no
// output of its own behind its request: the wait cannot hold up the
// budget it waits for.
func (s *streamCredit) grant(ctx context.Context, want uint32) (uint32, error) {
	if s.held > 0 {
		return 0, nil
	}
	n := min(max(int64(want), 1), maxGrant)
	if s.b.tryWhole() {
		n = maxGrant
	} else if err := s.b.sem.Acquire(ctx, n); err != nil {
		return 0, err
	} else {
		s.b.held.Add(n)
	}
	s.held += n
	return uint32(n), nil
}

// topUp returns a grant to send unasked, or 0: a stream that used its
// initial credit (a large output) and has less than half a grant left is
// given a whole one while the budget is more than half free, so that the
// minion does not stop at every grant for a round trip to ask.
func (s *streamCredit) topUp() uint32 {
	if s.initial > 0 || s.held >= maxGrant/2 || !s.b.tryWhole() {
		return 0
	}
	s.held += maxGrant
	return maxGrant
}

// close gives back what the stream still holds.
func (s *streamCredit) close() {
	s.b.give(s.held)
	s.held = 0
}

func (b *outputBudget) give(n int64) {
	if n > 0 {
		b.held.Add(-n)
		b.sem.Release(n)
	}
}

// errNoExecFlow is execFlow's answer from a minion without ExecFlow:
// nothing ran there.
var errNoExecFlow = errors.New("the minion has no ExecFlow")

// flowControl is the master's side of an ExecFlow stream's credit.
type flowControl struct {
	ctx    context.Context
	credit *streamCredit
	send   func(*felixv1.ExecFlowRequest) error
}

// grant answers a CreditWanted once the budget has room. A failure (the
// stream's context ended, or its send side broke) sends nothing: the
// stream's next Recv reports it.
func (fl *flowControl) grant(want uint32) {
	n, err := fl.credit.grant(fl.ctx, want)
	if err != nil || n == 0 {
		return
	}
	fl.sendCredit(n)
}

// used accounts for n bytes of output received and tops the stream's
// credit up when it should be (streamCredit.topUp).
func (fl *flowControl) used(n int) error {
	if err := fl.credit.used(n); err != nil {
		return err
	}
	if g := fl.credit.topUp(); g > 0 {
		fl.sendCredit(g)
	}
	return nil
}

// sendCredit sends a grant; a failure is the stream's, which its next
// Recv reports.
func (fl *flowControl) sendCredit(n uint32) {
	_ = fl.send(&felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_Credit{Credit: &felixv1.Credit{Bytes: n}}})
}

// budget returns the pool's output budget, made on first use.
func (p *Pool) budget() *outputBudget {
	p.budgetOnce.Do(func() {
		size := p.OutputInFlight
		if size <= 0 {
			size = DefaultOutputInFlight
		}
		p.outBudget = newOutputBudget(size)
	})
	return p.outBudget
}

// execFlow runs req (with f's content when f is set) over an ExecFlow
// stream; errNoExecFlow when the minion does not know it.
func (p *Pool) execFlow(ctx context.Context, cl felixv1.MinionClient, t model.Target, req *felixv1.ExecRequest, f *model.File, out model.OutputFunc, w *watchdog) (model.Exit, error) {
	var r io.ReadCloser
	if f != nil {
		var err error
		if r, err = openFile(t, f); err != nil {
			return model.Exit{}, err
		}
		defer r.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// As for Exec, only a stream that could not be opened is "unreachable".
	stream, err := cl.ExecFlow(ctx)
	if err != nil {
		return model.Exit{}, rpcError("exec on", t, err, true)
	}
	req = proto.CloneOf(req)
	req.OutputCredit = initialCredit
	sent := true
	if f == nil {
		if err := stream.Send(&felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_Exec{Exec: req}}); err == io.EOF {
			sent = false // the minion ended the stream: Recv says why
		} else if err != nil {
			return model.Exit{}, rpcError("exec on", t, err, false)
		}
	} else {
		data := &felixv1.ExecFlowRequest_Data{}
		msg := &felixv1.ExecFlowRequest{Msg: data}
		if sent, err = sendFile(t, f, r, cancel,
			func() error {
				return stream.Send(&felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_File{
					File: &felixv1.ExecFileHeader{Exec: req, FileName: f.Name, Size: f.Size}}})
			},
			func(b []byte) error { data.Data = b; return stream.Send(msg) },
			func() error {
				return stream.Send(&felixv1.ExecFlowRequest{Msg: &felixv1.ExecFlowRequest_FileEnd{FileEnd: &felixv1.FileEnd{}}})
			}); err != nil {
			return model.Exit{}, err
		}
	}
	if sent && req.Heartbeat != nil {
		w.arm(0) // Started comes at once, or once a file's content is on disk
	}
	credit := p.budget().stream()
	defer credit.close()
	return recvEvents(t, stream, out, w, &flowControl{ctx: ctx, credit: credit, send: stream.Send})
}
