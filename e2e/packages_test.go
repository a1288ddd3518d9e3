package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
	"golang.org/x/sys/unix"
)

// The test packages of the local apt repository (debRepo). testSlow's
// configure step sleeps slowSleep seconds while slowMarker exists.
const (
	testPkg    = "felix-test-hello"
	testDep    = "felix-test-dep"
	testSlow   = "felix-test-slow"
	slowMarker = "/run/felix-test-slow"
	slowSleep  = "sleep 117"
)

// pkgCluster is a master with a minion (pm1) and two SSH hosts: ps1, and
// pz, whose pkg_manager label names a manager this machine lacks. All
// three are this machine: they share its dpkg database.
type pkgCluster struct {
	*cluster
	rcv     *receiver
	missing string // the manager pz is labelled with
}

func startPkgCluster(t *testing.T) *pkgCluster {
	t.Helper()
	ps := sshtest.Start(t, "127.0.0.50")
	pz := sshtest.Start(t, "127.0.0.51")
	known := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, known, ps.KnownHostsLine+"\n"+pz.KnownHostsLine+"\n", 0o600)
	rcv := newReceiver(t, 0)
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q]\nagent = false\n"+
		"[callbacks]\nsecret = %q\nallow = [\"127.0.0.0/8\"]\n", known, ps.ClientKey, pz.ClientKey, e2eSecret))
	cl.joinAll("pm1")
	missing := ""
	for _, m := range []string{model.PkgZypper, model.PkgPacman, model.PkgApk} {
		if _, err := exec.LookPath(m); err != nil {
			missing = m
			break
		}
	}
	if missing == "" {
		t.Fatal("zypper, pacman and apk are all installed here: no manager is missing for the test")
	}
	for _, h := range []struct {
		id   string
		s    *sshtest.Server
		args []string
	}{{"ps1", ps, nil}, {"pz", pz, []string{"--label", model.PkgLabel + "=" + missing}}} {
		args := append([]string{"hosts", "add", h.s.Host, "--id", h.id, "--port", strconv.Itoa(h.s.Port)}, h.args...)
		if out, errOut, code := cl.felix(args...); code != 0 {
			t.Fatalf("felix hosts add %s: exit %d %s%s", h.id, code, out, errOut)
		}
	}
	return &pkgCluster{cluster: cl, rcv: rcv, missing: missing}
}

// pkg runs felix pkg ARGS -o json and returns the job and the exit status.
func (c *pkgCluster) pkg(args ...string) (wire.Job, int) {
	c.t.Helper()
	out, errOut, code := c.felix(append(append([]string{"pkg"}, args...), "-o", "json")...)
	var j wire.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		c.t.Fatalf("felix pkg %v: exit %d: %v\n%s%s", args, code, err, out, errOut)
	}
	return j, code
}

// jobCount is how many jobs the master stores.
func (c *cluster) jobCount() int {
	c.t.Helper()
	var list wire.JobList
	if status := c.api("GET", "/api/v1/jobs?limit=1000", nil, &list); status != http.StatusOK {
		c.t.Fatalf("GET jobs: %d", status)
	}
	return len(list.Jobs)
}

// change is what a test expects of one package on one host.
type change struct {
	host, transport, state string // state: the host's
	pkg, before, after     string
	pkgState               string
}

// wantChanges checks j's hosts against want, by host.
func wantChanges(t *testing.T, what string, j wire.Job, want ...change) {
	t.Helper()
	rs := resultsByHost(j)
	for _, w := range want {
		r, ok := rs[w.host]
		if !ok {
			t.Errorf("%s: no result for %s", what, w.host)
			continue
		}
		if r.State != model.State(w.state) || (w.transport != "" && r.Transport != w.transport) {
			t.Errorf("%s: %s %s over %s (%q); want %s over %s", what, w.host, r.State, r.Transport, r.Error, w.state, w.transport)
		}
		if w.pkg == "" {
			continue
		}
		var got *model.PkgChange
		if r.Packages != nil {
			for i := range r.Packages.Packages {
				if r.Packages.Packages[i].Name == w.pkg {
					got = &r.Packages.Packages[i]
				}
			}
		}
		if got == nil || got.Before != w.before || got.After != w.after || got.State != w.pkgState {
			t.Errorf("%s: %s: %s is %+v; want %q → %q %s", what, w.host, w.pkg, got, w.before, w.after, w.pkgState)
		}
	}
}

