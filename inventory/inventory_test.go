package inventory

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/mattn/go-sqlite3"
)

// t0 is a fixed, millisecond-aligned clock for tests.
var t0 = time.UnixMilli(1_760_000_000_000)

// newStore opens a store on a fresh SQLite file and closes it at cleanup.
func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "felix.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%q) = %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s, path
}

func minion(id, fp string) Minion {
	return Minion{ID: id, Hostname: id + ".example", IPs: []string{"10.0.0.1", "fd00::1"}, Addr: "10.0.0.1:4510",
		Version: "v1", OS: "debian 12", Facts: `{"os_name":"debian"}`, CertPEM: "PEM-" + fp, Fingerprint: fp}
}

func joinToken(t *testing.T, s *Store, spec JoinTokenSpec, now time.Time) string {
	t.Helper()
	tok, _, err := s.CreateJoinToken(context.Background(), spec, now)
	if err != nil {
		t.Fatalf("CreateJoinToken(%+v) = %v", spec, err)
	}
	return tok
}

func register(t *testing.T, s *Store, m Minion, tok string, now time.Time) (Minion, error) {
	t.Helper()
	reg := Registration{Minion: m}
	if tok != "" {
		reg.JoinTokenHash = HashToken(tok)
	}
	m, _, err := s.Register(context.Background(), reg, now)
	return m, err
}

func ids(t *testing.T, s *Store) []string {
	t.Helper()
	ms, err := s.Minions(context.Background())
	if err != nil {
		t.Fatalf("Minions() = %v", err)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestOpenMigrates(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "felix.db")
	for i := range 2 {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatalf("Open #%d = %v", i+1, err)
		}
		v, err := s.SchemaVersion(ctx)
		if err != nil {
			t.Fatalf("SchemaVersion() = %v", err)
		}
		if v != len(migrations) {
			t.Errorf("Open #%d: SchemaVersion() = %d; want %d", i+1, v, len(migrations))
		}
		if i == 0 {
			// Data written before a reopen survives it.
			joinToken(t, s, JoinTokenSpec{}, t0)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close() = %v", err)
		}
	}

	// Two stores on the same file at once (e.g. master and a CLI) both work.
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open a = %v", err)
	}
	defer a.Close()
	b, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open b = %v", err)
	}
	defer b.Close()
	tok := joinToken(t, a, JoinTokenSpec{}, t0)
	if _, err := register(t, b, minion("m1", "fp1"), tok, t0); err != nil {
		t.Errorf("Register through a second store = %v; want nil", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path)
	if err == nil {
		s2.Close()
		t.Fatalf("Open of a newer schema = nil; want an error")
	}
	if !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open of a newer schema = %q; want it to say the schema is newer", err)
	}
}

func TestWAL(t *testing.T) {
	ctx := context.Background()
	s, path := newStore(t)
	for _, c := range []struct {
		name string
		db   *sql.DB
	}{
		{"writer", s.w},
		{"reader", s.r},
	} {
		var mode string
		if err := c.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatalf("%s: PRAGMA journal_mode: %v", c.name, err)
		}
		if mode != "wal" {
			t.Errorf("%s: journal_mode = %q; want %q", c.name, mode, "wal")
		}
	}
	joinToken(t, s, JoinTokenSpec{}, t0)
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("after a write: %v; want a WAL file", err)
	}
	var fk int
	if err := s.r.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
		t.Errorf("PRAGMA foreign_keys = %d, %v; want 1", fk, err)
	}
}

