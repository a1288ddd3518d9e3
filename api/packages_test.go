package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// TestPackages starts package jobs through POST /api/v1/packages: the
// spec reaches the transport with each host's pkg_manager label, and each
// host's report is in the job's JSON, its host route and its callback.
func TestPackages(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	h.addMinion("m2", "127.0.0.10:4510", true, map[string]string{model.PkgLabel: model.PkgDnf})

	req := wire.PkgRequest{JobOptions: wire.JobOptions{ID: "p1", Targets: []string{"m*"}, CallbackURL: "https://ops.example/cb",
		Transport: "agent", Batch: "1", FailThreshold: 2, Timeout: "50s"},
		Action: "install", Packages: []string{"nginx", "curl=7.88.1-10"}, Refresh: true}
	var job wire.Job
	h.adminDo("POST", "/api/v1/packages?wait=10s", req, &job, http.StatusOK)
	if job.CmdType != model.CmdPkg || job.CmdLine != "pkg install nginx curl=7.88.1-10 --refresh" || job.ID != "p1" ||
		job.State != model.JobDone || len(job.Results) != 2 {
		t.Fatalf("job = %+v; want a done pkg job of 2 hosts", job)
	}
	want := func(manager string) *model.PkgReport {
		return &model.PkgReport{Manager: manager, Changed: 2, Packages: []model.PkgChange{
			{Name: "nginx", After: "1.0", State: model.PkgChanged}, {Name: "curl", After: "7.88.1-10", State: model.PkgChanged}}}
	}
	for i, m := range []string{model.PkgApt, model.PkgDnf} {
		if r := job.Results[i]; r.State != model.StateOK || !reflect.DeepEqual(r.Packages, want(m)) {
			t.Errorf("%s: %s, report %+v; want ok, %+v", r.Host, r.State, r.Packages, want(m))
		}
	}
	var one wire.HostResult
	h.adminDo("GET", "/api/v1/jobs/"+job.JobID+"/hosts/m2", nil, &one, http.StatusOK)
	if !reflect.DeepEqual(one.Packages, want(model.PkgDnf)) {
		t.Errorf("GET host m2: report %+v; want %+v", one.Packages, want(model.PkgDnf))
	}
	wantSpec := &model.PkgSpec{Action: model.PkgInstall, Refresh: true,
		Packages: []model.Pkg{{Name: "nginx"}, {Name: "curl", Version: "7.88.1-10"}}}
	for _, c := range h.fake.Calls() {
		if !reflect.DeepEqual(c.Cmd.Packages, wantSpec) || c.Cmd.Line != "" || c.Cmd.Timeout.String() != "50s" {
			t.Errorf("%s: command %+v; want the spec and the timeout", c.Target.ID, c.Cmd)
		}
	}

	// The callback body carries each host's report.
	items, err := h.store.Outbox(context.Background(), inventory.OutboxFilter{JobID: job.JobID, WithBody: true})
	if err != nil || len(items) != 1 {
		t.Fatalf("outbox of %s = %d items, %v; want the callback", job.JobID, len(items), err)
	}
	var cb wire.Callback
	if err := json.Unmarshal(items[0].Body, &cb); err != nil {
		t.Fatal(err)
	}
	if len(cb.Results) != 2 || !reflect.DeepEqual(cb.Results[1].Packages, want(model.PkgDnf)) {
		t.Errorf("callback results %+v; want the reports", cb.Results)
	}

	// Without wait: 202, and the job runs; dry_run in the query is the
	// managers' simulation.
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/packages?dry_run=true", wire.PkgRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
		Action: "remove", Packages: []string{"nginx"}}, &acc, http.StatusAccepted)
	done := h.waitJob(acc.JobID)
	if r := done.Results[0]; r.Packages == nil || !r.Packages.DryRun || done.CmdLine != "pkg remove nginx --dry-run" {
		t.Errorf("dry run: %q, report %+v; want a dry-run report", done.CmdLine, r.Packages)
	}

	// The job's events carry each finished host's report.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := map[string]*model.PkgReport{}
	for e := range h.events(ctx, job.JobID) {
		if ev := e.event(t); ev.Type == model.EventHost && ev.Packages != nil {
			reports[ev.Host] = ev.Packages
		}
	}
	if !reflect.DeepEqual(reports, map[string]*model.PkgReport{"m1": want(model.PkgApt), "m2": want(model.PkgDnf)}) {
		t.Errorf("events' reports %+v; want each host's", reports)
	}

	// Targets that match nothing: 404; no token: 401.
	before := h.dump()
	status, body := h.do(h.client(nil), "POST", "/api/v1/packages", "Bearer "+h.admin,
		wire.PkgRequest{JobOptions: wire.JobOptions{Targets: []string{"zz*"}}, Action: "list"})
	if status != http.StatusNotFound {
		t.Errorf("targets matching nothing = %d %s; want 404", status, body)
	}
	status, _ = h.do(h.client(nil), "POST", "/api/v1/packages", "", req)
	if status != http.StatusUnauthorized {
		t.Errorf("without a token = %d; want 401", status)
	}
	h.wantUnchanged("refused package jobs", before)
}

