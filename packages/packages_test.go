package packages

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/model"
)

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCapturedApt(t *testing.T) {
	if got := parseDpkg(testdata(t, "dpkg-query.txt")); len(got) != 1 || got["bash"] == "" {
		t.Errorf("parseDpkg = %v; want bash alone", got)
	}
	if got := parseAptPolicy(testdata(t, "apt-cache-policy.txt"), nil); len(got) != 1 || got["bash"] == "" {
		t.Errorf("parseAptPolicy = %v; want bash's candidate alone", got)
	}
	if got := parseAptSimulation(testdata(t, "apt-get-s-install.txt")); len(got) != 1 || got["bash"] == "" {
		t.Errorf("parseAptSimulation = %v; want bash's new version", got)
	}
	sim := parseAptSimulation([]byte("Inst felix-test-dep (1.0 localhost [all])\nInst felix-test-hello [1.0] (2.0 localhost [all])\nRemv old [3]\n"))
	if sim["felix-test-dep"] != "1.0" || sim["felix-test-hello"] != "2.0" || sim["old"] != "" || len(sim) != 3 {
		t.Errorf("parseAptSimulation = %v", sim)
	}
}

func TestParseOthers(t *testing.T) {
	if got := parseTabbed([]byte("bash\t5.1-2.el9\nopenssl\t1:3.0.7-27.el9\npackage nope is not installed\n")); len(got) != 2 || got["openssl"] != "1:3.0.7-27.el9" {
		t.Errorf("parseTabbed = %v", got)
	}
	if got := parseSpaced([]byte("bash 5.2.026-2\nerror: package 'nope' was not found\n")); len(got) != 1 || got["bash"] != "5.2.026-2" {
		t.Errorf("parseSpaced = %v", got)
	}
	if got := parseApkNamed([]byte("musl-1.2.4-r2\nmusl-utils-1.2.4-r2\n"), []string{"musl"}); got["musl"] != "1.2.4-r2" || len(got) != 1 {
		t.Errorf("parseApkNamed = %v", got)
	}
	if got := parseApkList([]byte("musl-1.2.4-r2\nca-certificates-bundle-20230506-r0\n")); got["ca-certificates-bundle"] != "20230506-r0" || got["musl"] != "1.2.4-r2" {
		t.Errorf("parseApkList = %v", got)
	}
	if got := parseKeyed([]byte("Repository      : core\nName            : bash\nVersion         : 5.2.026-2\n"), nil); got["bash"] != "5.2.026-2" {
		t.Errorf("parseKeyed = %v", got)
	}
}

