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
