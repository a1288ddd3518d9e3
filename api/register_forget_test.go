package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
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

// TestRegistrationsInFlight: past Limits.RegistrationsInFlight a
// registration gets 429 with a Retry-After of 1 to 5 s; the slot comes
// back when the registration in flight is done.
func TestRegistrationsInFlight(t *testing.T) {
	harnessEdit = func(s *api.Server) { s.Config.Limits.RegistrationsInFlight = 1 }
	harnessUnchecked = true // the check would read the first body whole before the handler takes its slot
	t.Cleanup(func() { harnessEdit, harnessUnchecked = nil, false })
	h := newHarness(t)
	tok := h.joinToken(inventory.JoinTokenSpec{Uses: 5, AutoAccept: true}, time.Now())
	first, second := newIdentity(t, "m1"), newIdentity(t, "m2")
	body, _ := json.Marshal(registerReq("m1", first, tok))

	// The first registration holds its slot while its body is read.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/minions/register", pr)
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	done := make(chan int, 1)
	go func() {
		resp, err := h.client(first).Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	if _, err := pw.Write(body[:1]); err != nil {
		t.Fatal(err)
	}
	var status int
	var out []byte
	var retry string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); { // a hang bound, not a timing assertion
		resp, err := h.client(second).Post(h.srv.URL+"/api/v1/minions/register", "application/json",
			bytes.NewReader(mustJSON(t, registerReq("m2", second, tok))))
		if err != nil {
			t.Fatal(err)
		}
		out, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if status, retry = resp.StatusCode, resp.Header.Get("Retry-After"); status == http.StatusTooManyRequests {
			break
		}
		time.Sleep(50 * time.Millisecond) // the first request's handler is not running yet: m2 got in
		second = newIdentity(t, "m2")
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("a registration beside one in flight = %d %s; want 429", status, out)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 5 {
		t.Errorf("Retry-After %q; want 1 to 5 seconds", retry)
	}
	wantError(t, "second registration", out, "too many minion registrations in flight")
	if _, err := pw.Write(body[1:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-done; code != http.StatusCreated {
		t.Errorf("the registration in flight = %d; want 201", code)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
