package agent

import "google.golang.org/grpc/connectivity"

// Connected is how many minions the pool holds a ready connection to
// (dialled lazily: a minion never asked anything since the master started
// is not counted).
func (p *Pool) Connected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if c.state == connectivity.Ready {
			n++
		}
	}
	return n
}
