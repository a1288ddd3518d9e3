package agent

import (
	"context"
	"net"
	"syscall"
	"time"
)

// The master's minion connections are watched by the kernel, not by gRPC
// keepalive pings: TCP keepalive probes on an idle connection and a
// limit on unacknowledged data (TCP_USER_TIMEOUT, Linux) on a busy one
// end a connection whose minion host is gone or cut off within about
// half a minute. Probes are answered by the minion's kernel, so a minion
// process that is slow to run (a loaded host) is not mistaken for a dead
// one — gRPC's pings had to be answered by the process within 10 s and
// cut every command on a connection that missed one — and no goroutine
// per connection waits to send them. A minion that hangs is found by the
// heartbeats of the commands it runs (Heartbeat, LostAfter) and by the
// health checks, which close a connection whose ping got no answer
// (Pool.Health).
const (
	tcpKeepIdle     = 15 * time.Second // idle before the first probe
	tcpKeepInterval = 5 * time.Second  // between probes
	tcpKeepCount    = 3                // probes unanswered before the connection ends
	tcpUserTimeout  = 30 * time.Second // data unacknowledged before the connection ends
)

// dialMinion is the channel's dialer: plain TCP (never a proxy), with the
// kernel's liveness checks above.
func dialMinion(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: tcpKeepIdle, Interval: tcpKeepInterval, Count: tcpKeepCount},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setUserTimeout(fd, tcpUserTimeout) }); err != nil {
				return err
			}
			return serr
		},
	}
	return d.DialContext(ctx, "tcp", addr)
}
