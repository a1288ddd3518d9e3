// Package agent is the agent transport: gRPC with mutual TLS between the
// master (client) and minions (server). Each side trusts exactly one pinned
// certificate fingerprint; there is no CA. The client keeps one long-lived
// connection per minion, reused across jobs, all of them SubConns of one gRPC
// channel (channel.go) and watched by the kernel's TCP keepalive (dial.go).
//
// Protobuf types stay inside this package: callers see exec and facts types.
package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Name is the transport's name in results.
const Name = "agent"

// Pool holds one gRPC connection per minion. It satisfies exec.Transport.
type Pool struct {
	id *pki.Identity // the master's identity, presented to every minion
	// Heartbeat is the interval at which minions are asked to show they
	// are alive while a command runs; a minion silent for LostAfter then
	// ends its host lost. Minions too old to send heartbeats are not
	// watched (TCP keepalive still ends a connection to a vanished host).
	Heartbeat, LostAfter time.Duration
	// IdleTimeout closes a minion's connection once no call has used it
	// for this long (0: never). An idle gRPC connection costs the master
	// about 60 KiB (two goroutines, TLS and HTTP/2 state); a closed one
	// nothing, and the next call dials again (a TLS handshake, before any
	// request is sent). Health probes (Health) do not keep it open.
	IdleTimeout time.Duration

	// handshakes bounds the TLS handshakes (dials and health probes) in
	// flight at once: a cold exec on thousands of minions queues them
	// instead of starting all together, where under CPU load each would
	// take longer than the connection set-up limit and reachable minions
	// would end unreachable.
	handshakes chan struct{}

	mu         sync.Mutex
	ch         *channel         // the channel all minion connections share (channel.go); nil until the first; protected by mu
	conns      map[string]*conn // by minion id; protected by mu
	stopReaper chan struct{}    // closes to stop the idle reaper; nil when none runs; protected by mu

	// OutputInFlight bounds the output all hosts may send ahead of the
	// master's reading (flow.go), in bytes; 0: DefaultOutputInFlight. Set
	// it before the first Exec.
	OutputInFlight int64
	budgetOnce     sync.Once
	outBudget      *outputBudget // made once by budget
}

var _ exec.Transport = (*Pool)(nil)

// conn is one minion's connection: a SubConn of the pool's channel.
type conn struct {
	id, addr, fingerprint string
	client                felixv1.MinionClient
	sc                    balancer.SubConn
	state                 connectivity.State // protected by Pool.mu
	err                   error              // the last connection error; protected by Pool.mu
	changed               chan struct{}      // closed when state changes; protected by Pool.mu
	active                int                // calls in flight; protected by Pool.mu
	lastUsed              time.Time          // when the last call other than a health probe began or ended; protected by Pool.mu
	noFlow                atomic.Bool        // the minion answered ExecFlow Unimplemented since it last connected
}

// NewPool returns a pool whose connections present id.
func NewPool(id *pki.Identity) *Pool {
	return &Pool{id: id, conns: make(map[string]*conn), Heartbeat: DefaultHeartbeat, LostAfter: DefaultLostAfter,
		handshakes: make(chan struct{}, maxHandshakes)}
}

// maxHandshakes is how many TLS handshakes a pool runs at once. A
// handshake costs the master well under a millisecond of CPU, so 128 at
// once keep two cores busy and cover LAN round trips; more only make each
// wait longer.
const maxHandshakes = 128

// acquire takes a slot of gate, or fails when ctx ends first.
func acquire(ctx context.Context, gate chan struct{}) error {
	select {
	case gate <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a handshake slot: %w", ctx.Err())
	}
}

// Defaults of Pool.Heartbeat and LostAfter: a minion silent for 6 s
// (three heartbeats missed) that then does not answer a Ping within
// probeTimeout is lost — found within 9 s of its last word.
const (
	DefaultHeartbeat = 2 * time.Second
	DefaultLostAfter = 6 * time.Second
	probeTimeout     = 3 * time.Second
)