// TestParseSimulations reads each manager's dry run: dnf, zypper and
// pacman as captured from the real managers, apk in its own tests' format.
func TestParseSimulations(t *testing.T) {
	for _, tc := range []struct {
		name   string
		m      *manager
		o      output
		remove bool
		want   map[string]string
		err    string
	}{
		{"dnf upgrade", managers["dnf"], output{stdout: testdata(t, "dnf-assumeno-upgrade.txt"), stderr: []byte("Operation aborted.\n"), code: 1},
			false, map[string]string{"felix-test-hello": "2.0-1"}, ""},
		{"dnf remove", managers["dnf"], output{stdout: testdata(t, "dnf-assumeno-remove.txt"), stderr: []byte("Operation aborted.\n"), code: 1},
			true, map[string]string{"felix-test-hello": ""}, ""},
		{"dnf wrapped name, dependencies", managers["yum"], output{stdout: []byte("Installing:\n a-very-long-package-name-that-wraps\n                 x86_64   1:2.3-4.el9   appstream   1.0 M\n" +
			"Installing dependencies:\n libdep   x86_64   0.5-1.el9   baseos   20 k\n\nTransaction Summary\nInstall  2 Packages\n")},
			false, map[string]string{"a-very-long-package-name-that-wraps": "1:2.3-4.el9", "libdep": "0.5-1.el9"}, ""},
		{"dnf error", managers["dnf"], output{stderr: []byte("Error: Unable to find a match: nope\n"), code: 1}, false, nil, "Unable to find a match"},
		{"zypper update", zypper, output{stdout: testdata(t, "zypper-update-dry-run.xml")}, false, map[string]string{"felix-test-hello": "2.0-1"}, ""},
		{"zypper missing", zypper, output{stdout: testdata(t, "zypper-install-missing.xml"), code: 104}, false, nil, "No provider of 'nosuchpkg' found."},
		{"zypper remove", zypper, output{stdout: []byte(`<?xml version='1.0'?><stream><install-summary><to-remove><solvable type="package" name="felix-test-hello" edition="1.0-1"/></to-remove></install-summary></stream>`)},
			true, map[string]string{"felix-test-hello": ""}, ""},
		{"pacman install", pacman, output{stdout: testdata(t, "pacman-print.txt")}, false, map[string]string{"felix-test-hello": "2.0-1"}, ""},
		{"pacman remove", pacman, output{stdout: []byte("felix-test-hello 1.0-1\n")}, true, map[string]string{"felix-test-hello": ""}, ""},
		{"pacman error", pacman, output{stderr: []byte("error: target not found: nosuch\n"), code: 1}, false, nil, "target not found: nosuch"},
		{"apk", apk, output{stdout: testdata(t, "apk-simulate.txt")}, false,
			map[string]string{"oldlib": "", "b": "2", "a": "3", "busybox": "1.36.1-r2"}, ""},
		{"apt", apt, output{stdout: testdata(t, "apt-get-s-install.txt")}, false, nil, ""},
	} {
		got, err := tc.m.parseSimulation(tc.o, tc.remove)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v; want one saying %q", tc.name, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != nil && !maps.Equal(got, tc.want):
			t.Errorf("%s = %v; want %v", tc.name, got, tc.want)
		}
	}
	if got := parseKeyed(testdata(t, "zypper-info.txt"), nil); got["felix-test-hello"] != "2.0-1" || len(got) != 1 {
		t.Errorf("parseKeyed(zypper info) = %v", got)
	}
	if got := parseKeyed(testdata(t, "pacman-si.txt"), nil); got["felix-test-hello"] != "2.0-1" || len(got) != 1 {
		t.Errorf("parseKeyed(pacman -Si) = %v", got)
	}
}

