// Package backoff computes the waits between retries: exponential, capped,
// with jitter so that many clients failing together do not retry together.
// It only computes durations; callers sleep (or schedule) as suits them.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Jitter says how a wait is drawn around an attempt's ceiling.
type Jitter int

const (
	// Full draws the wait uniformly from (0, ceiling]: the spread AWS's
	// "Exponential Backoff And Jitter" recommends for many clients.
	Full Jitter = iota
	// None waits exactly the ceiling.
	None
	// Spread draws the wait uniformly from [ceiling/2, ceiling·3/2): never
	// much sooner than the ceiling, yet spread out.
	Spread
)

// Policy is an exponential backoff: the ceiling of the n-th attempt's wait
// (n from 1) is Base·2^(n-1), at most Cap; Jitter draws the wait from it.
type Policy struct {
	Base   time.Duration // the first ceiling; must be positive
	Cap    time.Duration // the largest ceiling; below Base means Base
	Jitter Jitter
}

// Ceiling is the wait after the attempt-th failure before jitter:
// Base·2^(attempt-1), at most Cap. An attempt below 1 counts as 1.
func (p Policy) Ceiling(attempt int) time.Duration {
	limit := max(p.Cap, p.Base)
	d := p.Base
	for i := 1; i < attempt && d < limit; i++ {
		if d > limit/2 {
			return limit // doubling would pass the limit (or overflow)
		}
		d *= 2
	}
	return d
}

// Duration is the wait after the attempt-th failure: Ceiling(attempt)
// with the policy's jitter.
func (p Policy) Duration(attempt int) time.Duration {
	return p.draw(attempt, rand.Int64N)
}

// draw is Duration with the random source given (tests pin it); int64n
// returns a number in [0, n).
func (p Policy) draw(attempt int, int64n func(n int64) int64) time.Duration {
	c := p.Ceiling(attempt)
	if c <= 0 {
		return 0
	}
	switch p.Jitter {
	case None:
		return c
	case Spread:
		return c/2 + time.Duration(int64n(int64(c)))
	default:
		return time.Duration(int64n(int64(c))) + 1
	}
}
