package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

// The tests here check what the document promises that the other API tests
// do not reach on their way: the limits it states, the answers for paths
// that are no route, and statuses that take some arranging. Every exchange
// also passes the harness's OpenAPI check (api.CheckedByOpenAPI).

// TestDocumentedLimits sends requests that break a limit the server
// enforces: the server must refuse each with a 400 and store nothing, and
// the document must refuse it too, so that a client (or a fuzzer) reading
// the document knows the limit.
func TestDocumentedLimits(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	h.adminDo("POST", "/api/v1/hosts", wire.HostRequest{ID: "x", Host: "10.0.0.7"}, nil, http.StatusCreated)
	ident := newIdentity(t, "m2")
	tok := h.joinToken(inventory.JoinTokenSpec{}, time.Now())
	register := func(edit func(r map[string]any)) string {
		r := map[string]any{"id": "m2", "grpc_addr": ":4510", "cert_pem": string(ident.CertPEM), "join_token": tok}
		edit(r)
		b, _ := json.Marshal(r)
		return string(b)
	}
	sum := strings.Repeat("ab", 32)
	long := strings.Repeat("a", 254)
	tests := []struct {
		name, method, path, body string
		want                     string // in the error
	}{
		{"id too long", "POST", "/api/v1/minions/register", register(func(r map[string]any) { r["id"] = long }), "at most 253"},
		{"id starting with a dot", "POST", "/api/v1/minions/register", register(func(r map[string]any) { r["id"] = ".m2" }), "not allowed"},
		{"id with ..", "POST", "/api/v1/minions/register", register(func(r map[string]any) { r["id"] = "m..2" }), ".."},
		{"id with a space", "POST", "/api/v1/minions/register", register(func(r map[string]any) { r["id"] = "m 2" }), "not allowed"},
		{"ips not addresses", "POST", "/api/v1/minions/register", register(func(r map[string]any) { r["ips"] = []string{"x"} }), "ips"},
		{"host with a space", "POST", "/api/v1/hosts", `{"host": "bad host"}`, "host"},
		{"host too long", "POST", "/api/v1/hosts", `{"host": "` + long + `"}`, "at most 253"},
		{"host with a leading dash", "POST", "/api/v1/hosts", `{"host": "-oProxyCommand=x"}`, "'-'"},
		{"host all digits, not an address", "POST", "/api/v1/hosts", `{"host": "10.0.0.999"}`, "not a valid IP"},
		{"host label too long", "POST", "/api/v1/hosts", `{"host": "` + strings.Repeat("a", 64) + `.example"}`, "63"},
		{"host id with ..", "POST", "/api/v1/hosts", `{"id": "a..b", "host": "10.0.0.8"}`, ".."},
		{"user in capitals", "POST", "/api/v1/hosts", `{"host": "10.0.0.8", "user": "Root"}`, "user"},
		{"relative key", "POST", "/api/v1/hosts", `{"host": "10.0.0.8", "key": "~/.ssh/id_ed25519"}`, "key"},
		{"port too big", "POST", "/api/v1/hosts", `{"host": "10.0.0.8", "port": 65536}`, "port"},
		{"unknown host field", "POST", "/api/v1/hosts", `{"host": "10.0.0.8", "password": "x"}`, "password"},
		{"host label key", "POST", "/api/v1/hosts", `{"host": "10.0.0.8", "labels": {"a": "b\u0007"}}`, "label"},
		{"empty replace", "POST", "/api/v1/hosts?replace=", `{"host": "10.0.0.8"}`, "replace"},
		{"label key to remove", "PUT", "/api/v1/minions/m1/labels", `{"remove": ["-x"]}`, "label key"},
		{"label key too long", "PUT", "/api/v1/minions/m1/labels", `{"remove": ["` + strings.Repeat("k", 64) + `"]}`, "label key"},
		{"label value too long", "PUT", "/api/v1/hosts/x/labels", `{"set": {"k": "` + long + `"}}`, "at most 253"},
		{"host label key to remove", "PUT", "/api/v1/hosts/x/labels", `{"remove": ["a b"]}`, "label key"},
		{"unknown labels field", "PUT", "/api/v1/hosts/x/labels", `{"add": {"k": "v"}}`, "add"},
		{"label value null", "PUT", "/api/v1/hosts/x/labels", `{"set": {"k": null}}`, "null"},
		{"uses null", "POST", "/api/v1/tokens/join", `{"uses": null}`, "uses"},
		{"ttl null", "POST", "/api/v1/tokens/join", `{"ttl": null}`, "ttl"},
		{"auto_accept null", "POST", "/api/v1/tokens/join", `{"auto_accept": null}`, "auto_accept"},
		{"uses below -1", "POST", "/api/v1/tokens/join", `{"uses": -2}`, "uses"},
		{"body null", "POST", "/api/v1/tokens/join", `null`, "null"},
		{"unknown token field", "POST", "/api/v1/tokens/join", `{"role": "admin"}`, "role"},
		{"timeout null", "POST", "/api/v1/exec", `{"cmd_line": "true", "targets": ["m1"], "timeout": null}`, "timeout"},
		{"target null", "POST", "/api/v1/exec", `{"cmd_line": "true", "targets": ["m1", null]}`, "targets"},
		{"unknown exec field", "POST", "/api/v1/exec", `{"cmd_line": "true", "targets": ["m1"], "sudo": true}`, "sudo"},
		{"empty dry_run", "POST", "/api/v1/exec?dry_run=", `{"cmd_line": "true", "targets": ["m1"]}`, "dry_run"},
		{"empty wait", "POST", "/api/v1/exec?wait=", `{"cmd_line": "true", "targets": ["m1"]}`, "wait"},
		{"minion state outside the enum", "GET", "/api/v1/minions?state=AAA", "", "state"},
		{"empty minion state", "GET", "/api/v1/minions?state=", "", "state"},
		{"empty job state", "GET", "/api/v1/jobs?state=", "", "state"},
		{"empty limit", "GET", "/api/v1/jobs?limit=", "", "limit"},
		{"delivery state outside the enum", "GET", "/api/v1/deliveries?state=AAA", "", "state"},
		{"empty delivery state", "GET", "/api/v1/deliveries?state=", "", "state"},
		{"empty only", "POST", "/api/v1/jobs/x/rerun?only=", "", "only"},
		{"bootstrap id", "POST", "/api/v1/bootstrap", `{"hosts": ["10.0.0.9"], "id": "-x"}`, "id"},
		{"bootstrap key", "POST", "/api/v1/bootstrap", `{"hosts": ["10.0.0.9"], "key": "id_rsa"}`, "key"},
		{"unknown bootstrap field", "POST", "/api/v1/bootstrap", `{"hosts": ["10.0.0.9"], "user": "root"}`, "user"},
		{"trust fingerprint", "POST", "/api/v1/hosts/x/trust", `{"fingerprint": "MD5:aa:bb"}`, "fingerprint"},
		{"trust of a bad host name", "POST", "/api/v1/hosts/bad..host/trust", `{"fingerprint": "` + goodFP + `"}`, "host"},
		{"unknown trust field", "POST", "/api/v1/hosts/x/trust", `{"fingerprint": "` + goodFP + `", "force": true}`, "force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			var body any
			if tt.body != "" {
				body = tt.body
			}
			status, out := h.do(h.client(nil), tt.method, tt.path, "Bearer "+h.admin, body)
			if status != http.StatusBadRequest {
				t.Errorf("%s %s %.100s = %d %s; want 400", tt.method, tt.path, tt.body, status, out)
			}
			wantError(t, tt.name, out, tt.want)
			h.wantUnchanged(tt.name, before)

			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+h.admin)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			if err := api.OpenAPIRefuses(req); err == nil {
				t.Errorf("%s %s %.100s: the server refuses it, but api/openapi.yaml takes it", tt.method, tt.path, tt.body)
			}
		})
	}

	// The same limits on the content routes.
	fh := newFilesHarness(t)
	for _, tt := range []struct{ name, method, path, ctype, body string }{
		{"sha256 in capitals", "POST", "/api/v1/content?sha256=" + strings.ToUpper(sum), "application/octet-stream", "x"},
		{"empty sha256", "POST", "/api/v1/content?sha256=", "application/octet-stream", "x"},
		{"short sha256", "GET", "/api/v1/content/" + sum[:63], "", ""},
		{"push of a bad sha256", "POST", "/api/v1/files", "application/json", `{"targets": ["web1"], "dest": "/x", "sha256": "` + sum[:10] + `"}`},
		{"entry of a bad sha256", "POST", "/api/v1/files", "application/json",
			`{"targets": ["web1"], "dest": "/x", "entries": [{"path": ".", "kind": "dir"}, {"path": "f", "kind": "file", "sha256": "x"}]}`},
		{"unknown push field", "POST", "/api/v1/files", "application/json", `{"targets": ["web1"], "dest": "/x", "sha256": "` + sum + `", "chmod": "x"}`},
		{"unknown fetch field", "POST", "/api/v1/fetch", "application/json", `{"targets": ["web1"], "path": "/x", "dest": "/y"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := fh.stored()
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			resp, out := fh.send(tt.method, tt.path, tt.ctype, "Bearer "+fh.admin, body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s %s %s = %d %s; want 400", tt.method, tt.path, tt.body, resp.StatusCode, out)
			}
			wantError(t, tt.name, out)
			fh.wantNothingStored(tt.name, before, 0, 0)

			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+fh.admin)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			if err := api.OpenAPIRefuses(req); err == nil {
				t.Errorf("%s %s %s: the server refuses it, but api/openapi.yaml takes it", tt.method, tt.path, tt.body)
			}
		})
	}
}

// TestEmptyPathSegments: a trailing slash or an empty segment names no
// endpoint; the answer is the JSON 404, with or without a token, never a
// redirect or a 405, and a route's handler never sees an empty parameter.
func TestEmptyPathSegments(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/jobs/"},
		{"POST", "/api/v1/jobs//cancel"},
		{"POST", "/api/v1/jobs//rerun"},
		{"GET", "/api/v1/jobs//events"},
		{"GET", "/api/v1/minions/"},
		{"GET", "/api/v1/minions/m1/"},
		{"DELETE", "/api/v1/minions/m1/"},
		{"POST", "/api/v1/minions//accept"},
		{"GET", "/api/v1//minions"},
		{"PUT", "/api/v1/hosts//labels"},
		{"POST", "/api/v1/hosts//trust"},
		{"GET", "/api/v1/content/"},
		{"GET", "/healthz/"},
		{"GET", "/api/v1/openapi.yaml/"},
		{"POST", "/api/v1/exec/"},
	} {
		for _, auth := range []string{"", "Bearer " + h.admin} {
			before := h.dump()
			status, body := h.do(h.client(nil), r.method, r.path, auth, nil)
			if status != http.StatusNotFound {
				t.Errorf("%s %s (token %v) = %d %s; want 404", r.method, r.path, auth != "", status, body)
			}
			wantError(t, r.method+" "+r.path, body, "no such endpoint")
			h.wantUnchanged(r.method+" "+r.path, before)
		}
	}
}

// TestBodyOverLimit: every JSON route refuses a body over 4 MiB with 413.
func TestBodyOverLimit(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	big := `{"id": "` + strings.Repeat("a", 4<<20) + `"}`
	for _, r := range []struct{ method, path string }{
		{"POST", "/api/v1/minions/register"},
		{"POST", "/api/v1/tokens/join"},
		{"PUT", "/api/v1/minions/m1/labels"},
		{"POST", "/api/v1/hosts"},
		{"POST", "/api/v1/hosts/import"},
		{"PUT", "/api/v1/hosts/x/labels"},
		{"POST", "/api/v1/hosts/x/trust"},
		{"POST", "/api/v1/bootstrap"},
	} {
		before := h.dump()
		status, body := h.do(h.client(nil), r.method, r.path, "Bearer "+h.admin, big)
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s of %d bytes = %d %.200s; want 413", r.method, r.path, len(big), status, body)
		}
		wantError(t, r.method+" "+r.path, body, "request body over")
		h.wantUnchanged(r.method+" "+r.path, before)
	}
}

// TestDocumentedAnswers provokes the documented answers the other tests
// have no reason to: a rejected key, unknown minions, a fetch that runs
// on, a rerun of a running job, a trust and a bootstrap without SSH.
func TestDocumentedAnswers(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", false, nil)

	var st map[string]any
	h.adminDo("POST", "/api/v1/minions/m1/reject", nil, &st, http.StatusOK)
	if st["id"] != "m1" || st["state"] != string(model.KeyRejected) {
		t.Errorf("reject = %v; want m1 rejected", st)
	}
	var list wire.MinionList
	h.adminDo("GET", "/api/v1/minions?state=rejected", nil, &list, http.StatusOK)
	if len(list.Minions) != 1 || list.Minions[0].ID != "m1" {
		t.Errorf("rejected minions = %+v; want m1", list.Minions)
	}
	for _, method := range []string{"GET", "DELETE", "POST /accept", "POST /reject"} {
		m, suffix, _ := strings.Cut(method, " ")
		status, body := h.do(h.client(nil), m, "/api/v1/minions/nope"+suffix, "Bearer "+h.admin, nil)
		if status != http.StatusNotFound {
			t.Errorf("%s of an unknown minion = %d %s; want 404", method, status, body)
		}
		wantError(t, method, body)
	}

	// A job that is still running cannot be rerun.
	h.addMinion("m2", "127.0.0.10:4510", true, nil)
	id := h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"m2"}}, CmdLine: "sleep"})
	status, body := h.do(h.client(nil), "POST", "/api/v1/jobs/"+id+"/rerun", "Bearer "+h.admin, nil)
	if status != http.StatusConflict {
		t.Errorf("rerun of a running job = %d %s; want 409", status, body)
	}
	wantError(t, "rerun", body, "running")
	h.adminDo("POST", "/api/v1/jobs/"+id+"/cancel", nil, nil, http.StatusAccepted)
	h.waitJob(id)

	// A master without SSH (and without a bootstrapper) answers 503 once
	// the request is known good.
	s := bareServer(t, nil)
	for _, r := range []struct{ path, body string }{
		{"/api/v1/hosts/10.0.0.7/trust", `{"fingerprint": "` + goodFP + `"}`},
		{"/api/v1/bootstrap", `{"hosts": ["10.0.0.7"]}`},
	} {
		status, body := s.post(r.path, r.body)
		if status != http.StatusServiceUnavailable {
			t.Errorf("POST %s without SSH = %d %s; want 503", r.path, status, body)
		}
		wantError(t, r.path, body, "transport")
	}
}

// TestFetchRunsOn: a fetch without ?wait answers 202 and runs on.
func TestFetchRunsOn(t *testing.T) {
	h := newFilesHarness(t)
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/fetch", wire.FetchRequest{JobOptions: onHosts("web1"), Path: "/etc/hostname"}, &acc, http.StatusAccepted)
	if acc.JobID == "" || acc.Total != 1 {
		t.Fatalf("fetch = %+v; want a job of one host", acc)
	}
	if j := h.waitJob(acc.JobID); j.State != model.JobDone || j.Summary["ok"] != 1 {
		t.Errorf("fetch job = %+v; want done, ok on web1", j)
	}
}

// TestContentStoreFull: content over the store's total size is a 507,
// whether uploaded alone or as a push's file part, and nothing is stored.
func TestContentStoreFull(t *testing.T) {
	ft := newFileTransport()
	h := &filesHarness{harness: newHarnessContent(t, &transport.Select{Agent: ft},
		&content.Options{MaxFileSize: filesMaxSize, MaxTotalSize: 16}), files: ft}
	h.content = h.harness.content
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	data := bytes.Repeat([]byte("x"), 32)

	before := h.stored()
	resp, out := h.send("POST", "/api/v1/content", "application/octet-stream", "Bearer "+h.admin, data)
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("upload into a full store = %d %s; want 507", resp.StatusCode, out)
	}
	wantError(t, "upload", out)
	h.wantNothingStored("upload", before, 0, 0)

	status, out := h.pushMultipart(wire.PushRequest{JobOptions: onHosts("web1"), Dest: "/etc/x"}, data, "")
	if status != http.StatusInsufficientStorage {
		t.Errorf("push into a full store = %d %s; want 507", status, out)
	}
	wantError(t, "push", out)
	h.wantNothingStored("push", before, 0, 0)
}

// TestHealthzUnhealthy: a master whose database fails says so with 503.
func TestHealthzUnhealthy(t *testing.T) {
	store, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	s := &api.Server{Store: store, Log: testenv.Logger(t)}
	srv := httptest.NewServer(api.CheckedByOpenAPI(t, s.Handler()))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || got["status"] != "unhealthy" || !strings.Contains(got["error"], "database") {
		t.Errorf("GET /healthz of a closed store = %d %v; want 503 unhealthy", resp.StatusCode, got)
	}
}

// bare is a master API with a store and nothing else: no jobs, no SSH, no
// bootstrapper, no content store.
type bare struct {
	t     *testing.T
	srv   *httptest.Server
	token string
}

func bareServer(t *testing.T, b api.Bootstrapper) *bare {
	t.Helper()
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tok, err := store.CreateAPIToken(ctx, "admin", inventory.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s := &api.Server{Store: store, Log: testenv.Logger(t)}
	if b != nil {
		s.Bootstrap = b
	}
	srv := httptest.NewTLSServer(api.CheckedByOpenAPI(t, s.Handler()))
	t.Cleanup(srv.Close)
	return &bare{t: t, srv: srv, token: tok}
}

// post sends a JSON body with the admin token.
func (b *bare) post(path, body string) (int, []byte) {
	b.t.Helper()
	return b.do("POST", path, strings.NewReader(body))
}

// get asks for path with the admin token.
func (b *bare) get(path string) (int, []byte) {
	b.t.Helper()
	return b.do("GET", path, nil)
}

// do sends a request with the admin token (a body as JSON).
func (b *bare) do(method, path string, body io.Reader) (int, []byte) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp.StatusCode, out
}