// TestCommandLines: every word quoted, names after "--", the manager's
// non-interactive flags, pins in each manager's syntax, install roots.
func TestCommandLines(t *testing.T) {
	pin := []model.Pkg{{Name: "nginx", Version: "1.22-1"}, {Name: "curl"}}
	for _, tc := range []struct {
		name string
		c    cmd
		want string
	}{
		{"apt install", apt.install("", pin), `DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l 'apt-get' '-q' '-y' '-o' 'DPkg::Lock::Timeout=%LOCKWAIT%' '-o' 'Dpkg::Use-Pty=0' '-o' 'Dpkg::Options::=--force-confdef' '-o' 'Dpkg::Options::=--force-confold' 'install' '--allow-downgrades' '--' 'nginx=1.22-1' 'curl'`},
		{"apt dry run", apt.simulate(apt.remove("", pin)), `DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l 'apt-get' '-s' '-q' '-y' '-o' 'DPkg::Lock::Timeout=%LOCKWAIT%' '-o' 'Dpkg::Use-Pty=0' '-o' 'Dpkg::Options::=--force-confdef' '-o' 'Dpkg::Options::=--force-confold' 'remove' '--' 'nginx' 'curl'`},
		{"apt upgrade all", apt.upgrade("", nil), `DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l 'apt-get' '-q' '-y' '-o' 'DPkg::Lock::Timeout=%LOCKWAIT%' '-o' 'Dpkg::Use-Pty=0' '-o' 'Dpkg::Options::=--force-confdef' '-o' 'Dpkg::Options::=--force-confold' 'upgrade'`},
		{"dnf install in a root", managers["dnf"].install("/srv/r", pin), `'dnf' '-y' '-q' '--installroot' '/srv/r' 'install' '--' 'nginx-1.22-1' 'curl'`},
		{"rpm query in a root", rpmQuery("/srv/r", []string{"nginx"}), `'rpm' '--root' '/srv/r' '-q' '--qf' '` + rpmFormat + `' '--' 'nginx'`},
		{"zypper install", zypper.install("", pin), `ZYPP_LOCK_TIMEOUT=%LOCKWAIT% 'zypper' '--non-interactive' '--quiet' 'install' '--oldpackage' '--' 'nginx=1.22-1' 'curl'`},
		{"apk add", apk.install("", pin), `'apk' '--no-progress' '--wait' '%LOCKWAIT%' 'add' '--' 'nginx=1.22-1' 'curl'`},
		{"pacman remove, waiting for its lock", pacman.remove("", pin), `'sh' '-c' '` + lockWaitScript + `' 'sh' '/var/lib/pacman/db.lck' '%LOCKWAIT%' 'pacman' '--noconfirm' '-R' '--' 'nginx' 'curl'`},
		{"pacman dry run in a root", pacman.simulate(pacman.install("/srv/r", pin)), `'pacman' '--noconfirm' '--root' '/srv/r' '--config' '/srv/r/etc/pacman.conf' '-S' '--print' '--print-format' '%n %v' '--needed' '--' 'nginx' 'curl'`},
		{"dnf dry run", managers["dnf"].simulate(managers["dnf"].remove("/srv/r", pin)), `'dnf' '--assumeno' '--installroot' '/srv/r' 'remove' '--' 'nginx' 'curl'`},
		{"zypper dry run", zypper.simulate(zypper.upgrade("", pin)), `ZYPP_LOCK_TIMEOUT=%LOCKWAIT% 'zypper' '--non-interactive' '--xmlout' 'update' '--dry-run' '--' 'nginx' 'curl'`},
		{"apk dry run", apk.simulate(apk.install("", pin)), `'apk' '--simulate' '--no-progress' '--wait' '%LOCKWAIT%' 'add' '--' 'nginx=1.22-1' 'curl'`},
		{"a quote in a word", cmd{argv: []string{"echo", "it's"}}, `'echo' 'it'\''s'`},
		{"the lock wait filled in", cmd{env: withLockWait(zypper.refresh("").env, "42"), argv: withLockWait(apt.refresh("").argv, "42")},
			`ZYPP_LOCK_TIMEOUT=42 'apt-get' '-q' '-o' 'DPkg::Lock::Timeout=42' 'update'`},
	} {
		if got := quote(tc.c.env, tc.c.argv); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

// script is a fake host: the output of each command, by a substring of
// its line, and the lines run.
type script struct {
	mu    sync.Mutex
	lines []string
	reply func(line string) (stdout string, code int)
}

func (s *script) run(_ context.Context, c model.Command, out model.OutputFunc) (model.Exit, error) {
	s.mu.Lock()
	s.lines = append(s.lines, c.Line)
	s.mu.Unlock()
	stdout, code := s.reply(c.Line)
	if stdout != "" {
		out(model.Stdout, []byte(stdout))
	}
	return model.Exit{Code: code}, nil
}

func (s *script) ran(sub string) bool {
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// aptHost fakes an apt host where hello is installed at version v (""
// absent) and 2.0 is the candidate; apt-get install sets it to the pin or
// 2.0.
func aptHost(v *string) *script {
	return &script{reply: func(line string) (string, int) {
		switch {
		case strings.Contains(line, "command -v"):
			return "apt-get\n", 0
		case strings.Contains(line, "'dpkg-query'"):
			if *v == "" {
				return "", 1
			}
			return "ii \thello\t" + *v + "\n", 0
		case strings.Contains(line, "'apt-cache' 'policy'"):
			return "hello:\n  Installed: (none)\n  Candidate: 2.0\n", 0
		case strings.Contains(line, "'-s'"):
			return "Inst hello [" + *v + "] (2.0 repo [all])\n", 0
		case strings.Contains(line, "'install'"):
			*v = "2.0"
			if strings.Contains(line, "'hello=1.0'") {
				*v = "1.0"
			}
			return "Setting up hello\n", 0
		case strings.Contains(line, "'remove'"):
			*v = ""
			return "", 0
		}
		return "", 0
	}}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	hello := []model.Pkg{{Name: "hello"}}
	for _, tc := range []struct {
		name       string
		have       string
		spec       model.PkgSpec
		want       model.PkgChange
		wantRan    string // a command that must have run
		wantNotRan string // one that must not
	}{
		{"install", "", model.PkgSpec{Action: model.PkgInstall, Packages: hello},
			model.PkgChange{Name: "hello", After: "2.0", State: model.PkgChanged}, "'install'", ""},
		{"installed already", "2.0", model.PkgSpec{Action: model.PkgInstall, Packages: hello},
			model.PkgChange{Name: "hello", Before: "2.0", After: "2.0", State: model.PkgUnchanged}, "", "'apt-get' '-q' '-y'"},
		{"pin a version", "2.0", model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "hello", Version: "1.0"}}},
			model.PkgChange{Name: "hello", Before: "2.0", After: "1.0", State: model.PkgChanged}, "'hello=1.0'", ""},
		{"remove", "1.0", model.PkgSpec{Action: model.PkgRemove, Packages: hello},
			model.PkgChange{Name: "hello", Before: "1.0", State: model.PkgChanged}, "'remove'", ""},
		{"remove what is gone", "", model.PkgSpec{Action: model.PkgRemove, Packages: hello},
			model.PkgChange{Name: "hello", State: model.PkgUnchanged}, "", "'remove'"},
		{"dry run", "1.0", model.PkgSpec{Action: model.PkgUpgrade, Packages: hello, DryRun: true},
			model.PkgChange{Name: "hello", Before: "1.0", After: "2.0", State: model.PkgChanged}, "'-s'", "'apt-get' '-q' '-y'"},
		{"upgrade what is not there", "", model.PkgSpec{Action: model.PkgUpgrade, Packages: hello},
			model.PkgChange{Name: "hello", State: model.PkgFailed, Error: "not installed: install it first"}, "", "'install'"},
		{"no such package", "", model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "nope"}}},
			model.PkgChange{Name: "nope", State: model.PkgFailed, Error: "not available from the host's repositories"}, "", "'install'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.have
			h := aptHost(&v)
			exit, err := Run(ctx, h.run, model.Target{ID: "h"}, &tc.spec, func(model.Stream, []byte) {})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			r := exit.Packages
			if r == nil || r.Manager != "apt" || len(r.Packages) != 1 || r.Packages[0] != tc.want {
				t.Fatalf("report = %+v; want %+v", r, tc.want)
			}
			if wantCode := map[bool]int{true: 1, false: 0}[tc.want.State == model.PkgFailed]; exit.Code != wantCode {
				t.Errorf("exit code %d; want %d", exit.Code, wantCode)
			}
			if tc.wantRan != "" && !h.ran(tc.wantRan) {
				t.Errorf("%s did not run: %q", tc.wantRan, h.lines)
			}
			if tc.wantNotRan != "" && h.ran(tc.wantNotRan) {
				t.Errorf("%s ran: %q", tc.wantNotRan, h.lines)
			}
		})
	}
}

