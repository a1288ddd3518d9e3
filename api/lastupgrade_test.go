package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// A minion's last_upgrade is kept with it, shown by GET /api/v1/minions and
// /minions/{id}, and kept by a later registration that has none.
func TestRegisterLastUpgrade(t *testing.T) {
	h := newHarness(t)
	ident := newIdentity(t, "m1")
	c := h.client(ident)
	tok := h.joinToken(inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	up := &model.LastUpgrade{From: "vA", To: "vB", State: model.UpgradeRolledBack, Reason: "the new binary exited", At: at}
	steps := []struct {
		name string
		sent *model.LastUpgrade
		want *model.LastUpgrade
	}{
		{"never upgraded", nil, nil},
		{"rolled back", up, up},
		{"registered again without one", nil, up},
		{"upgraded", &model.LastUpgrade{From: "vA", To: "vB", State: model.UpgradeUpgraded, At: at}, &model.LastUpgrade{From: "vA", To: "vB", State: model.UpgradeUpgraded, At: at}},
	}
	for _, st := range steps {
		req := registerReq("m1", ident, tok)
		req.LastUpgrade = st.sent
		if status, body := h.do(c, "POST", "/api/v1/minions/register", "", req); status/100 != 2 {
			t.Fatalf("%s: register = %d %s", st.name, status, body)
		}
		status, body := h.do(h.client(nil), "GET", "/api/v1/minions/m1", "Bearer "+h.admin, nil)
		var m wire.Minion
		if status != http.StatusOK || json.Unmarshal(body, &m) != nil {
			t.Fatalf("%s: GET minion = %d %s", st.name, status, body)
		}
		got, _ := json.Marshal(m.LastUpgrade)
		want, _ := json.Marshal(st.want)
		if string(got) != string(want) {
			t.Errorf("%s: last_upgrade = %s; want %s", st.name, got, want)
		}
	}
	status, body := h.do(h.client(nil), "GET", "/api/v1/minions", "Bearer "+h.admin, nil)
	var list wire.MinionList
	if status != http.StatusOK || json.Unmarshal(body, &list) != nil || len(list.Minions) != 1 || list.Minions[0].LastUpgrade == nil {
		t.Errorf("GET /api/v1/minions = %d %s; want the minion with its last_upgrade", status, body)
	}
}

// A newer minion's fields this master does not know are ignored: the
// registration goes through and stores only what the master knows.
func TestRegisterIgnoresUnknownFields(t *testing.T) {
	h := newHarness(t)
	ident := newIdentity(t, "m1")
	tok := h.joinToken(inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	b, err := json.Marshal(registerReq("m1", ident, tok))
	if err != nil {
		t.Fatal(err)
	}
	b = append(b[:len(b)-1], `,"is_admin":true,"from_the_future":{"x":[1,2]}}`...)
	if status, body := h.do(h.client(ident), "POST", "/api/v1/minions/register", "", b); status != http.StatusCreated {
		t.Fatalf("register with unknown fields = %d %s; want 201", status, body)
	}
	status, body := h.do(h.client(nil), "GET", "/api/v1/minions/m1", "Bearer "+h.admin, nil)
	if status != http.StatusOK || bytes.Contains(body, []byte("is_admin")) || bytes.Contains(body, []byte("from_the_future")) {
		t.Errorf("GET minion = %d %s; want it stored without the unknown fields", status, body)
	}
}
