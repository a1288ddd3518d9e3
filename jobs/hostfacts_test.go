package jobs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// fakeFacts answers Facts from a table and counts the calls per host.
type fakeFacts struct {
	mu    sync.Mutex
	facts map[string]facts.Facts // by host id; missing: an error
	calls map[string]int
}

func (f *fakeFacts) Facts(ctx context.Context, t model.Target) (facts.Facts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[t.ID]++
	if t.SSH == nil || t.Mode != model.ModeSSH {
		return facts.Facts{}, errors.New("not asked over ssh")
	}
	if v, ok := f.facts[t.ID]; ok {
		return v, nil
	}
	return facts.Facts{}, errors.New("dial tcp " + t.SSH.Host + ": connection refused")
}

func (f *fakeFacts) called() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.calls
	f.calls = map[string]int{}
	return out
}

// TestResolveHostFacts: filters over facts select SSH hosts by facts
// gathered once and cached for the TTL; a host whose facts cannot be
// gathered is a skipped target saying why, and outside a facts scope;
// group matches every inventory group of a host.
func TestResolveHostFacts(t *testing.T) {
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	hosts := []inventory.Host{
		{ID: "deb1", Address: "10.0.0.1", Groups: []string{"web", "prod"}},
		{ID: "deb2", Address: "10.0.0.2", Groups: []string{"db", "prod"}, Labels: map[string]string{"group": "db", "role": "db"}},
		{ID: "alma", Address: "10.0.0.3", Groups: []string{"web", "staging"}},
		{ID: "down", Address: "10.0.0.4", Groups: []string{"web", "prod"}},
	}
	if _, _, err := store.ImportHosts(ctx, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	g := &fakeFacts{calls: map[string]int{}, facts: map[string]facts.Facts{
		"deb1": {OSName: "debian", OSVersion: "12", Arch: "x86_64"},
		"deb2": {OSName: "debian", OSVersion: "11", Arch: "aarch64"},
		"alma": {OSName: "almalinux", OSVersion: "9", Arch: "x86_64"},
	}}
	s := &Service{Store: store, HostFacts: g}
	type outcome struct{ id, state string } // state: "run" or the skip state
	tests := []struct {
		name      string
		patterns  []string
		ttl       time.Duration
		want      []outcome
		wantCalls []string // hosts whose facts are gathered
		wantErr   error
	}{
		{"group matches an ancestor", []string{"group=prod"}, 0, []outcome{{"deb1", "run"}, {"deb2", "run"}, {"down", "run"}}, nil, nil},
		{"group glob", []string{"group=stag*"}, 0, []outcome{{"alma", "run"}}, nil, nil},
		{"group label still matches", []string{"group=db"}, 0, []outcome{{"deb2", "run"}}, nil, nil},
		{"no such group", []string{"group=nope"}, 0, nil, nil, ErrNoTargets},
		{"facts gathered when first needed", []string{"os=debian"}, 0,
			[]outcome{{"deb1", "run"}, {"deb2", "run"}, {"down", "unreachable"}}, []string{"alma", "deb1", "deb2", "down"}, nil},
		{"cached within the TTL; a failed host is tried again", []string{"os=debian", "version=12"}, 0,
			[]outcome{{"deb1", "run"}, {"down", "unreachable"}}, []string{"down"}, nil},
		{"only hosts whose labels and groups match need facts", []string{"group=web", "arch=x86_64"}, 0,
			[]outcome{{"alma", "run"}, {"deb1", "run"}, {"down", "unreachable"}}, []string{"down"}, nil},
		{"not a fact, not a label: no gathering", []string{"role=web"}, 0, nil, nil, ErrNoTargets},
		{"stale after the TTL", []string{"deb1", "os=debian"}, time.Nanosecond, []outcome{{"deb1", "run"}}, []string{"deb1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.SetFactsTTL(tt.ttl)
			got, err := s.Resolve(ctx, tt.patterns)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want %v", tt.patterns, got, err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Resolve(%q) = %v", tt.patterns, err)
			}
			var have []outcome
			for _, tg := range got {
				st := "run"
				if tg.Skip != "" {
					st = string(tg.Skip)
					if !strings.Contains(tg.Error, "facts unknown (dial tcp") || !strings.Contains(tg.Error, "connection refused") {
						t.Errorf("%s: error %q; want it to say its facts are unknown and why", tg.ID, tg.Error)
					}
				}
				have = append(have, outcome{tg.ID, st})
			}
			if !slices.Equal(have, tt.want) {
				t.Errorf("Resolve(%q) = %v; want %v", tt.patterns, have, tt.want)
			}
			var calls []string
			for id, n := range g.called() {
				if n != 1 {
					t.Errorf("facts of %s gathered %d times; want once", id, n)
				}
				calls = append(calls, id)
			}
			slices.Sort(calls)
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("facts gathered of %q; want %q", calls, tt.wantCalls)
			}
		})
	}

	// A scope filtering by facts does not take in a host whose facts are unknown.
	s.SetFactsTTL(0)
	in, err := s.InScope(ctx, []string{"os=debian"})
	if err != nil || !in["deb1"] || !in["deb2"] || in["down"] || in["alma"] {
		t.Errorf("InScope(os=debian) = %v, %v; want deb1 and deb2 only", in, err)
	}

	// RefreshFacts gathers again, whatever the age; failures are results.
	g.called()
	res, err := s.RefreshFacts(ctx, []string{"deb1", "down", "nope"})
	if err != nil {
		t.Fatalf("RefreshFacts = %v", err)
	}
	if calls := g.called(); len(calls) != 2 || calls["deb1"] != 1 || calls["down"] != 1 {
		t.Errorf("RefreshFacts gathered %v; want deb1 and down once", calls)
	}
	byID := map[string]HostFactsResult{}
	for _, r := range res {
		byID[r.ID] = r
	}
	if r := byID["deb1"]; r.Error != "" || !strings.Contains(r.Facts.JSON, `"os_name":"debian"`) || r.Facts.GatheredAt.IsZero() {
		t.Errorf("deb1: %+v; want its facts", r)
	}
	if r := byID["down"]; !strings.Contains(r.Error, "connection refused") || r.Facts.Error == "" {
		t.Errorf("down: %+v; want the error", r)
	}
	if r := byID["nope"]; !strings.Contains(r.Error, "no minion or host") {
		t.Errorf("nope: %+v; want unknown", r)
	}
	if h, _ := store.Host(ctx, "deb1"); !strings.Contains(h.Facts.JSON, `"os_version":"12"`) {
		t.Errorf("stored facts of deb1: %+v", h.Facts)
	}
}

