package api

import (
	"math/rand/v2"
	"sync"
	"time"
)

// retrySpread picks the Retry-After of refused registrations. A fleet that
// reconnects at once (a master back after an outage, 10,000 minions
// retrying) must come back no faster than the master registers them: each
// refused attempt costs the master a TLS handshake, nearly what a
// registration costs, so refusals that return every few seconds take the
// CPU the registrations need (measured: 10,000 minions told 1–5 s, 192,511
// refusals and 3,722 registrations in 10 minutes). The spread adapts each
// second: refusals outnumbering admissions double it (up to maxRegisterRetrySpread),
// a second without refusals halves it (down to registerRetrySpread), so the refused
// come back at about the rate the master admits them.
type retrySpread struct {
	mu                sync.Mutex
	spread            int // seconds; Retry-After is drawn from 1 to spread
	refused, admitted int // in the current second
	second            time.Time
	now               func() time.Time
}

func newRetrySpread() *retrySpread {
	return &retrySpread{spread: registerRetrySpread, now: time.Now}
}

// maxRegisterRetrySpread is the largest spread (seconds) refused
// registrations are told to wait within.
const maxRegisterRetrySpread = 120

// tick starts a new second when one passed, adapting the spread to the
// last one. The caller holds r.mu.
func (r *retrySpread) tick() {
	now := r.now()
	if now.Sub(r.second) < time.Second {
		return
	}
	switch {
	case r.refused > r.admitted:
		r.spread = min(2*r.spread, maxRegisterRetrySpread)
	case r.refused == 0:
		r.spread = max(r.spread/2, registerRetrySpread)
	}
	// The seconds after it in which nothing came were quiet too.
	for quiet := now.Sub(r.second)/time.Second - 1; quiet > 0 && r.spread > registerRetrySpread; quiet-- {
		r.spread = max(r.spread/2, registerRetrySpread)
	}
	r.refused, r.admitted, r.second = 0, 0, now
}

// admit counts an admitted registration.
func (r *retrySpread) admit() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick()
	r.admitted++
}

// refuse counts a refusal and returns its Retry-After in seconds.
func (r *retrySpread) refuse() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tick()
	r.refused++
	return 1 + rand.IntN(r.spread)
}
