package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/metrics"
	"github.com/felix-ops/felix/model"
)

// TestMetricsRoute: GET /metrics needs a token like the API (401 without,
// 403 for a token limited to some hosts) and counts requests by route
// template, never by raw path.
func TestMetricsRoute(t *testing.T) {
	m := metrics.New(metrics.Sources{}, testenv.Logger(t))
	harnessEdit = func(s *api.Server) { s.Metrics, s.Requests = m.Handler(), m }
	harnessUnchecked = true // /metrics is Prometheus text, not part of the JSON API's document
	t.Cleanup(func() { harnessEdit, harnessUnchecked = nil, false })
	h := newHarness(t)
	c := h.client(nil)
	if status, body := h.do(c, "GET", "/metrics", "", nil); status != http.StatusUnauthorized {
		t.Errorf("GET /metrics without a token = %d %s; want 401", status, body)
	}
	if status, body := h.do(c, "GET", "/metrics", "Bearer fat_wrong", nil); status != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token = %d %s; want 401", status, body)
	}
	scoped, err := h.store.CreateScopedAPIToken(context.Background(), "web-only", model.RoleRead, []string{"web*"}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, body := h.do(c, "GET", "/metrics", "Bearer "+scoped, nil); status != http.StatusForbidden {
		t.Errorf("GET /metrics with a scoped token = %d %s; want 403", status, body)
	}
	reader, err := h.store.CreateAPIToken(context.Background(), "reader", model.RoleRead, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"j1", "j2", "j3"} {
		h.do(c, "GET", "/api/v1/jobs/"+id, "Bearer "+reader, nil) // 404s, one route
	}
	h.do(c, "GET", "/no/such/path/x1", "Bearer "+reader, nil)
	status, body := h.do(c, "GET", "/metrics", "Bearer "+reader, nil)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics with a read token = %d %s", status, body)
	}
	text := string(body)
	for _, want := range []string{
		`felix_api_requests_total{code="4xx",method="GET",route="/api/v1/jobs/:id"} 3`,
		`felix_api_requests_total{code="4xx",method="GET",route="unmatched"} 1`,
		`felix_api_requests_total{code="4xx",method="GET",route="/metrics"} 3`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, raw := range []string{"/api/v1/jobs/j1", "x1"} {
		if strings.Contains(text, raw) {
			t.Errorf("/metrics names the raw path %q", raw)
		}
	}
}

// TestCheckHealthAfterAccept: the master is asked to check a minion's
// health when it is accepted and when an accepted minion registers; a
// pending registration or a rejection asks nothing.
func TestCheckHealthAfterAccept(t *testing.T) {
	var mu sync.Mutex
	var checked []string
	harnessEdit = func(s *api.Server) {
		s.CheckHealth = func(id string) {
			mu.Lock()
			defer mu.Unlock()
			checked = append(checked, id)
		}
	}
	t.Cleanup(func() { harnessEdit = nil })
	h := newHarness(t)
	got := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(checked)
	}
	pending, auto := newIdentity(t, "m1"), newIdentity(t, "m2")
	tok := h.joinToken(inventory.JoinTokenSpec{Uses: 5}, time.Now())
	if status, body := h.do(h.client(pending), "POST", "/api/v1/minions/register", "", registerReq("m1", pending, tok)); status/100 != 2 {
		t.Fatalf("register m1 = %d %s", status, body)
	}
	if c := got(); len(c) != 0 {
		t.Errorf("a pending registration asked for checks of %v", c)
	}
	h.adminDo("POST", "/api/v1/minions/m1/accept", nil, nil, http.StatusOK)
	if c := got(); !slices.Equal(c, []string{"m1"}) {
		t.Errorf("after accept: checks of %v; want [m1]", c)
	}
	autoTok := h.joinToken(inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	if status, body := h.do(h.client(auto), "POST", "/api/v1/minions/register", "", registerReq("m2", auto, autoTok)); status/100 != 2 {
		t.Fatalf("register m2 = %d %s", status, body)
	}
	if status, body := h.do(h.client(pending), "POST", "/api/v1/minions/register", "", registerReq("m1", pending, "")); status/100 != 2 {
		t.Fatalf("register m1 again = %d %s", status, body)
	}
	if c := got(); !slices.Equal(c, []string{"m1", "m2", "m1"}) {
		t.Errorf("after an auto-accepted registration and m1's again: checks of %v; want [m1 m2 m1]", c)
	}
	h.adminDo("POST", "/api/v1/minions/m2/reject", nil, nil, http.StatusOK)
	if c := got(); len(c) != 3 {
		t.Errorf("a rejection asked for a check: %v", c)
	}
}