// TestHostFactsBounded: facts over maxFactsJSON are refused and not
// stored; stored facts reach templates (hostData) like a minion's.
func TestHostFactsBounded(t *testing.T) {
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, _, err := store.ImportHosts(ctx, []inventory.Host{{ID: "big", Address: "10.0.0.1"}, {ID: "ok", Address: "10.0.0.2"}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	ips := make([]string, 10000)
	for i := range ips {
		ips[i] = "fd00::" + strings.Repeat("1", 4)
	}
	g := &fakeFacts{calls: map[string]int{}, facts: map[string]facts.Facts{
		"big": {OSName: "debian", IPs: ips},
		"ok":  {OSName: "debian", OSVersion: "12"},
	}}
	s := &Service{Store: store, HostFacts: g}
	res, err := s.RefreshFacts(ctx, []string{"big", "ok"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		switch r.ID {
		case "big":
			if !strings.Contains(r.Error, "at most 65536") || r.Facts.JSON != "" {
				t.Errorf("big: %+v; want refused as too large, nothing stored", r)
			}
		case "ok":
			if r.Error != "" || r.Facts.JSON == "" {
				t.Errorf("ok: %+v; want its facts", r)
			}
		}
	}
	h, err := s.hostData(ctx, model.Target{ID: "ok"})
	if err != nil || h.Facts["os_name"] != "debian" || h.Facts["os_version"] != "12" {
		t.Errorf("hostData(ok) = %+v, %v; want its SSH facts", h.Facts, err)
	}
}

// blockingFacts blocks every gathering until its context ends, telling
// started about each.
type blockingFacts struct{ started chan string }

func (b blockingFacts) Facts(ctx context.Context, t model.Target) (facts.Facts, error) {
	b.started <- t.ID
	<-ctx.Done()
	return facts.Facts{}, ctx.Err()
}

// TestGatherFactsStops: hosts not started when the request ends are not
// tried, those interrupted are not failures of theirs; both say so, and
// nothing is stored for them.
func TestGatherFactsStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var hosts []inventory.Host
	var targets []model.Target
	for i := range factsParallel + 3 {
		id := fmt.Sprintf("h%02d", i)
		hosts = append(hosts, inventory.Host{ID: id, Address: id})
		targets = append(targets, model.Target{ID: id, SSH: &model.SSHTarget{Host: id, Port: 22}})
	}
	if _, _, err := store.ImportHosts(ctx, hosts, time.Now()); err != nil {
		t.Fatal(err)
	}
	b := blockingFacts{started: make(chan string, len(hosts))}
	s := &Service{Store: store, HostFacts: b}
	go func() {
		for range factsParallel {
			<-b.started
		}
		cancel() // every slot is busy: the rest cannot start
	}()
	res := s.gatherFacts(ctx, targets)
	notTried := 0
	for id, r := range res {
		if strings.Contains(r.Error, "name fewer hosts") {
			notTried++
		}
		if !strings.HasPrefix(r.Error, "not gathered") {
			t.Errorf("%s: %+v; want not gathered", id, r)
		}
		if h, _ := store.Host(context.Background(), id); h.Facts != (inventory.HostFacts{}) {
			t.Errorf("%s: interrupted or not tried, but facts stored: %+v", id, h.Facts)
		}
	}
	if len(res) != len(hosts) || notTried != 3 {
		t.Errorf("%d results, %d not tried; want %d and 3", len(res), notTried, len(hosts))
	}
}