// installed is the version of pkg dpkg has installed here, "" for none.
func installed(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", pkg).Output()
	if err != nil {
		return "" // not known to dpkg at all
	}
	f := strings.Fields(string(out)) // "ii 2.0"; "un" without a version when removed
	if len(f) != 2 || f[0] != "ii" {
		return ""
	}
	return f[1]
}

// dpkgLogLines counts the lines of dpkg's log: it grows whenever dpkg
// changes anything.
func dpkgLogLines(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/var/log/dpkg.log")
	if err != nil {
		t.Fatalf("dpkg's log: %v", err)
	}
	return strings.Count(string(b), "\n")
}

// TestPackages drives package jobs through the real master, minion, CLI
// and sshd against a local apt repository of test packages: install,
// re-install (unchanged, dpkg not run), remove, upgrade, a pinned version,
// a dry run, list, info, a host whose manager is missing, a rerun of the
// failed hosts and the callback.
func TestPackages(t *testing.T) {
	debRepo(t)
	c := startPkgCluster(t)

	// Install a pinned version on the minion: absent → 1.0.
	j, code := c.pkg("install", "-t", "pm1", testPkg+"=1.0")
	wantChanges(t, "install on the minion", j, change{"pm1", "agent", "ok", testPkg, "", "1.0", model.PkgChanged})
	if code != 0 || installed(t, testPkg) != "1.0" {
		t.Errorf("install: exit %d, dpkg has %q; want 0 and 1.0", code, installed(t, testPkg))
	}

	// Again, on both: unchanged everywhere, dpkg not run; the table folds
	// the two hosts into one group.
	lines := dpkgLogLines(t)
	out, errOut, code := c.felix("pkg", "install", "-t", "pm1,ps1", testPkg+"=1.0")
	if code != 0 || !strings.Contains(out, "pm1,ps1 (2 hosts)") || strings.Count(out, testPkg) != 1 ||
		!strings.Contains(out, "unchanged") {
		t.Errorf("re-install: exit %d; want one group of 2 hosts, unchanged:\n%s%s", code, out, errOut)
	}
	if n := dpkgLogLines(t); n != lines {
		t.Errorf("re-install of what is installed: dpkg's log grew by %d lines; want dpkg not run", n-lines)
	}

	// Over SSH: remove (1.0 → absent), then install the latest (→ 2.0).
	j, _ = c.pkg("remove", "-t", "ps1", testPkg)
	wantChanges(t, "remove over ssh", j, change{"ps1", "ssh", "ok", testPkg, "1.0", "", model.PkgChanged})
	j, _ = c.pkg("install", "-t", "ps1", testPkg)
	wantChanges(t, "install over ssh", j, change{"ps1", "ssh", "ok", testPkg, "", "2.0", model.PkgChanged})
	if v := installed(t, testPkg); v != "2.0" {
		t.Errorf("after install over ssh dpkg has %q; want 2.0", v)
	}

	// A pinned older version: 2.0 → 1.0.
	j, _ = c.pkg("install", "-t", "pm1", testPkg+"=1.0")
	wantChanges(t, "downgrade to a pinned version", j, change{"pm1", "agent", "ok", testPkg, "2.0", "1.0", model.PkgChanged})

	// A dry run says what an upgrade would do, and changes nothing.
	lines = dpkgLogLines(t)
	j, _ = c.pkg("upgrade", "-t", "pm1", "--dry-run", testPkg)
	wantChanges(t, "dry run", j, change{"pm1", "agent", "ok", testPkg, "1.0", "2.0", model.PkgChanged})
	if r := resultsByHost(j)["pm1"]; r.Packages == nil || !r.Packages.DryRun {
		t.Errorf("dry run: report %+v; want dry_run set", r.Packages)
	}
	if v, n := installed(t, testPkg), dpkgLogLines(t); v != "1.0" || n != lines {
		t.Errorf("after a dry run dpkg has %q and its log grew by %d; want 1.0, unchanged", v, n-lines)
	}

	// The upgrade itself: 1.0 → 2.0.
	j, _ = c.pkg("upgrade", "-t", "pm1", testPkg)
	wantChanges(t, "upgrade", j, change{"pm1", "agent", "ok", testPkg, "1.0", "2.0", model.PkgChanged})

	// list with a glob, info: the same on both hosts.
	out, errOut, code = c.felix("pkg", "list", "-t", "pm1,ps1", "felix-test-*")
	if code != 0 || !strings.Contains(out, "pm1,ps1 (2 hosts)") || !strings.Contains(out, testPkg) || !strings.Contains(out, "2.0") {
		t.Errorf("list: exit %d; want %s 2.0 in one group of 2 hosts:\n%s%s", code, testPkg, out, errOut)
	}
	j, _ = c.pkg("list", "-t", "ps1", "felix-test-h*")
	if r := resultsByHost(j)["ps1"]; r.Packages == nil || len(r.Packages.Packages) != 1 || r.Packages.Packages[0].Name != testPkg {
		t.Errorf("list felix-test-h*: %+v; want %s alone", r.Packages, testPkg)
	}
	j, _ = c.pkg("info", "-t", "ps1", testPkg)
	if r := resultsByHost(j)["ps1"]; r.Packages == nil || len(r.Packages.Packages) != 1 ||
		r.Packages.Packages[0].After != "2.0" || r.Packages.Packages[0].Candidate != "2.0" {
		t.Errorf("info: %+v; want installed and candidate 2.0", r.Packages)
	}

	// A host whose manager is missing fails with the reason; the others go
	// on. A rerun of the failed hosts asks the same of pz alone.
	j, code = c.pkg("install", "-t", "pm1,pz", testPkg)
	wantChanges(t, "a missing manager", j, change{"pm1", "agent", "ok", testPkg, "2.0", "2.0", model.PkgUnchanged},
		change{host: "pz", transport: "ssh", state: "failed"})
	if r := resultsByHost(j)["pz"]; code != 1 || !strings.Contains(r.Error+r.Stderr, c.missing) {
		t.Errorf("missing manager: exit %d, pz %q; want exit 1 and an error naming %s", code, r.Error+r.Stderr, c.missing)
	}
	out, errOut, code = c.felix("job", "rerun", j.JobID, "--failed", "-o", "json")
	var again wire.Job
	if err := json.Unmarshal([]byte(out), &again); err != nil || code != 1 || again.CmdLine != "pkg install "+testPkg ||
		len(again.Results) != 1 || again.Results[0].Host != "pz" {
		t.Errorf("rerun --failed: exit %d, %v: %s%s; want pz alone, the same command", code, err, out, errOut)
	}

	// Through the API with a callback: the signed body carries each report.
	var acc wire.ExecAccepted
	if status := c.api("POST", "/api/v1/packages", map[string]any{"targets": []string{"pm1", "ps1"}, "action": "remove",
		"packages": []string{testPkg, testDep}, "batch": "1", "callback_url": c.rcv.srv.URL + "/cb", "id": "pkg-cb"}, &acc); status != http.StatusAccepted {
		t.Fatalf("POST /api/v1/packages: %d", status)
	}
	waitFor(t, "the package job's callback", 60*time.Second, func() bool { _, ok := c.rcv.callback(acc.JobID); return ok })
	cb, _ := c.rcv.callback(acc.JobID)
	if cb.ID != "pkg-cb" || cb.CmdType != model.CmdPkg || len(cb.Results) != 2 {
		t.Fatalf("callback: %+v; want the job of 2 hosts", cb)
	}
	// One host removed it, the other (the same machine, after it) found it gone.
	states := map[string]int{}
	for _, r := range cb.Results {
		if r.State != model.StateOK || r.Packages == nil {
			t.Errorf("callback: %s %s, report %+v", r.Host, r.State, r.Packages)
			continue
		}
		for _, p := range r.Packages.Packages {
			if p.Name == testPkg {
				states[p.State]++
			}
		}
	}
	if states[model.PkgChanged] != 1 || states[model.PkgUnchanged] != 1 || installed(t, testPkg) != "" {
		t.Errorf("remove on both, a host at a time: %v, dpkg has %q; want one changed, one unchanged, gone", states, installed(t, testPkg))
	}

	// dpkg's lock held by someone else (as apt takes it: an fcntl lock on
	// lock-frontend): the install waits for it instead of failing, and
	// goes on once it is released.
	lock, err := os.OpenFile("/var/lib/dpkg/lock-frontend", os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.FcntlFlock(lock.Fd(), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatalf("take dpkg's lock: %v", err)
	}
	held, fd := time.Now(), lock.Fd()
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(3 * time.Second)
		unix.FcntlFlock(fd, unix.F_SETLK, &unix.Flock_t{Type: unix.F_UNLCK})
	}()
	j, code = c.pkg("install", "-t", "pm1", testPkg)
	<-released
	t.Logf("install with dpkg's lock held for 3 s ended after %s", time.Since(held))
	wantChanges(t, "install while dpkg's lock is held", j, change{"pm1", "agent", "ok", testPkg, "", "2.0", model.PkgChanged})
	if code != 0 || time.Since(held) < 3*time.Second {
		t.Errorf("install with the lock held: exit %d after %s; want 0, once the lock was released", code, time.Since(held))
	}

	// Held past the job's deadline: the host ends timed out, apt's message
	// naming the holder (this test), and nothing was removed.
	if err := unix.FcntlFlock(fd, unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK}); err != nil {
		t.Fatalf("take dpkg's lock again: %v", err)
	}
	j, code = c.pkg("remove", "-t", "pm1", "--timeout", "8s", testPkg)
	unix.FcntlFlock(fd, unix.F_SETLK, &unix.Flock_t{Type: unix.F_UNLCK})
	wantChanges(t, "remove while dpkg's lock is held past the deadline", j,
		change{"pm1", "agent", "timeout", testPkg, "2.0", "2.0", model.PkgFailed})
	if r := resultsByHost(j)["pm1"]; code == 0 || !strings.Contains(r.Error, fmt.Sprintf("held by process %d", os.Getpid())) ||
		installed(t, testPkg) != "2.0" {
		t.Errorf("lock held past the deadline: exit %d, pm1 %q, dpkg has %q; want the holder (pid %d) named, 2.0 still installed",
			code, r.Error, installed(t, testPkg), os.Getpid())
	}

	// Cancelled mid-install (its configure step sleeping): the manager's
	// whole process group is killed, the host ends cancelled, and the
	// report says the manager's own recovery is left to it.
	writeFile(t, slowMarker, "", 0o644)
	out, errOut, code = c.felix("pkg", "install", "-t", "pm1", "--async", testSlow)
	jobID := strings.TrimSpace(out)
	if code != 0 || jobID == "" {
		t.Fatalf("felix pkg install --async: exit %d: %s%s", code, out, errOut)
	}
	waitFor(t, "the slow package's configure step", 60*time.Second, func() bool {
		return exec.Command("pgrep", "-f", slowSleep).Run() == nil
	})
	if out, errOut, code := c.felix("job", "cancel", jobID); code != 0 {
		t.Fatalf("felix job cancel: exit %d: %s%s", code, out, errOut)
	}
	waitFor(t, "the cancelled job to end", 60*time.Second, func() bool { return c.job(jobID).State.Final() })
	j = c.job(jobID)
	wantChanges(t, "install cancelled mid-way", j, change{"pm1", "agent", "cancelled", testSlow, "", "", model.PkgFailed})
	if r := resultsByHost(j)["pm1"]; !strings.Contains(r.Error, "recovery is left to it (dpkg --configure -a") {
		t.Errorf("cancelled install: pm1 %q; want it to say the manager's recovery is left to it", r.Error)
	}
	waitFor(t, "the package manager's processes to end", 10*time.Second, func() bool {
		return exec.Command("pgrep", "-f", slowSleep).Run() != nil && exec.Command("pgrep", "-x", "apt-get").Run() != nil &&
			exec.Command("pgrep", "-x", "dpkg").Run() != nil
	})
}