// Name returns "agent".
func (p *Pool) Name() string { return Name }

// connectTimeout bounds setting up a minion connection: the dial, the
// wait for a handshake slot and the TLS handshake. A command fails
// unreachable (it never ran) past it.
const connectTimeout = 10 * time.Second

// recvWindow is each minion stream's and connection's flow-control window
// (gRPC's smallest).
const recvWindow = 64 << 10

// client returns the minion's connection once it is ready, dialling it
// (lazily) on first use and again when its address or pinned certificate
// changed, or after it was closed or broke. A connection that cannot be
// set up fails with Unavailable: nothing was sent. The caller must call
// release once its call ended: until then the connection is not closed for
// idleness.
func (p *Pool) client(ctx context.Context, t model.Target) (cl felixv1.MinionClient, release func(), err error) {
	return p.use(ctx, t, true)
}

// use is client; touch false (a health probe) leaves the connection's idle
// time running, so probes alone never keep it open.
func (p *Pool) use(ctx context.Context, t model.Target, touch bool) (felixv1.MinionClient, func(), error) {
	c, release, err := p.useConn(ctx, t, touch)
	if err != nil {
		return nil, nil, err
	}
	return c.client, release, nil
}

// useConn is use, returning the connection itself.
func (p *Pool) useConn(ctx context.Context, t model.Target, touch bool) (*conn, func(), error) {
	p.mu.Lock()
	c, old, err := p.connLocked(t)
	if err == nil {
		c.active++
		if touch {
			c.lastUsed = time.Now()
		}
	}
	p.mu.Unlock()
	if old != nil {
		closeSubConn(old)
	}
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	release := func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			c.active--
			if touch {
				c.lastUsed = time.Now()
			}
		})
	}
	if err := p.awaitReady(ctx, t.ID, c); err != nil {
		release()
		if _, isStatus := status.FromError(err); isStatus {
			return nil, nil, rpcError("connect to", t, err, true)
		}
		return nil, nil, err
	}
	return c, release, nil
}

// connLocked returns the minion's connection, making it when there is
// none or it no longer matches t; old is the connection it replaced, for
// the caller to close once it let go of p.mu. The caller holds p.mu.
func (p *Pool) connLocked(t model.Target) (c, old *conn, err error) {
	if c, ok := p.conns[t.ID]; ok {
		if c.addr == t.Addr && c.fingerprint == t.Fingerprint {
			return c, nil, nil
		}
		p.dropLocked(c)
		old = c
	}
	if t.Fingerprint == "" {
		return nil, old, fmt.Errorf("minion %s has no pinned certificate: %w", t.ID, exec.ErrUnreachable)
	}
	if p.ch == nil {
		ch, err := p.openChannel()
		if err != nil {
			return nil, old, fmt.Errorf("dial minion %s at %s: %w", t.ID, t.Addr, errors.Join(err, exec.ErrUnreachable))
		}
		p.ch = ch
	}
	c = &conn{id: t.ID, addr: t.Addr, fingerprint: t.Fingerprint, lastUsed: time.Now()}
	c.client = felixv1.NewMinionClient(minionConn{p.ch.cc, c})
	if err := p.newSubConn(p.ch, c); err != nil {
		return nil, old, fmt.Errorf("dial minion %s at %s: %w", t.ID, t.Addr, errors.Join(err, exec.ErrUnreachable))
	}
	p.conns[t.ID] = c
	if p.IdleTimeout > 0 && p.stopReaper == nil {
		p.stopReaper = make(chan struct{})
		go p.reapIdle(p.IdleTimeout, p.stopReaper)
	}
	return c, old, nil
}

// dropLocked takes c out of the pool for good: calls waiting for it to
// connect fail, new calls get a new connection, and the picker no longer
// hands it out. The caller holds p.mu, and closes c's SubConn
// (closeSubConn) after letting go of it.
func (p *Pool) dropLocked(c *conn) {
	if p.conns[c.id] == c {
		delete(p.conns, c.id)
	}
	if c.state != connectivity.Shutdown {
		c.state = connectivity.Shutdown
		if c.changed != nil {
			close(c.changed)
		}
		c.changed = make(chan struct{})
	}
}

