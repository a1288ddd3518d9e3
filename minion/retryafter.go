package minion

import (
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
