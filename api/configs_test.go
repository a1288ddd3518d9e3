package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// TestConfigs stores state documents through /api/v1/configs: revisions
// kept, an unchanged put no new revision, reads by revision, history,
// list, delete; an apply by name runs the revision asked for; bad input
// is a 4xx that stores nothing.
func TestConfigs(t *testing.T) {
	h := newHarnessWith(t, nil, true)
	h.addMinion("m1", "127.0.0.9:4510", true, map[string]string{"role": "web"})
	v1 := applyDoc
	v2 := strings.Replace(applyDoc, "workers: 8", "workers: 16", 1)
	var c wire.Config
	h.adminDo("POST", "/api/v1/configs", wire.ConfigPut{Name: "web", Document: v1}, &c, http.StatusCreated)
	if c.Rev != 1 || c.CreatedBy != "admin" || len(c.SHA256) != 64 {
		t.Errorf("first put = %+v", c)
	}
	h.adminDo("POST", "/api/v1/configs", wire.ConfigPut{Name: "web", Document: v1}, &c, http.StatusOK)
	if c.Rev != 1 {
		t.Errorf("unchanged put = %+v; want revision 1", c)
	}
	h.adminDo("POST", "/api/v1/configs", wire.ConfigPut{Name: "web", Document: v2}, &c, http.StatusCreated)
	if c.Rev != 2 {
		t.Errorf("changed put = %+v; want revision 2", c)
	}
	h.adminDo("GET", "/api/v1/configs/web?rev=1", nil, &c, http.StatusOK)
	if c.Rev != 1 || c.Document == nil || *c.Document != v1 {
		t.Errorf("get rev 1 = %+v", c)
	}
	var list wire.ConfigList
	h.adminDo("GET", "/api/v1/configs", nil, &list, http.StatusOK)
	if len(list.Configs) != 1 || list.Configs[0].Rev != 2 || list.Configs[0].Revisions != 2 || list.Configs[0].Document != nil {
		t.Errorf("list = %+v", list)
	}
	var hist wire.ConfigHistory
	h.adminDo("GET", "/api/v1/configs/web/history", nil, &hist, http.StatusOK)
	if len(hist.Revisions) != 2 || hist.Revisions[0].Rev != 2 {
		t.Errorf("history = %+v", hist)
	}

	// Apply by name: the latest, or the revision asked for.
	for _, tc := range []struct {
		rev        int
		name, want string
	}{{0, "web@2", "workers 16"}, {1, "web@1", "workers 8"}} {
		var job wire.Job
		h.adminDo("POST", "/api/v1/apply?wait=10s", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Config: "web", Rev: tc.rev}, &job, http.StatusOK)
		r := job.Results[0]
		if job.CmdLine != "apply "+tc.name || r.Apply == nil || r.Apply.Config != tc.name || !strings.HasPrefix(r.Apply.Resources[0].Detail, tc.want) {
			t.Errorf("apply web rev %d: %q, %+v; want %s rendering %q", tc.rev, job.CmdLine, r.Apply, tc.name, tc.want)
		}
	}

	// Refused, nothing stored.
	before := h.dump()
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		want               string
	}{
		{"a bad name", "POST", "/api/v1/configs", wire.ConfigPut{Name: "../web", Document: v1}, 400, "config name"},
		{"a bad document", "POST", "/api/v1/configs", wire.ConfigPut{Name: "db", Document: "resources:\n  - {id: a, type: cmd}\n"}, 400, "line 2"},
		{"a source not stored", "POST", "/api/v1/configs", wire.ConfigPut{Name: "db",
			Document: "resources:\n  - {id: a, type: file, path: /etc/a, source: sha256:" + strings.Repeat("d", 64) + "}\n"}, 400, "not in the master's content store"},
		{"over 1 MiB", "POST", "/api/v1/configs", wire.ConfigPut{Name: "db", Document: strings.Repeat("#", model.MaxConfigSize+1)}, 400, "at most 1048576"},
		{"a body over the limit", "POST", "/api/v1/configs", wire.ConfigPut{Name: "db", Document: strings.Repeat("#", 9<<20)}, 413, "request body over"},
		{"an unknown config", "GET", "/api/v1/configs/nope", nil, 404, "config nope"},
		{"an unknown revision", "GET", "/api/v1/configs/web?rev=9", nil, 404, "revision 9"},
		{"a bad revision", "GET", "/api/v1/configs/web?rev=x", nil, 400, "rev"},
		{"history of nothing", "GET", "/api/v1/configs/nope/history", nil, 404, "config nope"},
		{"apply an unknown config", "POST", "/api/v1/apply", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}}, Config: "nope"}, 404, "config nope"},
		{"delete an unknown config", "DELETE", "/api/v1/configs/nope", nil, 404, "config nope"},
	} {
		status, out := h.do(h.client(nil), tc.method, tc.path, "Bearer "+h.admin, tc.body)
		if status != tc.status || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.name, status, out, tc.status, tc.want)
		}
	}
	h.wantUnchanged("refused config requests", before)

	h.adminDo("DELETE", "/api/v1/configs/web", nil, nil, http.StatusNoContent)
	h.adminDo("GET", "/api/v1/configs", nil, &list, http.StatusOK)
	if len(list.Configs) != 0 {
		t.Errorf("after delete: %+v", list)
	}

	// Puts and deletes are audited with the config's name, refused ones
	// too; reads are not.
	var log wire.AuditLog
	h.adminDo("GET", "/api/v1/audit?limit=100", nil, &log, http.StatusOK)
	got := map[string]int{}
	for _, e := range log.Entries {
		if strings.HasPrefix(e.Path, "/api/v1/configs") {
			got[strings.Join([]string{e.Who, e.Method, e.Path, strconv.Itoa(e.Status), e.Detail}, "|")]++
		}
	}
	for _, want := range []struct {
		entry string
		n     int
	}{
		{"admin|POST|/api/v1/configs|201|config web", 2},
		{"admin|POST|/api/v1/configs|200|config web", 1},
		{"admin|POST|/api/v1/configs|400|config ../web", 1},
		{"admin|DELETE|/api/v1/configs/nope|404|config nope", 1},
		{"admin|DELETE|/api/v1/configs/web|204|config web", 1},
	} {
		if got[want.entry] != want.n {
			t.Errorf("audit entries %q: %d; want %d (all: %v)", want.entry, got[want.entry], want.n, got)
		}
	}
	for e := range got {
		if strings.Contains(e, "|GET|") {
			t.Errorf("a read audited: %q", e)
		}
	}
}
