package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/api"
)

// lockedBuffer is a log sink for a handler used from server goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestForwardedForNotTrusted: a client cannot choose the address the
// master logs for it with X-Forwarded-For unless it is a configured proxy.
func TestForwardedForNotTrusted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		want    string
	}{
		{"no proxy trusted", nil, "remote=127.0.0.1"},
		{"loopback is the proxy", []string{"127.0.0.1"}, "remote=203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			s := &api.Server{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Config: api.Config{TrustedProxies: tc.proxies}}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/no/such/route", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Real-IP", "203.0.113.9")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			srv.Close() // the log line is written once the handler returned
			if !strings.Contains(logs.String(), tc.want) {
				t.Errorf("request log = %q; want %s", logs.String(), tc.want)
			}
		})
	}
}
