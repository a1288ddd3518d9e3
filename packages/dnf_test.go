package packages

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
)

// localRun runs a command line on this machine, as a minion would.
func localRun(ctx context.Context, c model.Command, out model.OutputFunc) (model.Exit, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", c.Line)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if out != nil {
		out(model.Stdout, stdout.Bytes())
		out(model.Stderr, stderr.Bytes())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return model.Exit{Code: ee.ExitCode()}, nil
	}
	return model.Exit{}, err
}

// dnfRoot builds felix-test-hello 1.0 and 2.0 as noarch RPMs, a
// repository of them, and an empty install root whose only repository it
// is; dnf and rpm then work on that root alone.
func dnfRoot(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"dnf", "rpm", "rpmbuild", "createrepo_c"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "hello.spec")
	if err := os.WriteFile(spec, []byte(`Name: felix-test-hello
Version: %{ver}
Release: 1
Summary: a felix test package
License: MIT
BuildArch: noarch
%description
A felix test package.
%install
mkdir -p %{buildroot}/usr/share/felix-test-hello
echo %{ver} > %{buildroot}/usr/share/felix-test-hello/version
%files
/usr/share/felix-test-hello/version
`), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	for _, v := range []string{"1.0", "2.0"} {
		run("rpmbuild", "--quiet", "-bb", "--define", "_topdir "+filepath.Join(dir, "top"), "--define", "ver "+v, spec)
	}
	repo := filepath.Join(dir, "repo")
	rpms, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "noarch", "*.rpm"))
	if len(rpms) != 2 {
		t.Fatalf("built %q; want two RPMs", rpms)
	}
	os.MkdirAll(repo, 0o755)
	for _, r := range rpms {
		run("cp", r, repo)
	}
	run("createrepo_c", "-q", repo)
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "etc", "yum.repos.d"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc", "yum.repos.d", "felix-test.repo"),
		[]byte("[felix-test]\nname=felix test\nbaseurl=file://"+repo+"\ngpgcheck=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// TestDnfInstallRoot drives a real dnf in a throwaway install root (the
// installroot setting, as an operator would use it): install a pinned
// version, again (unchanged: dnf not run), upgrade, info, list, a dry
// run, remove.
func TestDnfInstallRoot(t *testing.T) {
	root := dnfRoot(t)
	ctx := context.Background()
	const pkg = "felix-test-hello"
	var ran []string
	run := func(ctx context.Context, c model.Command, out model.OutputFunc) (model.Exit, error) {
		ran = append(ran, c.Line)
		return localRun(ctx, c, out)
	}
	do := func(spec model.PkgSpec) model.PkgChange {
		t.Helper()
		spec.Manager, spec.InstallRoot = model.PkgDnf, root
		exit, err := Run(ctx, run, model.Target{ID: "local"}, &spec, nil)
		if err != nil || exit.Packages == nil || len(exit.Packages.Packages) != 1 {
			t.Fatalf("%s %+v: %v, %+v", spec.Action, spec.Packages, err, exit.Packages)
		}
		return exit.Packages.Packages[0]
	}
	want := func(what string, got, want model.PkgChange) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %+v; want %+v", what, got, want)
		}
	}
	want("install 1.0", do(model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: pkg, Version: "1.0"}}}),
		model.PkgChange{Name: pkg, After: "1.0-1", State: model.PkgChanged})
	ran = nil
	want("install 1.0 again", do(model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: pkg, Version: "1.0"}}}),
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", State: model.PkgUnchanged})
	for _, l := range ran {
		if strings.Contains(l, "'install'") {
			t.Errorf("dnf install ran for what is installed: %s", l)
		}
	}
	want("info", do(model.PkgSpec{Action: model.PkgInfo, Packages: []model.Pkg{{Name: pkg}}}),
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", Candidate: "2.0-1", State: model.PkgPresent})
	want("dry run of the upgrade", do(model.PkgSpec{Action: model.PkgUpgrade, Packages: []model.Pkg{{Name: pkg}}, DryRun: true}),
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "2.0-1", State: model.PkgChanged})
	want("upgrade", do(model.PkgSpec{Action: model.PkgUpgrade, Packages: []model.Pkg{{Name: pkg}}}),
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "2.0-1", State: model.PkgChanged})
	want("list", do(model.PkgSpec{Action: model.PkgList, Glob: "felix-test-*"}),
		model.PkgChange{Name: pkg, Before: "2.0-1", After: "2.0-1", State: model.PkgPresent})
	want("remove", do(model.PkgSpec{Action: model.PkgRemove, Packages: []model.Pkg{{Name: pkg}}}),
		model.PkgChange{Name: pkg, Before: "2.0-1", State: model.PkgChanged})
	if out, _ := exec.Command("rpm", "--root", root, "-q", pkg).CombinedOutput(); !strings.Contains(string(out), "not installed") {
		t.Errorf("rpm says %q after the remove", out)
	}
}
