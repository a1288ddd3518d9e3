package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

func TestSlackTextFolds(t *testing.T) {
	var rs []model.Result
	for i := range 600 {
		r := model.Result{Host: fmt.Sprintf("web%03d", i), State: model.StateOK, Stdout: []byte("same\n")}
		switch {
		case i%10 == 0:
			r.State, r.ExitCode, r.Stderr = model.StateFailed, 1, []byte(fmt.Sprintf("error on %d <&>\n", i))
		case i%7 == 0:
			r.State, r.Error = model.StateUnreachable, "dial tcp: connection refused"
		}
		rs = append(rs, r)
	}
	job := inventory.Job{ID: "J", ClientID: "c`1", CmdLine: "echo `x`\n && y", State: model.JobDone}
	text := slackText(job, rs)
	if len(text) > 3000 {
		t.Errorf("slack text is %d bytes; want ≤ 3000", len(text))
	}
	for _, want := range []string{"600 hosts — 463 ok, 60 failed, 77 unreachable", "*463 hosts* ok (exit 0): web001, web002",
		"(+455 more)", "*77 hosts* unreachable", "more groups)", "*Failures (137)*", "• web000 — failed, exit 1",
		"`echo 'x' &amp;&amp; y`", "(id `c'1`)", "more)_"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "<&>") {
		t.Errorf("slack text has unescaped output:\n%s", text)
	}
	if strings.Count(text, "```")%2 != 0 {
		t.Errorf("slack text has an unclosed code block:\n%s", text)
	}
}

// TestSlackTextFoldsPackageReports: hosts with the same report fold into
// one group whatever their managers printed, and the group shows the
// report.
func TestSlackTextFoldsPackageReports(t *testing.T) {
	report := func(before, after, state string) *model.PkgReport {
		return &model.PkgReport{Manager: model.PkgApt, Packages: []model.PkgChange{{Name: "nginx", Before: before, After: after, State: state}}}
	}
	rs := []model.Result{
		{Host: "web1", State: model.StateOK, Stdout: []byte("Fetched 1 kB in 1s\n"), Packages: report("", "1.24.0-1", model.PkgChanged)},
		{Host: "web2", State: model.StateOK, Stdout: []byte("Fetched 1 kB in 2s\n"), Packages: report("", "1.24.0-1", model.PkgChanged)},
		{Host: "web3", State: model.StateOK, Packages: report("1.24.0-1", "1.24.0-1", model.PkgUnchanged)},
		{Host: "db1", State: model.StateFailed, ExitCode: -1, Error: "no package manager: apt-get not found"},
	}
	job := inventory.Job{ID: "J", CmdLine: "pkg install nginx", CmdType: model.CmdPkg, State: model.JobDone}
	text := slackText(job, rs)
	for _, want := range []string{"4 hosts — 3 ok, 1 failed", "`pkg install nginx` (pkg)", "*2 hosts* ok (exit 0): web1, web2",
		"nginx - → 1.24.0-1 changed", "*1 host* ok (exit 0): web3", "nginx 1.24.0-1 → 1.24.0-1 unchanged",
		"• db1 — failed: no package manager"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Fetched") {
		t.Errorf("slack text shows the manager's output instead of the report:\n%s", text)
	}
}

// TestSlackTextFoldsApplyReports: apply jobs fold hosts by their reports
// too, showing the counts and what did not stay unchanged.
func TestSlackTextFoldsApplyReports(t *testing.T) {
	same := &model.ApplyReport{Config: "web@1", Unchanged: 2, Resources: []model.ResourceResult{
		{ID: "conf", Type: "file", State: "unchanged"}, {ID: "svc", Type: "service", State: "unchanged"}}}
	changed := &model.ApplyReport{Config: "web@1", Changed: 1, Unchanged: 1, Resources: []model.ResourceResult{
		{ID: "conf", Type: "file", State: "changed", Detail: "content"}, {ID: "svc", Type: "service", State: "unchanged"}}}
	rs := []model.Result{
		{Host: "web1", State: model.StateOK, Stdout: []byte("unchanged file conf\n1s\n"), Apply: same},
		{Host: "web2", State: model.StateOK, Stdout: []byte("unchanged file conf\n2s\n"), Apply: same},
		{Host: "web3", State: model.StateOK, Apply: changed},
	}
	text := slackText(inventory.Job{ID: "J", CmdLine: "apply web@1", CmdType: model.CmdApply, State: model.JobDone}, rs)
	for _, want := range []string{"*2 hosts* ok (exit 0): web1, web2", "0 changed, 2 unchanged", "*1 host* ok (exit 0): web3",
		"file conf changed: content"} {
		if !strings.Contains(text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, text)
		}
	}
}
