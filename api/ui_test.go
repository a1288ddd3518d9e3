package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
)

// uiHarness is the API harness serving the dashboard's routes, which
// api/openapi.yaml does not document (they are not the /api/v1 API).
func uiHarness(t *testing.T) *harness {
	t.Helper()
	harnessUnchecked = true
	t.Cleanup(func() { harnessUnchecked = false })
	return newHarness(t)
}

// uiReq is one request to the dashboard: a cookie, a CSRF token and
// headers of its own.
type uiReq struct {
	method, path string
	body         string
	cookie       string // the session id; "" sends no cookie
	csrf         string
	header       map[string]string
	ctype        string // default application/json when there is a body
}

func (h *harness) ui(r uiReq) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if r.body != "" {
		rd = strings.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, h.srv.URL+r.path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: "__Host-felix-session", Value: r.cookie})
	}
	if r.csrf != "" {
		req.Header.Set("X-CSRF-Token", r.csrf)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	c := h.client(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatalf("%s %s: read: %v", r.method, r.path, err)
	}
	return resp, b
}

type uiLogin struct {
	Name string `json:"name"`
	Role string `json:"role"`
	CSRF string `json:"csrf"`
}

// uiLoginAs logs in with token and returns the session id and the login answer.
func (h *harness) uiLoginAs(token string) (string, uiLogin) {
	h.t.Helper()
	b, _ := json.Marshal(map[string]string{"token": token})
	resp, body := h.ui(uiReq{method: "POST", path: "/ui/api/login", body: string(b)})
	if resp.StatusCode != http.StatusOK {
		h.t.Fatalf("login = %d %s; want 200", resp.StatusCode, body)
	}
	var l uiLogin
	if err := json.Unmarshal(body, &l); err != nil || l.CSRF == "" {
		h.t.Fatalf("login answer %s: %v; want the session with its csrf token", body, err)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-felix-session" {
			return c.Value, l
		}
	}
	h.t.Fatalf("login set no session cookie: %v", resp.Header.Values("Set-Cookie"))
	return "", l
}

func TestUILoginCookie(t *testing.T) {
	h := uiHarness(t)
	b, _ := json.Marshal(map[string]string{"token": h.admin})
	resp, body := h.ui(uiReq{method: "POST", path: "/ui/api/login", body: string(b)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login = %d %s", resp.StatusCode, body)
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-felix-session=", "Path=/", "HttpOnly", "Secure", "SameSite=Strict"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, h.admin) || strings.Contains(sc, "Domain=") {
		t.Errorf("Set-Cookie %q holds the token or a Domain", sc)
	}
	var l uiLogin
	if err := json.Unmarshal(body, &l); err != nil || l.Name != "admin" || l.Role != "admin" || len(l.CSRF) < 32 {
		t.Errorf("login answer %s (%v); want admin's session with a CSRF token", body, err)
	}
	id := resp.Cookies()[0].Value
	resp, body = h.ui(uiReq{method: "GET", path: "/ui/api/session", cookie: id})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), l.CSRF) {
		t.Errorf("GET /ui/api/session = %d %s; want the session and its CSRF token", resp.StatusCode, body)
	}

	// Logging out ends the session on the server, whatever the browser keeps.
	resp, body = h.ui(uiReq{method: "POST", path: "/ui/api/logout", cookie: id, csrf: l.CSRF, body: "{}"})
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Errorf("logout = %d %s, Set-Cookie %q; want 200 and the cookie cleared", resp.StatusCode, body, resp.Header.Get("Set-Cookie"))
	}
	if resp, body = h.ui(uiReq{method: "GET", path: "/ui/api/minions", cookie: id}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /ui/api/minions after logout = %d %s; want 401", resp.StatusCode, body)
	}
}

// TestUISessionsPerToken: one token holds at most 16 sessions; a login past
// that ends its oldest, so logins with one token cannot fill the table.
func TestUISessionsPerToken(t *testing.T) {
	h := uiHarness(t)
	first, _ := h.uiLoginAs(h.admin)
	second, _ := h.uiLoginAs(h.admin)
	var last string
	for range 15 {
		last, _ = h.uiLoginAs(h.admin)
	}
	for _, tt := range []struct {
		name, id string
		want     int
	}{{"the oldest", first, http.StatusUnauthorized}, {"the second", second, http.StatusOK}, {"the newest", last, http.StatusOK}} {
		if resp, body := h.ui(uiReq{method: "GET", path: "/ui/api/session", cookie: tt.id}); resp.StatusCode != tt.want {
			t.Errorf("%s session after 17 logins: GET /ui/api/session = %d %s; want %d", tt.name, resp.StatusCode, body, tt.want)
		}
	}
}

