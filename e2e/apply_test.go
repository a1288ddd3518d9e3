package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// The init.d-style service the apply tests manage: a sleep in a session
// of its own, its pid in svcPid; start, reload and stop are logged.
const (
	svcName = "felix-test-svc"
	svcPid  = "/run/felix-test-svc.pid"
)

const svcScript = `#!/bin/sh
# felix test service
P=` + svcPid + `
L=LOG
case "$1" in
start) setsid sleep 1117 >/dev/null 2>&1 & echo $! > $P; echo start >> $L;;
stop) [ -f $P ] && kill "$(cat $P)"; rm -f $P; echo stop >> $L;;
status) [ -f $P ] && kill -0 "$(cat $P)" 2>/dev/null;;
reload) echo reload >> $L;;
restart) "$0" stop; "$0" start;;
*) exit 3;;
esac
`

// applyDocument is the state the apply tests apply: a package from the
// local apt repository, a config rendered per role (its path per host:
// both hosts are this machine), the service's init script, and the
// service, reloaded when the config changed.
func applyDocument(dir string) string {
	script := strings.ReplaceAll(svcScript, "LOG", filepath.Join(dir, "svc.log"))
	quoted, _ := json.Marshal(script)
	return strings.NewReplacer("DIR", dir, "SCRIPT", string(quoted)).Replace(`
vars:
  - match: '*'
    vars: {workers: 2}
  - match: role=web
    vars: {workers: 8}
resources:
  - id: hello
    type: pkg
    names: [felix-test-hello]
  - id: conf
    type: file
    path: DIR/{{ .Host.ID }}/app.conf
    template: "workers {{ .Vars.workers }}\nrole {{ .Labels.role }}\n"
    mode: "0640"
    owner: root
    group: daemon
    require: [hello]
  - id: motd
    type: file
    path: DIR/{{ .Host.ID }}/motd
    source: files/motd
  - id: initscript
    type: file
    path: /etc/init.d/felix-test-svc
    content: SCRIPT
    mode: "0755"
  - id: svc
    type: service
    name: felix-test-svc
    state: running
    reload: true
    onchange: [conf]
    require: [initscript]
`)
}

