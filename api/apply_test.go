package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

const applyDoc = `vars:
  - match: '*'
    vars: {workers: 2}
  - match: role=web
    vars: {workers: 8}
resources:
  - id: conf
    type: file
    path: /etc/app.conf
    template: "workers {{ .Vars.workers }} on {{ .Host.ID }} ({{ .Facts.os_name }}, role {{ .Labels.role }})\n"
`

// TestApply starts apply jobs through POST /api/v1/apply: each host's
// resources are rendered with its own variables (the vars blocks that
// select it), facts and labels, and each host's report is in the job's
// JSON, its host route, its events and its callback.
func TestApply(t *testing.T) {
	h := newHarness(t)
	h.addMinion("m1", "127.0.0.9:4510", true, map[string]string{"role": "web"})
	h.addMinion("m2", "127.0.0.10:4510", true, map[string]string{"role": "db"})

	var job wire.Job
	h.adminDo("POST", "/api/v1/apply?wait=10s", wire.ApplyRequest{JobOptions: wire.JobOptions{ID: "a1", Targets: []string{"m*"},
		CallbackURL: "https://ops.example/cb"}, Document: applyDoc}, &job, http.StatusOK)
	if job.CmdType != model.CmdApply || job.CmdLine != "apply inline" || job.State != model.JobDone || len(job.Results) != 2 {
		t.Fatalf("job = %+v; want a done apply job of 2 hosts", job)
	}
	want := map[string]string{"m1": "workers 8 on m1 (debian, role web)\n", "m2": "workers 2 on m2 (debian, role db)\n"}
	for _, r := range job.Results {
		if r.State != model.StateOK || r.Apply == nil || len(r.Apply.Resources) != 1 || r.Apply.Resources[0].Detail != want[r.Host] ||
			r.Apply.Changed != 1 || r.Apply.Config != "inline" {
			t.Errorf("%s: %s, report %+v; want ok with %q rendered", r.Host, r.State, r.Apply, want[r.Host])
		}
	}
	var one wire.HostResult
	h.adminDo("GET", "/api/v1/jobs/"+job.JobID+"/hosts/m2", nil, &one, http.StatusOK)
	if one.Apply == nil || one.Apply.Resources[0].Detail != want["m2"] {
		t.Errorf("GET host m2: report %+v", one.Apply)
	}
	items, err := h.store.Outbox(context.Background(), inventory.OutboxFilter{JobID: job.JobID, WithBody: true})
	if err != nil || len(items) != 1 {
		t.Fatalf("outbox of %s = %d items, %v; want the callback", job.JobID, len(items), err)
	}
	var cb wire.Callback
	if err := json.Unmarshal(items[0].Body, &cb); err != nil || len(cb.Results) != 2 || cb.Results[0].Apply == nil {
		t.Errorf("callback %+v, %v; want the reports", cb.Results, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := 0
	for e := range h.events(ctx, job.JobID) {
		if ev := e.event(t); ev.Type == model.EventHost && ev.Apply != nil {
			reports++
		}
	}
	if reports != 2 {
		t.Errorf("events carried %d reports; want 2", reports)
	}

	// A host whose templates do not render (it has no role label) fails
	// with the reason; the others are applied.
	h.addMinion("m3", "127.0.0.11:4510", true, nil)
	h.adminDo("POST", "/api/v1/apply?wait=10s", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m*"}},
		Document: applyDoc}, &job, http.StatusOK)
	for _, r := range job.Results {
		switch {
		case r.Host == "m3" && (r.State != model.StateFailed || !strings.Contains(r.Error, `map has no entry for key "role"`)):
			t.Errorf("m3 without the label: %s %q; want failed, naming the missing key", r.State, r.Error)
		case r.Host != "m3" && r.State != model.StateOK:
			t.Errorf("%s: %s %q; want ok beside a host whose template failed", r.Host, r.State, r.Error)
		}
	}

	// dry_run in the query: the job runs, its reports say dry run.
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/apply?dry_run=true", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
		Document: applyDoc}, &acc, http.StatusAccepted)
	done := h.waitJob(acc.JobID)
	if r := done.Results[0]; r.Apply == nil || !r.Apply.DryRun || done.CmdLine != "apply inline --dry-run" {
		t.Errorf("dry run: %q, report %+v; want a dry-run report", done.CmdLine, r.Apply)
	}
}

// TestApplyRefused: a bad document or request is a 400 naming the line
// or the field, a body past the limit a 413; no job is stored and no host
// is called.
func TestApplyRefused(t *testing.T) {
	h := newHarnessWith(t, nil, true)
	h.addMinion("m1", "127.0.0.9:4510", true, nil)
	before := h.dump()
	calls := len(h.fake.Calls())
	for _, tc := range []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"an unknown key", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: "resources:\n  - id: a\n    type: cmd\n    run: 'true'\n    colour: red\n"}, 400, "line 5"},
		{"a missing var", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: "resources:\n  - id: a\n    type: file\n    path: /etc/a\n    template: '{{ .Vars.nope }}'\n"}, 400, ".Vars.nope is set by no vars block"},
		{"a bad match", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: "vars:\n  - match: 'web['\n    vars: {a: 1}\nresources:\n  - {id: a, type: cmd, run: 'true'}\n"}, 400, "vars block 1"},
		{"config and document", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}}, Config: "web",
			Document: applyDoc}, 400, "not both"},
		{"a source not in the store", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: "resources:\n  - {id: a, type: file, path: /etc/a, source: sha256:" + strings.Repeat("c", 64) + "}\n"}, 400, "upload it with POST /api/v1/content"},
		{"targets matching nothing", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"zz*"}}, Document: applyDoc}, 404, "no host matched"},
		{"neither", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}}}, 400, "give config"},
		{"a rev without config", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}}, Rev: 2, Document: applyDoc}, 400, "rev is for"},
		{"a document over 1 MiB", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: "resources: []\n#" + strings.Repeat("x", 2<<20)}, 400, "at most 1048576"},
		{"a body over 8 MiB", wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
			Document: strings.Repeat("x", 9<<20)}, 413, "request body over"},
	} {
		status, out := h.do(h.client(nil), "POST", "/api/v1/apply", "Bearer "+h.admin, tc.body)
		if status != tc.status || !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.name, status, out, tc.status, tc.want)
		}
	}
	h.wantUnchanged("refused apply jobs", before)
	if n := len(h.fake.Calls()); n != calls {
		t.Errorf("refused apply jobs called hosts %d times", n-calls)
	}
}
