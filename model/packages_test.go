package model

import (
	"strings"
	"testing"
)

func TestParsePkg(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Pkg
		bad  string // substring of the error; "" for none
	}{
		{in: "nginx", want: Pkg{Name: "nginx"}},
		{in: "libc6=2.36-9+deb12u4", want: Pkg{Name: "libc6", Version: "2.36-9+deb12u4"}},
		{in: "bash=1:5.2~rc1-1", want: Pkg{Name: "bash", Version: "1:5.2~rc1-1"}},
		{in: "python3.11", want: Pkg{Name: "python3.11"}},
		{in: "g++", want: Pkg{Name: "g++"}},
		{in: "", bad: "package name"},
		{in: "-oAPT::x", bad: "package name"},
		{in: "nginx;touch MARKER", bad: "package name"},
		{in: "$(id)", bad: "package name"},
		{in: "nginx\r\nx", bad: "package name"},
		{in: "nginx=", bad: "version of nginx"},
		{in: "nginx=-1", bad: "version of nginx"},
		{in: "nginx=1 2", bad: "version of nginx"},
		{in: "nginx=1=2", bad: "version of nginx"},
		{in: "a b", bad: "package name"},
		{in: strings.Repeat("a", MaxPkgNameLen+1), bad: "longer than"},
	} {
		got, err := ParsePkg(tc.in)
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ParsePkg(%q) = %v, want an error with %q", tc.in, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParsePkg(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.in {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func TestPkgSpecCheck(t *testing.T) {
	nginx := []Pkg{{Name: "nginx"}}
	for _, tc := range []struct {
		name string
		spec PkgSpec
		bad  string
	}{
		{name: "install", spec: PkgSpec{Action: PkgInstall, Packages: []Pkg{{Name: "nginx", Version: "1.22"}}}},
		{name: "upgrade all", spec: PkgSpec{Action: PkgUpgrade}},
		{name: "list glob", spec: PkgSpec{Action: PkgList, Glob: "lib*"}},
		{name: "dry run", spec: PkgSpec{Action: PkgRemove, Packages: nginx, DryRun: true}},
		{name: "installroot", spec: PkgSpec{Action: PkgInstall, Packages: nginx, Manager: PkgDnf, InstallRoot: "/srv/root"}},
		{name: "no action", spec: PkgSpec{Packages: nginx}, bad: "action"},
		{name: "install nothing", spec: PkgSpec{Action: PkgInstall}, bad: "at least one"},
		{name: "list names", spec: PkgSpec{Action: PkgList, Packages: nginx}, bad: "glob"},
		{name: "bad name", spec: PkgSpec{Action: PkgRemove, Packages: []Pkg{{Name: "-y"}}}, bad: "package name"},
		{name: "remove version", spec: PkgSpec{Action: PkgRemove, Packages: []Pkg{{Name: "a", Version: "1"}}}, bad: "only be given to install"},
		{name: "twice", spec: PkgSpec{Action: PkgInstall, Packages: []Pkg{{Name: "a"}, {Name: "a", Version: "1"}}}, bad: "twice"},
		{name: "glob on install", spec: PkgSpec{Action: PkgInstall, Packages: nginx, Glob: "x*"}, bad: "only for list"},
		{name: "bad glob", spec: PkgSpec{Action: PkgList, Glob: "x;y"}, bad: "glob"},
		{name: "dash glob", spec: PkgSpec{Action: PkgList, Glob: "-x"}, bad: "glob"},
		{name: "manager", spec: PkgSpec{Action: PkgList, Manager: "brew"}, bad: "package manager"},
		{name: "root", spec: PkgSpec{Action: PkgList, InstallRoot: "srv/../x"}, bad: "installroot"},
		{name: "dry list", spec: PkgSpec{Action: PkgList, DryRun: true}, bad: "dry run"},
		{name: "too many", spec: PkgSpec{Action: PkgInstall, Packages: make([]Pkg, MaxPkgNames+1)}, bad: "at most"},
	} {
		err := tc.spec.Check()
		if tc.bad == "" && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%s: Check() = %v, want an error with %q", tc.name, err, tc.bad)
		}
	}
}

func TestPkgReportCount(t *testing.T) {
	r := PkgReport{Packages: []PkgChange{{State: PkgChanged}, {State: PkgUnchanged}, {State: PkgUnchanged}, {State: PkgFailed}, {State: PkgPresent}}}
	r.Count()
	if r.Changed != 1 || r.Unchanged != 2 || r.Failed != 1 {
		t.Errorf("Count: %+v", r)
	}
}