// reapIdle closes, every quarter of idle, the connections no call has used
// for idle, until stop closes. A connection with a call in flight is never
// closed, so no request is cut off: the next call on a closed one dials
// again, and a call that cannot connect fails before its request is sent.
func (p *Pool) reapIdle(idle time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(max(idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var idleConns []*conn
		p.mu.Lock()
		for _, c := range p.conns {
			if c.active == 0 && time.Since(c.lastUsed) >= idle {
				idleConns = append(idleConns, c)
				p.dropLocked(c)
			}
		}
		p.mu.Unlock()
		for _, c := range idleConns {
			closeSubConn(c)
		}
	}
}

// Conns returns how many minion connections the pool holds open.
func (p *Pool) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Forget closes and drops the connection to a minion (deleted or rejected).
func (p *Pool) Forget(id string) {
	p.mu.Lock()
	c, ok := p.conns[id]
	if ok {
		p.dropLocked(c)
	}
	p.mu.Unlock()
	if ok {
		closeSubConn(c)
	}
}

// closeUnused closes c when it is still the pool's and no call uses it.
func (p *Pool) closeUnused(c *conn) {
	p.mu.Lock()
	unused := p.conns[c.id] == c && c.active == 0
	if unused {
		p.dropLocked(c)
	}
	p.mu.Unlock()
	if unused {
		closeSubConn(c)
	}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	ch := p.ch
	p.ch = nil
	for _, c := range p.conns {
		p.dropLocked(c) // calls waiting for a connection fail now
	}
	if p.stopReaper != nil {
		close(p.stopReaper)
		p.stopReaper = nil
	}
	p.mu.Unlock()
	if ch == nil {
		return nil
	}
	// Outside p.mu: closing waits for the balancer, whose SubConn updates
	// take p.mu.
	return ch.cc.Close()
}

// chunkSize is the size of the data messages of file streams (ExecFile,
// PutFile, GetFile). A message with its framing must fit gRPC's 32 KiB
// buffer class: the next class is 1 MiB, which made every stream in
// flight cost the master a megabyte and 3.5 times the memory in
// make bench-files (214 MiB against 66 MiB at 50 targets).
const chunkSize = 32<<10 - 64

// Exec runs cmd on the minion and streams its output to out, over ExecFlow
// (flow.go), or Exec and ExecFile for a minion without it. A command with a
// File is sent with its content, and the minion runs it only once it has
// all of it.
func (p *Pool) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	c, release, err := p.useConn(ctx, t, true)
	if err != nil {
		return model.Exit{}, err
	}
	defer release()
	cl := c.client
	req := &felixv1.ExecRequest{CmdLine: cmd.Line, Env: cmd.Env, Cwd: cmd.Dir, Shell: cmd.Shell}
	if cmd.Timeout > 0 {
		req.Timeout = durationpb.New(cmd.Timeout)
	}
	if p.Heartbeat > 0 && p.LostAfter > 0 {
		req.Heartbeat = durationpb.New(p.Heartbeat)
	}
	if id, ok := JobID(ctx); ok {
		req.JobId = id
	}
	// The watchdog ends the stream through this context when the minion
	// falls silent.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	newWatchdog := func() *watchdog {
		return &watchdog{lostAfter: p.LostAfter, cancel: cancel, probe: func() bool {
			pctx, done := context.WithTimeout(context.Background(), probeTimeout)
			defer done()
			_, err := cl.Ping(pctx, &felixv1.PingRequest{})
			return err == nil
		}}
	}
	if !c.noFlow.Load() {
		exit, err := p.execFlow(ctx, cl, t, req, cmd.File, out, newWatchdog())
		if !errors.Is(err, errNoExecFlow) {
			return exit, err
		}
		c.noFlow.Store(true) // an older minion; nothing ran
	}
	w := newWatchdog()
	if cmd.File != nil {
		return p.execFile(ctx, cl, t, req, cmd.File, out, w)
	}
	// Opening the stream fails fast with Unavailable when no connection to
	// the minion is ready: then the request was never sent. Any failure
	// after that may have run the command, so it is never "unreachable".
	stream, err := cl.Exec(ctx, req)
	if err != nil {
		return model.Exit{}, rpcError("exec on", t, err, true)
	}
	if req.Heartbeat != nil {
		w.arm(0) // Started comes at once from any minion
	}
	return recvEvents(t, stream, out, w, nil)
}

