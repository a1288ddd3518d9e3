package minion

import (
	"errors"
	"math/rand/v2"
	"time"
)

// retryAfterError is a registration the master refused for now (429 or
// 503) with a Retry-After: the minion waits that long, plus up to as long
// again drawn at random, so the refused spread out instead of coming back
// in the same second.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// wait is after plus a random share of it.
func (e retryAfterError) wait() time.Duration {
	return e.after + time.Duration(rand.Int64N(int64(e.after)+1))
}

// retryWait is how long to wait before registration attempt+1 after err:
// the minion's own backoff (1 s doubling to 1 min, full jitter), and at
// least what a master that refused it for now asked for. A refused minion
// keeps backing off: when a whole fleet retries at once, the master's
// Retry-After alone would bring every one of them back within seconds.
func retryWait(err error, attempt int) time.Duration {
	wait := registerBackoff.Duration(attempt)
	var busy retryAfterError
	if errors.As(err, &busy) {
		wait = max(wait, busy.wait())
	}
	return wait
}
