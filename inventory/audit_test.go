package inventory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

func TestAPITokensListAndRevoke(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Now()
	if _, err := s.CreateAPIToken(ctx, "bad", "root", 0, now); err == nil {
		t.Error("a token with an unknown role was made")
	}
	for _, tc := range []struct {
		name, role string
		ttl        time.Duration
	}{{"admin", model.RoleAdmin, 0}, {"ci", model.RoleOperator, time.Hour}, {"dash", model.RoleRead, 0}} {
		if _, err := s.CreateAPIToken(ctx, tc.name, tc.role, tc.ttl, now); err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.APITokens(ctx)
	if err != nil || len(list) != 3 || list[0].Name != "admin" || list[1].Role != model.RoleOperator || list[1].ExpiresAt.IsZero() {
		t.Fatalf("APITokens = %+v, %v", list, err)
	}
	if err := s.RevokeAPIToken(ctx, "admin", now); !errors.Is(err, ErrLastAdmin) || !errors.Is(err, ErrConflict) {
		t.Errorf("revoke the last admin = %v; want ErrLastAdmin", err)
	}
	if err := s.RevokeAPIToken(ctx, "nope", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke an unknown token = %v; want ErrNotFound", err)
	}
	tok, err := s.CreateAPIToken(ctx, "admin2", model.RoleAdmin, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIToken(ctx, "admin", now); err != nil {
		t.Errorf("revoke an admin beside another: %v", err)
	}
	if _, err := s.APIToken(ctx, HashToken(tok), now); err != nil {
		t.Errorf("the other admin token: %v", err)
	}
	if list, _ := s.APITokens(ctx); len(list) != 3 || list[0].Name != "admin2" {
		t.Errorf("after revoking: %+v", list)
	}
}

func TestAuditLog(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	start := time.Now().Add(-time.Hour)
	for i := range 5 {
		if err := s.AddAudit(ctx, AuditEntry{At: start.Add(time.Duration(i) * time.Minute), Who: "ci", Role: model.RoleOperator,
			Source: "127.0.0.1", Method: "POST", Path: "/api/v1/exec", Status: 202, Targets: "web*", JobID: fmt.Sprint("j", i)}); err != nil {
			t.Fatal(err)
		}
	}
	page, next, err := s.AuditLog(ctx, 0, 2)
	if err != nil || len(page) != 2 || page[0].JobID != "j4" || page[1].JobID != "j3" || next != page[1].ID {
		t.Fatalf("first page = %+v, next %d, %v", page, next, err)
	}
	page, next, err = s.AuditLog(ctx, next, 10)
	if err != nil || len(page) != 3 || page[2].JobID != "j0" || next != 0 || page[0].Who != "ci" || page[0].Status != 202 {
		t.Fatalf("second page = %+v, next %d, %v", page, next, err)
	}
	// Pruning takes the entries older than the jobs' retention.
	if _, err := s.Prune(ctx, start.Add(150*time.Second), 0); err != nil {
		t.Fatal(err)
	}
	if page, _, _ := s.AuditLog(ctx, 0, 10); len(page) != 2 {
		t.Errorf("after pruning: %d entries; want 2", len(page))
	}
}

func TestJoinTokenUsesStored(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, tc := range []struct {
		spec JoinTokenSpec
		want int
	}{
		{JoinTokenSpec{AutoAccept: true}, 1},
		{JoinTokenSpec{}, DefaultJoinUses},
		{JoinTokenSpec{Uses: -1}, -1},
		{JoinTokenSpec{Uses: 7}, 7},
	} {
		tok, _, err := s.CreateJoinToken(ctx, tc.spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var left int
		if err := s.r.QueryRowContext(ctx, `SELECT uses_left FROM join_tokens WHERE hash = ?`, HashToken(tok)).Scan(&left); err != nil || left != tc.want {
			t.Errorf("%+v: uses_left %d, %v; want %d", tc.spec, left, err, tc.want)
		}
	}
}