func TestRegister(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Hour
	tests := []struct {
		name string
		// run registers and returns the result of the registration under test.
		run       func(t *testing.T, s *Store) (Minion, error)
		wantErr   error
		wantState model.KeyState // when wantErr is nil
		wantIDs   []string       // stored minions afterwards
		check     func(t *testing.T, s *Store)
	}{
		{
			name: "new minion without token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				joinToken(t, s, JoinTokenSpec{}, t0)
				return register(t, s, minion("m1", "fp1"), "", t0)
			},
			wantErr: ErrInvalidToken,
		},
		{
			name: "wrong token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				joinToken(t, s, JoinTokenSpec{}, t0)
				return register(t, s, minion("m1", "fp1"), "fjt_wrong", t0)
			},
			wantErr: ErrInvalidToken,
		},
		{
			name: "api token is no join token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok, err := s.CreateAPIToken(ctx, "admin", RoleAdmin, 0, t0)
				if err != nil {
					t.Fatal(err)
				}
				return register(t, s, minion("m1", "fp1"), tok, t0)
			},
			wantErr: ErrInvalidToken,
		},
		{
			name: "expired token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{TTL: ttl}, t0)
				return register(t, s, minion("m1", "fp1"), tok, t0.Add(ttl+time.Millisecond))
			},
			wantErr: ErrInvalidToken,
		},
		{
			name: "token at its expiry instant",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{TTL: ttl}, t0)
				return register(t, s, minion("m1", "fp1"), tok, t0.Add(ttl))
			},
			wantErr: ErrInvalidToken,
		},
		{
			name: "token just before expiry",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{TTL: ttl}, t0)
				return register(t, s, minion("m1", "fp1"), tok, t0.Add(ttl-time.Millisecond))
			},
			wantState: model.KeyPending,
			wantIDs:   []string{"m1"},
		},
		{
			name: "single-use token used twice",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{Uses: 1}, t0)
				if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
					t.Fatalf("first Register = %v; want nil", err)
				}
				return register(t, s, minion("m2", "fp2"), tok, t0)
			},
			wantErr: ErrInvalidToken,
			wantIDs: []string{"m1"},
		},
		{
			name: "two-use token used three times",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{Uses: 2}, t0)
				for _, id := range []string{"m1", "m2"} {
					if _, err := register(t, s, minion(id, "fp-"+id), tok, t0); err != nil {
						t.Fatalf("Register(%s) = %v; want nil", id, err)
					}
				}
				return register(t, s, minion("m3", "fp-m3"), tok, t0)
			},
			wantErr: ErrInvalidToken,
			wantIDs: []string{"m1", "m2"},
		},
		{
			name: "unlimited token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{}, t0)
				for _, id := range []string{"m1", "m2", "m3"} {
					if _, err := register(t, s, minion(id, "fp-"+id), tok, t0); err != nil {
						t.Fatalf("Register(%s) = %v; want nil", id, err)
					}
				}
				return register(t, s, minion("m4", "fp-m4"), tok, t0)
			},
			wantState: model.KeyPending,
			wantIDs:   []string{"m1", "m2", "m3", "m4"},
		},
		{
			name: "auto-accept token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{AutoAccept: true}, t0)
				return register(t, s, minion("m1", "fp1"), tok, t0)
			},
			wantState: model.KeyAccepted,
			wantIDs:   []string{"m1"},
		},
		{
			name: "normal token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{}, t0)
				return register(t, s, minion("m1", "fp1"), tok, t0)
			},
			wantState: model.KeyPending,
			wantIDs:   []string{"m1"},
			check: func(t *testing.T, s *Store) {
				m, err := s.Minion(ctx, "m1")
				if err != nil {
					t.Fatalf("Minion(m1) = %v", err)
				}
				want := minion("m1", "fp1")
				if m.Hostname != want.Hostname || m.Addr != want.Addr || m.Version != want.Version || m.OS != want.OS ||
					m.Facts != want.Facts || m.CertPEM != want.CertPEM || m.Fingerprint != want.Fingerprint {
					t.Errorf("Minion(m1) = %+v; want fields of %+v", m, want)
				}
				if got, want := strings.Join(m.IPs, ","), strings.Join(want.IPs, ","); got != want {
					t.Errorf("IPs = %q; want %q", got, want)
				}
				if m.Health != model.HealthUnknown {
					t.Errorf("Health = %q; want %q", m.Health, model.HealthUnknown)
				}
				if !m.RegisteredAt.Equal(t0) || !m.UpdatedAt.Equal(t0) || !m.LastSeen.IsZero() {
					t.Errorf("times = %v, %v, %v; want %v, %v, zero", m.RegisteredAt, m.UpdatedAt, m.LastSeen, t0, t0)
				}
			},
		},
		{
			name: "known id with another certificate",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{}, t0)
				if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
					t.Fatalf("first Register = %v", err)
				}
				evil := minion("m1", "fp-evil")
				evil.Addr = "6.6.6.6:4510"
				return register(t, s, evil, tok, t0.Add(time.Second))
			},
			wantErr: ErrConflict,
			wantIDs: []string{"m1"},
			check: func(t *testing.T, s *Store) {
				m, err := s.Minion(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				if m.Fingerprint != "fp1" || m.CertPEM != "PEM-fp1" || m.Addr != "10.0.0.1:4510" || !m.UpdatedAt.Equal(t0) {
					t.Errorf("after a conflict: fingerprint %q, addr %q, updated %v; want %q, %q, %v unchanged",
						m.Fingerprint, m.Addr, m.UpdatedAt, "fp1", "10.0.0.1:4510", t0)
				}
			},
		},
		{
			name: "known id re-registers without token",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{Uses: 1}, t0)
				if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
					t.Fatalf("first Register = %v", err)
				}
				if err := s.SetMinionState(ctx, "m1", model.KeyAccepted, t0); err != nil {
					t.Fatal(err)
				}
				if err := s.UpdateHealth(ctx, []HealthUpdate{{ID: "m1", Health: model.HealthOK, Seen: t0.Add(time.Minute)}}); err != nil {
					t.Fatal(err)
				}
				again := minion("m1", "fp1")
				again.Addr, again.Version = "10.0.0.2:4511", "v2"
				return register(t, s, again, "", t0.Add(time.Hour))
			},
			wantState: model.KeyAccepted,
			wantIDs:   []string{"m1"},
			check: func(t *testing.T, s *Store) {
				m, err := s.Minion(ctx, "m1")
				if err != nil {
					t.Fatal(err)
				}
				if m.State != model.KeyAccepted || m.Addr != "10.0.0.2:4511" || m.Version != "v2" {
					t.Errorf("state, addr, version = %q, %q, %q; want %q, %q, %q",
						m.State, m.Addr, m.Version, model.KeyAccepted, "10.0.0.2:4511", "v2")
				}
				if !m.RegisteredAt.Equal(t0) || !m.UpdatedAt.Equal(t0.Add(time.Hour)) {
					t.Errorf("registered, updated = %v, %v; want %v, %v", m.RegisteredAt, m.UpdatedAt, t0, t0.Add(time.Hour))
				}
				if m.Health != model.HealthOK || !m.LastSeen.Equal(t0.Add(time.Minute)) {
					t.Errorf("health, last seen = %q, %v; want %q, %v kept", m.Health, m.LastSeen, model.HealthOK, t0.Add(time.Minute))
				}
			},
		},
		{
			name: "rejected minion stays rejected on re-register",
			run: func(t *testing.T, s *Store) (Minion, error) {
				tok := joinToken(t, s, JoinTokenSpec{AutoAccept: true}, t0)
				if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
					t.Fatalf("first Register = %v", err)
				}
				if err := s.SetMinionState(ctx, "m1", model.KeyRejected, t0); err != nil {
					t.Fatal(err)
				}
				return register(t, s, minion("m1", "fp1"), tok, t0.Add(time.Second))
			},
			wantState: model.KeyRejected,
			wantIDs:   []string{"m1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			m, err := tt.run(t, s)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Register() = %v; want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Register() = %v; want nil", err)
			case tt.wantErr == nil && m.State != tt.wantState:
				t.Errorf("Register().State = %q; want %q", m.State, tt.wantState)
			}
			if got, want := strings.Join(ids(t, s), ","), strings.Join(tt.wantIDs, ","); got != want {
				t.Errorf("stored minions = %q; want %q", got, want)
			}
			if tt.wantErr == nil {
				stored, err := s.Minion(ctx, m.ID)
				if err != nil {
					t.Fatalf("Minion(%s) = %v", m.ID, err)
				}
				if stored.State != m.State {
					t.Errorf("stored state = %q; want %q as returned", stored.State, m.State)
				}
			}
			if tt.check != nil {
				tt.check(t, s)
			}
		})
	}
}

func TestJoinTokenUsesAreNotSpentOnFailure(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{Uses: 1}, t0)
	other := joinToken(t, s, JoinTokenSpec{}, t0)
	if _, err := register(t, s, minion("m1", "fp1"), other, t0); err != nil {
		t.Fatal(err)
	}
	// A conflicting registration with the single-use token must not use it up.
	if _, err := register(t, s, minion("m1", "fp2"), tok, t0); !errors.Is(err, ErrConflict) {
		t.Fatalf("conflicting Register = %v; want %v", err, ErrConflict)
	}
	if _, err := register(t, s, minion("m2", "fp2"), tok, t0); err != nil {
		t.Errorf("Register after a conflict = %v; want nil (token not used up)", err)
	}
	var uses int
	if err := s.r.QueryRowContext(ctx, `SELECT uses_left FROM join_tokens WHERE hash = ?`, HashToken(tok)).Scan(&uses); err != nil {
		t.Fatal(err)
	}
	if uses != 0 {
		t.Errorf("uses_left = %d; want 0", uses)
	}
}

func TestUnknownMinion(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tests := []struct {
		name string
		fn   func() error
	}{
		{"SetMinionState", func() error { return s.SetMinionState(ctx, "nope", model.KeyAccepted, t0) }},
		{"DeleteMinion", func() error { return s.DeleteMinion(ctx, "nope") }},
		{"Minion", func() error { _, err := s.Minion(ctx, "nope"); return err }},
		{"SetLabels", func() error { return s.SetLabels(ctx, "nope", map[string]string{"role": "web"}, nil) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.fn(); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s(nope) = %v; want %v", tt.name, err, ErrNotFound)
			}
		})
	}
}

func TestSetStateAndDelete(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{}, t0)
	if _, err := register(t, s, minion("m1", "fp1"), tok, t0); err != nil {
		t.Fatal(err)
	}
	for _, st := range []model.KeyState{model.KeyAccepted, model.KeyRejected, model.KeyPending} {
		if err := s.SetMinionState(ctx, "m1", st, t0.Add(time.Second)); err != nil {
			t.Fatalf("SetMinionState(%s) = %v", st, err)
		}
		m, err := s.Minion(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if m.State != st || !m.UpdatedAt.Equal(t0.Add(time.Second)) {
			t.Errorf("after SetMinionState(%s): state %q, updated %v; want %q, %v", st, m.State, m.UpdatedAt, st, t0.Add(time.Second))
		}
	}
	if err := s.DeleteMinion(ctx, "m1"); err != nil {
		t.Fatalf("DeleteMinion = %v", err)
	}
	if err := s.DeleteMinion(ctx, "m1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteMinion = %v; want %v", err, ErrNotFound)
	}
	// A deleted minion's id is free again, for a new certificate, with a token.
	if _, err := register(t, s, minion("m1", "fp2"), "", t0); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("Register after delete without token = %v; want %v", err, ErrInvalidToken)
	}
	if _, err := register(t, s, minion("m1", "fp2"), tok, t0); err != nil {
		t.Errorf("Register after delete = %v; want nil", err)
	}
}

