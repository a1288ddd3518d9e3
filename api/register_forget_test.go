package api_test

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/inventory"
)

// TestRegisterForgetsConnection: every registration, first or again with
// a new address, drops the master's cached connection to that minion.
func TestRegisterForgetsConnection(t *testing.T) {
	var mu sync.Mutex
	var forgot []string
	harnessEdit = func(s *api.Server) {
		s.Forget = func(id string) {
			mu.Lock()
			defer mu.Unlock()
			forgot = append(forgot, id)
		}
	}
	t.Cleanup(func() { harnessEdit = nil })
	h := newHarness(t)
	ident := newIdentity(t, "m1")
	tok := h.joinToken(inventory.JoinTokenSpec{Uses: 5}, time.Now())
	for i, addr := range []string{"127.0.0.9:4510", "127.0.0.9:4511"} {
		req := registerReq("m1", ident, tok)
		req.GRPCAddr = addr
		if status, body := h.do(h.client(ident), "POST", "/api/v1/minions/register", "", req); status/100 != 2 {
			t.Fatalf("register %d = %d %s", i, status, body)
		}
		mu.Lock()
		got := slices.Clone(forgot)
		mu.Unlock()
		if len(got) != i+1 || got[i] != "m1" {
			t.Errorf("after registration %d (%s) forgotten: %v; want m1 once per registration", i, addr, got)
		}
	}
	var m struct {
		Address string `json:"address"`
	}
	h.adminDo("GET", "/api/v1/minions/m1", nil, &m, http.StatusOK)
	if m.Address != "127.0.0.9:4511" {
		t.Errorf("address after re-registration = %q", m.Address)
	}
}