// TestPackagesRefused: names and versions a shell or a package manager
// could misread are refused before anything is stored or any host is
// contacted, through the API and the CLI.
func TestPackagesRefused(t *testing.T) {
	c := startMaster(t)
	c.joinAll("pr1")
	marker := filepath.Join(t.TempDir(), "MARKER")
	bad := []string{"nginx;touch " + marker, "-oAPT::Update::Pre-Invoke::=touch " + marker, "$(touch " + marker + ")",
		"nginx\r\ntouch " + marker, "nginx=1.0;touch " + marker, "`touch " + marker + "`", "nginx=-oAPT::x"}
	before := c.jobCount()
	for _, name := range bad {
		var e wire.Error
		status := c.api("POST", "/api/v1/packages?wait=10s", map[string]any{"targets": []string{"pr1"}, "action": "install",
			"packages": []string{name}}, &e)
		if status != http.StatusBadRequest || !strings.Contains(e.Error, strings.SplitN(name, "\r", 2)[0][:5]) {
			t.Errorf("install %q: %d %q; want 400 naming it", name, status, e.Error)
		}
		if _, errOut, code := c.felix("pkg", "install", "-t", "pr1", "--", name); code == 0 || !strings.Contains(errOut, "400") && !strings.Contains(errOut, "want") {
			t.Errorf("felix pkg install %q: exit %d, %q; want a refusal", name, code, errOut)
		}
	}
	var e wire.Error
	if status := c.api("POST", "/api/v1/packages", map[string]any{"targets": []string{"pr1"}, "action": "list",
		"glob": "*;touch " + marker}, &e); status != http.StatusBadRequest {
		t.Errorf("a glob with a shell command: %d %q; want 400", status, e.Error)
	}
	if n := c.jobCount(); n != before {
		t.Errorf("%d jobs stored by refused requests; want none", n-before)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Errorf("MARKER exists (%v): a refused name ran", err)
	}
}

