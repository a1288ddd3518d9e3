package backoff

import (
	"testing"
	"time"
)

func TestCeiling(t *testing.T) {
	notify := Policy{Base: time.Second, Cap: 10 * time.Minute}
	minion := Policy{Base: time.Second, Cap: time.Minute, Jitter: Spread}
	tests := []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"first attempt is base", notify, 1, time.Second},
		{"attempt 0 counts as 1", notify, 0, time.Second},
		{"negative attempt counts as 1", notify, -3, time.Second},
		{"doubles", notify, 2, 2 * time.Second},
		{"doubles again", notify, 4, 8 * time.Second},
		{"just under the cap", notify, 10, 512 * time.Second},
		{"capped", notify, 11, 10 * time.Minute},
		{"stays capped", notify, 1000, 10 * time.Minute},
		{"huge attempt does not overflow", Policy{Base: time.Nanosecond, Cap: 1<<63 - 1}, 1 << 30, 1<<63 - 1},
		{"minion 1s doubling", minion, 3, 4 * time.Second},
		{"minion capped at 1 min", minion, 7, time.Minute},
		{"cap below base means base", Policy{Base: time.Second, Cap: time.Millisecond}, 5, time.Second},
		{"no cap means base", Policy{Base: 500 * time.Millisecond}, 3, 500 * time.Millisecond},
		{"zero policy", Policy{}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Ceiling(tt.attempt); got != tt.want {
				t.Errorf("Ceiling(%d) = %v; want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestDraw(t *testing.T) {
	low := func(int64) int64 { return 0 }
	high := func(n int64) int64 { return n - 1 }
	p := Policy{Base: time.Second, Cap: time.Minute}
	tests := []struct {
		name    string
		jitter  Jitter
		attempt int
		rnd     func(int64) int64
		want    time.Duration
	}{
		{"full, lowest draw is above 0", Full, 1, low, 1},
		{"full, highest draw is the ceiling", Full, 1, high, time.Second},
		{"full, capped ceiling", Full, 20, high, time.Minute},
		{"none ignores the draw", None, 3, low, 4 * time.Second},
		{"spread, lowest draw is half the ceiling", Spread, 2, low, time.Second},
		{"spread, highest draw is under 1.5 ceilings", Spread, 2, high, 3*time.Second - 1},
		{"spread, capped", Spread, 9, low, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := p
			q.Jitter = tt.jitter
			if got := q.draw(tt.attempt, tt.rnd); got != tt.want {
				t.Errorf("draw(%d) = %v; want %v", tt.attempt, got, tt.want)
			}
		})
	}
	if got := (Policy{}).draw(1, low); got != 0 {
		t.Errorf("zero policy draw = %v; want 0", got)
	}
}

func TestDurationBounds(t *testing.T) {
	tests := []struct {
		jitter   Jitter
		min, max func(c time.Duration) time.Duration // inclusive
	}{
		{Full, func(time.Duration) time.Duration { return 1 }, func(c time.Duration) time.Duration { return c }},
		{None, func(c time.Duration) time.Duration { return c }, func(c time.Duration) time.Duration { return c }},
		{Spread, func(c time.Duration) time.Duration { return c / 2 }, func(c time.Duration) time.Duration { return c/2 + c - 1 }},
	}
	for _, tt := range tests {
		p := Policy{Base: time.Second, Cap: 10 * time.Minute, Jitter: tt.jitter}
		for attempt := 1; attempt <= 40; attempt++ {
			c := p.Ceiling(attempt)
			for range 20 {
				if d := p.Duration(attempt); d < tt.min(c) || d > tt.max(c) {
					t.Fatalf("jitter %d: Duration(%d) = %v; want in [%v, %v]", tt.jitter, attempt, d, tt.min(c), tt.max(c))
				}
			}
		}
	}
}
