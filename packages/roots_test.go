package packages

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// needs fails (under CI) or skips the test when a tool is missing.
func needs(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s (scripts/deps.sh installs it): %v", tool, err)
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// rpmRepo builds felix-test-hello 1.0 and 2.0 as noarch RPMs and an
// rpm-md repository of them, and returns its directory.
func rpmRepo(t *testing.T) string {
	t.Helper()
	needs(t, "rpm", "rpmbuild", "createrepo_c")
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
	for _, v := range []string{"1.0", "2.0"} {
		run(t, "rpmbuild", "--quiet", "-bb", "--define", "_topdir "+filepath.Join(dir, "top"), "--define", "ver "+v, spec)
	}
	repo := filepath.Join(dir, "repo")
	rpms, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "noarch", "*.rpm"))
	if len(rpms) != 2 {
		t.Fatalf("built %q; want two RPMs", rpms)
	}
	os.MkdirAll(repo, 0o755)
	for _, r := range rpms {
		run(t, "cp", r, repo)
	}
	run(t, "createrepo_c", "-q", repo)
	return repo
}

// dnfRoot is an empty install root whose only repository is rpmRepo's;
// dnf and rpm then work on that root alone.
func dnfRoot(t *testing.T) string {
	t.Helper()
	needs(t, "dnf")
	repo := rpmRepo(t)
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "etc", "yum.repos.d"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc", "yum.repos.d", "felix-test.repo"),
		[]byte("[felix-test]\nname=felix test\nbaseurl=file://"+repo+"\ngpgcheck=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// zypperRoot is the same for zypper: its repository added (unsigned) to
// the root as an operator would.
func zypperRoot(t *testing.T) string {
	t.Helper()
	needs(t, "zypper")
	repo := rpmRepo(t)
	root := filepath.Join(t.TempDir(), "root")
	run(t, "zypper", "--non-interactive", "--quiet", "--root", root, "addrepo", "--no-gpgcheck", "file://"+repo, "felix-test")
	run(t, "zypper", "--non-interactive", "--quiet", "--root", root, "refresh")
	return root
}

// pacmanRepo adds felix-test-hello at version v (a package built by hand:
// .PKGINFO and one file, as makepkg would pack it) to the pacman
// repository dir, which then offers that version.
func pacmanRepo(t *testing.T, dir, v string) {
	t.Helper()
	build := t.TempDir()
	os.MkdirAll(filepath.Join(build, "usr", "share", "felix-test-hello"), 0o755)
	os.WriteFile(filepath.Join(build, "usr", "share", "felix-test-hello", "version"), []byte(v+"\n"), 0o644)
	os.WriteFile(filepath.Join(build, ".PKGINFO"), []byte("pkgname = felix-test-hello\npkgbase = felix-test-hello\npkgver = "+v+
		"\npkgdesc = a felix test package\nbuilddate = 1700000000\npackager = felix tests\nsize = 4\narch = any\nlicense = MIT\n"), 0o644)
	pkg := filepath.Join(dir, "felix-test-hello-"+v+"-any.pkg.tar.gz")
	run(t, "bsdtar", "-C", build, "-czf", pkg, ".PKGINFO", "usr")
	run(t, "repo-add", "-q", filepath.Join(dir, "felix-test.db.tar.gz"), pkg)
}

// pacmanRoot is an empty root with its own pacman.conf naming a local
// repository that offers felix-test-hello 1.0-1; it returns the root and
// the repository's directory.
func pacmanRoot(t *testing.T) (root, repo string) {
	t.Helper()
	needs(t, "pacman", "repo-add", "bsdtar")
	repo, root = t.TempDir(), filepath.Join(t.TempDir(), "root")
	pacmanRepo(t, repo, "1.0-1")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "var", "lib", "pacman"), 0o755)
	if err := os.WriteFile(filepath.Join(root, "etc", "pacman.conf"), []byte("[options]\nArchitecture = auto\nSigLevel = Never\nCacheDir = "+filepath.Join(root, "var", "cache", "pacman", "pkg")+"\n"+
		"[felix-test]\nServer = file://"+repo+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "pacman", "--noconfirm", "--root", root, "--config", filepath.Join(root, "etc", "pacman.conf"), "-Sy")
	return root, repo
}

// driver runs package jobs with manager on root through localRun,
// recording the command lines.
type driver struct {
	t             *testing.T
	manager, root string
	ran           []string
	timeout       time.Duration
}

func (d *driver) run(ctx context.Context, c model.Command, out model.OutputFunc) (model.Exit, error) {
	d.ran = append(d.ran, c.Line)
	return localRun(ctx, c, out)
}

// do runs spec and returns its one package's report, or the error.
func (d *driver) do(spec model.PkgSpec) (model.PkgChange, error) {
	d.t.Helper()
	spec.Manager, spec.InstallRoot = d.manager, d.root
	ctx, cancel := context.WithTimeout(context.Background(), cmp.Or(d.timeout, time.Minute))
	defer cancel()
	exit, err := Run(ctx, d.run, model.Target{ID: "local"}, &spec, nil)
	if exit.Packages == nil || len(exit.Packages.Packages) != 1 {
		d.t.Fatalf("%s %+v: %v, %+v", spec.Action, spec.Packages, err, exit.Packages)
	}
	return exit.Packages.Packages[0], err
}

func (d *driver) want(what string, spec model.PkgSpec, want model.PkgChange) {
	d.t.Helper()
	got, err := d.do(spec)
	if err != nil || got != want {
		d.t.Errorf("%s = %+v, %v; want %+v", what, got, err, want)
	}
}

// ranChange reports whether any recorded line ran the manager itself
// with one of words (not a query).
func (d *driver) ranChange(words ...string) bool {
	for _, l := range d.ran {
		for _, w := range words {
			if strings.Contains(l, "'"+w+"'") {
				return true
			}
		}
	}
	return false
}

const pkg = "felix-test-hello"

func pins(v string) []model.Pkg { return []model.Pkg{{Name: pkg, Version: v}} }

// TestRPMRoots drives a real dnf (--installroot) and a real zypper
// (--root) in throwaway install roots, as an operator would use the
// installroot setting: install a pinned version, again (unchanged: the
// manager not run), info, dry runs through the manager's own simulation
// (dnf --assumeno, zypper --dry-run), upgrade, downgrade, upgrade
// everything, list, remove.
func TestRPMRoots(t *testing.T) {
	for _, tc := range []struct {
		manager string
		root    func(*testing.T) string
	}{{model.PkgDnf, dnfRoot}, {model.PkgZypper, zypperRoot}} {
		t.Run(tc.manager, func(t *testing.T) {
			d := &driver{t: t, manager: tc.manager, root: tc.root(t)}
			rpmSteps(d, "2.0-1")
			if out, _ := exec.Command("rpm", "--root", d.root, "-q", pkg).CombinedOutput(); !strings.Contains(string(out), "not installed") {
				t.Errorf("rpm says %q after the remove", out)
			}
		})
	}
}

// rpmSteps walks an rpm-family manager through a package's life.
func rpmSteps(d *driver, latest string) {
	t := d.t
	d.want("install 1.0", model.PkgSpec{Action: model.PkgInstall, Packages: pins("1.0")},
		model.PkgChange{Name: pkg, After: "1.0-1", State: model.PkgChanged})
	d.ran = nil
	d.want("install 1.0 again", model.PkgSpec{Action: model.PkgInstall, Packages: pins("1.0")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", State: model.PkgUnchanged})
	if d.ranChange("install") {
		t.Errorf("%s ran to install what is installed: %q", d.manager, d.ran)
	}
	d.want("info", model.PkgSpec{Action: model.PkgInfo, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", Candidate: latest, State: model.PkgPresent})
	d.ran = nil
	d.want("dry run of the upgrade", model.PkgSpec{Action: model.PkgUpgrade, Packages: pins(""), DryRun: true},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: latest, State: model.PkgChanged})
	if !d.ranChange("--assumeno", "--dry-run") {
		t.Errorf("the dry run did not use %s's own simulation: %q", d.manager, d.ran)
	}
	d.want("dry run of a missing package", model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "felix-test-nope"}}, DryRun: true},
		model.PkgChange{Name: "felix-test-nope", State: model.PkgFailed, Error: "not available from the host's repositories"})
	d.want("upgrade", model.PkgSpec{Action: model.PkgUpgrade, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: latest, State: model.PkgChanged})
	d.want("downgrade to a pin", model.PkgSpec{Action: model.PkgInstall, Packages: pins("1.0")},
		model.PkgChange{Name: pkg, Before: latest, After: "1.0-1", State: model.PkgChanged})
	d.want("upgrade everything", model.PkgSpec{Action: model.PkgUpgrade},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: latest, State: model.PkgChanged})
	d.want("list", model.PkgSpec{Action: model.PkgList, Glob: "felix-test-*"},
		model.PkgChange{Name: pkg, Before: latest, After: latest, State: model.PkgPresent})
	d.want("dry run of the remove", model.PkgSpec{Action: model.PkgRemove, Packages: pins(""), DryRun: true},
		model.PkgChange{Name: pkg, Before: latest, State: model.PkgChanged})
	d.want("remove", model.PkgSpec{Action: model.PkgRemove, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: latest, State: model.PkgChanged})
}