// openFile opens f's content for sending.
func openFile(t model.Target, f *model.File) (io.ReadCloser, error) {
	if f.Open == nil || f.Size < 0 {
		return nil, fmt.Errorf("exec on minion %s: file %s has no content or a negative size", t.ID, f.Name)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("open file %s for minion %s: %w", f.Name, t.ID, err)
	}
	return r, nil
}

// execFile sends req with f's content over an ExecFile stream and then
// reads the events like Exec. The content is read in chunks into one
// buffer, never whole. If it cannot be read completely the stream is
// cancelled before the client closes its side, so the minion, which runs
// the command only after that close, runs nothing.
func (p *Pool) execFile(ctx context.Context, cl felixv1.MinionClient, t model.Target, req *felixv1.ExecRequest, f *model.File, out model.OutputFunc, w *watchdog) (model.Exit, error) {
	r, err := openFile(t, f)
	if err != nil {
		return model.Exit{}, err
	}
	defer r.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// As for Exec, only a stream that could not be opened is "unreachable".
	stream, err := cl.ExecFile(ctx)
	if err != nil {
		return model.Exit{}, rpcError("exec on", t, err, true)
	}
	data := &felixv1.ExecFileRequest_Data{}
	msg := &felixv1.ExecFileRequest{Msg: data}
	sent, err := sendFile(t, f, r, cancel,
		func() error {
			return stream.Send(&felixv1.ExecFileRequest{Msg: &felixv1.ExecFileRequest_Header{
				Header: &felixv1.ExecFileHeader{Exec: req, FileName: f.Name, Size: f.Size}}})
		},
		func(b []byte) error { data.Data = b; return stream.Send(msg) },
		stream.CloseSend)
	if err != nil {
		return model.Exit{}, err
	}
	if sent && req.Heartbeat != nil {
		w.arm(0) // the minion has the content: Started follows once it is on disk
	}
	return recvEvents(t, stream, out, w, nil)
}

// sendFile sends a file command over a stream: its header, f's content
// from r in chunks of chunkSize through data (done with a chunk when it
// returns), then end. A read failure cancels the stream (cancel) before the
// minion can run anything, and is returned, as is a broken stream; sent
// says whether all of it went out. io.EOF (the minion ended the stream
// early) is neither: the stream's events say what happened.
func sendFile(t model.Target, f *model.File, r io.Reader, cancel context.CancelFunc, header func() error, data func([]byte) error, end func() error) (sent bool, err error) {
	sendErr := header()
	if sendErr == nil {
		sendErr = sendChunks(r, f.Size, data) // Send marshals a message before it returns: the chunk is free again
	}
	if sendErr == nil {
		sendErr = end()
	}
	var readErr *fileReadError
	switch {
	case sendErr == nil:
		return true, nil
	case sendErr == io.EOF:
		return false, nil
	case errors.As(sendErr, &readErr):
		cancel() // before anything else: the minion must not run the command
		return false, fmt.Errorf("exec on minion %s: read file %s: %w (the command did not run)", t.ID, f.Name, sendErr)
	default:
		return false, rpcError("exec on", t, sendErr, false)
	}
}

// fileReadError is a failure to read the content to send, as opposed to a
// failure of the stream.
type fileReadError struct{ err error }