// TestApply applies a state through the real master, minion, sshd and CLI
// to a minion (role web) and an SSH host (role db) in one job: installed
// package, per-role config, init script, service started then reloaded on
// the other host's config change; a second apply all unchanged with
// nothing written; a dry run after a manual edit showing exactly that
// diff on exactly that host; --check's exit codes; a failing resource
// skipping only what requires it.
func TestApply(t *testing.T) {
	debRepo(t)
	c := startPkgCluster(t)
	dir, err := os.MkdirTemp("", "felix-e2e-apply-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(svcPid); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
		os.Remove(svcPid)
		os.Remove("/etc/init.d/" + svcName)
		os.RemoveAll(dir)
	})
	for _, l := range []struct{ path, role string }{{"/api/v1/minions/pm1/labels", "web"}, {"/api/v1/hosts/ps1/labels", "db"}} {
		if status := c.api("PUT", l.path, map[string]any{"set": map[string]string{"role": l.role}}, nil); status != http.StatusOK {
			t.Fatalf("PUT %s: %d", l.path, status)
		}
	}
	doc := filepath.Join(dir, "web.yaml")
	writeFile(t, doc, applyDocument(dir), 0o644)
	writeFile(t, filepath.Join(dir, "files", "motd"), "welcome\n", 0o644) // a source: uploaded by the CLI
	apply := func(args ...string) (wire.Job, int) {
		t.Helper()
		out, errOut, code := c.felix(append([]string{"apply", doc, "-t", "pm1,ps1", "--batch", "1", "-o", "json"}, args...)...)
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("felix apply %v: exit %d: %v\n%s%s", args, code, err, out, errOut)
		}
		return j, code
	}
	type want map[string]string // resource id → state
	check := func(what string, j wire.Job, host string, w want) {
		t.Helper()
		r := resultsByHost(j)[host]
		if r.Apply == nil {
			t.Errorf("%s: %s has no report (%s: %s)", what, host, r.State, r.Error)
			return
		}
		got := want{}
		for _, x := range r.Apply.Resources {
			got[x.ID] = x.State
		}
		for id, st := range w {
			if got[id] != st {
				t.Errorf("%s: %s: %s is %s; want %s (%+v)", what, host, id, got[id], st, r.Apply.Resources)
			}
		}
	}

	j, code := apply()
	if code != 0 {
		t.Errorf("first apply: exit %d", code)
	}
	check("first apply", j, "pm1", want{"hello": "changed", "conf": "changed", "motd": "changed", "initscript": "changed", "svc": "changed"})
	check("first apply", j, "ps1", want{"hello": "unchanged", "conf": "changed", "initscript": "unchanged", "svc": "changed"})
	if r := resultsByHost(j); r["pm1"].Transport != "agent" || r["ps1"].Transport != "ssh" {
		t.Errorf("transports: pm1 %s, ps1 %s; want agent and ssh", r["pm1"].Transport, r["ps1"].Transport)
	}
	for host, wantConf := range map[string]string{"pm1": "workers 8\nrole web\n", "ps1": "workers 2\nrole db\n"} {
		p := filepath.Join(dir, host, "app.conf")
		b, _ := os.ReadFile(p)
		fi, err := os.Stat(p)
		if string(b) != wantConf || err != nil || fi.Sys().(*syscall.Stat_t).Gid != 1 || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s's app.conf = %q, %v; want %q, group daemon (1), 0640", host, b, err, wantConf)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "svc.log")); string(b) != "start\nreload\n" {
		t.Errorf("the service's log = %q; want started by pm1's apply, reloaded by ps1's config change", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ps1", "motd")); string(b) != "welcome\n" {
		t.Errorf("ps1's motd (a source) = %q", b)
	}
	if installed(t, testPkg) == "" {
		t.Error("the package is not installed")
	}

	// Again: all unchanged, nothing written, the service not reloaded.
	conf := filepath.Join(dir, "ps1", "app.conf")
	before, _ := os.Stat(conf)
	out, errOut, code := c.felix("apply", doc, "-t", "pm1,ps1")
	t.Logf("felix apply, again:\n%s", out)
	if code != 0 || !strings.Contains(out, "pm1,ps1 (2 hosts)") || !strings.Contains(out, "5 unchanged") || strings.Contains(out, "changed,") {
		t.Errorf("second apply: exit %d; want one group of 2 hosts, all unchanged:\n%s%s", code, out, errOut)
	}
	after, _ := os.Stat(conf)
	if b := before.Sys().(*syscall.Stat_t); after.Sys().(*syscall.Stat_t).Ino != b.Ino || !after.ModTime().Equal(before.ModTime()) {
		t.Error("the second apply rewrote ps1's app.conf")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "svc.log")); string(b) != "start\nreload\n" {
		t.Errorf("the service's log after the second apply = %q; want no reload", b)
	}

	// A manual edit on ps1: the dry run shows that diff, on ps1 alone, and
	// writes nothing; --check exits 2; the apply repairs it; --check 0.
	writeFile(t, conf, "workers 64\nrole db\n", 0o640)
	out, errOut, code = c.felix("apply", doc, "-t", "pm1,ps1", "--dry-run")
	t.Logf("felix apply --dry-run after an edit on ps1:\n%s", out)
	if code != 0 || !strings.Contains(out, "conf on ps1:") || !strings.Contains(out, "-workers 64\n+workers 2\n") ||
		strings.Contains(out, "on pm1") || !strings.Contains(out, "dry run") {
		t.Errorf("dry run after an edit: exit %d; want ps1's diff alone:\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(conf); string(b) != "workers 64\nrole db\n" {
		t.Errorf("the dry run wrote app.conf: %q", b)
	}
	if _, _, code := c.felix("apply", doc, "-t", "pm1,ps1", "--check"); code != 2 {
		t.Errorf("--check with drift: exit %d; want 2", code)
	}
	j, _ = apply()
	check("repair", j, "ps1", want{"conf": "changed", "svc": "changed"})
	check("repair", j, "pm1", want{"conf": "unchanged", "svc": "unchanged"})
	if _, _, code := c.felix("apply", doc, "-t", "pm1,ps1", "--check"); code != 0 {
		t.Errorf("--check without drift: exit %d; want 0", code)
	}

	// A failing resource skips what requires it, and nothing else.
	broken := filepath.Join(dir, "broken.yaml")
	writeFile(t, broken, strings.NewReplacer("DIR", dir).Replace(`
resources:
  - {id: fails, type: cmd, run: "echo no >&2; exit 3"}
  - {id: needs-it, type: cmd, run: "touch DIR/never", require: [fails]}
  - {id: independent, type: dir, path: "DIR/independent-{{ .Host.ID }}"}
`), 0o644)
	out, errOut, code = c.felix("apply", broken, "-t", "pm1", "-o", "json")
	var bj wire.Job
	json.Unmarshal([]byte(out), &bj)
	check("a failing resource", bj, "pm1", want{"fails": "failed", "needs-it": "skipped", "independent": "changed"})
	if r := resultsByHost(bj)["pm1"]; code != 1 || r.State != model.StateFailed {
		t.Errorf("a failing resource: exit %d, pm1 %s; want 1, failed:\n%s", code, r.State, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "never")); err == nil {
		t.Error("a resource requiring the failed one ran")
	}
	// A rerun of the failed hosts applies the same document again.
	out, errOut, code = c.felix("job", "rerun", bj.JobID, "--failed", "-o", "json")
	var again wire.Job
	if err := json.Unmarshal([]byte(out), &again); err != nil || code != 1 || again.CmdLine != "apply inline" || len(again.Results) != 1 {
		t.Errorf("rerun --failed: exit %d, %v: %s%s; want pm1 alone, the same apply", code, err, out, errOut)
	}
	check("rerun", again, "pm1", want{"fails": "failed", "needs-it": "skipped", "independent": "unchanged"})

	// A bad document: one line on stderr naming the line, no job.
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, "resources:\n  - id: a\n    type: cmd\n    run: 'true'\n    colour: red\n", 0o644)
	jobs := c.jobCount()
	if out, errOut, code := c.felix("apply", bad, "-t", "pm1"); code != 1 || !strings.Contains(errOut, "line 5") ||
		strings.Count(strings.TrimSpace(errOut), "\n") != 0 || c.jobCount() != jobs {
		t.Errorf("a bad document: exit %d, %q%q; want one line naming line 5, no job", code, out, errOut)
	}
}
