package api

import (
	"testing"
	"time"
)

// TestRetrySpread: refusals outnumbering registrations in a second double
// the Retry-After spread, up to its maximum; a second without refusals
// halves it, down to its minimum; every Retry-After is within 1..spread.
func TestRetrySpread(t *testing.T) {
	clock := time.Unix(1000, 0)
	r := newRetrySpread()
	r.now = func() time.Time { return clock }
	second := func(refused, admitted int) (lo, hi int) {
		t.Helper()
		clock = clock.Add(time.Second)
		lo, hi = 1<<30, 0
		for range admitted {
			r.admit()
		}
		for range refused {
			ra := r.refuse()
			lo, hi = min(lo, ra), max(hi, ra)
		}
		return lo, hi
	}
	steps := []struct {
		refused, admitted int
		spread            int // in force during the second
	}{
		{0, 0, registerRetrySpread},
		{500, 100, registerRetrySpread},
		{500, 100, 2 * registerRetrySpread}, // grown from the second before
		{500, 100, 4 * registerRetrySpread},
		{50, 100, 8 * registerRetrySpread},
		{0, 100, 8 * registerRetrySpread}, // refusals fewer than admissions: kept
		{0, 100, 4 * registerRetrySpread}, // halved after a second without refusals
	}
	for i, s := range steps {
		lo, hi := second(s.refused, s.admitted)
		if r.spread != s.spread {
			t.Fatalf("step %d: spread %d; want %d", i, r.spread, s.spread)
		}
		if s.refused > 0 && (lo < 1 || hi > s.spread) {
			t.Errorf("step %d: Retry-After from %d to %d; want within 1..%d", i, lo, hi, s.spread)
		}
	}
	for range 20 {
		second(1000, 1)
	}
	if r.spread != maxRegisterRetrySpread {
		t.Errorf("after a long storm the spread is %d; want the maximum %d", r.spread, maxRegisterRetrySpread)
	}
	clock = clock.Add(20 * time.Second) // quiet
	second(1, 0)
	if r.spread != registerRetrySpread {
		t.Errorf("after a quiet time the spread is %d; want the minimum %d", r.spread, registerRetrySpread)
	}
}
