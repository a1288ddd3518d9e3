package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// TestRoleMatrix: every authenticated route × every role, from the
// server's own route table: a token below the route's role gets 403 and
// nothing changes; one at or above it gets past the check.
func TestRoleMatrix(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	tokens := map[string]string{}
	for _, role := range model.Roles {
		tok, err := h.store.CreateAPIToken(ctx, "t-"+role, role, 0, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokens[role] = tok
	}
	table := h.routeRoles()
	for _, r := range authRoutes {
		p, _, _ := strings.Cut(r.path, "?")
		need := ""
		for _, rr := range table {
			if rr.Method == r.method && pathMatches(rr.Path, p) {
				need = rr.Role
			}
		}
		if need == "" {
			t.Errorf("%s %s has no role in the server's table", r.method, r.path)
			continue
		}
		for _, role := range model.Roles {
			if model.RoleRank(role) >= model.RoleRank(need) {
				continue // allowed: the other tests run these
			}
			t.Run(r.method+" "+r.path+"/"+role, func(t *testing.T) {
				before := h.dump()
				var body any
				if r.body != "" {
					body = r.body
				}
				status, out := h.do(h.client(nil), r.method, r.path, "Bearer "+tokens[role], body)
				if status != http.StatusForbidden {
					t.Errorf("%s %s as %s = %d %.200s; want 403 (needs %s)", r.method, r.path, role, status, out, need)
				}
				if r.method != "HEAD" {
					wantError(t, r.method+" "+r.path, out, "role "+role, "needs the "+need+" role")
				}
				h.wantUnchanged(r.method+" "+r.path, before)
			})
		}
	}
	// The least role allowed gets through (a 2xx or a 4xx of the route's
	// own, never 401 or 403).
	for _, tc := range []struct{ role, method, path, body string }{
		{model.RoleRead, "GET", "/api/v1/jobs", ""},
		{model.RoleOperator, "POST", "/api/v1/exec?dry_run=true", `{"cmd_line": "true", "targets": ["x"]}`},
		{model.RoleAdmin, "GET", "/api/v1/audit", ""},
	} {
		if status, out := h.do(h.client(nil), tc.method, tc.path, "Bearer "+tokens[tc.role], tc.body); status == http.StatusForbidden || status == http.StatusUnauthorized {
			t.Errorf("%s %s as %s = %d %s; want it allowed", tc.method, tc.path, tc.role, status, out)
		}
	}
}

// TestTokens: admins issue, list and revoke API tokens; a revoked token
// stops at once; the last admin token cannot be revoked.
func TestTokens(t *testing.T) {
	h := newHarness(t)
	c := h.client(nil)
	admin := "Bearer " + h.admin
	for _, tc := range []struct {
		name string
		body any
		want []string
	}{
		{"bad role", map[string]any{"name": "x", "role": "root"}, []string{"role", "root"}},
		{"no role", map[string]any{"name": "x"}, []string{"role"}},
		{"bad name", map[string]any{"name": "a/b", "role": "read"}, []string{"name"}},
		{"bad ttl", map[string]any{"name": "x", "role": "read", "ttl": "soon"}, []string{"ttl", "soon"}},
	} {
		before := h.dump()
		status, out := h.do(c, "POST", "/api/v1/tokens", admin, tc.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: POST tokens = %d %s; want 400", tc.name, status, out)
		}
		wantError(t, tc.name, out, tc.want...)
		h.wantUnchanged(tc.name, before)
	}
	if status, out := h.do(c, "POST", "/api/v1/tokens", admin, `{"name": "`+strings.Repeat("x", 5<<20)+`"}`); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB body = %d %.200s; want 413", status, out)
	}
	status, out := h.do(c, "POST", "/api/v1/tokens", admin, map[string]any{"name": "ci", "role": "operator", "ttl": "24h"})
	var tok wire.Token
	if status != http.StatusCreated || json.Unmarshal(out, &tok) != nil || !strings.HasPrefix(tok.Token, "fat_") ||
		tok.Role != "operator" || tok.ExpiresAt == nil {
		t.Fatalf("POST tokens = %d %s; want 201 with an operator token expiring", status, out)
	}
	if status, out := h.do(c, "POST", "/api/v1/tokens", admin, map[string]any{"name": "ci", "role": "read"}); status != http.StatusConflict {
		t.Errorf("a second ci = %d %s; want 409", status, out)
	}
	status, out = h.do(c, "GET", "/api/v1/tokens", admin, nil)
	var list wire.TokenList
	if status != http.StatusOK || json.Unmarshal(out, &list) != nil || len(list.Tokens) != 2 || strings.Contains(string(out), "fat_") {
		t.Errorf("GET tokens = %d %s; want admin and ci, no secrets", status, out)
	}
	if status, _ := h.do(c, "GET", "/api/v1/jobs", "Bearer "+tok.Token, nil); status != http.StatusOK {
		t.Errorf("ci before revoking = %d; want 200", status)
	}
	if status, out := h.do(c, "DELETE", "/api/v1/tokens/ci", admin, nil); status != http.StatusOK {
		t.Errorf("DELETE tokens/ci = %d %s", status, out)
	}
	if status, _ := h.do(c, "GET", "/api/v1/jobs", "Bearer "+tok.Token, nil); status != http.StatusUnauthorized {
		t.Errorf("ci after revoking = %d; want 401", status)
	}
	if status, out := h.do(c, "DELETE", "/api/v1/tokens/ci", admin, nil); status != http.StatusNotFound {
		t.Errorf("DELETE tokens/ci again = %d %s; want 404", status, out)
	}
	status, out = h.do(c, "DELETE", "/api/v1/tokens/admin", admin, nil)
	if status != http.StatusConflict {
		t.Errorf("revoking the last admin = %d %s; want 409", status, out)
	}
	wantError(t, "last admin", out, "last admin token")
}