func (e *fileReadError) Error() string { return e.err.Error() }
func (e *fileReadError) Unwrap() error { return e.err }

// watchdog ends an Exec stream whose minion falls silent. It is armed
// when the request is sent (a minion answers Started at once, or once it
// has a file's content), kept by a Started that promises heartbeats and
// dropped by one that does not (an older minion: TCP keepalive alone watches
// it), and fed by every event.
type watchdog struct {
	lostAfter time.Duration
	cancel    context.CancelFunc
	// probe, if set, asks the minion whether it is alive when its stream
	// fell silent (a Ping on its connection): a busy master may read a
	// stream late (its flow control then holds the heartbeats back), and a
	// minion that answers is given more time rather than given up.
	probe func() bool
	fired atomic.Bool

	mu    sync.Mutex // protects timer: the probe re-arms it from its own goroutine
	timer *time.Timer
}

// arm starts watching; a minion that promised heartbeats every beat is
// given at least three of them.
func (w *watchdog) arm(beat time.Duration) {
	if w.lostAfter <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lostAfter = max(w.lostAfter, 3*beat)
	if w.timer == nil {
		w.timer = time.AfterFunc(w.lostAfter, w.silent)
		return
	}
	w.timer.Reset(w.lostAfter)
}

// silent runs when the minion said nothing for lostAfter: a minion that
// still answers a probe gets another lostAfter; else the stream ends.
func (w *watchdog) silent() {
	if w.probe != nil && w.probe() {
		w.fed()
		return
	}
	w.fired.Store(true)
	w.cancel()
}

// disarm stops watching for good: the minion sends no heartbeats.
func (w *watchdog) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// fed notes a word from the minion.
func (w *watchdog) fed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Reset(w.lostAfter)
	}
}

func (w *watchdog) stop() { w.disarm() }

// recvEvents reads an Exec, ExecFile or ExecFlow stream to its exit
// status, passing output to out. A minion that promised heartbeats and
// then says nothing for w.lostAfter is given up: exec.ErrLost. fl is the
// flow control of an ExecFlow stream, nil for the others.
func recvEvents(t model.Target, stream interface {
	Recv() (*felixv1.ExecEvent, error)
}, out model.OutputFunc, w *watchdog, fl *flowControl) (model.Exit, error) {
	defer w.stop()
	started := false
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			if started {
				return model.Exit{}, fmt.Errorf("exec on minion %s: stream ended without an exit status (the command started there; how it ended is unknown)", t.ID)
			}
			return model.Exit{}, fmt.Errorf("exec on minion %s: stream ended without an exit status (the minion never confirmed the start; the command may or may not have run)", t.ID)
		}
		if err != nil && w.fired.Load() {
			if !started {
				return model.Exit{}, fmt.Errorf("exec on minion %s: no word from it for %s after the request, and no answer to a ping: the minion hangs "+
					"or cannot be reached; the command may or may not have run: %w", t.ID, w.lostAfter, exec.ErrLost)
			}
			return model.Exit{}, fmt.Errorf("exec on minion %s: no word from it for %s although it promised a heartbeat, and no answer to a ping: "+
				"the minion hangs or cannot be reached; the command may still be running there: %w", t.ID, w.lostAfter, exec.ErrLost)
		}
		if err != nil && fl != nil && !started && status.Code(err) == codes.Unimplemented {
			return model.Exit{}, errNoExecFlow
		}
		w.fed()
		if err != nil {
			code := status.Code(err)
			err = rpcError("exec on", t, err, false)
			switch {
			case started && (code == codes.DeadlineExceeded || code == codes.Canceled):
				// The job's deadline or a cancel: the engine says what it did.
			case started:
				err = fmt.Errorf("%w (the connection broke after the command started: it ran, and may still be running there)", err)
			case code == codes.InvalidArgument || code == codes.ResourceExhausted:
				// The minion refuses a request so before it starts anything.
				err = fmt.Errorf("%w (refused by the minion; the command did not run)", err)
			default:
				err = fmt.Errorf("%w (the minion never confirmed the start; the command may or may not have run)", err)
			}
			return model.Exit{}, err
		}
		switch e := ev.Event.(type) {
		case *felixv1.ExecEvent_Started:
			started = true
			if beat := e.Started.GetHeartbeat().AsDuration(); beat > 0 {
				w.arm(beat)
			} else {
				w.disarm()
			}
		case *felixv1.ExecEvent_Output:
			s := model.Stdout
			if e.Output.Stream == felixv1.Stream_STREAM_STDERR {
				s = model.Stderr
			}
			if fl != nil {
				if err := fl.used(len(e.Output.Data)); err != nil {
					return model.Exit{}, fmt.Errorf("exec on minion %s: %w; the command started there, and ending the stream kills it", t.ID, err)
				}
			}
			out(s, e.Output.Data)
		case *felixv1.ExecEvent_CreditWanted:
			if fl != nil {
				fl.grant(e.CreditWanted.Bytes)
				w.fed() // the wait for room was the master's
			}
		case *felixv1.ExecEvent_Exit:
			x := e.Exit
			exit := model.Exit{Code: int(x.ExitCode), Signal: x.Signal, Duration: x.Duration.AsDuration(), TimedOut: x.TimedOut}
			if x.Error != "" {
				return exit, fmt.Errorf("exec on minion %s: %s", t.ID, x.Error)
			}
			return exit, nil
		}
	}
}