func TestRunManagers(t *testing.T) {
	ctx := context.Background()
	spec := &model.PkgSpec{Action: model.PkgList}
	none := &script{reply: func(string) (string, int) { return "", 0 }}
	if _, err := Run(ctx, none.run, model.Target{ID: "h"}, spec, nil); err == nil || !strings.Contains(err.Error(), "no package manager") {
		t.Errorf("no manager: %v", err)
	}
	if _, err := Run(ctx, none.run, model.Target{ID: "h", PkgManager: "zypper"}, spec, nil); err == nil ||
		!strings.Contains(err.Error(), "zypper (the host's pkg_manager label) is not installed") {
		t.Errorf("a labelled manager that is missing: %v", err)
	}
	root := &model.PkgSpec{Action: model.PkgList, Manager: "apt", InstallRoot: "/srv/r"}
	apt := &script{reply: func(string) (string, int) { return "apt-get\n", 0 }}
	if _, err := Run(ctx, apt.run, model.Target{ID: "h"}, root, nil); err == nil || !strings.Contains(err.Error(), "apt has no install root") {
		t.Errorf("apt with an install root: %v", err)
	}
	unreachable := errors.New("host unreachable")
	down := func(context.Context, model.Command, model.OutputFunc) (model.Exit, error) {
		return model.Exit{}, unreachable
	}
	if _, err := Run(ctx, down, model.Target{ID: "h"}, spec, nil); !errors.Is(err, unreachable) {
		t.Errorf("the first command's error = %v; want the transport's, unchanged", err)
	}
	bad := &model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "-oAPT::x"}}}
	if _, err := Run(ctx, none.run, model.Target{ID: "h"}, bad, nil); err == nil || len(none.lines) > 2 {
		t.Errorf("a bad name: %v, ran %q; want refused before anything runs", err, none.lines)
	}
}