// TestUISessionsSurviveReload: a handler rebuilt from a copy of the
// server, as the master's config reload does, keeps the sessions.
func TestUISessionsSurviveReload(t *testing.T) {
	h := uiHarness(t)
	id, _ := h.uiLoginAs(h.admin)
	a := *h.server
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.TLS = h.srv.TLS.Clone()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.srv = srv
	if resp, body := h.ui(uiReq{method: "GET", path: "/ui/api/session", cookie: id}); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /ui/api/session on the rebuilt handler = %d %s; want 200", resp.StatusCode, body)
	}
}

func TestUILoginRefusesBadInput(t *testing.T) {
	h := uiHarness(t)
	ok, _ := json.Marshal(map[string]string{"token": h.admin})
	for _, tt := range []struct {
		name       string
		req        uiReq
		wantStatus int
		want       string
	}{
		{"wrong token", uiReq{body: `{"token": "felix_not-a-token"}`}, http.StatusUnauthorized, "token"},
		{"empty token", uiReq{body: `{"token": " "}`}, http.StatusBadRequest, "empty"},
		{"no body", uiReq{body: "", ctype: "application/json"}, http.StatusBadRequest, "empty body"},
		{"not JSON", uiReq{body: `token=x`}, http.StatusBadRequest, "malformed"},
		{"unknown field", uiReq{body: `{"token": "x", "user": "root"}`}, http.StatusBadRequest, "user"},
		{"too large", uiReq{body: `{"token": "` + strings.Repeat("a", 5000) + `"}`}, http.StatusRequestEntityTooLarge, "over"},
		{"a form post", uiReq{body: "token=" + h.admin, ctype: "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, "application/json"},
		{"text/plain", uiReq{body: string(ok), ctype: "text/plain"}, http.StatusUnsupportedMediaType, "application/json"},
		{"another origin", uiReq{body: string(ok), header: map[string]string{"Origin": "https://evil.example"}}, http.StatusForbidden, "cross-site"},
		{"cross-site fetch", uiReq{body: string(ok), header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, http.StatusForbidden, "cross-site"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.method, tt.req.path = "POST", "/ui/api/login"
			resp, body := h.ui(tt.req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("login = %d %s; want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if sc := resp.Header.Get("Set-Cookie"); sc != "" {
				t.Errorf("a refused login set a cookie: %q", sc)
			}
			wantError(t, "login", body, tt.want)
		})
	}
}

// TestUINoDataWithoutSession: no dashboard data route answers without a
// live session, and no /api/v1 route takes the session cookie for a token.
func TestUINoDataWithoutSession(t *testing.T) {
	h := uiHarness(t)
	h.addMinion("m1", "127.0.0.1:1", true, nil)
	job := h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}}, CmdLine: "echo"})
	h.waitJob(job)
	good, l := h.uiLoginAs(h.admin)

	// A session whose token was revoked ends with it.
	ctx := context.Background()
	opTok, err := h.store.CreateAPIToken(ctx, "op", model.RoleOperator, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	revoked, rl := h.uiLoginAs(opTok)
	if resp, body := h.ui(uiReq{method: "GET", path: "/ui/api/minions", cookie: revoked}); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/api/minions in op's session = %d %s; want 200 before the revocation", resp.StatusCode, body)
	}
	if err := h.store.RevokeAPIToken(ctx, "op", time.Now()); err != nil {
		t.Fatal(err)
	}

	data := []uiReq{
		{method: "GET", path: "/ui/api/session"},
		{method: "GET", path: "/ui/api/minions"},
		{method: "GET", path: "/ui/api/hosts"},
		{method: "GET", path: "/ui/api/targets?t=*"},
		{method: "GET", path: "/ui/api/jobs"},
		{method: "GET", path: "/ui/api/jobs/" + job},
		{method: "GET", path: "/ui/api/jobs/" + job + "/events"},
		{method: "POST", path: "/ui/api/exec", body: `{"target": "m1", "cmd_line": "echo"}`},
		{method: "POST", path: "/ui/api/logout", body: `{}`},
	}
	// Every dashboard data route is in the list, a route added later too.
	for _, r := range (&api.Server{Log: testenv.Logger(t)}).Handler().(*gin.Engine).Routes() {
		if !strings.HasPrefix(r.Path, "/ui/api/") || r.Path == "/ui/api/login" {
			continue
		}
		found := false
		for _, d := range data {
			p, _, _ := strings.Cut(d.path, "?")
			found = found || (d.method == r.Method && pathMatches(r.Path, p))
		}
		if !found {
			t.Errorf("route %s %s is not in this test's list", r.Method, r.Path)
		}
	}
	before := h.count("jobs")
	for _, r := range data {
		for _, who := range []struct {
			name         string
			cookie, csrf string
		}{
			{"no cookie", "", l.CSRF},
			{"a made-up cookie", "bm90LWEtc2Vzc2lvbg", l.CSRF},
			{"the token as cookie", h.admin, l.CSRF},
			{"a revoked token's session", revoked, rl.CSRF},
		} {
			r.cookie, r.csrf = who.cookie, who.csrf
			resp, body := h.ui(r)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s with %s = %d %s; want 401", r.method, r.path, who.name, resp.StatusCode, body)
				continue
			}
			wantError(t, r.method+" "+r.path, body)
		}
	}
	// The API takes bearer tokens only: a live session cookie is nothing there.
	for _, p := range []string{"/api/v1/minions", "/api/v1/hosts", "/api/v1/jobs", "/api/v1/jobs/" + job, "/api/v1/jobs/" + job + "/events"} {
		resp, body := h.ui(uiReq{method: "GET", path: p, cookie: good})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a session cookie only = %d %s; want 401", p, resp.StatusCode, body)
		}
	}
	resp, body := h.ui(uiReq{method: "POST", path: "/api/v1/exec", cookie: good, csrf: l.CSRF, body: `{"targets": ["m1"], "cmd_line": "echo"}`})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /api/v1/exec with a session cookie only = %d %s; want 401", resp.StatusCode, body)
	}
	if n := h.count("jobs"); n != before {
		t.Errorf("jobs: %d after the refused requests; want %d", n, before)
	}
}