// Ping checks that the minion answers and returns its reported version.
func (p *Pool) Ping(ctx context.Context, t model.Target) (string, error) {
	v, _, err := p.ping(ctx, t)
	return v, err
}

// ping is Ping; when the connection was up but the ping failed it also
// returns that connection.
func (p *Pool) ping(ctx context.Context, t model.Target) (string, *conn, error) {
	c, release, err := p.useConn(ctx, t, true)
	if err != nil {
		return "", nil, err
	}
	defer release()
	resp, err := c.client.Ping(ctx, &felixv1.PingRequest{})
	if err != nil {
		return "", c, rpcError("ping", t, err, true)
	}
	return resp.Version, nil, nil
}

// Facts asks the minion for its facts.
func (p *Pool) Facts(ctx context.Context, t model.Target) (facts.Facts, error) {
	cl, release, err := p.client(ctx, t)
	if err != nil {
		return facts.Facts{}, err
	}
	defer release()
	r, err := cl.Facts(ctx, &felixv1.FactsRequest{})
	if err != nil {
		return facts.Facts{}, rpcError("facts of", t, err, true)
	}
	return facts.Facts{Hostname: r.Hostname, OSName: r.OsName, OSVersion: r.OsVersion, OSPretty: r.OsPretty,
		Kernel: r.Kernel, Arch: r.Arch, CPUs: int(r.Cpus), MemoryBytes: r.MemoryBytes, IPs: r.Ips,
		UptimeSeconds: r.UptimeSeconds}, nil
}

// rpcError names the operation and maps gRPC codes onto exec's sentinels in
// one place. Unavailable means unreachable only when notSent: the call failed
// before its request could go out.
func rpcError(op string, t model.Target, err error, notSent bool) error {
	st, _ := status.FromError(err)
	if st.Code() == codes.Unavailable && notSent {
		return fmt.Errorf("%s minion %s at %s: %s: %w", op, t.ID, t.Addr, st.Message(), exec.ErrUnreachable)
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s minion %s: %w", op, t.ID, context.DeadlineExceeded)
	case codes.Canceled:
		return fmt.Errorf("%s minion %s: %w", op, t.ID, context.Canceled)
	}
	return fmt.Errorf("%s minion %s: %s", op, t.ID, st.Message())
}

type jobIDKey struct{}

// WithJobID attaches a job id to ctx; Exec passes it to the minion for its logs.
func WithJobID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, jobIDKey{}, id)
}

