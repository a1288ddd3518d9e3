package minion

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
)

// TestRegisterRetryAfter: a master that refuses a registration for now
// (429 or 503 with Retry-After) is retried after that, plus jitter, and
// not given up on; without Retry-After the usual backoff applies.
func TestRegisterRetryAfter(t *testing.T) {
	tests := []struct {
		status int
		header string
		want   time.Duration // 0: no Retry-After honoured
	}{
		{http.StatusTooManyRequests, "3", 3 * time.Second},
		{http.StatusServiceUnavailable, "1", time.Second},
		{http.StatusServiceUnavailable, "", 0},
		{http.StatusTooManyRequests, "soon", 0},
	}
	for _, tt := range tests {
		srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tt.header != "" {
				w.Header().Set("Retry-After", tt.header)
			}
			http.Error(w, `{"error":"busy"}`, tt.status)
		}))
		cfg := config.DefaultMinion()
		cfg.ID, cfg.Master, cfg.DataDir, cfg.JoinToken = "m1", srv.URL, t.TempDir(), "fjt_x"
		m, err := New(cfg, testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		err = m.Register(context.Background(), &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4510})
		srv.Close()
		var ra retryAfterError
		switch {
		case err == nil || errors.Is(err, ErrPermanent):
			t.Errorf("%d %q: Register = %v; want a temporary error", tt.status, tt.header, err)
		case tt.want == 0 && errors.As(err, &ra):
			t.Errorf("%d %q: Register = retry after %s; want no Retry-After honoured", tt.status, tt.header, ra.after)
		case tt.want > 0 && (!errors.As(err, &ra) || ra.after != tt.want):
			t.Errorf("%d %q: Register = %v; want retry after %s", tt.status, tt.header, err, tt.want)
		}
		if tt.want > 0 {
			for range 100 {
				if w := ra.wait(); w < tt.want || w > 2*tt.want {
					t.Fatalf("wait %s; want %s to %s", w, tt.want, 2*tt.want)
				}
			}
		}
	}
}

// TestRetryWaitKeepsBackingOff: a refused registration waits at least the
// master's Retry-After, and its own backoff still grows with the attempts.
func TestRetryWaitKeepsBackingOff(t *testing.T) {
	busy := retryAfterError{err: errors.New("429"), after: 3 * time.Second}
	var longest time.Duration
	for range 200 {
		w := retryWait(busy, 10)
		if w < busy.after {
			t.Fatalf("wait %s after a Retry-After of %s", w, busy.after)
		}
		if w > registerBackoff.Cap+2*busy.after {
			t.Fatalf("wait %s; want at most the backoff cap %s", w, registerBackoff.Cap)
		}
		longest = max(longest, w)
	}
	if longest <= 2*busy.after {
		t.Errorf("at attempt 10 the longest of 200 waits is %s: the backoff did not apply past the Retry-After", longest)
	}
	if w := retryWait(errors.New("connection refused"), 1); w > 2*registerBackoff.Base {
		t.Errorf("first retry after a plain failure waits %s; want the backoff's first step", w)
	}
}