func TestAPITokens(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	forever, err := s.CreateAPIToken(ctx, "admin", RoleAdmin, 0, t0)
	if err != nil {
		t.Fatalf("CreateAPIToken(admin) = %v", err)
	}
	hourly, err := s.CreateAPIToken(ctx, "ci", RoleAdmin, time.Hour, t0)
	if err != nil {
		t.Fatalf("CreateAPIToken(ci) = %v", err)
	}
	if !strings.HasPrefix(forever, apiPrefix) || forever == hourly {
		t.Errorf("tokens %q, %q; want distinct, prefixed %q", forever, hourly, apiPrefix)
	}
	if _, err := s.CreateAPIToken(ctx, "admin", RoleAdmin, 0, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateAPIToken with a duplicate name = %v; want %v", err, ErrConflict)
	}

	tests := []struct {
		name     string
		hash     string
		now      time.Time
		wantErr  error
		wantName string
	}{
		{"never expires", HashToken(forever), t0.AddDate(10, 0, 0), nil, "admin"},
		{"before expiry", HashToken(hourly), t0.Add(time.Hour - time.Millisecond), nil, "ci"},
		{"at expiry", HashToken(hourly), t0.Add(time.Hour), ErrInvalidToken, ""},
		{"after expiry", HashToken(hourly), t0.Add(2 * time.Hour), ErrInvalidToken, ""},
		{"unknown", HashToken("fat_nope"), t0, ErrInvalidToken, ""},
		{"raw token is not its hash", forever, t0, ErrInvalidToken, ""},
		{"empty", "", t0, ErrInvalidToken, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := s.APIToken(ctx, tt.hash, tt.now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Errorf("APIToken() = %v; want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("APIToken() = %v; want nil", err)
			}
			if tok.Name != tt.wantName || tok.Role != RoleAdmin || !tok.CreatedAt.Equal(t0) {
				t.Errorf("APIToken() = %+v; want name %q, role %q, created %v", tok, tt.wantName, RoleAdmin, t0)
			}
		})
	}

	// Only hashes are stored.
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE hash IN (?, ?)`, forever, hourly).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d raw tokens stored; want 0", n)
	}
}

func TestJobsAndResultWriter(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(w.Close) // runs before the store closes

	jobs := []Job{
		{ID: "job-a", ClientID: "abc", CmdLine: "hostname", CmdType: "line", Targets: []string{"web*", "10.0.0.1"},
			State: model.JobRunning, CreatedAt: t0},
		{ID: "job-b", CmdLine: "uptime; echo 'x'", CmdType: "line", Targets: []string{"db1"}, State: model.JobRunning,
			CreatedAt: t0.Add(time.Second)},
	}
	for _, j := range jobs {
		if err := s.CreateJob(ctx, j, nil); err != nil {
			t.Fatalf("CreateJob(%s) = %v", j.ID, err)
		}
	}
	if err := s.CreateJob(ctx, jobs[0], nil); !errors.Is(err, ErrConflict) {
		t.Errorf("CreateJob(duplicate) = %v; want %v", err, ErrConflict)
	}

	// 3000 results, split between the two jobs, added from many goroutines
	// with sub-millisecond times and binary output.
	const n = 3000
	want := map[string][]model.Result{}
	base := time.Unix(1_760_000_000, 123_456_789)
	var all []struct {
		job string
		r   model.Result
	}
	for i := range n {
		job := jobs[i%2].ID
		r := model.Result{
			Host:       fmt.Sprintf("host%04d", i),
			Addr:       fmt.Sprintf("10.0.%d.%d:4510", i/256, i%256),
			State:      model.StateOK,
			Stdout:     []byte(fmt.Sprintf("out %d\x00\xff\n", i)),
			Transport:  "agent",
			StartedAt:  base.Add(time.Duration(i) * time.Microsecond * 700),
			FinishedAt: base.Add(time.Duration(i)*time.Microsecond*700 + 1500*time.Millisecond),
		}
		switch i % 5 {
		case 1:
			r.State, r.ExitCode, r.Stderr = model.StateFailed, 3, []byte("boom")
		case 2:
			r.State, r.ExitCode, r.Signal, r.Truncated = model.StateTimeout, -1, "SIGKILL", true
		case 3:
			r.State, r.ExitCode, r.Error, r.Stdout = model.StateUnreachable, -1, "dial: refused", nil
		}
		want[job] = append(want[job], r)
		all = append(all, struct {
			job string
			r   model.Result
		}{job, r})
	}
	var wg sync.WaitGroup
	const workers = 8
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(all); i += workers {
				w.Add(all[i].job, all[i].r)
			}
		}()
	}
	wg.Wait()
	finished := t0.Add(time.Minute + 250*time.Microsecond)
	for _, j := range jobs {
		if err := w.Finish(ctx, j.ID, model.JobDone, finished); err != nil {
			t.Fatalf("Finish(%s) = %v", j.ID, err)
		}
	}

	for _, j := range jobs {
		got, results, err := s.Job(ctx, j.ID)
		if err != nil {
			t.Fatalf("Job(%s) = %v", j.ID, err)
		}
		if got.ID != j.ID || got.ClientID != j.ClientID || got.CmdLine != j.CmdLine || got.CmdType != j.CmdType ||
			strings.Join(got.Targets, "|") != strings.Join(j.Targets, "|") || !got.CreatedAt.Equal(j.CreatedAt) {
			t.Errorf("Job(%s) = %+v; want %+v", j.ID, got, j)
		}
		if got.State != model.JobDone || !got.FinishedAt.Equal(msTime(finished)) {
			t.Errorf("Job(%s): state %q, finished %v; want %q, %v", j.ID, got.State, got.FinishedAt, model.JobDone, msTime(finished))
		}
		exp := want[j.ID]
		sort.Slice(exp, func(a, b int) bool { return exp[a].Host < exp[b].Host })
		if len(results) != len(exp) {
			t.Fatalf("Job(%s): %d results; want %d", j.ID, len(results), len(exp))
		}
		for i, r := range results {
			e := exp[i]
			if r.Host != e.Host || r.Addr != e.Addr || r.State != e.State || r.ExitCode != e.ExitCode ||
				r.Signal != e.Signal || r.Truncated != e.Truncated || r.Error != e.Error || r.Transport != e.Transport {
				t.Errorf("Job(%s) result %d = %+v; want %+v", j.ID, i, r, e)
			}
			if !bytes.Equal(r.Stdout, e.Stdout) || !bytes.Equal(r.Stderr, e.Stderr) {
				t.Errorf("Job(%s) %s: stdout, stderr = %q, %q; want %q, %q", j.ID, r.Host, r.Stdout, r.Stderr, e.Stdout, e.Stderr)
			}
			if !r.StartedAt.Equal(msTime(e.StartedAt)) || !r.FinishedAt.Equal(msTime(e.FinishedAt)) {
				t.Errorf("Job(%s) %s: times %v, %v; want %v, %v", j.ID, r.Host, r.StartedAt, r.FinishedAt,
					msTime(e.StartedAt), msTime(e.FinishedAt))
			}
		}
	}

	if _, _, err := s.Job(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Job(nope) = %v; want %v", err, ErrNotFound)
	}
}

func TestResultWriterReplacesHostResult(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(w.Close)
	if err := s.CreateJob(ctx, Job{ID: "j", CmdLine: "true", CmdType: "line", Targets: []string{"m1"}, State: model.JobRunning, CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	w.Add("j", model.Result{Host: "m1", State: model.StateCancelled})
	w.Add("j", model.Result{Host: "m1", State: model.StateOK})
	if err := w.Finish(ctx, "j", model.JobDone, t0); err != nil {
		t.Fatal(err)
	}
	_, rs, err := s.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].State != model.StateOK {
		t.Errorf("results = %+v; want one, state %q", rs, model.StateOK)
	}
}

func TestResultWriterKeepsFileReports(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(w.Close)
	if err := s.CreateJob(ctx, Job{ID: "j", CmdLine: "push /etc/motd", CmdType: "push", Targets: []string{"m*"}, State: model.JobRunning, CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	rep := model.FileReport{Changed: 2, Unchanged: 5, Size: 1 << 20, SHA256: strings.Repeat("ab", 32)}
	w.Add("j", model.Result{Host: "m1", State: model.StateOK, Files: &rep})
	w.Add("j", model.Result{Host: "m2", State: model.StateUnreachable})
	if err := w.Finish(ctx, "j", model.JobDone, t0); err != nil {
		t.Fatal(err)
	}
	_, rs, err := s.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Files == nil || *rs[0].Files != rep || rs[1].Files != nil {
		t.Fatalf("results = %+v", rs)
	}
}

func TestUpdateHealth(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{}, t0)
	for _, id := range []string{"m1", "m2"} {
		if _, err := register(t, s, minion(id, "fp-"+id), tok, t0); err != nil {
			t.Fatal(err)
		}
	}
	seen := t0.Add(time.Minute)
	steps := []struct {
		name       string
		ups        []HealthUpdate
		wantHealth map[string]model.Health
		wantSeen   map[string]time.Time
	}{
		{
			name:       "both ok",
			ups:        []HealthUpdate{{ID: "m1", Health: model.HealthOK, Seen: seen}, {ID: "m2", Health: model.HealthOK, Seen: seen}},
			wantHealth: map[string]model.Health{"m1": model.HealthOK, "m2": model.HealthOK},
			wantSeen:   map[string]time.Time{"m1": seen, "m2": seen},
		},
		{
			name:       "m1 unreachable keeps last seen",
			ups:        []HealthUpdate{{ID: "m1", Health: model.HealthUnreachable}, {ID: "m2", Health: model.HealthOK, Seen: seen.Add(time.Minute)}},
			wantHealth: map[string]model.Health{"m1": model.HealthUnreachable, "m2": model.HealthOK},
			wantSeen:   map[string]time.Time{"m1": seen, "m2": seen.Add(time.Minute)},
		},
		{
			name:       "an older sighting does not move last seen back",
			ups:        []HealthUpdate{{ID: "m1", Health: model.HealthOK, Seen: t0}},
			wantHealth: map[string]model.Health{"m1": model.HealthOK, "m2": model.HealthOK},
			wantSeen:   map[string]time.Time{"m1": seen, "m2": seen.Add(time.Minute)},
		},
		{
			name:       "unknown id and empty batch are no-ops",
			ups:        []HealthUpdate{{ID: "ghost", Health: model.HealthOK, Seen: seen}},
			wantHealth: map[string]model.Health{"m1": model.HealthOK, "m2": model.HealthOK},
			wantSeen:   map[string]time.Time{"m1": seen, "m2": seen.Add(time.Minute)},
		},
	}
	for _, st := range steps {
		if err := s.UpdateHealth(ctx, st.ups); err != nil {
			t.Fatalf("%s: UpdateHealth = %v", st.name, err)
		}
		if err := s.UpdateHealth(ctx, nil); err != nil {
			t.Fatalf("UpdateHealth(nil) = %v", err)
		}
		for id, h := range st.wantHealth {
			m, err := s.Minion(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if m.Health != h || !m.LastSeen.Equal(st.wantSeen[id]) {
				t.Errorf("%s: %s health, last seen = %q, %v; want %q, %v", st.name, id, m.Health, m.LastSeen, h, st.wantSeen[id])
			}
		}
	}
}

// msTime is t as stored: at millisecond precision.
func msTime(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()) }

func TestRegisterReportsCreated(t *testing.T) {
	s, _ := newStore(t)
	now := time.UnixMilli(1_700_000_000_000)
	tok := joinToken(t, s, JoinTokenSpec{}, now)
	reg := Registration{Minion: minion("m1", "sha256:aa"), JoinTokenHash: HashToken(tok)}
	// Same millisecond on purpose: "created" must not be derived from times.
	for i, want := range []bool{true, false} {
		_, created, err := s.Register(context.Background(), reg, now)
		if err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		if created != want {
			t.Errorf("register %d: created = %v; want %v", i, created, want)
		}
	}
}

func TestResultWriterAfterClose(t *testing.T) {
	s, _ := newStore(t)
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Close()
	w.Close()                           // twice is fine
	w.Add("j", model.Result{Host: "h"}) // must not panic
	if err := w.Finish(context.Background(), "j", model.JobDone, t0); !errors.Is(err, ErrWriterClosed) {
		t.Errorf("Finish after Close = %v; want ErrWriterClosed", err)
	}
}

func TestConflictNeedsAValidToken(t *testing.T) {
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{Uses: 2}, t0)
	if _, err := register(t, s, minion("m1", "sha256:aa"), tok, t0); err != nil {
		t.Fatal(err)
	}
	// Without a valid token nobody learns the id is taken.
	for _, bad := range []string{"", "fjt_wrong"} {
		if _, err := register(t, s, minion("m1", "sha256:bb"), bad, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("other certificate with token %q: %v; want ErrInvalidToken", bad, err)
		}
	}
	// With one it is a conflict, and the token is not used up.
	if _, err := register(t, s, minion("m1", "sha256:bb"), tok, t0); !errors.Is(err, ErrConflict) {
		t.Errorf("other certificate with a valid token: %v; want ErrConflict", err)
	}
	if _, err := register(t, s, minion("m2", "sha256:cc"), tok, t0); err != nil {
		t.Errorf("the token's second use after a conflict: %v", err)
	}
	m, err := s.Minion(context.Background(), "m1")
	if err != nil || m.Fingerprint != "sha256:aa" {
		t.Errorf("m1 pinned to %q (%v); want sha256:aa unchanged", m.Fingerprint, err)
	}
}

func TestJoinTokenDefaultUses(t *testing.T) {
	tests := []struct {
		name     string
		spec     JoinTokenSpec
		wantUses int // registrations that succeed out of 3
	}{
		{"auto-accept defaults to one use", JoinTokenSpec{AutoAccept: true}, 1},
		{"auto-accept unlimited on request", JoinTokenSpec{AutoAccept: true, Uses: -1}, 3},
		{"pending defaults to DefaultJoinUses (over 3)", JoinTokenSpec{}, 3},
		{"explicit two", JoinTokenSpec{Uses: 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t)
			tok := joinToken(t, s, tt.spec, t0)
			ok := 0
			for i := range 3 {
				if _, err := register(t, s, minion(fmt.Sprintf("m%d", i), fmt.Sprintf("sha256:%02d", i)), tok, t0); err == nil {
					ok++
				}
			}
			if ok != tt.wantUses {
				t.Errorf("%d registrations succeeded; want %d", ok, tt.wantUses)
			}
		})
	}
	s, _ := newStore(t)
	if _, _, err := s.CreateJoinToken(context.Background(), JoinTokenSpec{Uses: -2}, t0); err == nil {
		t.Errorf("uses -2 accepted")
	}
}

func TestUnfinishedAndLost(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	hosts := []model.Result{{Host: "a", State: model.StatePending}, {Host: "b", State: model.StatePending}}
	for _, j := range []Job{{ID: "run", State: model.JobRunning}, {ID: "done", State: model.JobDone}, {ID: "other", State: model.JobDone}} {
		j.CmdLine, j.CmdType, j.CreatedAt = "true", "line", t0
		if err := s.CreateJob(ctx, j, hosts); err != nil {
			t.Fatal(err)
		}
	}
	ids, err := s.UnfinishedJobs(ctx)
	if err != nil || len(ids) != 1 || ids[0] != "run" {
		t.Fatalf("UnfinishedJobs = %v, %v; want [run]", ids, err)
	}
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	w.Add("run", model.Result{Host: "a", State: model.StateOK})
	if err := w.Finish(ctx, "other", model.JobDone, t0); err != nil { // flushes a's result
		t.Fatal(err)
	}
	if err := s.MarkLost(ctx, "run", "master stopped", t0); err != nil {
		t.Fatal(err)
	}
	_, rs, err := s.Job(ctx, "run")
	if err != nil || len(rs) != 2 || rs[0].State != model.StateOK || rs[1].State != model.StateLost || rs[1].Error == "" {
		t.Errorf("after MarkLost: %+v (%v); want a ok, b lost with a reason", rs, err)
	}
	if j, _, _ := s.Job(ctx, "run"); j.Total != 2 {
		t.Errorf("job total = %d; want 2", j.Total)
	}
}

func TestResultWriterIsolatesBadRows(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if err := s.CreateJob(ctx, Job{ID: "real", CmdLine: "true", CmdType: "line", State: model.JobRunning, CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	// A result for a job that does not exist violates the foreign key; it
	// must not take the real job's results down with it.
	for i := range 50 {
		w.Add("ghost", model.Result{Host: fmt.Sprintf("g%d", i), State: model.StateOK})
		w.Add("real", model.Result{Host: fmt.Sprintf("h%02d", i), State: model.StateOK})
	}
	if err := w.Finish(ctx, "real", model.JobDone, t0); err != nil {
		t.Errorf("Finish(real) = %v; want nil", err)
	}
	if err := w.Finish(ctx, "ghost", model.JobDone, t0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Finish(ghost) = %v; want ErrNotFound", err)
	}
	_, rs, err := s.Job(ctx, "real")
	if err != nil || len(rs) != 50 {
		t.Errorf("real job has %d results (%v); want 50", len(rs), err)
	}
}

// TestResultWriterMarksLostHosts: a host whose result cannot be stored (a
// trigger makes SQLite refuse that one row) does not keep its job from
// ending; the job's end marks it lost, with the reason, in the same
// transaction, so the stored job is whole and consistent.
func TestResultWriterMarksLostHosts(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	hosts := []model.Result{{Host: "h1", State: model.StatePending}, {Host: "h2", State: model.StatePending}, {Host: "h3", State: model.StatePending}}
	if err := s.CreateJob(ctx, Job{ID: "j", CmdLine: "true", CmdType: "line", State: model.JobRunning, CreatedAt: t0}, hosts); err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER refuse_h2 BEFORE INSERT ON job_hosts WHEN NEW.host = 'h2' AND NEW.state = 'ok'
		BEGIN SELECT RAISE(ABORT, 'injected: h2 cannot be stored'); END`); err != nil {
		t.Fatal(err)
	}
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer w.Close()
	for _, h := range []string{"h1", "h2", "h3"} {
		w.Add("j", model.Result{Host: h, State: model.StateOK, Stdout: []byte("out " + h)})
	}
	if err := w.Finish(ctx, "j", model.JobDone, t0); err != nil {
		t.Fatalf("Finish = %v; want nil: the job ends, its lost host marked", err)
	}
	j, rs, err := s.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]model.Result{}
	for _, r := range rs {
		got[r.Host] = r
	}
	if j.State != model.JobDone || got["h1"].State != model.StateOK || got["h3"].State != model.StateOK ||
		got["h2"].State != model.StateLost || !strings.Contains(got["h2"].Error, "injected: h2 cannot be stored") {
		t.Errorf("job %s, hosts %+v; want done, h1 and h3 ok, h2 lost with the reason", j.State, got)
	}
}