// debRepo builds the test packages — felix-test-dep 1.0, and
// felix-test-hello 1.0 and 2.0, which depend on it — serves them as a
// local apt source (a [trusted=yes] file: entry in sources.list.d, its
// index updated alone), and removes them, the source and its index when
// the test ends. The machine's own packages are untouched.
func debRepo(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "installing packages needs root")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg-scanpackages", "apt-get"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s (scripts/deps.sh installs it): %v", tool, err)
		}
	}
	// A run killed before its cleanup leaves the test packages installed:
	// start from none.
	exec.Command("dpkg", "--configure", "-a").Run()
	exec.Command("dpkg", "--purge", testPkg, testDep, testSlow).Run()
	// Readable by apt's sandbox user: not below t.TempDir.
	dir, err := os.MkdirTemp("", "felix-e2e-apt-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	list := "/etc/apt/sources.list.d/felix-e2e-test.list"
	purge := func() {
		os.Remove(slowMarker)
		exec.Command("dpkg", "--configure", "-a").Run() // after a cancelled install
		exec.Command("dpkg", "--purge", testPkg, testDep, testSlow).Run()
		os.Remove(list)
		if lists, _ := filepath.Glob("/var/lib/apt/lists/*felix-e2e-apt-*"); len(lists) > 0 {
			for _, l := range lists {
				os.Remove(l)
			}
		}
		os.RemoveAll(dir)
	}
	t.Cleanup(purge)
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	for _, p := range []struct{ name, version, depends, postinst string }{
		{testDep, "1.0", "", ""}, {testPkg, "1.0", testDep, ""}, {testPkg, "2.0", testDep, ""},
		{testSlow, "1.0", "", "#!/bin/sh\nif [ \"$1\" = configure ] && [ -e " + slowMarker + " ]; then " + slowSleep + "; fi\nexit 0\n"}} {
		root := filepath.Join(t.TempDir(), p.name+"_"+p.version)
		control := "Package: " + p.name + "\nVersion: " + p.version + "\nArchitecture: all\n" +
			"Maintainer: felix tests <felix@example.invalid>\nDescription: a felix test package\n"
		if p.depends != "" {
			control += "Depends: " + p.depends + "\n"
		}
		writeFile(t, filepath.Join(root, "DEBIAN", "control"), control, 0o644)
		writeFile(t, filepath.Join(root, "usr", "share", "doc", p.name, "version"), p.version+"\n", 0o644)
		if p.postinst != "" {
			writeFile(t, filepath.Join(root, "DEBIAN", "postinst"), p.postinst, 0o755)
		}
		run("dpkg-deb", "--root-owner-group", "--build", root, filepath.Join(dir, p.name+"_"+p.version+"_all.deb"))
	}
	cmd := exec.Command("dpkg-scanpackages", "--multiversion", ".")
	cmd.Dir = dir
	index, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v", err)
	}
	writeFile(t, filepath.Join(dir, "Packages"), string(index), 0o644)
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	for _, f := range debs {
		os.Chmod(f, 0o644)
	}
	writeFile(t, list, "deb [trusted=yes] file:"+dir+" ./\n", 0o644)
	run("apt-get", "update", "-o", "Dir::Etc::sourcelist="+list, "-o", "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0")
}