// TestPacmanRoot drives a real pacman in a throwaway root with its own
// pacman.conf: install, again (unchanged, pacman not run), a pinned
// version refused, a new version published and found with --refresh, its
// dry run through pacman's --print, upgrade, list, remove; then its lock:
// a held db.lck waited for until released, and one held past the
// deadline ending the host as timed out.
func TestPacmanRoot(t *testing.T) {
	root, repo := pacmanRoot(t)
	d := &driver{t: t, manager: model.PkgPacman, root: root}
	d.want("install", model.PkgSpec{Action: model.PkgInstall, Packages: pins("")},
		model.PkgChange{Name: pkg, After: "1.0-1", State: model.PkgChanged})
	d.ran = nil
	d.want("install again", model.PkgSpec{Action: model.PkgInstall, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", State: model.PkgUnchanged})
	if d.ranChange("-S") {
		t.Errorf("pacman ran to install what is installed: %q", d.ran)
	}
	d.want("a pinned version", model.PkgSpec{Action: model.PkgInstall, Packages: pins("0.9-1")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "1.0-1", State: model.PkgFailed,
			Error: "pacman installs only the version its repositories have: drop =0.9-1"})
	time.Sleep(1100 * time.Millisecond) // pacman -Sy takes a database of the same second as its own as current
	pacmanRepo(t, repo, "2.0-1")
	d.want("dry run of the upgrade, refreshed", model.PkgSpec{Action: model.PkgUpgrade, Packages: pins(""), DryRun: true, Refresh: true},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "2.0-1", State: model.PkgChanged})
	d.want("upgrade", model.PkgSpec{Action: model.PkgUpgrade, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: "1.0-1", After: "2.0-1", State: model.PkgChanged})
	d.want("list", model.PkgSpec{Action: model.PkgList, Glob: "felix-*"},
		model.PkgChange{Name: pkg, Before: "2.0-1", After: "2.0-1", State: model.PkgPresent})
	d.want("dry run of the remove", model.PkgSpec{Action: model.PkgRemove, Packages: pins(""), DryRun: true},
		model.PkgChange{Name: pkg, Before: "2.0-1", State: model.PkgChanged})

	lock := filepath.Join(root, "var", "lib", "pacman", "db.lck")
	if err := os.WriteFile(lock, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	go func() { time.Sleep(2 * time.Second); os.Remove(lock) }()
	start := time.Now()
	d.want("remove while another holds the lock for 2 s", model.PkgSpec{Action: model.PkgRemove, Packages: pins("")},
		model.PkgChange{Name: pkg, Before: "2.0-1", State: model.PkgChanged})
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("the remove took %v: it did not wait for the lock", took)
	}

	os.WriteFile(lock, nil, 0o644)
	defer os.Remove(lock)
	d.timeout = 9 * time.Second
	got, err := d.do(model.PkgSpec{Action: model.PkgInstall, Packages: pins("")})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "could not lock database") ||
		got != (model.PkgChange{Name: pkg, State: model.PkgFailed, Error: "not installed: pacman's lock is held by another process"}) {
		t.Errorf("install with the lock held past the deadline = %+v, %v; want a timeout saying the lock is held", got, err)
	}
}
