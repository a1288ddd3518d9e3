package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/pki"
)

// The pool's minions share one gRPC channel (a ClientConn). Each minion is
// a SubConn of it: one HTTP/2 connection with its reader and writer
// goroutines, while the channel's resolver, balancer and state machinery
// exist once. A ClientConn per minion cost three goroutines and ~15 KiB
// of heap more per minion, for state that is the same for all of them.
//
// The channel's balancer (minionBalancer) creates no SubConn by itself:
// the pool asks it for one when a minion is first used (Pool.connLocked),
// waits until it is ready or has failed (Pool.use), and only then starts
// the call, whose context names the minion (minionConn); the picker hands
// that minion's SubConn to the call, or fails it at once with Unavailable
// when it is not ready (the request was not sent). Each SubConn dials its
// minion with that minion's pinned fingerprint, carried in the address's
// attributes to the handshake (pinnedCreds).

// balancerName names minionBalancer in the channel's service config.
const balancerName = "felix_minions"

func init() { balancer.Register(minionBalancerBuilder{}) }

// channelKey carries the channel in the resolver state, to its balancer.
type channelKey struct{}

// fingerprintKey carries a minion's pinned fingerprint in its address.
type fingerprintKey struct{}

// connKey carries a call's minion connection in its context, to the picker.
type connKey struct{}

// channel is the pool's gRPC channel and its balancer's side, set once
// the balancer starts. Each channel the pool opens has its own: a closed
// one's balancer can never serve a new one.
type channel struct {
	p        *Pool
	cc       *grpc.ClientConn
	attached chan struct{} // closed once bcc is set

	mu  sync.Mutex
	bcc balancer.ClientConn // protected by mu
}

// openChannel creates the pool's channel and waits until its balancer is
// attached. The caller holds p.mu.
func (p *Pool) openChannel() (*channel, error) {
	ch := &channel{p: p, attached: make(chan struct{})}
	r := manual.NewBuilderWithScheme("felix-minions")
	r.InitialState(resolver.State{Attributes: attributes.New(channelKey{}, ch)})
	cc, err := grpc.NewClient("felix-minions:///minions",
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+balancerName+`":{}}]}`),
		// The channel never goes idle as a whole: that would drop every
		// minion's connection at once. Idle minions are the pool's affair
		// (Pool.IdleTimeout).
		grpc.WithIdleTimeout(0),
		grpc.WithTransportCredentials(pinnedCreds{id: p.id, gate: p.handshakes}),
		// No gRPC keepalive: the kernel watches the connections (dial.go).
		grpc.WithContextDialer(dialMinion),
		// Thousands of mostly idle connections: each gives its write buffer
		// back after a flush, and reads straight from TLS, which buffers
		// the records it decrypts anyway.
		grpc.WithSharedWriteBuffer(true),
		grpc.WithReadBufferSize(0),
		// A write buffer of 8 KiB, not 32: while thousands of hosts print,
		// every connection writes window updates at once, each borrowing a
		// buffer (~40 MiB at 2,000 minions with 32 KiB).
		grpc.WithWriteBufferSize(8<<10),
		// Frames are read into buffers of a pool that keeps a few MiB free,
		// not every buffer of the last two garbage collections (bufpool.go).
		experimental.WithBufferPool(newBoundedPool()),
		// What a minion may send ahead of the master's reading, per stream
		// and per connection: fixed (gRPC would otherwise grow it up to
		// 16 MiB by bandwidth estimation), so 2,000 hosts printing at once
		// buffer about 128 MiB in the master, not gigabytes. 64 KiB a round
		// trip is 300 MB/s on a LAN, 1.3 MB/s over 50 ms (a fetch's speed).
		grpc.WithInitialWindowSize(recvWindow),
		grpc.WithInitialConnWindowSize(recvWindow),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			// Dial, the wait for a handshake slot and the handshake.
			MinConnectTimeout: connectTimeout,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("create the minion channel: %w", err)
	}
	ch.cc = cc
	cc.Connect()
	select {
	case <-ch.attached:
	case <-time.After(connectTimeout):
		cc.Close()
		return nil, errors.New("create the minion channel: its balancer did not start")
	}
	return ch, nil
}

// attach is called by the channel's balancer with the balancer's side of
// the channel; the first call counts.
func (ch *channel) attach(bcc balancer.ClientConn) {
	ch.mu.Lock()
	if ch.bcc != nil {
		ch.mu.Unlock()
		return
	}
	ch.bcc = bcc
	close(ch.attached)
	ch.mu.Unlock()
	ch.publish()
}

// publish gives the channel a fresh picker: calls that picked a connection
// just as it broke pick again (and fail fast).
func (ch *channel) publish() {
	ch.mu.Lock()
	bcc := ch.bcc
	ch.mu.Unlock()
	if bcc != nil {
		bcc.UpdateState(balancer.State{ConnectivityState: connectivity.Ready, Picker: picker{ch.p}})
	}
}

// newSubConn creates the minion connection c's SubConn on channel ch.
// The caller holds p.mu.
func (p *Pool) newSubConn(ch *channel, c *conn) error {
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		host = c.addr
	}
	addr := resolver.Address{Addr: c.addr, ServerName: host, Attributes: attributes.New(fingerprintKey{}, c.fingerprint)}
	ch.mu.Lock()
	bcc := ch.bcc
	ch.mu.Unlock()
	sc, err := bcc.NewSubConn([]resolver.Address{addr}, balancer.NewSubConnOptions{
		StateListener: func(s balancer.SubConnState) { p.subConnState(ch, c, s) },
	})
	if err != nil {
		return err
	}
	c.sc = sc
	c.state = connectivity.Idle
	c.changed = make(chan struct{})
	return nil
}

