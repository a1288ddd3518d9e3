package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// applyJob is a finished apply job on four hosts: two all unchanged, one
// with a changed file (its diff) and a reloaded service, one failed.
func applyJob(dry bool) wire.Job {
	same := &model.ApplyReport{Config: "web@3", DryRun: dry, Resources: []model.ResourceResult{
		{ID: "conf", Type: "file", State: "unchanged"}, {ID: "svc", Type: "service", State: "unchanged"}}}
	changed := &model.ApplyReport{Config: "web@3", DryRun: dry, Resources: []model.ResourceResult{
		{ID: "conf", Type: "file", State: "changed", Detail: "content",
			Diff: "--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1 +1 @@\n-workers 64\n+workers 8\n"},
		{ID: "svc", Type: "service", State: "changed", Detail: "reloaded: conf changed"}}}
	failed := &model.ApplyReport{Config: "web@3", DryRun: dry, Resources: []model.ResourceResult{
		{ID: "conf", Type: "file", State: "failed", Error: "write /etc/app.conf: permission denied"},
		{ID: "svc", Type: "service", State: "skipped", Error: "requires conf, which did not succeed"}}}
	for _, r := range []*model.ApplyReport{same, changed, failed} {
		r.Count()
	}
	line := "apply web@3"
	if dry {
		line += " --dry-run"
	}
	return wire.Job{JobID: "japply", CmdType: model.CmdApply, CmdLine: line, State: "done", Total: 4,
		Summary: map[string]int{"ok": 3, "failed": 1}, Results: []wire.HostResult{
			{Host: "web1", State: "ok", Apply: same}, {Host: "web2", State: "ok", Apply: same},
			{Host: "web3", State: "ok", Apply: changed}, {Host: "web4", State: "failed", ExitCode: 1, Apply: failed}}}
}

// TestApplyGolden holds felix apply's table to golden files (UPDATE=1
// rewrites them): alike hosts fold, each diff shows once with its hosts.
func TestApplyGolden(t *testing.T) {
	for _, tt := range []struct {
		name string
		dry  bool
		args []string
	}{
		{"apply", false, []string{"apply", "web", "-t", "web*"}},
		{"apply-dry-run", true, []string{"apply", "web", "-t", "web*", "--dry-run"}},
		{"apply-no-fold", false, []string{"apply", "web", "-t", "web*", "--no-fold"}},
		{"apply-jsonl", false, []string{"apply", "web", "-t", "web*", "-o", "jsonl"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(applyJob(tt.dry))
			code, stdout, stderr := f.run(t, tt.args...)
			if code != 1 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 1 (web4 failed) and nothing", code, stderr)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestApplyRequest: a file is sent as the document, anything else names a
// stored config; --check is a dry run that exits 2 on drift, 0 without.
func TestApplyRequest(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(doc, []byte("resources: []\n"), 0o644)
	clean := applyJob(true)
	clean.Results = clean.Results[:2]
	clean.Summary = map[string]int{"ok": 2}
	drift := applyJob(true)
	drift.Results = drift.Results[:3]
	drift.Summary = map[string]int{"ok": 3}
	for _, tt := range []struct {
		name string
		job  wire.Job
		args []string
		code int
		want wire.ApplyRequest
	}{
		{"a file", clean, []string{"apply", doc, "-t", "web1", "--batch", "2"}, 0,
			wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}, Batch: "2"}, Document: "resources: []\n"}},
		{"a stored config at a revision", clean, []string{"apply", "web", "-t", "web*", "--rev", "3", "--dry-run"}, 0,
			wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"web*"}}, Config: "web", Rev: 3, DryRun: true}},
		{"--check without drift", clean, []string{"apply", "web", "-t", "web*", "--check"}, 0,
			wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"web*"}}, Config: "web", DryRun: true}},
		{"--check with drift", drift, []string{"apply", "web", "-t", "web*", "--check"}, 2,
			wire.ApplyRequest{JobOptions: wire.JobOptions{Targets: []string{"web*"}}, Config: "web", DryRun: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(tt.job)
			code, stdout, stderr := f.run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d; want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			var got wire.ApplyRequest
			sentJSON(t, f.take(), "POST /api/v1/apply", &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request %+v\nwant    %+v", got, tt.want)
			}
		})
	}

	// Refused before anything is sent.
	f := newFilesFake(t)
	big := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(big, []byte(strings.Repeat("#", model.MaxConfigSize+1)), 0o644)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"apply", "-t", "web1"}, "want one state document"},
		{[]string{"apply", "web"}, "no targets"},
		{[]string{"apply", big, "-t", "web1"}, "a state document is at most 1048576"},
		{[]string{"apply", doc, "-t", "web1", "--rev", "2"}, "--rev is for a stored config"},
		{[]string{"apply", "web", "-t", "web1", "--check", "--async"}, "drop --async"},
	} {
		code, _, stderr := f.run(t, tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("felix %s: exit %d, %q; want one line saying %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
	if len(f.take()) != 0 {
		t.Error("a refused command line sent a request")
	}
}
