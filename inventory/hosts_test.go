package inventory

import (
	"context"
	"database/sql"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

func hostIDs(t *testing.T, s *Store) []string {
	t.Helper()
	hs, err := s.Hosts(context.Background())
	if err != nil {
		t.Fatalf("Hosts() = %v", err)
	}
	var out []string
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

func TestHosts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	web := Host{ID: "web1", Address: "10.0.0.7", Port: 2222, User: "deploy", KeyPath: "/etc/felix/id_web",
		Become: true, BecomeUser: "www", RemoteTmp: "~/.felix/stage", Labels: map[string]string{"role": "web"}}
	created, err := s.AddHost(ctx, web, false, t0)
	if err != nil || !created {
		t.Fatalf("AddHost(web1) = %v, %v; want true, nil", created, err)
	}
	if _, err := s.AddHost(ctx, Host{ID: "db1", Address: "db1.example"}, false, t0); err != nil {
		t.Fatalf("AddHost(db1) = %v", err)
	}
	got, err := s.Host(ctx, "web1")
	want := web
	want.CreatedAt, want.UpdatedAt = t0, t0
	if err != nil || got.ID != want.ID || got.Address != want.Address || got.Port != want.Port || got.User != want.User ||
		got.KeyPath != want.KeyPath || got.Become != want.Become || got.BecomeUser != want.BecomeUser || got.RemoteTmp != want.RemoteTmp || !maps.Equal(got.Labels, want.Labels) ||
		!got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) {
		t.Errorf("Host(web1) = %+v, %v; want %+v", got, err, want)
	}
	if db, err := s.Host(ctx, "db1"); err != nil || db.Port != 22 || db.User != "" || db.Become || db.Labels != nil {
		t.Errorf("Host(db1) = %+v, %v; want port 22 (the default), no user, no labels", db, err)
	}
	if ids := hostIDs(t, s); !slices.Equal(ids, []string{"db1", "web1"}) {
		t.Errorf("Hosts() = %q; want [db1 web1]", ids)
	}

	// A duplicate id is a conflict and changes nothing, unless replaced.
	if _, err := s.AddHost(ctx, Host{ID: "web1", Address: "10.9.9.9"}, false, t0.Add(time.Hour)); !errors.Is(err, ErrConflict) {
		t.Errorf("AddHost(web1 again) = %v; want ErrConflict", err)
	}
	if h, _ := s.Host(ctx, "web1"); h.Address != "10.0.0.7" {
		t.Errorf("after a refused add, web1's address is %s; want 10.0.0.7", h.Address)
	}
	later := t0.Add(time.Hour)
	created, err = s.AddHost(ctx, Host{ID: "web1", Address: "10.0.0.8", Labels: map[string]string{"tier": "1"}}, true, later)
	if err != nil || created {
		t.Fatalf("AddHost(web1, replace) = %v, %v; want false, nil", created, err)
	}
	h, _ := s.Host(ctx, "web1")
	if h.Address != "10.0.0.8" || h.Port != 22 || h.User != "" || h.Become || h.RemoteTmp != "" || !maps.Equal(h.Labels, map[string]string{"tier": "1"}) ||
		!h.CreatedAt.Equal(t0) || !h.UpdatedAt.Equal(later) {
		t.Errorf("replaced web1 = %+v; want the new settings and labels, created at t0, updated later", h)
	}

	// Labels.
	if err := s.SetHostLabels(ctx, "web1", map[string]string{"role": "db", "tier": "2"}, []string{"nope"}); err != nil {
		t.Fatalf("SetHostLabels = %v", err)
	}
	if err := s.SetHostLabels(ctx, "web1", nil, []string{"tier"}); err != nil {
		t.Fatalf("SetHostLabels(remove) = %v", err)
	}
	if h, _ := s.Host(ctx, "web1"); !maps.Equal(h.Labels, map[string]string{"role": "db"}) {
		t.Errorf("web1 labels %v; want role=db", h.Labels)
	}
	if err := s.SetHostLabels(ctx, "nope", map[string]string{"a": "b"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetHostLabels(unknown) = %v; want ErrNotFound", err)
	}
	hs, _ := s.Hosts(ctx)
	if len(hs) != 2 || !maps.Equal(hs[1].Labels, map[string]string{"role": "db"}) || hs[0].Labels != nil {
		t.Errorf("Hosts() labels: %+v; want web1 role=db, db1 none", hs)
	}

	// Delete takes the labels along; unknown ids are ErrNotFound.
	if err := s.DeleteHost(ctx, "web1"); err != nil {
		t.Fatalf("DeleteHost = %v", err)
	}
	if err := s.DeleteHost(ctx, "web1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteHost again = %v; want ErrNotFound", err)
	}
	if _, err := s.Host(ctx, "web1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Host(deleted) = %v; want ErrNotFound", err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM host_labels WHERE host_id = 'web1'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("labels of a deleted host: %d rows (%v); want 0", n, err)
	}
	if _, err := s.AddHost(ctx, Host{ID: "web1", Address: "10.0.0.7"}, false, t0); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.Host(ctx, "web1"); h.Labels != nil {
		t.Errorf("re-added web1 labels %v; want none", h.Labels)
	}
}