// TestUICSRF: a write needs the session's CSRF token, JSON, and the
// master's own origin; a cross-site form post never runs anything.
func TestUICSRF(t *testing.T) {
	h := uiHarness(t)
	h.addMinion("m1", "127.0.0.1:1", true, nil)
	id, l := h.uiLoginAs(h.admin)
	other, _ := h.uiLoginAs(h.admin)
	_, ol := h.uiLoginAs(h.admin) // another session's CSRF token
	_ = other
	body := `{"target": "m1", "cmd_line": "echo"}`
	before := h.count("jobs")
	for _, tt := range []struct {
		name       string
		req        uiReq
		wantStatus int
	}{
		{"no CSRF token", uiReq{}, http.StatusForbidden},
		{"a wrong CSRF token", uiReq{csrf: "x" + l.CSRF}, http.StatusForbidden},
		{"another session's CSRF token", uiReq{csrf: ol.CSRF}, http.StatusForbidden},
		{"a form post", uiReq{csrf: l.CSRF, ctype: "application/x-www-form-urlencoded", body: "target=m1&cmd_line=echo"}, http.StatusUnsupportedMediaType},
		{"a text/plain post", uiReq{csrf: l.CSRF, ctype: "text/plain"}, http.StatusUnsupportedMediaType},
		{"another origin", uiReq{csrf: l.CSRF, header: map[string]string{"Origin": "https://evil.example"}}, http.StatusForbidden},
		{"cross-site", uiReq{csrf: l.CSRF, header: map[string]string{"Sec-Fetch-Site": "cross-site"}}, http.StatusForbidden},
		{"bad JSON", uiReq{csrf: l.CSRF, body: `{"target": "m1"`}, http.StatusBadRequest},
		{"no target", uiReq{csrf: l.CSRF, body: `{"target": " , ", "cmd_line": "echo"}`}, http.StatusBadRequest},
		{"no command", uiReq{csrf: l.CSRF, body: `{"target": "m1", "cmd_line": " "}`}, http.StatusBadRequest},
		{"unknown field", uiReq{csrf: l.CSRF, body: `{"target": "m1", "cmd_line": "echo", "file": "x"}`}, http.StatusBadRequest},
		{"too large", uiReq{csrf: l.CSRF, body: `{"target": "m1", "cmd_line": "` + strings.Repeat("a", 1<<20) + `"}`}, http.StatusRequestEntityTooLarge},
		{"no such host", uiReq{csrf: l.CSRF, body: `{"target": "nope", "cmd_line": "echo"}`}, http.StatusNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			r.method, r.path, r.cookie = "POST", "/ui/api/exec", id
			if r.body == "" {
				r.body = body
			}
			resp, b := h.ui(r)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("POST /ui/api/exec = %d %s; want %d", resp.StatusCode, b, tt.wantStatus)
			}
			wantError(t, tt.name, b)
		})
	}
	if n := h.count("jobs"); n != before {
		t.Fatalf("jobs: %d after the refused requests; want %d", n, before)
	}
	resp, b := h.ui(uiReq{method: "POST", path: "/ui/api/exec", cookie: id, csrf: l.CSRF, body: body,
		header: map[string]string{"Origin": h.srv.URL, "Sec-Fetch-Site": "same-origin"}})
	var acc wire.ExecAccepted
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &acc) != nil || acc.JobID == "" {
		t.Fatalf("POST /ui/api/exec from the page = %d %s; want 202 and the job", resp.StatusCode, b)
	}
	if j := h.waitJob(acc.JobID); j.RequestedBy != "admin" {
		t.Errorf("the page's job was requested by %q; want the session's token, admin", j.RequestedBy)
	}
}