// TestAudit: state-changing requests — allowed, refused, unauthenticated —
// land in the audit log with who, role, source, status, targets and job;
// reads do not; jobs name the token that asked.
func TestAudit(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	ctx := context.Background()
	op, err := h.store.CreateAPIToken(ctx, "ci", model.RoleOperator, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := h.client(nil)
	status, out := h.do(c, "POST", "/api/v1/exec", "Bearer "+op, map[string]any{"cmd_line": "true", "targets": []string{"web*"}})
	var acc wire.ExecAccepted
	if status != http.StatusAccepted || json.Unmarshal(out, &acc) != nil {
		t.Fatalf("exec = %d %s", status, out)
	}
	h.do(c, "POST", "/api/v1/minions/web1/reject", "Bearer "+op, nil)      // 403
	h.do(c, "POST", "/api/v1/minions/web1/reject", "Bearer fat_nope", nil) // 401
	h.do(c, "GET", "/api/v1/jobs", "Bearer "+op, nil)                      // a read: not audited

	status, out = h.do(c, "GET", "/api/v1/audit?limit=10", "Bearer "+h.admin, nil)
	var log wire.AuditLog
	if status != http.StatusOK || json.Unmarshal(out, &log) != nil {
		t.Fatalf("GET audit = %d %s", status, out)
	}
	var got []string
	for _, e := range log.Entries {
		got = append(got, strings.Join([]string{e.Who, e.Role, e.Method, e.Path, http.StatusText(e.Status), e.Targets, e.JobID}, "|"))
		if e.Source != "127.0.0.1" || e.At.IsZero() {
			t.Errorf("entry %+v: want source 127.0.0.1 and a time", e)
		}
	}
	want := []string{
		"-||POST|/api/v1/minions/web1/reject|Unauthorized||",
		"ci|operator|POST|/api/v1/minions/web1/reject|Forbidden||",
		"ci|operator|POST|/api/v1/exec|Accepted|web*|" + acc.JobID,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	j := h.waitJob(acc.JobID)
	if j.RequestedBy != "ci" {
		t.Errorf("job requested_by = %q; want ci", j.RequestedBy)
	}
	if status, out := h.do(c, "GET", "/api/v1/audit?limit=0", "Bearer "+h.admin, nil); status != http.StatusBadRequest {
		t.Errorf("GET audit?limit=0 = %d %s; want 400", status, out)
	}
	status, out = h.do(c, "GET", "/api/v1/audit?limit=1", "Bearer "+h.admin, nil)
	if json.Unmarshal(out, &log) != nil || len(log.Entries) != 1 || log.Next == 0 {
		t.Errorf("GET audit?limit=1 = %d %s; want one entry and next", status, out)
	}
}

// TestScopedToken: an operator token scoped to role=web sees only the
// web minions and its own jobs, and cannot run on anything else.
func TestScopedToken(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, map[string]string{"role": "web"})
	h.addMinion("db1", "127.0.0.10:4510", true, map[string]string{"role": "db"})
	c := h.client(nil)
	admin := "Bearer " + h.admin
	for _, tc := range []struct {
		body any
		want string
	}{
		{map[string]any{"name": "x", "role": "admin", "scope": []string{"role=web"}}, "cannot be scoped"},
		{map[string]any{"name": "x", "role": "operator", "scope": []string{"web["}}, "web["},
	} {
		if status, out := h.do(c, "POST", "/api/v1/tokens", admin, tc.body); status != http.StatusBadRequest || !strings.Contains(string(out), tc.want) {
			t.Errorf("POST tokens %v = %d %s; want 400 with %q", tc.body, status, out, tc.want)
		}
	}
	status, out := h.do(c, "POST", "/api/v1/tokens", admin, map[string]any{"name": "webop", "role": "operator", "scope": []string{"role=web"}})
	var tok wire.Token
	if status != http.StatusCreated || json.Unmarshal(out, &tok) != nil || len(tok.Scope) != 1 {
		t.Fatalf("POST tokens = %d %s", status, out)
	}
	web := "Bearer " + tok.Token

	status, out = h.do(c, "GET", "/api/v1/minions", web, nil)
	var ms wire.MinionList
	if status != http.StatusOK || json.Unmarshal(out, &ms) != nil || len(ms.Minions) != 1 || ms.Minions[0].ID != "web1" {
		t.Errorf("GET minions as webop = %d %s; want web1 alone", status, out)
	}
	if status, _ := h.do(c, "GET", "/api/v1/minions/db1", web, nil); status != http.StatusNotFound {
		t.Errorf("GET minions/db1 as webop = %d; want 404", status)
	}
	if status, _ := h.do(c, "GET", "/api/v1/minions/web1", web, nil); status != http.StatusOK {
		t.Errorf("GET minions/web1 as webop = %d; want 200", status)
	}

	for _, targets := range [][]string{{"*"}, {"db1"}, {"web1", "db1"}} {
		for _, q := range []string{"", "?dry_run=true"} {
			before := h.dump()
			status, out := h.do(c, "POST", "/api/v1/exec"+q, web, map[string]any{"cmd_line": "true", "targets": targets})
			if status != http.StatusForbidden || !strings.Contains(string(out), "beyond") || strings.Contains(string(out), "db1") {
				t.Errorf("exec%s on %v as webop = %d %s; want 403 that names no host", q, targets, status, out)
			}
			h.wantUnchanged("exec beyond the scope", before)
		}
	}
	status, out = h.do(c, "POST", "/api/v1/exec", web, map[string]any{"cmd_line": "true", "targets": []string{"role=web"}})
	var mine wire.ExecAccepted
	if status != http.StatusAccepted || json.Unmarshal(out, &mine) != nil {
		t.Fatalf("exec on role=web as webop = %d %s; want 202", status, out)
	}
	status, out = h.do(c, "POST", "/api/v1/exec", admin, map[string]any{"cmd_line": "true", "targets": []string{"db1"}})
	var theirs wire.ExecAccepted
	if status != http.StatusAccepted || json.Unmarshal(out, &theirs) != nil {
		t.Fatalf("exec on db1 as admin = %d %s", status, out)
	}
	h.waitJob(mine.JobID)
	h.waitJob(theirs.JobID)
	status, out = h.do(c, "GET", "/api/v1/jobs", web, nil)
	var jl wire.JobList
	if status != http.StatusOK || json.Unmarshal(out, &jl) != nil || len(jl.Jobs) != 1 || jl.Jobs[0].JobID != mine.JobID {
		t.Errorf("GET jobs as webop = %d %s; want its own job alone", status, out)
	}
	for _, p := range []string{"", "/events", "/hosts/db1", "/hosts/db1/output"} {
		if status, _ := h.do(c, "GET", "/api/v1/jobs/"+theirs.JobID+p, web, nil); status != http.StatusNotFound {
			t.Errorf("GET jobs/{admin's}%s as webop = %d; want 404", p, status)
		}
	}
	if status, _ := h.do(c, "POST", "/api/v1/jobs/"+theirs.JobID+"/rerun", web, nil); status != http.StatusNotFound {
		t.Errorf("rerun of the admin's job as webop = %d; want 404", status)
	}
	if status, _ := h.do(c, "GET", "/api/v1/jobs/"+mine.JobID, web, nil); status != http.StatusOK {
		t.Errorf("GET its own job as webop = %d; want 200", status)
	}
}