func TestLabels(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	tok := joinToken(t, s, JoinTokenSpec{}, t0)
	for _, id := range []string{"m1", "m2"} {
		if _, err := register(t, s, minion(id, "fp-"+id), tok, t0); err != nil {
			t.Fatal(err)
		}
	}
	labelsOf := func(id string) map[string]string {
		t.Helper()
		m, err := s.Minion(ctx, id)
		if err != nil {
			t.Fatalf("Minion(%s) = %v", id, err)
		}
		all, err := s.Minions(ctx)
		if err != nil {
			t.Fatalf("Minions() = %v", err)
		}
		for _, o := range all {
			if o.ID == id && !maps.Equal(o.Labels, m.Labels) {
				t.Errorf("%s: Minions() labels %v, Minion() labels %v; want the same", id, o.Labels, m.Labels)
			}
		}
		return m.Labels
	}
	steps := []struct {
		name   string
		set    map[string]string
		remove []string
		want   map[string]string
	}{
		{name: "set", set: map[string]string{"role": "web", "zone": "eu-1"}, want: map[string]string{"role": "web", "zone": "eu-1"}},
		{name: "overwrite", set: map[string]string{"role": "db"}, want: map[string]string{"role": "db", "zone": "eu-1"}},
		{name: "remove", remove: []string{"zone"}, want: map[string]string{"role": "db"}},
		{name: "remove unknown key", remove: []string{"nope"}, want: map[string]string{"role": "db"}},
		{name: "set and remove others", set: map[string]string{"tier": "1"}, remove: []string{"role"}, want: map[string]string{"tier": "1"}},
		{name: "remove all", remove: []string{"tier"}, want: nil},
	}
	for _, st := range steps {
		if err := s.SetLabels(ctx, "m1", st.set, st.remove); err != nil {
			t.Fatalf("%s: SetLabels = %v", st.name, err)
		}
		if got := labelsOf("m1"); !maps.Equal(got, st.want) {
			t.Errorf("%s: labels %v; want %v", st.name, got, st.want)
		}
	}
	if got := labelsOf("m2"); len(got) != 0 {
		t.Errorf("m2 labels %v; want none", got)
	}

	// Labels go with their minion and do not come back with the id.
	if err := s.SetLabels(ctx, "m1", map[string]string{"role": "web"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMinion(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM labels WHERE minion_id = 'm1'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("labels of a deleted minion: %d rows (%v); want 0", n, err)
	}
	if _, err := register(t, s, minion("m1", "fp-new"), tok, t0); err != nil {
		t.Fatal(err)
	}
	if got := labelsOf("m1"); len(got) != 0 {
		t.Errorf("re-registered m1 labels %v; want none", got)
	}
}

// createJob stores a job with the given host states and fails the test on error.
func createJob(t *testing.T, s *Store, j Job, hostStates ...model.State) {
	t.Helper()
	if j.CmdLine == "" {
		j.CmdLine, j.CmdType = "true", "line"
	}
	var hosts []model.Result
	for i, st := range hostStates {
		hosts = append(hosts, model.Result{Host: fmt.Sprintf("h%d", i), State: st})
	}
	if err := s.CreateJob(context.Background(), j, hosts); err != nil {
		t.Fatalf("CreateJob(%s) = %v", j.ID, err)
	}
}

func jobIDs(js []Job) []string {
	var out []string
	for _, j := range js {
		out = append(out, j.ID)
	}
	return out
}

func TestJobsList(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	// Ids sort like their creation times, as NewJobID's do.
	createJob(t, s, Job{ID: "j1", ClientID: "a", State: model.JobDone, CreatedAt: t0}, model.StateOK, model.StateOK)
	createJob(t, s, Job{ID: "j2", ClientID: "b", State: model.JobDone, CreatedAt: t0.Add(1 * time.Second)}, model.StateFailed)
	createJob(t, s, Job{ID: "j3", ClientID: "a", State: model.JobRunning, CreatedAt: t0.Add(2 * time.Second)},
		model.StateOK, model.StateFailed, model.StatePending, model.StatePending)
	createJob(t, s, Job{ID: "j4", ClientID: "a", State: model.JobCancelled, CreatedAt: t0.Add(3 * time.Second)}, model.StateCancelled)
	createJob(t, s, Job{ID: "j5", State: model.JobDone, CreatedAt: t0.Add(4 * time.Second)})

	tests := []struct {
		name string
		f    JobFilter
		want []string
	}{
		{name: "all, newest first", f: JobFilter{}, want: []string{"j5", "j4", "j3", "j2", "j1"}},
		{name: "by state", f: JobFilter{State: model.JobDone}, want: []string{"j5", "j2", "j1"}},
		{name: "by client id", f: JobFilter{ClientID: "a"}, want: []string{"j4", "j3", "j1"}},
		{name: "by both", f: JobFilter{ClientID: "a", State: model.JobDone}, want: []string{"j1"}},
		{name: "unknown state", f: JobFilter{State: "bogus"}, want: nil},
		{name: "first page", f: JobFilter{Limit: 2}, want: []string{"j5", "j4"}},
		{name: "second page", f: JobFilter{Limit: 2, Before: "j4"}, want: []string{"j3", "j2"}},
		{name: "last page", f: JobFilter{Limit: 2, Before: "j2"}, want: []string{"j1"}},
		{name: "past the end", f: JobFilter{Limit: 2, Before: "j1"}, want: nil},
		{name: "paging with a filter", f: JobFilter{ClientID: "a", Limit: 1, Before: "j4"}, want: []string{"j3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Jobs(ctx, tt.f)
			if err != nil {
				t.Fatalf("Jobs(%+v) = %v", tt.f, err)
			}
			if ids := jobIDs(got); !slices.Equal(ids, tt.want) {
				t.Errorf("Jobs(%+v) = %q; want %q", tt.f, ids, tt.want)
			}
		})
	}

	all, err := s.Jobs(ctx, JobFilter{})
	if err != nil {
		t.Fatal(err)
	}
	wantSummary := map[string]map[string]int{
		"j1": {"ok": 2},
		"j2": {"failed": 1},
		"j3": {"ok": 1, "failed": 1, "pending": 2},
		"j4": {"cancelled": 1},
		"j5": {},
	}
	wantTotal := map[string]int{"j1": 2, "j2": 1, "j3": 4, "j4": 1, "j5": 0}
	for _, j := range all {
		if j.Summary == nil || !maps.Equal(j.Summary, wantSummary[j.ID]) {
			t.Errorf("%s: Summary = %v; want %v", j.ID, j.Summary, wantSummary[j.ID])
		}
		if j.Total != wantTotal[j.ID] {
			t.Errorf("%s: Total = %d; want %d", j.ID, j.Total, wantTotal[j.ID])
		}
	}
}

// outboxRow inserts an outbox row directly, in any state.
func outboxRow(t *testing.T, s *Store, eventID, jobID string, state model.DeliveryState, next time.Time) {
	t.Helper()
	ctx := context.Background()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		return enqueue(ctx, tx, OutboxItem{EventID: eventID, Kind: KindCallback, JobID: jobID, URL: "http://x/",
			Body: []byte("{}"), NextAt: next, CreatedAt: t0})
	})
	if err != nil {
		t.Fatalf("enqueue %s: %v", eventID, err)
	}
	if state != model.DeliveryPending {
		if _, err := s.w.ExecContext(ctx, `UPDATE outbox SET state = ? WHERE event_id = ?`, state, eventID); err != nil {
			t.Fatal(err)
		}
	}
}

