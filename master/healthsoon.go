package master

import (
	"context"
	"sync"

	"github.com/felix-ops/felix/inventory"
)

// healthSoon is the queue of minions to check at once, outside the health
// loop's rounds: accepted ones, and accepted ones that registered (again),
// so their health and last seen are known within seconds rather than at
// the next round (health.interval, 30 s by default).
type healthSoon struct {
	mu   sync.Mutex
	ids  map[string]struct{} // queued; protected by mu
	kick chan struct{}       // told (without blocking) when ids gains one
}

func newHealthSoon() *healthSoon {
	return &healthSoon{ids: map[string]struct{}{}, kick: make(chan struct{}, 1)}
}

// checkSoon queues minion id for a health check at once (api.Server's
// CheckHealth). A minion not accepted when its turn comes is skipped.
func (m *Master) checkSoon(id string) {
	m.soon.mu.Lock()
	m.soon.ids[id] = struct{}{}
	m.soon.mu.Unlock()
	select {
	case m.soon.kick <- struct{}{}:
	default:
	}
}

// healthSoonLoop checks the minions checkSoon queued, in rounds (all those
// queued meanwhile together), until ctx ends.
func (m *Master) healthSoonLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.soon.kick:
		}
		m.soon.mu.Lock()
		ids := m.soon.ids
		m.soon.ids = map[string]struct{}{}
		m.soon.mu.Unlock()
		var ms []inventory.Minion
		for id := range ids {
			if mn, err := m.store.Minion(ctx, id); err == nil {
				ms = append(ms, mn) // deleted meanwhile: nothing to check
			}
		}
		m.pingMinions(ctx, ms) // as the health loop does: accepted ones only
	}
}
