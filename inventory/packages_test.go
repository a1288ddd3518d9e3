package inventory

import (
	"context"
	"reflect"
	"testing"

	"github.com/felix-ops/felix/model"
)

// TestPackageReports stores package reports and reads them back through
// every result read: the whole job, a page, and one host.
func TestPackageReports(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	rep := &model.PkgReport{Manager: model.PkgApt, DryRun: true, Changed: 1, Unchanged: 1, Failed: 1,
		Packages: []model.PkgChange{
			{Name: "felix-test-hello", Before: "1.0", After: "2.0", State: model.PkgChanged},
			{Name: "curl", Before: "7.88.1-10", After: "7.88.1-10", State: model.PkgUnchanged},
			{Name: "nosuch", State: model.PkgFailed, Error: "E: Unable to locate package nosuch"},
		}}
	storeJob(t, s, "j", []string{"h1", "h2", "h3"},
		model.Result{Host: "h1", State: model.StateOK, Packages: rep, StartedAt: t0, FinishedAt: t0},
		model.Result{Host: "h2", State: model.StateFailed, ExitCode: -1, Error: "no package manager", StartedAt: t0, FinishedAt: t0})
	tests := []struct {
		host string
		want *model.PkgReport
	}{
		{"h1", rep},
		{"h2", nil}, // ended without a report
		{"h3", nil}, // still pending
	}
	_, all, err := s.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	paged, _ := page(t, s, "j", ResultPage{Limit: 10, Tail: 1 << 10})
	if len(all) != 3 || len(paged) != 3 {
		t.Fatalf("Job read %d results, JobResults %d; want 3", len(all), len(paged))
	}
	for i, tt := range tests {
		one, err := s.JobResult(ctx, "j", tt.host)
		if err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]*model.PkgReport{"Job": all[i].Packages, "JobResults": paged[i].Packages,
			"JobResult": one.Packages} {
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s: packages of %s = %+v; want %+v", name, tt.host, got, tt.want)
			}
		}
	}
}
