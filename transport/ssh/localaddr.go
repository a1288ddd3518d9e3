package ssh

import (
	"context"
	"net"

	"github.com/felix-ops/felix/model"
)

// LocalAddr returns this end's address of the SSH connection to t,
// dialling it if need be: the address the host sees the master come from,
// and so one it can reach the master at (bootstrap derives the master URL
// from it when none is configured). Through a tunnel the address may be
// unspecified; the caller decides what to do then.
func (p *Pool) LocalAddr(ctx context.Context, t model.Target) (net.Addr, error) {
	s, err := p.spec(t)
	if err != nil {
		return nil, err
	}
	c, err := p.acquire(ctx, s, false)
	if err != nil {
		return nil, err
	}
	defer p.release(c)
	p.mu.Lock()
	client := c.client
	p.mu.Unlock()
	return client.LocalAddr(), nil
}