func outboxEvents(t *testing.T, s *Store) []string {
	t.Helper()
	items, err := s.Outbox(context.Background(), OutboxFilter{})
	if err != nil {
		t.Fatalf("Outbox() = %v", err)
	}
	var out []string
	for _, it := range items {
		out = append(out, it.EventID)
	}
	slices.Sort(out)
	return out
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	day := 24 * time.Hour
	old := t0.Add(-40 * day)

	t.Run("by age", func(t *testing.T) {
		s, _ := newStore(t)
		createJob(t, s, Job{ID: "a1-old-done", State: model.JobDone, CreatedAt: old}, model.StateOK, model.StateFailed)
		createJob(t, s, Job{ID: "a2-old-running", State: model.JobRunning, CreatedAt: old}, model.StatePending)
		createJob(t, s, Job{ID: "a3-old-cancelled", State: model.JobCancelled, CreatedAt: old.Add(time.Hour)}, model.StateCancelled)
		createJob(t, s, Job{ID: "a4-old-queued", State: model.JobQueued, CreatedAt: old.Add(time.Hour)})
		createJob(t, s, Job{ID: "a5-new-done", State: model.JobDone, CreatedAt: t0}, model.StateOK)
		outboxRow(t, s, "old-delivered", "a1-old-done", model.DeliveryDelivered, old)
		outboxRow(t, s, "old-dead", "a1-old-done", model.DeliveryDead, old)
		outboxRow(t, s, "old-pending", "a1-old-done", model.DeliveryPending, old)
		outboxRow(t, s, "cancelled-delivered", "a3-old-cancelled", model.DeliveryDelivered, old)
		outboxRow(t, s, "new-delivered", "a5-new-done", model.DeliveryDelivered, t0)

		n, err := s.Prune(ctx, t0.Add(-30*day), 1000)
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		all, err := s.Jobs(ctx, JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jobIDs(all), []string{"a5-new-done", "a4-old-queued", "a2-old-running"}; !slices.Equal(got, want) {
			t.Errorf("jobs after Prune = %q; want %q", got, want)
		}
		var results int
		if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM job_hosts WHERE job_id IN ('a1-old-done', 'a3-old-cancelled')`).
			Scan(&results); err != nil || results != 0 {
			t.Errorf("results of pruned jobs: %d (%v); want 0", results, err)
		}
		if _, rs, err := s.Job(ctx, "a2-old-running"); err != nil || len(rs) != 1 {
			t.Errorf("running job kept with %d results (%v); want 1", len(rs), err)
		}
		if got, want := outboxEvents(t, s), []string{"new-delivered", "old-pending"}; !slices.Equal(got, want) {
			t.Errorf("outbox after Prune = %q; want %q", got, want)
		}
	})

	t.Run("by count", func(t *testing.T) {
		s, _ := newStore(t)
		createJob(t, s, Job{ID: "j1", State: model.JobRunning, CreatedAt: t0}, model.StatePending)
		for i := 2; i <= 5; i++ {
			createJob(t, s, Job{ID: fmt.Sprintf("j%d", i), State: model.JobDone, CreatedAt: t0.Add(time.Duration(i) * time.Second)}, model.StateOK)
			outboxRow(t, s, fmt.Sprintf("e%d", i), fmt.Sprintf("j%d", i), model.DeliveryDelivered, t0)
		}
		n, err := s.Prune(ctx, t0.Add(-30*day), 2)
		if err != nil || n != 2 {
			t.Fatalf("Prune = %d, %v; want 2", n, err)
		}
		all, err := s.Jobs(ctx, JobFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := jobIDs(all), []string{"j5", "j4", "j1"}; !slices.Equal(got, want) {
			t.Errorf("jobs after Prune = %q; want %q (the newest two and the running one)", got, want)
		}
		if got, want := outboxEvents(t, s), []string{"e4", "e5"}; !slices.Equal(got, want) {
			t.Errorf("outbox after Prune = %q; want %q", got, want)
		}
		if n, err := s.Prune(ctx, t0.Add(-30*day), 2); err != nil || n != 0 {
			t.Errorf("second Prune = %d, %v; want 0", n, err)
		}
	})
}

func TestFinishEnqueuesOutbox(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := NewResultWriter(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(w.Close)
	item := func(eventID, jobID, url string) OutboxItem {
		return OutboxItem{EventID: eventID, Kind: KindCallback, JobID: jobID, URL: url, Body: []byte(`{"id":"` + eventID + `"}`),
			NextAt: t0, CreatedAt: t0}
	}

	createJob(t, s, Job{ID: "ok", State: model.JobRunning, CreatedAt: t0}, model.StatePending)
	w.Add("ok", model.Result{Host: "h0", State: model.StateOK})
	if err := w.Finish(ctx, "ok", model.JobDone, t0, item("ok-cb", "ok", "http://a/"), item("ok-slack", "ok", "http://b/")); err != nil {
		t.Fatalf("Finish(ok) = %v", err)
	}
	j, rs, err := s.Job(ctx, "ok")
	if err != nil || j.State != model.JobDone || rs[0].State != model.StateOK {
		t.Errorf("finished job: %s, %+v (%v); want done, h0 ok", j.State, rs, err)
	}
	items, err := s.Outbox(ctx, OutboxFilter{JobID: "ok", WithBody: true})
	if err != nil || len(items) != 2 {
		t.Fatalf("outbox of the finished job: %+v, %v; want 2 items", items, err)
	}
	for _, it := range items {
		if it.State != model.DeliveryPending || it.Attempts != 0 || it.JobID != "ok" || string(it.Body) != `{"id":"`+it.EventID+`"}` ||
			!it.NextAt.Equal(t0) || !it.CreatedAt.Equal(t0) || !it.DeliveredAt.IsZero() {
			t.Errorf("outbox item = %+v; want it pending as enqueued", it)
		}
	}

	// The same event id again (a retried Finish) is not a second delivery.
	if err := w.Finish(ctx, "ok", model.JobDone, t0, item("ok-cb", "ok", "http://other/")); err != nil {
		t.Fatalf("Finish(ok) again = %v", err)
	}
	if items, _ := s.Outbox(ctx, OutboxFilter{JobID: "ok"}); len(items) != 2 {
		t.Errorf("after a duplicate event id: %d items; want 2", len(items))
	}
	if items, _ := s.Outbox(ctx, OutboxFilter{JobID: "ok", State: model.DeliveryPending}); len(items) != 2 || items[0].URL == "http://other/" || items[1].URL == "http://other/" {
		t.Errorf("after a duplicate event id: %+v; want the first items unchanged", items)
	}

	// When an item cannot be stored, neither is the job's end: a finished
	// job always has its deliveries, and an unfinished one has none.
	if _, err := s.w.ExecContext(ctx, `CREATE TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.url = 'http://refused/'
		BEGIN SELECT RAISE(ABORT, 'refused'); END`); err != nil {
		t.Fatal(err)
	}
	createJob(t, s, Job{ID: "bad", State: model.JobRunning, CreatedAt: t0}, model.StatePending)
	if err := w.Finish(ctx, "bad", model.JobDone, t0, item("bad-1", "bad", "http://a/"), item("bad-2", "bad", "http://refused/")); err == nil {
		t.Errorf("Finish with an item that cannot be stored = nil; want an error")
	}
	if j, _, _ := s.Job(ctx, "bad"); j.State != model.JobRunning {
		t.Errorf("job state after a failed Finish = %s; want running", j.State)
	}
	if items, _ := s.Outbox(ctx, OutboxFilter{JobID: "bad"}); len(items) != 0 {
		t.Errorf("outbox after a failed Finish: %+v; want nothing", items)
	}
	// Other jobs are not held up by it.
	createJob(t, s, Job{ID: "next", State: model.JobRunning, CreatedAt: t0}, model.StatePending)
	if err := w.Finish(ctx, "next", model.JobDone, t0, item("next-cb", "next", "http://a/")); err != nil {
		t.Errorf("Finish(next) = %v", err)
	}
	if items, _ := s.Outbox(ctx, OutboxFilter{JobID: "next"}); len(items) != 1 {
		t.Errorf("outbox of the next job: %d items; want 1", len(items))
	}
}

func TestOutboxDueAndDone(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	outboxRow(t, s, "later", "j", model.DeliveryPending, t0.Add(time.Minute))
	outboxRow(t, s, "due-second", "j", model.DeliveryPending, t0.Add(-time.Minute))
	outboxRow(t, s, "due-now", "j", model.DeliveryPending, t0)
	outboxRow(t, s, "due-first", "j", model.DeliveryPending, t0.Add(-2*time.Minute))
	outboxRow(t, s, "delivered", "j", model.DeliveryDelivered, t0.Add(-3*time.Minute))
	outboxRow(t, s, "dead", "j", model.DeliveryDead, t0.Add(-3*time.Minute))

	due := func(now time.Time, limit int) []string {
		t.Helper()
		items, err := s.DueOutbox(ctx, now, limit)
		if err != nil {
			t.Fatalf("DueOutbox = %v", err)
		}
		var out []string
		for _, it := range items {
			out = append(out, it.EventID)
			// Due rows come without bodies; the deliverer loads one by id.
			if len(it.Body) != 0 {
				t.Errorf("DueOutbox: %s has its body (%d bytes); want none", it.EventID, len(it.Body))
			}
			if b, err := s.OutboxBody(ctx, it.ID); err != nil || len(b) == 0 {
				t.Errorf("OutboxBody(%s) = %d bytes, %v; want the body", it.EventID, len(b), err)
			}
		}
		return out
	}
	if _, err := s.OutboxBody(ctx, 99999); !errors.Is(err, ErrNotFound) {
		t.Errorf("OutboxBody of no row = %v; want ErrNotFound", err)
	}
	if got, want := due(t0, 10), []string{"due-first", "due-second", "due-now"}; !slices.Equal(got, want) {
		t.Errorf("DueOutbox(t0) = %q; want %q", got, want)
	}
	if got, want := due(t0, 2), []string{"due-first", "due-second"}; !slices.Equal(got, want) {
		t.Errorf("DueOutbox(t0, 2) = %q; want %q", got, want)
	}
	if got := due(t0.Add(-time.Hour), 10); len(got) != 0 {
		t.Errorf("DueOutbox(an hour earlier) = %q; want none", got)
	}

	byEvent := func(id string) OutboxItem {
		t.Helper()
		items, err := s.Outbox(ctx, OutboxFilter{JobID: "j", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.EventID == id {
				return it
			}
		}
		t.Fatalf("no outbox item %s", id)
		return OutboxItem{}
	}
	first := byEvent("due-first")
	// A failed try: pending again, later.
	retry := t0.Add(5 * time.Minute)
	if err := s.OutboxDone(ctx, first.ID, model.DeliveryPending, 1, retry, "HTTP 500", t0); err != nil {
		t.Fatal(err)
	}
	if it := byEvent("due-first"); it.State != model.DeliveryPending || it.Attempts != 1 || !it.NextAt.Equal(retry) ||
		it.LastError != "HTTP 500" || !it.DeliveredAt.IsZero() {
		t.Errorf("after a failed try: %+v; want pending, 1 attempt, next at %v, the error kept", it, retry)
	}
	if got := due(t0, 10); slices.Contains(got, "due-first") {
		t.Errorf("DueOutbox(t0) = %q; want due-first not due before its retry", got)
	}
	if got := due(retry, 10); got[len(got)-1] != "due-first" {
		t.Errorf("DueOutbox(retry) = %q; want due-first last (latest next_at)", got)
	}
	// Delivered.
	if err := s.OutboxDone(ctx, first.ID, model.DeliveryDelivered, 2, retry, "", t0.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if it := byEvent("due-first"); it.State != model.DeliveryDelivered || it.Attempts != 2 || it.LastError != "" ||
		!it.DeliveredAt.Equal(t0.Add(6*time.Minute)) {
		t.Errorf("after delivery: %+v; want delivered at %v", it, t0.Add(6*time.Minute))
	}
	// Dead.
	second := byEvent("due-second")
	if err := s.OutboxDone(ctx, second.ID, model.DeliveryDead, 30, t0, "gave up after 24h", t0); err != nil {
		t.Fatal(err)
	}
	if it := byEvent("due-second"); it.State != model.DeliveryDead || it.Attempts != 30 || it.LastError != "gave up after 24h" || !it.DeliveredAt.IsZero() {
		t.Errorf("after giving up: %+v; want dead with the reason", it)
	}
	if got, want := due(t0.Add(time.Hour), 10), []string{"due-now", "later"}; !slices.Equal(got, want) {
		t.Errorf("DueOutbox(t0+1h) = %q; want %q", got, want)
	}
	if dead, err := s.Outbox(ctx, OutboxFilter{State: model.DeliveryDead}); err != nil || len(dead) != 2 {
		t.Errorf("Outbox(dead) = %d items, %v; want 2", len(dead), err)
	}
}

func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "felix.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		migrations[0],
		`PRAGMA user_version = 1`,
		`INSERT INTO jobs (id, client_id, cmd_line, cmd_type, targets, state, created_at, finished_at)
			VALUES ('old', 'c-1', 'uptime', 'line', 'web1` + "\n" + `web2', 'done', 1000, 2000)`,
		`INSERT INTO job_hosts (job_id, host, state, exit_code, stdout) VALUES ('old', 'web1', 'ok', 0, 'up 3 days')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			t.Fatalf("build a version 1 database: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open(version 1) = %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Errorf("SchemaVersion() = %d, %v; want %d", v, err, len(migrations))
	}
	j, rs, err := s.Job(ctx, "old")
	if err != nil {
		t.Fatalf("Job(old) = %v", err)
	}
	if j.Spec != "{}" || j.ClientID != "c-1" || j.State != model.JobDone || !slices.Equal(j.Targets, []string{"web1", "web2"}) ||
		!j.CreatedAt.Equal(time.UnixMilli(1000)) || !j.FinishedAt.Equal(time.UnixMilli(2000)) {
		t.Errorf("old job = %+v; want it as stored, spec {}", j)
	}
	if len(rs) != 1 || rs[0].State != model.StateOK || string(rs[0].Stdout) != "up 3 days" {
		t.Errorf("old job's results = %+v; want web1 ok", rs)
	}
	if list, err := s.Jobs(ctx, JobFilter{}); err != nil || len(list) != 1 || list[0].Summary["ok"] != 1 {
		t.Errorf("Jobs() = %+v, %v; want the old job, 1 ok", list, err)
	}
	// The new tables work on a migrated database.
	createJob(t, s, Job{ID: "new", State: model.JobRunning, CreatedAt: t0}, model.StatePending)
	outboxRow(t, s, "e1", "new", model.DeliveryPending, t0)
	if ids, err := s.UnfinishedJobs(ctx); err != nil || !slices.Equal(ids, []string{"new"}) {
		t.Errorf("UnfinishedJobs() = %q, %v; want [new]", ids, err)
	}
}

func TestStorageErrorKinds(t *testing.T) {
	tests := []struct {
		name            string
		err             error
		full, transient bool
	}{
		{"sqlite full", fmt.Errorf("store: %w", sqlite3.Error{Code: sqlite3.ErrFull}), true, true},
		{"ENOSPC", &os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true, true},
		{"busy", sqlite3.Error{Code: sqlite3.ErrBusy}, false, true},
		{"I/O error", sqlite3.Error{Code: sqlite3.ErrIoErr}, false, true},
		{"too big", sqlite3.Error{Code: sqlite3.ErrTooBig}, false, false},
		{"constraint", sqlite3.Error{Code: sqlite3.ErrConstraint}, false, false},
		{"other", errors.New("boom"), false, false},
	}
	for _, tt := range tests {
		if got := IsFull(tt.err); got != tt.full {
			t.Errorf("%s: IsFull = %v; want %v", tt.name, got, tt.full)
		}
		if got := Transient(tt.err); got != tt.transient {
			t.Errorf("%s: Transient = %v; want %v", tt.name, got, tt.transient)
		}
	}
}

// The writer's queue holds at most maxQueuedBytes of results: Add waits
// beyond that until the writer stored what it had, nothing is lost, and
// every byte is given back.
func TestResultWriterQueueBounded(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := NewResultWriter(s, testenv.Logger(t))
	defer w.Close()
	const hosts = 100
	out := bytes.Repeat([]byte("x"), 1<<20) // 100 MiB in all, over the queue's 16 MiB
	rows := make([]model.Result, hosts)
	for i := range rows {
		rows[i] = model.Result{Host: fmt.Sprintf("h%03d", i), State: model.StatePending}
	}
	if err := s.CreateJob(ctx, Job{ID: "big", CmdLine: "x", CmdType: "line", State: model.JobRunning, CreatedAt: t0}, rows); err != nil {
		t.Fatal(err)
	}
	for i := range hosts {
		w.Add("big", model.Result{Host: fmt.Sprintf("h%03d", i), State: model.StateOK, Stdout: out})
	}
	if err := w.Finish(ctx, "big", model.JobDone, t0); err != nil {
		t.Fatalf("Finish = %v", err)
	}
	if !w.queued.TryAcquire(maxQueuedBytes) {
		t.Error("after Finish the queue still holds bytes; want all given back")
	}
	_, rs, err := s.Job(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.State != model.StateOK || len(r.Stdout) != len(out) {
			t.Fatalf("%s: %s with %d bytes; want ok with %d", r.Host, r.State, len(r.Stdout), len(out))
		}
	}
}