// TestPackagesRefused: bad names, versions and options are a 400 naming
// the field or the value; no job is stored and no host is called. The
// document refuses them too.
func TestPackagesRefused(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	// doc: the document refuses it too; rules across fields (or beyond
	// a schema, like a duration) it cannot say.
	tests := []struct {
		name, query, body, want string
		doc                     bool
	}{
		{"shell in a name", "", `{"targets":["m1"],"action":"install","packages":["nginx;touch MARKER"]}`, `"nginx;touch MARKER"`, true},
		{"an option as a name", "", `{"targets":["m1"],"action":"install","packages":["-oAPT::x"]}`, `"-oAPT::x"`, true},
		{"an option as a version", "", `{"targets":["m1"],"action":"install","packages":["nginx=-oAPT::x"]}`, `-oAPT::x`, true},
		{"command substitution", "", `{"targets":["m1"],"action":"install","packages":["$(id)"]}`, `"$(id)"`, true},
		{"CRLF in a name", "", `{"targets":["m1"],"action":"install","packages":["nginx\r\nid"]}`, `nginx\r\nid`, true},
		{"space in a name", "", `{"targets":["m1"],"action":"remove","packages":["nginx curl"]}`, `"nginx curl"`, true},
		{"empty name", "", `{"targets":["m1"],"action":"install","packages":[""]}`, `package name`, true},
		{"shell in a glob", "", `{"targets":["m1"],"action":"list","glob":"a;id"}`, `glob`, true},
		{"unknown action", "", `{"targets":["m1"],"action":"purge","packages":["nginx"]}`, `"purge"`, true},
		{"no action", "", `{"targets":["m1"],"packages":["nginx"]}`, `action`, true},
		{"install without names", "", `{"targets":["m1"],"action":"install"}`, `at least one`, false},
		{"list with names", "", `{"targets":["m1"],"action":"list","packages":["nginx"]}`, `glob`, false},
		{"version to remove", "", `{"targets":["m1"],"action":"remove","packages":["nginx=1.0"]}`, `version`, false},
		{"a name twice", "", `{"targets":["m1"],"action":"install","packages":["nginx","nginx=1.0"]}`, `twice`, false},
		{"dry run of list", "", `{"targets":["m1"],"action":"list","dry_run":true}`, `dry run`, false},
		{"dry run of info in the query", "?dry_run=1", `{"targets":["m1"],"action":"info","packages":["nginx"]}`, `dry run`, false},
		{"unknown manager", "", `{"targets":["m1"],"action":"list","manager":"brew"}`, `"brew"`, true},
		{"relative installroot", "", `{"targets":["m1"],"action":"list","installroot":"srv/root"}`, `installroot`, true},
		{"unknown field", "", `{"targets":["m1"],"action":"list","sudo":true}`, `sudo`, true},
		{"no targets", "", `{"action":"list"}`, `targets`, true},
		{"bad transport", "", `{"targets":["m1"],"action":"list","transport":"rsh"}`, `rsh`, true},
		{"bad timeout", "", `{"targets":["m1"],"action":"list","timeout":"soon"}`, `timeout`, false},
		{"too many names", "", `{"targets":["m1"],"action":"install","packages":[` +
			strings.TrimSuffix(strings.Repeat(`"p",`, model.MaxPkgNames+1), ",") + `]}`, `at most`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			status, out := h.do(h.client(nil), "POST", "/api/v1/packages"+tt.query, "Bearer "+h.admin, tt.body)
			if status != http.StatusBadRequest {
				t.Errorf("%s = %d %s; want 400", tt.body, status, out)
			}
			wantError(t, tt.name, out, tt.want)
			h.wantUnchanged(tt.name, before)
			if !tt.doc {
				return
			}
			req := httptest.NewRequest("POST", "/api/v1/packages"+tt.query, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+h.admin)
			req.Header.Set("Content-Type", "application/json")
			if err := api.OpenAPIRefuses(req); err == nil {
				t.Errorf("%s: the server refuses it, but api/openapi.yaml takes it", tt.body)
			}
		})
	}
	if calls := h.fake.Calls(); len(calls) != 0 {
		t.Errorf("hosts called %d times; want none", len(calls))
	}
}
