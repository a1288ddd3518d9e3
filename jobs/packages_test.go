package jobs

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

func pkgSpec(targets []string, p *model.PkgSpec) model.JobSpec {
	return model.JobSpec{CmdType: model.CmdPkg, Targets: targets, Timeout: 5 * time.Minute, Packages: p}
}

func TestSubmitPackagesRefused(t *testing.T) {
	tr := &fakeTransport{}
	s := newService(t, tr)
	nginx := []model.Pkg{{Name: "nginx"}}
	tests := []struct {
		name string
		spec model.JobSpec
		want error
	}{
		{"no action", pkgSpec([]string{"web1"}, &model.PkgSpec{Packages: nginx}), ErrInvalid},
		{"install without names", pkgSpec([]string{"web1"}, &model.PkgSpec{Action: model.PkgInstall}), ErrInvalid},
		{"shell in a name", pkgSpec([]string{"web1"}, &model.PkgSpec{Action: model.PkgInstall,
			Packages: []model.Pkg{{Name: "nginx;touch /tmp/x"}}}), ErrInvalid},
		{"option as a version", pkgSpec([]string{"web1"}, &model.PkgSpec{Action: model.PkgInstall,
			Packages: []model.Pkg{{Name: "nginx", Version: "-oAPT::x"}}}), ErrInvalid},
		{"unknown manager", pkgSpec([]string{"web1"}, &model.PkgSpec{Action: model.PkgList, Manager: "brew"}), ErrInvalid},
		{"pkg type without spec", model.JobSpec{CmdType: model.CmdPkg, Targets: []string{"web1"}}, ErrInvalid},
		{"spec on a command", model.JobSpec{CmdType: model.CmdLine, CmdLine: "true", Targets: []string{"web1"},
			Packages: &model.PkgSpec{Action: model.PkgList}}, ErrInvalid},
		{"spec on a fetch", model.JobSpec{CmdType: model.CmdPkg, Targets: []string{"web1"}, Fetch: &model.FetchSpec{Path: "/x"},
			Packages: &model.PkgSpec{Action: model.PkgList}}, ErrInvalid},
		{"targets match nothing", pkgSpec([]string{"zzz*"}, &model.PkgSpec{Action: model.PkgList}), ErrNoTargets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { refused(t, s, tt.spec, tt.want) })
	}
	if hosts := tr.hosts(); len(hosts) != 0 {
		t.Errorf("hosts called: %q; want none", hosts)
	}
}

// TestPackageJob runs a package job over a transport that reports like the
// package driver: the command carries the spec and each host's pkg_manager
// label, the reports are stored and announced, and a rerun of the failed
// hosts asks the same again.
func TestPackageJob(t *testing.T) {
	report := func(state string) *model.PkgReport {
		r := &model.PkgReport{Manager: model.PkgApt, Packages: []model.PkgChange{{Name: "nginx", After: "1.22.1-9", State: state}}}
		r.Count()
		return r
	}
	tr := &fakeTransport{run: func(_ context.Context, tg model.Target, cmd model.Command, _ model.OutputFunc) (model.Exit, error) {
		if tg.ID == "web2" {
			return model.Exit{Code: 1, Packages: report(model.PkgFailed)}, nil
		}
		return model.Exit{Packages: report(model.PkgChanged)}, nil
	}}
	s := newService(t, tr)
	ctx := context.Background()
	if err := s.Store.SetLabels(ctx, "db1", map[string]string{model.PkgLabel: model.PkgDnf}, nil); err != nil {
		t.Fatal(err)
	}
	want := &model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "nginx"}, {Name: "curl", Version: "7.88.1-10"}},
		Refresh: true}
	job, err := s.Submit(ctx, pkgSpec([]string{"web1", "web2", "db1"}, want), "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	stored, rs := waitJob(t, s, job.ID)
	if got := states(rs); got != "db1=ok web1=ok web2=failed" {
		t.Errorf("states %s; want db1 and web1 ok, web2 failed", got)
	}
	if stored.CmdLine != "pkg install nginx curl=7.88.1-10 --refresh" || stored.CmdType != model.CmdPkg {
		t.Errorf("stored job %q (%s); want its pkg command line", stored.CmdLine, stored.CmdType)
	}
	for _, r := range rs {
		wantState := model.PkgChanged
		if r.Host == "web2" {
			wantState = model.PkgFailed
		}
		if !reflect.DeepEqual(r.Packages, report(wantState)) {
			t.Errorf("%s: stored report %+v; want %+v", r.Host, r.Packages, report(wantState))
		}
	}
	if _, announced := s.Announcer.(*fakeAnnouncer).asked(job.ID); len(announced) != 3 || announced[0].Packages == nil {
		t.Errorf("announced results %+v; want 3 with their reports", announced)
	}
	managers := map[string]string{}
	for _, h := range []string{"web1", "web2", "db1"} {
		calls := tr.callsOf(h)
		if len(calls) != 1 {
			t.Fatalf("%s called %d times; want 1", h, len(calls))
		}
		c := calls[0].cmd
		if !reflect.DeepEqual(c.Packages, want) || c.Line != "" || c.Timeout != 5*time.Minute {
			t.Errorf("%s: command %+v; want the spec, no line, the timeout", h, c)
		}
	}
	tr.mu.Lock()
	for _, c := range tr.calls {
		managers[c.host] = c.target.PkgManager
	}
	tr.mu.Unlock()
	if !reflect.DeepEqual(managers, map[string]string{"web1": "", "web2": "", "db1": model.PkgDnf}) {
		t.Errorf("targets' package managers %v; want db1's label dnf only", managers)
	}

	var events []model.Event
	if err := s.Events(ctx, job.ID, func(e model.Event) error { events = append(events, e); return nil }); err != nil {
		t.Fatal(err)
	}
	reports := 0
	for _, e := range events {
		if e.Type == model.EventHost && e.Packages != nil {
			reports++
		}
	}
	if reports != 3 {
		t.Errorf("stored events carry %d reports; want 3", reports)
	}

	again, err := s.Rerun(ctx, job.ID, true)
	if err != nil {
		t.Fatalf("Rerun(only failed) = %v", err)
	}
	if _, rs := waitJob(t, s, again.ID); states(rs) != "web2=failed" {
		t.Errorf("rerun ran %s; want web2 alone", states(rs))
	}
	calls := tr.callsOf("web2")
	if len(calls) != 2 || !reflect.DeepEqual(calls[1].cmd.Packages, want) {
		t.Errorf("web2's rerun command %+v; want the same spec", calls[len(calls)-1].cmd)
	}
	if hosts := tr.hosts(); !slices.Contains(hosts, "web2") || len(hosts) != 4 {
		t.Errorf("hosts called %q; want the three, then web2", hosts)
	}
}
