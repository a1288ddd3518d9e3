package master

import (
	"context"
	"sync"
	"time"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// soonParallel bounds the pings of one round of healthSoonLoop: a fleet
// registering at once is checked a few dozen at a time.
const soonParallel = 64

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

// healthSoonLoop checks the minions checkSoon queued, in rounds, until ctx
// ends.
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
		m.checkNow(ctx, ids)
	}
}

// checkNow pings the accepted minions among ids and records their health.
func (m *Master) checkNow(ctx context.Context, ids map[string]struct{}) {
	var (
		mu  sync.Mutex
		ups []inventory.HealthUpdate
		wg  sync.WaitGroup
		sem = make(chan struct{}, soonParallel)
	)
	for id := range ids {
		mn, err := m.store.Minion(ctx, id)
		if err != nil || mn.State != model.KeyAccepted {
			continue // deleted or rejected meanwhile
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, m.cfg.Health.Timeout.Duration)
			defer cancel()
			u := inventory.HealthUpdate{ID: mn.ID, Health: model.HealthOK, Seen: time.Now()}
			if _, err := m.pool.Ping(pctx, model.Target{ID: mn.ID, Addr: mn.Addr, Fingerprint: mn.Fingerprint}); err != nil {
				u = inventory.HealthUpdate{ID: mn.ID, Health: model.HealthUnreachable}
				if ctx.Err() == nil {
					m.log.Warn("minion unreachable right after it was accepted or registered", "id", mn.ID, "addr", mn.Addr, "err", err)
				}
			}
			mu.Lock()
			ups = append(ups, u)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	if err := m.store.UpdateHealth(ctx, ups); err != nil {
		m.log.Warn("health check after accept: store", "err", err)
	}
}
