// Package agent is the agent transport: gRPC with mutual TLS between the
// master (client) and minions (server). Each side trusts exactly one pinned
// certificate fingerprint; there is no CA. The client keeps one long-lived
// connection per minion, reused across jobs, with keepalive.
//
// Protobuf types stay inside this package: callers see exec and facts types.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/pki"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Name is the transport's name in results.
const Name = "agent"

// Pool holds one gRPC connection per minion. It satisfies exec.Transport.
type Pool struct {
	id *pki.Identity // the master's identity, presented to every minion

	mu    sync.Mutex
	conns map[string]*conn // by minion id; protected by mu
}

var _ exec.Transport = (*Pool)(nil)

type conn struct {
	addr, fingerprint string
	cc                *grpc.ClientConn
	client            felixv1.MinionClient
}

// NewPool returns a pool whose connections present id.
func NewPool(id *pki.Identity) *Pool {
	return &Pool{id: id, conns: make(map[string]*conn)}
}

// Name returns "agent".
func (p *Pool) Name() string { return Name }

// client returns the minion's connection, dialling it (lazily) on first use
// and again when its address or pinned certificate changed.
func (p *Pool) client(t exec.Target) (felixv1.MinionClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[t.ID]; ok {
		if c.addr == t.Addr && c.fingerprint == t.Fingerprint {
			return c.client, nil
		}
		c.cc.Close()
		delete(p.conns, t.ID)
	}
	if t.Fingerprint == "" {
		return nil, fmt.Errorf("minion %s has no pinned certificate: %w", t.ID, exec.ErrUnreachable)
	}
	cc, err := grpc.NewClient("passthrough:///"+t.Addr,
		grpc.WithTransportCredentials(credentials.NewTLS(pki.ClientConfig(p.id, t.Fingerprint))),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("dial minion %s at %s: %w", t.ID, t.Addr, errors.Join(err, exec.ErrUnreachable))
	}
	c := &conn{addr: t.Addr, fingerprint: t.Fingerprint, cc: cc, client: felixv1.NewMinionClient(cc)}
	p.conns[t.ID] = c
	return c.client, nil
}

// Forget closes and drops the connection to a minion (deleted or rejected).
func (p *Pool) Forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[id]; ok {
		c.cc.Close()
		delete(p.conns, id)
	}
}

// Close closes every connection.
func (p *Pool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for id, c := range p.conns {
		errs = append(errs, c.cc.Close())
		delete(p.conns, id)
	}
	return errors.Join(errs...)
}

// Exec runs cmd on the minion and streams its output to out.
func (p *Pool) Exec(ctx context.Context, t exec.Target, cmd exec.Command, out exec.OutputFunc) (exec.Exit, error) {
	cl, err := p.client(t)
	if err != nil {
		return exec.Exit{}, err
	}
	req := &felixv1.ExecRequest{CmdLine: cmd.Line, Env: cmd.Env, Cwd: cmd.Dir}
	if cmd.Timeout > 0 {
		req.Timeout = durationpb.New(cmd.Timeout)
	}
	if id, ok := JobID(ctx); ok {
		req.JobId = id
	}
	// Opening the stream fails fast with Unavailable when no connection to
	// the minion is ready: then the request was never sent. Any failure
	// after that may have run the command, so it is never "unreachable".
	stream, err := cl.Exec(ctx, req)
	if err != nil {
		return exec.Exit{}, rpcError("exec on", t, err, true)
	}
	started := false
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return exec.Exit{}, fmt.Errorf("exec on minion %s: stream ended without an exit status", t.ID)
		}
		if err != nil {
			err = rpcError("exec on", t, err, false)
			if !started {
				err = fmt.Errorf("%w (the minion never confirmed the start; the command may or may not have run)", err)
			}
			return exec.Exit{}, err
		}
		switch e := ev.Event.(type) {
		case *felixv1.ExecEvent_Started:
			started = true
		case *felixv1.ExecEvent_Output:
			s := exec.Stdout
			if e.Output.Stream == felixv1.Stream_STREAM_STDERR {
				s = exec.Stderr
			}
			out(s, e.Output.Data)
		case *felixv1.ExecEvent_Exit:
			x := e.Exit
			exit := exec.Exit{Code: int(x.ExitCode), Signal: x.Signal, Duration: x.Duration.AsDuration(), TimedOut: x.TimedOut}
			if x.Error != "" {
				return exit, fmt.Errorf("exec on minion %s: %s", t.ID, x.Error)
			}
			return exit, nil
		}
	}
}

// Ping checks that the minion answers and returns its reported version.
func (p *Pool) Ping(ctx context.Context, t exec.Target) (string, error) {
	cl, err := p.client(t)
	if err != nil {
		return "", err
	}
	resp, err := cl.Ping(ctx, &felixv1.PingRequest{})
	if err != nil {
		return "", rpcError("ping", t, err, true)
	}
	return resp.Version, nil
}

// Facts asks the minion for its facts.
func (p *Pool) Facts(ctx context.Context, t exec.Target) (facts.Facts, error) {
	cl, err := p.client(t)
	if err != nil {
		return facts.Facts{}, err
	}
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
func rpcError(op string, t exec.Target, err error, notSent bool) error {
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