// JobID returns the job id attached by WithJobID.
func JobID(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(jobIDKey{}).(string)
	return id, ok
}

// Health tells whether the minion answers. With IdleTimeout 0 (connections
// stay open) it is Ping, which opens the connection the next command will
// use. Otherwise it keeps no connection open for the minion: over the
// pool's connection when one is ready it is a Ping,
// which does not count as use (probes alone let an idle connection close).
// Otherwise it is a probe that dials, completes the mutual-TLS handshake
// (both pins checked), sends the HTTP/2 preface and reads the minion's
// first frame (its SETTINGS; a refused master certificate is an alert
// here), then hangs up: no gRPC connection, goroutine or buffer stays
// behind. Either way the error wraps exec.ErrUnreachable.
func (p *Pool) Health(ctx context.Context, t model.Target) error {
	if p.IdleTimeout <= 0 {
		// Connections stay open: health opens (and so warms) the one the
		// next command uses, and pings over it.
		_, c, err := p.ping(ctx, t)
		if c != nil {
			// The connection is up but the minion did not answer: it
			// hangs, or the network dropped it without the kernel
			// noticing yet. Closed when no call uses it, so the next
			// command dials again and fails cleanly (unreachable, nothing
			// sent) rather than waiting on a stream that never answers.
			// A connection still being set up (no c) goes on for the next
			// check and command.
			p.closeUnused(c)
		}
		if err != nil && !errors.Is(err, exec.ErrUnreachable) {
			err = errors.Join(err, exec.ErrUnreachable)
		}
		return err
	}
	if cl, release, ok := p.ready(ctx, t); ok {
		defer release()
		if _, err := cl.Ping(ctx, &felixv1.PingRequest{}); err != nil {
			st, _ := status.FromError(err)
			return fmt.Errorf("ping minion %s at %s: %s: %w", t.ID, t.Addr, st.Message(), exec.ErrUnreachable)
		}
		return nil
	}
	if err := p.probe(ctx, t); err != nil {
		return fmt.Errorf("probe minion %s at %s: %w", t.ID, t.Addr, errors.Join(err, exec.ErrUnreachable))
	}
	return nil
}

// ready returns the minion's connection when the pool holds one for t that
// is connected, marked in use without counting as use.
func (p *Pool) ready(ctx context.Context, t model.Target) (felixv1.MinionClient, func(), bool) {
	p.mu.Lock()
	c, ok := p.conns[t.ID]
	ok = ok && c.addr == t.Addr && c.fingerprint == t.Fingerprint && c.state == connectivity.Ready
	p.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	cl, release, err := p.use(ctx, t, false)
	return cl, release, err == nil
}

// h2Hello is an HTTP/2 client's first bytes: the connection preface and an
// empty SETTINGS frame.
var h2Hello = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")

// probe dials t, shakes hands with the pinned mutual-TLS configuration of
// a connection and reads the server's first HTTP/2 frame, which must be
// SETTINGS.
func (p *Pool) probe(ctx context.Context, t model.Target) error {
	if t.Fingerprint == "" {
		return errors.New("no pinned certificate")
	}
	if err := acquire(ctx, p.handshakes); err != nil {
		return err
	}
	defer func() { <-p.handshakes }()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	// The context bounds the whole exchange, not only the dial.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	cfg := pki.ClientConfig(p.id, t.Fingerprint)
	cfg.NextProtos = []string{"h2"}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	if _, err := tc.Write(h2Hello); err != nil {
		return fmt.Errorf("send the HTTP/2 preface: %w", err)
	}
	var hdr [9]byte // length (3), type, flags, stream id (4)
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("read the first HTTP/2 frame: %w", ctx.Err())
		}
		return fmt.Errorf("read the first HTTP/2 frame: %w", err)
	}
	if hdr[3] != 0x4 {
		return fmt.Errorf("the first HTTP/2 frame is of type %d, not SETTINGS", hdr[3])
	}
	return nil
}
