package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// TestPrintUpgradeJob folds hosts with the same outcome into one row and
// shows each outcome once, its reason beside it.
func TestPrintUpgradeJob(t *testing.T) {
	job := wire.Job{CmdType: model.CmdUpgrade, Results: []wire.HostResult{
		{Host: "m1", State: model.StateFailed, Stdout: "rolled_back vA -> vB: exit status 3\n", Error: "rolled back to vA: exit status 3"},
		{Host: "m2", State: model.StateOK, Stdout: "upgraded vA -> vB\n"},
		{Host: "m3", State: model.StateOK, Stdout: "upgraded vA -> vB\n"},
		{Host: "m4", State: model.StateCancelled, Error: "not started: canary host m1 failed; rollout stopped"},
		{Host: "m5", State: model.StateUnreachable, Error: "ping minion m5: connection refused (nothing changed)"},
	}}
	var b bytes.Buffer
	printUpgradeJob(&b, job, false)
	out := b.String()
	for _, want := range []string{"rolled_back", "vA -> vB: exit status 3", "m[2-3] (2 hosts)", "upgraded", "cancelled", "unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printUpgradeJob(&b, job, true)
	if rows := tableRows(b.String()); len(rows) != 6 || !strings.Contains(b.String(), "│ m2 ") || !strings.Contains(b.String(), "│ m3 ") {
		t.Errorf("--no-fold: want a row per host (header + 5):\n%s", b.String())
	}
	if n := strings.Count(out, "exit status 3"); n != 1 {
		t.Errorf("the rollback's reason shows %d times; want once:\n%s", n, out)
	}
	for _, tc := range []struct {
		r    wire.HostResult
		want string
	}{
		{wire.HostResult{State: model.StateOK, Stdout: "unchanged vB (it runs that binary: nothing sent)"}, "unchanged"},
		{wire.HostResult{State: model.StateFailed, Stdout: "boom"}, "failed"},
		{wire.HostResult{State: model.StateUnreachable}, "unreachable"},
	} {
		if got := upgradeOutcome(tc.r); got != tc.want {
			t.Errorf("upgradeOutcome(%+v) = %q; want %q", tc.r, got, tc.want)
		}
	}
}
