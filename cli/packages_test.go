package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// pkgJob is a finished package job of action on five hosts: three with
// the same report, one with another, and one whose manager is missing.
func pkgJob(action string, reports ...*model.PkgReport) wire.Job {
	j := wire.Job{JobID: "jpkg", CmdType: model.CmdPkg, CmdLine: "pkg " + action + " felix-test-hello", State: "done", Total: 5,
		Summary: map[string]int{"ok": 4, "failed": 1}}
	for i, h := range []string{"web1", "web2", "web3", "web4"} {
		j.Results = append(j.Results, wire.HostResult{Host: h, State: "ok", Transport: "agent", Packages: reports[min(i/3, len(reports)-1)]})
	}
	j.Results = append(j.Results, wire.HostResult{Host: "web5", State: "failed", ExitCode: -1, Transport: "ssh",
		Error: "package manager apk (pkg_manager label): apk not found on the host"})
	return j
}

func pkgReport(changes ...model.PkgChange) *model.PkgReport {
	r := &model.PkgReport{Manager: model.PkgApt, Packages: changes}
	r.Count()
	return r
}

// TestPkgGolden holds felix pkg's tables to golden files (UPDATE=1
// rewrites them): hosts with identical reports fold into one group.
func TestPkgGolden(t *testing.T) {
	installed := pkgReport(model.PkgChange{Name: "felix-test-hello", After: "2.0", State: model.PkgChanged},
		model.PkgChange{Name: "felix-test-dep", Before: "1.0", After: "1.0", State: model.PkgUnchanged})
	already := pkgReport(model.PkgChange{Name: "felix-test-hello", Before: "2.0", After: "2.0", State: model.PkgUnchanged},
		model.PkgChange{Name: "felix-test-dep", Before: "1.0", After: "1.0", State: model.PkgUnchanged})
	dry := pkgReport(model.PkgChange{Name: "felix-test-hello", Before: "1.0", After: "2.0", State: model.PkgChanged})
	dry.DryRun = true
	listed := pkgReport(model.PkgChange{Name: "felix-test-dep", After: "1.0", State: model.PkgPresent},
		model.PkgChange{Name: "felix-test-hello", After: "2.0", State: model.PkgPresent})
	info := pkgReport(model.PkgChange{Name: "felix-test-hello", After: "1.0", Candidate: "2.0", State: model.PkgPresent})
	absent := pkgReport(model.PkgChange{Name: "felix-test-hello", Candidate: "2.0", State: model.PkgAbsent})
	failed := pkgReport(model.PkgChange{Name: "nosuch", State: model.PkgFailed, Error: "E: Unable to locate package nosuch"})
	tests := []struct {
		name string
		job  wire.Job
		args []string
	}{
		{"pkg-install", pkgJob("install", installed, already), []string{"pkg", "install", "-t", "web*", "felix-test-hello"}},
		{"pkg-dry-run", pkgJob("upgrade", dry), []string{"pkg", "upgrade", "-t", "web*", "--dry-run", "felix-test-hello"}},
		{"pkg-list", pkgJob("list", listed), []string{"pkg", "list", "-t", "web*", "felix-test-*"}},
		{"pkg-info", pkgJob("info", info, absent), []string{"pkg", "info", "-t", "web*", "felix-test-hello"}},
		{"pkg-failed", pkgJob("install", failed), []string{"pkg", "install", "-t", "web*", "nosuch"}},
		{"job-pkg", pkgJob("install", installed, already), []string{"job", "jpkg"}},
		{"pkg-install-no-fold", pkgJob("install", installed, already), []string{"pkg", "install", "-t", "web*", "--no-fold", "felix-test-hello"}},
		{"pkg-install-yaml", pkgJob("install", installed, already), []string{"pkg", "install", "-t", "web*", "-o", "yaml", "felix-test-hello"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(tt.job)
			code, stdout, stderr := f.run(t, tt.args...)
			want := 1 // web5 failed
			if tt.args[0] == "job" {
				want = 0 // felix job displays
			}
			if code != want || stderr != "" {
				t.Errorf("felix %s: exit %d, stderr %q; want %d and nothing", strings.Join(tt.args, " "), code, stderr, want)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestPkgRequest: the flags and words become the request's fields.
func TestPkgRequest(t *testing.T) {
	ok := wire.Job{JobID: "jpkg", CmdType: model.CmdPkg, CmdLine: "pkg install nginx", State: "done", Total: 1,
		Summary: map[string]int{"ok": 1}, Results: []wire.HostResult{{Host: "web1", State: "ok",
			Packages: pkgReport(model.PkgChange{Name: "nginx", After: "1.22.1-9", State: model.PkgChanged})}}}
	tests := []struct {
		name string
		args []string
		want wire.PkgRequest
	}{
		{"install with every flag", []string{"pkg", "install", "-t", "web1,web2", "-t", "role=web", "nginx", "curl=7.88.1-10",
			"--dry-run", "--refresh", "--manager", "apt", "--installroot", "/srv/root", "--transport", "ssh", "--batch", "10%",
			"--fail-threshold", "2", "--timeout", "5m", "--id", "req-1"},
			wire.PkgRequest{JobOptions: wire.JobOptions{ID: "req-1", Targets: []string{"web1", "web2", "role=web"}, Timeout: "5m",
				Batch: "10%", FailThreshold: 2, Transport: "ssh"}, Action: "install", Packages: []string{"nginx", "curl=7.88.1-10"},
				DryRun: true, Refresh: true, Manager: "apt", InstallRoot: "/srv/root"}},
		{"upgrade everything", []string{"pkg", "upgrade", "-t", "*"},
			wire.PkgRequest{JobOptions: wire.JobOptions{Targets: []string{"*"}}, Action: "upgrade"}},
		{"list with a glob", []string{"pkg", "list", "-t", "web1", "lib*"},
			wire.PkgRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, Action: "list", Glob: "lib*"}},
		{"names after --", []string{"pkg", "remove", "-t", "web1", "--", "nginx"},
			wire.PkgRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, Action: "remove", Packages: []string{"nginx"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(ok)
			if code, stdout, stderr := f.run(t, tt.args...); code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			sent := f.take()
			var got wire.PkgRequest
			sentJSON(t, sent, "POST /api/v1/packages", &got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("request %+v\nwant    %+v", got, tt.want)
			}
		})
	}

	// --async prints the job id; -o json holds each host's report.
	f := newFilesFake(t)
	f.setJob(ok)
	if code, stdout, _ := f.run(t, "pkg", "install", "-t", "web1", "--async", "nginx"); code != 0 || stdout != "jpkg\n" {
		t.Errorf("--async: exit %d, %q; want the job id", code, stdout)
	}
	code, stdout, _ := f.run(t, "pkg", "install", "-t", "web1", "-o", "json", "nginx")
	var job wire.Job
	if err := json.Unmarshal([]byte(stdout), &job); err != nil || code != 0 {
		t.Fatalf("-o json: exit %d, %v\n%s", code, err, stdout)
	}
	if !reflect.DeepEqual(job.Results[0].Packages, ok.Results[0].Packages) {
		t.Errorf("-o json report %+v; want %+v", job.Results[0].Packages, ok.Results[0].Packages)
	}
}

// TestPkgRefusesBeforeSending: a bad command line sends nothing.
func TestPkgRefusesBeforeSending(t *testing.T) {
	f := newFilesFake(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"pkg", "-t", "web1"}, "want an action"},
		{[]string{"pkg", "purge", "-t", "web1", "nginx"}, `unknown command "purge" for "felix pkg"`},
		{[]string{"pkg", "install", "nginx"}, "no targets"},
		{[]string{"pkg", "list", "-t", "web1", "a*", "b*"}, "one glob"},
		{[]string{"pkg", "install", "-t", "web1", "--transport", "rsh", "nginx"}, "--transport"},
	} {
		code, _, stderr := f.run(t, tt.args...)
		if code == 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("felix %s: exit %d, stderr %q; want an error with %q", strings.Join(tt.args, " "), code, stderr, tt.want)
		}
	}
	if sent := f.take(); len(sent) != 0 {
		t.Errorf("sent %q; want nothing", requestLines(sent))
	}
}