// TestUIRoles: a session has its token's role and scope.
func TestUIRoles(t *testing.T) {
	h := uiHarness(t)
	h.addMinion("m1", "127.0.0.1:1", true, nil)
	h.addMinion("m2", "127.0.0.1:2", true, nil)
	ctx := context.Background()
	readTok, err := h.store.CreateAPIToken(ctx, "reader", model.RoleRead, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, l := h.uiLoginAs(readTok)
	if l.Role != "read" {
		t.Errorf("reader's session role = %q", l.Role)
	}
	resp, b := h.ui(uiReq{method: "POST", path: "/ui/api/exec", cookie: id, csrf: l.CSRF, body: `{"target": "*", "cmd_line": "echo"}`})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's run = %d %s; want 403", resp.StatusCode, b)
	}
	if resp, b = h.ui(uiReq{method: "GET", path: "/ui/api/targets?t=m*", cookie: id}); resp.StatusCode != http.StatusOK {
		t.Errorf("a reader's preview = %d %s; want 200", resp.StatusCode, b)
	}
	scoped, err := h.store.CreateScopedAPIToken(ctx, "m1only", model.RoleOperator, []string{"m1"}, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sid, sl := h.uiLoginAs(scoped)
	resp, b = h.ui(uiReq{method: "POST", path: "/ui/api/exec", cookie: sid, csrf: sl.CSRF, body: `{"target": "m2", "cmd_line": "echo"}`})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a token scoped to m1 running on m2 = %d %s; want 403", resp.StatusCode, b)
	}
}

func TestUITargets(t *testing.T) {
	h := uiHarness(t)
	h.addMinion("web1", "127.0.0.1:1", true, map[string]string{"role": "web"})
	h.addMinion("web2", "127.0.0.1:2", true, map[string]string{"role": "web"})
	h.addMinion("db1", "127.0.0.1:3", false, nil)
	id, _ := h.uiLoginAs(h.admin)
	for _, tt := range []struct {
		t          string
		wantStatus int
		want       []string
	}{
		{"role=web", http.StatusOK, []string{"web1", "web2"}},
		{"db1, web1", http.StatusOK, []string{"db1", "web1"}},
		{"*", http.StatusOK, []string{"web1", "web2"}}, // a glob selects accepted minions, as in exec
		{"", http.StatusBadRequest, nil},
		{"nope", http.StatusNotFound, nil},
	} {
		resp, b := h.ui(uiReq{method: "GET", path: "/ui/api/targets?t=" + urlQuery(tt.t), cookie: id})
		if resp.StatusCode != tt.wantStatus {
			t.Errorf("targets %q = %d %s; want %d", tt.t, resp.StatusCode, b, tt.wantStatus)
			continue
		}
		if tt.wantStatus != http.StatusOK {
			wantError(t, "targets "+tt.t, b)
			continue
		}
		var dr wire.DryRun
		if err := json.Unmarshal(b, &dr); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, x := range dr.Hosts {
			got = append(got, x.Host)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("targets %q = %v; want %v", tt.t, got, tt.want)
		}
	}
}