// subConnState records a SubConn's new state, wakes the calls waiting for
// it, and gives the channel a fresh picker so that a call that picked the
// connection just as it broke picks again (and fails fast).
func (p *Pool) subConnState(ch *channel, c *conn, s balancer.SubConnState) {
	p.mu.Lock()
	if c.state == connectivity.Shutdown { // closed by the pool: final
		p.mu.Unlock()
		return
	}
	if s.ConnectivityState == connectivity.Ready && c.state != connectivity.Ready {
		c.noFlow.Store(false) // a new connection: maybe an upgraded minion
	}
	c.state = s.ConnectivityState
	if s.ConnectionError != nil {
		c.err = s.ConnectionError
	}
	close(c.changed)
	c.changed = make(chan struct{})
	p.mu.Unlock()
	if s.ConnectivityState == connectivity.Ready || s.ConnectivityState == connectivity.Connecting {
		return // nothing picked it while it was not ready
	}
	ch.publish()
}

// awaitReady waits until c is ready, starting a connection when it is
// idle. A connection that failed fails the call at once (the channel
// retries it after a backoff and then waits for the next call), so a
// minion that is down costs a call nothing: nothing was sent.
func (p *Pool) awaitReady(ctx context.Context, id string, c *conn) error {
	for {
		p.mu.Lock()
		state, changed, lastErr := c.state, c.changed, c.err
		if state == connectivity.Idle && c.sc != nil {
			c.sc.Connect()
		}
		p.mu.Unlock()
		switch state {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure:
			if lastErr == nil {
				lastErr = errors.New("connection failed")
			}
			return status.Error(codes.Unavailable, lastErr.Error())
		case connectivity.Shutdown:
			return status.Error(codes.Unavailable, "connection closed")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("connect to minion %s: %w", id, ctx.Err())
		}
	}
}

// minionConn is the channel as the client of one minion connection: every
// call carries that connection to the picker, so it goes out over it — to
// the address and pin it was made for — or not at all.
type minionConn struct {
	cc *grpc.ClientConn
	c  *conn
}

func (m minionConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return m.cc.Invoke(context.WithValue(ctx, connKey{}, m.c), method, args, reply, opts...)
}

func (m minionConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return m.cc.NewStream(context.WithValue(ctx, connKey{}, m.c), desc, method, opts...)
}

// picker gives a call its connection's SubConn when that connection is
// still the pool's for its minion and ready.
type picker struct{ p *Pool }

func (pk picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	c, _ := info.Ctx.Value(connKey{}).(*conn)
	if c == nil {
		return balancer.PickResult{}, status.Error(codes.Unavailable, "a call without a minion connection")
	}
	pk.p.mu.Lock()
	ready := pk.p.conns[c.id] == c && c.sc != nil && c.state == connectivity.Ready
	pk.p.mu.Unlock()
	if !ready {
		return balancer.PickResult{}, status.Errorf(codes.Unavailable, "no connection to minion %s", c.id)
	}
	return balancer.PickResult{SubConn: c.sc}, nil
}

// minionBalancer is the channel's balancer: it hands the pool its side of
// the channel, and the pool makes the SubConns.
type minionBalancerBuilder struct{}

func (minionBalancerBuilder) Name() string { return balancerName }

func (minionBalancerBuilder) Build(cc balancer.ClientConn, _ balancer.BuildOptions) balancer.Balancer {
	return &minionBalancer{cc: cc}
}

type minionBalancer struct{ cc balancer.ClientConn }

func (b *minionBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	ch, ok := s.ResolverState.Attributes.Value(channelKey{}).(*channel)
	if !ok {
		return balancer.ErrBadResolverState
	}
	ch.attach(b.cc)
	return nil
}

func (b *minionBalancer) ResolverError(error) {}

func (b *minionBalancer) UpdateSubConnState(balancer.SubConn, balancer.SubConnState) {}

func (b *minionBalancer) Close() {}

func (b *minionBalancer) ExitIdle() {}

// pinnedCreds is TLS with the pin of the minion being dialled, taken from
// its address, and each client handshake run in one of the gate's slots
// (waiting for a slot counts towards the connection's set-up limit, like
// the handshake).
type pinnedCreds struct {
	id   *pki.Identity
	gate chan struct{}
}

func (c pinnedCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	fp, _ := credentials.ClientHandshakeInfoFromContext(ctx).Attributes.Value(fingerprintKey{}).(string)
	if fp == "" {
		return nil, nil, errors.New("no pinned certificate for this address")
	}
	if err := acquire(ctx, c.gate); err != nil {
		return nil, nil, err
	}
	defer func() { <-c.gate }()
	return credentials.NewTLS(pki.ClientConfig(c.id, fp)).ClientHandshake(ctx, authority, raw)
}

func (c pinnedCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("the minion channel is a client only")
}

func (c pinnedCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c pinnedCreds) Clone() credentials.TransportCredentials { return c }

func (c pinnedCreds) OverrideServerName(string) error { return nil }

// closeSubConn shuts c's SubConn down (its calls end), outside p.mu.
func closeSubConn(c *conn) {
	if c.sc != nil {
		c.sc.Shutdown()
	}
}
