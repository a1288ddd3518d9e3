package inventory

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// TestHostGroups: an import replaces a host's groups (ancestors included,
// in order); add keeps them; a deleted host takes them along.
func TestHostGroups(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	imp := []Host{{ID: "w1", Address: "w1", Groups: []string{"web", "prod", "site"}}, {ID: "d1", Address: "d1"}}
	if _, _, err := s.ImportHosts(ctx, imp, t0); err != nil {
		t.Fatalf("ImportHosts = %v", err)
	}
	tests := []struct {
		name   string
		change func() error
		want   map[string][]string
	}{
		{"imported", func() error { return nil }, map[string][]string{"w1": {"web", "prod", "site"}, "d1": nil}},
		{"imported again: replaced", func() error {
			_, _, err := s.ImportHosts(ctx, []Host{{ID: "w1", Address: "w1", Groups: []string{"db", "prod"}}, {ID: "d1", Address: "d1", Groups: []string{"db"}}}, t0)
			return err
		}, map[string][]string{"w1": {"db", "prod"}, "d1": {"db"}}},
		{"add --replace keeps them", func() error {
			_, err := s.AddHost(ctx, Host{ID: "w1", Address: "10.0.0.1"}, true, t0)
			return err
		}, map[string][]string{"w1": {"db", "prod"}, "d1": {"db"}}},
		{"deleted", func() error { return s.DeleteHost(ctx, "w1") }, map[string][]string{"d1": {"db"}}},
	}
	for _, tt := range tests {
		if err := tt.change(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		hs, err := s.Hosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]string{}
		for _, h := range hs {
			got[h.ID] = h.Groups
			if one, err := s.Host(ctx, h.ID); err != nil || !slices.Equal(one.Groups, h.Groups) {
				t.Errorf("%s: Host(%s).Groups = %q, %v; Hosts says %q", tt.name, h.ID, one.Groups, err, h.Groups)
			}
		}
		if len(got) != len(tt.want) {
			t.Errorf("%s: groups %q; want %q", tt.name, got, tt.want)
		}
		for id, w := range tt.want {
			if !slices.Equal(got[id], w) {
				t.Errorf("%s: groups of %s = %q; want %q", tt.name, id, got[id], w)
			}
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM host_groups WHERE host_id = 'w1'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows of deleted w1 in host_groups: %d, %v; want 0", n, err)
	}
}

// TestHostFacts: one row a host, however often its facts are gathered; a
// failure keeps the facts but makes them not fresh.
func TestHostFacts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.AddHost(ctx, Host{ID: "h1", Address: "h1"}, false, t0); err != nil {
		t.Fatal(err)
	}
	const ttl = time.Hour
	steps := []struct {
		name      string
		json      string
		err       error
		at        time.Time
		wantJSON  string
		wantErr   string
		wantFresh bool // at at+1m
	}{
		{"first", `{"os_name":"debian"}`, nil, t0, `{"os_name":"debian"}`, "", true},
		{"again", `{"os_name":"ubuntu"}`, nil, t0.Add(time.Minute), `{"os_name":"ubuntu"}`, "", true},
		{"failed", "", errors.New("dial: refused"), t0.Add(2 * time.Minute), `{"os_name":"ubuntu"}`, "dial: refused", false},
		{"back", `{"os_name":"debian"}`, nil, t0.Add(3 * time.Minute), `{"os_name":"debian"}`, "", true},
	}
	for _, st := range steps {
		if err := s.SetHostFacts(ctx, "h1", st.json, st.err, st.at); err != nil {
			t.Fatalf("%s: SetHostFacts = %v", st.name, err)
		}
		h, err := s.Host(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		f := h.Facts
		if f.JSON != st.wantJSON || f.Error != st.wantErr || f.Fresh(st.at.Add(time.Minute), ttl) != st.wantFresh {
			t.Errorf("%s: facts %+v (fresh %v); want %s, error %q, fresh %v", st.name, f, f.Fresh(st.at.Add(time.Minute), ttl),
				st.wantJSON, st.wantErr, st.wantFresh)
		}
		if f.Fresh(st.at.Add(ttl+time.Minute), ttl) {
			t.Errorf("%s: facts fresh after their TTL", st.name)
		}
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM host_facts`).Scan(&n); err != nil || n != 1 {
		t.Errorf("host_facts rows = %d, %v; want 1", n, err)
	}
	if err := s.SetHostFacts(ctx, "nope", "{}", nil, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetHostFacts(unknown host) = %v; want ErrNotFound", err)
	}
	if err := s.DeleteHost(ctx, "h1"); err != nil {
		t.Fatal(err)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM host_facts`).Scan(&n); err != nil || n != 0 {
		t.Errorf("host_facts rows after delete = %d, %v; want 0", n, err)
	}
}