// TestHostAndMinionShareAnID: a host row for a minion's id is allowed and
// independent of it: deleting one leaves the other.
func TestHostAndMinionShareAnID(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{}, t0)
	if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddHost(ctx, Host{ID: "m1", Address: "10.0.0.1"}, false, t0); err != nil {
		t.Fatalf("AddHost(minion's id) = %v", err)
	}
	if err := s.SetHostLabels(ctx, "m1", map[string]string{"via": "ssh"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLabels(ctx, "m1", map[string]string{"via": "agent"}, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Minion(ctx, "m1"); m.Labels["via"] != "agent" {
		t.Errorf("minion labels %v; want via=agent (host labels are separate)", m.Labels)
	}
	if err := s.DeleteMinion(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Host(ctx, "m1"); err != nil || h.Labels["via"] != "ssh" {
		t.Errorf("Host(m1) after the minion's deletion = %+v, %v; want it with via=ssh", h, err)
	}
}

func TestImportHosts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.AddHost(ctx, Host{ID: "web1", Address: "10.0.0.1", Labels: map[string]string{"role": "web"}}, false, t0); err != nil {
		t.Fatal(err)
	}
	added, updated, err := s.ImportHosts(ctx, []Host{
		{ID: "web1", Address: "10.0.0.11", User: "deploy", Labels: map[string]string{"group": "web"}},
		{ID: "web2", Address: "10.0.0.2", Labels: map[string]string{"group": "web"}},
		{ID: "db1", Address: "10.0.1.1", Port: 2222},
	}, t0)
	if err != nil || added != 2 || updated != 1 {
		t.Fatalf("ImportHosts = %d added, %d updated, %v; want 2, 1, nil", added, updated, err)
	}
	if h, _ := s.Host(ctx, "web1"); h.Address != "10.0.0.11" || h.User != "deploy" ||
		!maps.Equal(h.Labels, map[string]string{"role": "web", "group": "web"}) {
		t.Errorf("imported web1 = %+v; want new settings, its labels kept and group added", h)
	}
	if ids := hostIDs(t, s); !slices.Equal(ids, []string{"db1", "web1", "web2"}) {
		t.Errorf("Hosts() = %q", ids)
	}

	// All or nothing: a row the database refuses (here, by a trigger)
	// stores nothing of the batch.
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER no_bad BEFORE INSERT ON hosts WHEN NEW.id = 'bad'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	before := hostIDs(t, s)
	if _, _, err := s.ImportHosts(ctx, []Host{{ID: "new2", Address: "10.0.3.1"}, {ID: "bad", Address: "10.0.3.2"}}, t0); err == nil {
		t.Fatal("ImportHosts with a refused row = nil; want an error")
	}
	if after := hostIDs(t, s); !slices.Equal(after, before) {
		t.Errorf("hosts after a failed import %q; want %q (nothing stored)", after, before)
	}
}

// TestMigrateFromVersion2 opens a version 2 database holding minions,
// labels and jobs: they survive, and hosts work.
func TestMigrateFromVersion2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "felix.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		migrations[1],
		`PRAGMA user_version = 2`,
		`INSERT INTO minions (id, hostname, addr, cert_pem, fingerprint, state, registered_at, updated_at)
			VALUES ('m1', 'm1', '10.0.0.1:4510', 'PEM', 'sha256:aa', 'accepted', 1000, 1000)`,
		`INSERT INTO labels (minion_id, key, value) VALUES ('m1', 'role', 'web')`,
		`INSERT INTO jobs (id, cmd_line, cmd_type, targets, state, created_at, spec, hosts_total)
			VALUES ('j1', 'uptime', 'line', 'm1', 'done', 1000, '{"cmd_line":"uptime"}', 1)`,
		`INSERT INTO job_hosts (job_id, host, state, transport) VALUES ('j1', 'm1', 'ok', 'agent')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			t.Fatalf("build a version 2 database: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open(version 2) = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Errorf("SchemaVersion() = %d, %v; want %d", v, err, len(migrations))
	}
	m, err := s.Minion(ctx, "m1")
	if err != nil || m.Fingerprint != "sha256:aa" || m.Labels["role"] != "web" {
		t.Errorf("Minion(m1) = %+v, %v; want it with its label", m, err)
	}
	if _, rs, err := s.Job(ctx, "j1"); err != nil || len(rs) != 1 || rs[0].State != model.StateOK || rs[0].Transport != "agent" {
		t.Errorf("Job(j1) = %+v, %v; want m1 ok over agent", rs, err)
	}
	if hs, err := s.Hosts(ctx); err != nil || len(hs) != 0 {
		t.Errorf("Hosts() = %+v, %v; want none", hs, err)
	}
	if _, err := s.AddHost(ctx, Host{ID: "m1", Address: "10.0.0.1", Labels: map[string]string{"via": "ssh"}}, false, t0); err != nil {
		t.Fatalf("AddHost on a migrated database = %v", err)
	}
	if h, err := s.Host(ctx, "m1"); err != nil || h.Labels["via"] != "ssh" || h.Port != 22 {
		t.Errorf("Host(m1) = %+v, %v", h, err)
	}
}