func urlQuery(s string) string {
	return strings.NewReplacer("%", "%25", " ", "%20", ",", "%2C", "=", "%3D", "*", "%2A", "&", "%26").Replace(s)
}

// TestUIFoldedJob: the job view folds hosts with the same result, as the
// CLI prints them.
func TestUIFoldedJob(t *testing.T) {
	h := uiHarness(t)
	for _, m := range []string{"m1", "m2", "m3", "m4"} {
		h.addMinion(m, "127.0.0.1:1", true, nil)
	}
	id, l := h.uiLoginAs(h.admin)
	resp, b := h.ui(uiReq{method: "POST", path: "/ui/api/exec", cookie: id, csrf: l.CSRF, body: `{"target": "m*", "cmd_line": "fail-on m1 m2 m4"}`})
	var acc wire.ExecAccepted
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
		t.Fatalf("run = %d %s", resp.StatusCode, b)
	}
	h.waitJob(acc.JobID)
	resp, b = h.ui(uiReq{method: "GET", path: "/ui/api/jobs/" + acc.JobID, cookie: id})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("folded job = %d %s", resp.StatusCode, b)
	}
	var f struct {
		Job    wire.Job `json:"job"`
		Groups []struct {
			HostSet   string `json:"hostset"`
			Count     int    `json:"count"`
			FirstHost string `json:"first_host"`
			State     string `json:"state"`
			Exit      string `json:"exit"`
			Stdout    string `json:"stdout"`
			Stderr    string `json:"stderr"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if f.Job.JobID != acc.JobID || f.Job.Total != 4 || f.Job.Summary["failed"] != 3 || f.Job.Summary["ok"] != 1 {
		t.Errorf("job = %+v; want 4 hosts, 3 failed, 1 ok", f.Job)
	}
	if len(f.Groups) != 2 {
		t.Fatalf("groups = %+v; want 2", f.Groups)
	}
	g := f.Groups[0]
	if g.HostSet != "m[1-2,4]" || g.Count != 3 || g.FirstHost != "m1" || g.State != "failed" || g.Exit != "1" || g.Stderr != "boom\n" || g.Stdout != "" {
		t.Errorf("largest group = %+v; want m[1-2,4], 3 hosts, failed, exit 1, stderr boom", g)
	}
	if g = f.Groups[1]; g.HostSet != "m3" || g.Count != 1 || g.State != "ok" || g.Exit != "0" || g.Stdout != "m3\n" {
		t.Errorf("second group = %+v; want m3 ok exit 0 stdout m3", g)
	}
	if resp, b = h.ui(uiReq{method: "GET", path: "/ui/api/jobs/nope", cookie: id}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("folded view of no job = %d %s; want 404", resp.StatusCode, b)
	}
}

// TestUIAssets: the page and its files come with a strict CSP, no
// framing, and the script writes data as text only.
func TestUIAssets(t *testing.T) {
	h := uiHarness(t)
	for _, tt := range []struct{ path, ctype, want string }{
		{"/ui/", "text/html", `<script src="app.js" defer></script>`},
		{"/ui/app.js", "text/javascript", "textContent"},
		{"/ui/style.css", "text/css", "font"},
	} {
		resp, b := h.ui(uiReq{method: "GET", path: tt.path})
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.ctype) || !strings.Contains(string(b), tt.want) {
			t.Errorf("GET %s = %d %s; want 200 %s holding %q", tt.path, resp.StatusCode, resp.Header.Get("Content-Type"), tt.ctype, tt.want)
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", tt.path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: CSP %q allows something unsafe", tt.path, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: X-Frame-Options %q, X-Content-Type-Options %q", tt.path, resp.Header.Get("X-Frame-Options"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
	_, page := h.ui(uiReq{method: "GET", path: "/ui/"})
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|style=`).Match(page) {
		t.Errorf("the page has inline script, handlers or styles, which its CSP refuses:\n%s", page)
	}
	_, js := h.ui(uiReq{method: "GET", path: "/ui/app.js"})
	if m := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function`).Find(js); m != nil {
		t.Errorf("app.js uses %s: data must go in as text", m)
	}
	resp, _ := h.ui(uiReq{method: "GET", path: "/ui"})
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui = %d Location %q; want a redirect to /ui/", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, b := h.ui(uiReq{method: "GET", path: "/ui/nope"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/nope = %d; want 404", resp.StatusCode)
	}
	wantError(t, "GET /ui/nope", b)
}
