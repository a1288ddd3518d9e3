package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// runToEnd runs a binary to its end and returns its combined output and exit
// status.
func runToEnd(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return out.String(), 0
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("%s %v did not end: %s", bin, args, out.String())
		return "", -1
	}
}

// TestSecondStartChangesNothing: a second master start on a running
// master's data directory (another --listen) fails at once with one line
// and touches nothing: the running job ends ok with its real output and
// exactly one callback. The same holds for a second minion start.
func TestSecondStartChangesNothing(t *testing.T) {
	rcv := newReceiver(t, 0)
	c := startMasterWith(t, fmt.Sprintf("[callbacks]\nsecret = %q\nallow = [\"127.0.0.0/8\"]\n", e2eSecret))
	c.joinAll("s1")
	job := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{ID: "second-start", Targets: []string{"s1"}, CallbackURL: rcv.srv.URL + "/hook"},
		CmdLine: "sleep 2; echo finished"})
	waitFor(t, "the job running", 30*time.Second, func() bool { return c.job(job).State == "running" })

	data := filepath.Join(c.dir, "master")
	out, code := runToEnd(t, "master", "start", "--config", c.config, "--data-dir", data, "--listen", freePort(t, "127.0.0.1"))
	want := fmt.Sprintf("master start: data dir %s is in use by pid %d\n", data, c.master.cmd.Process.Pid)
	if code != 1 || out != want {
		t.Errorf("second master start = %d %q; want 1 %q", code, out, want)
	}
	// master token opens the inventory beside the running master, without
	// the lock (SQLite serialises the writes).
	out, code = runToEnd(t, "master", "token", "join", "--config", c.config, "--data-dir", data)
	if code != 0 || !strings.HasPrefix(out, "fjt_") {
		t.Errorf("master token join beside the running master = %d %q; want 0 and a token", code, out)
	}
	mdir := filepath.Join(c.dir, "s1")
	out, code = runToEnd(t, "minion", "start", "--config", filepath.Join(mdir, "minion.toml"), "--data-dir", mdir,
		"--listen", "127.0.0.10:0", "--master", c.url)
	if code != 1 || !strings.Contains(out, "data dir "+mdir+" is in use by pid ") || strings.Count(out, "\n") != 1 {
		t.Errorf("second minion start = %d %q; want 1 and one line naming the data dir", code, out)
	}

	waitFor(t, "the job's callback", 60*time.Second, func() bool { _, ok := rcv.callback(job); return ok })
	cb, _ := rcv.callback(job)
	if cb.State != "done" || len(cb.Results) != 1 || cb.Results[0].State != "ok" || cb.Results[0].Stdout != "finished\n" {
		t.Errorf("callback = %s %+v; want done, s1 ok with its output", cb.State, cb.Results)
	}
	if r := resultsByHost(c.job(job))["s1"]; r.State != "ok" || r.Stdout != "finished\n" {
		t.Errorf("stored result %+v; want ok with its output", r)
	}
	// A later job's callback arriving shows the outbox was drained: the
	// first job's event must still have been accepted exactly once.
	later := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"s1"}, CallbackURL: rcv.srv.URL + "/hook"}, CmdLine: "true"})
	waitFor(t, "a later callback", 60*time.Second, func() bool { _, ok := rcv.callback(later); return ok })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.tries != 2 || len(rcv.bad) != 0 {
		t.Errorf("receiver saw %d requests (bad: %v); want 2: one per job", rcv.tries, rcv.bad)
	}
	for id, n := range rcv.events {
		if n != 1 {
			t.Errorf("event %s accepted %d times", id, n)
		}
	}
}

// TestReregistrationReplacesConnection: a minion restarted is reachable
// as soon as its new registration is in, on another port or on the same
// one: the master drops the connection it had cached (and that
// connection's dial backoff) at once, instead of answering a stale
// "connection refused" for seconds.
func TestReregistrationReplacesConnection(t *testing.T) {
	c := startMaster(t)
	ps := c.joinAll("r1")
	p := ps["r1"]
	dir := filepath.Join(c.dir, "r1")
	for i, tt := range []struct {
		name     string
		samePort bool
	}{{"another port", false}, {"the same port, after the master's dials backed off", true}} {
		job := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"r1"}}, CmdLine: "true"})
		waitFor(t, "a job on the running minion", 30*time.Second, func() bool { return c.job(job).State == "done" })
		old := c.minions()["r1"].Address
		p.stop(t)
		listen := "127.0.0.10:0"
		if tt.samePort {
			listen = old
			// The master's health pings fail meanwhile: its connection
			// to the old process backs off (up to 5 s between dials).
			waitFor(t, "the minion seen unreachable", 30*time.Second, func() bool { return c.minions()["r1"].Health == "unreachable" })
			time.Sleep(6 * time.Second)
		}
		// Same id, data directory and key.
		p = start(t, "minion r1", "start", "--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir,
			"--id", "r1", "--listen", listen, "--master", c.url, "--master-fingerprint", c.fingerprint)
		waitFor(t, "the minion to register again", 30*time.Second, func() bool { return strings.Contains(p.output(), "msg=registered") })
		if now := c.minions()["r1"].Address; (now == old) != tt.samePort {
			t.Fatalf("%s: address %s after %s", tt.name, now, old)
		}
		var res wire.Job
		status := c.api("POST", "/api/v1/exec?wait=30s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"r1"}},
			CmdLine: fmt.Sprintf("echo %d", i)}, &res)
		if r := resultsByHost(res)["r1"]; status != 200 || r.State != "ok" || r.Stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("%s: exec right after re-registration = %d, %s %q %q; want ok", tt.name, status, r.State, r.Stdout, r.Error)
		}
	}
}

// TestSighupReload: SIGHUP reloads the master's config without dropping
// a running job: the new log level (debug lines appear) and a new limit
// (exec.max_timeout) take effect, a key that needs a restart is named in
// a warning and kept, and a bad file is refused with the old config kept.
func TestSighupReload(t *testing.T) {
	c := startMaster(t)
	c.joinAll("h1")
	job := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"h1"}}, CmdLine: "sleep 3; echo survived"})
	waitFor(t, "the job running", 30*time.Second, func() bool { return c.job(job).State == "running" })
	long := wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"h1"}, Timeout: "2h"}, CmdLine: "true"}
	if status := c.api("POST", "/api/v1/exec", long, nil); status != 400 {
		t.Fatalf("exec with a 2h timeout over max_timeout 1h = %d; want 400", status)
	}
	if strings.Contains(c.master.output(), "level=DEBUG") {
		t.Fatalf("debug lines before the reload")
	}
	old, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	text := "log_level = \"debug\"\n" + strings.Replace(strings.Replace(string(old),
		"max_timeout = \"1h\"", "max_timeout = \"3h\"", 1), "interval = \"500ms\"", "interval = \"700ms\"", 1)
	if err := os.WriteFile(c.config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c.master.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 30*time.Second, func() bool { return strings.Contains(c.master.output(), "msg=\"config reloaded\"") })
	out := c.master.output()
	if !strings.Contains(out, "changed=log_level,exec.max_timeout") {
		t.Errorf("reload did not log what changed:\n%s", out)
	}
	if !strings.Contains(out, "keys=health.interval") {
		t.Errorf("reload did not warn about health.interval, which needs a restart:\n%s", out)
	}
	if status := c.api("POST", "/api/v1/exec", long, nil); status != 202 {
		t.Errorf("exec with a 2h timeout after max_timeout became 3h = %d; want 202", status)
	}
	waitFor(t, "debug lines", 30*time.Second, func() bool { return strings.Contains(c.master.output(), "level=DEBUG") })

	// A bad file: refused, the running config kept.
	if err := os.WriteFile(c.config, []byte(text+"[exec\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.master.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the refused reload", 30*time.Second, func() bool { return strings.Contains(c.master.output(), "config reload failed") })
	if status := c.api("POST", "/api/v1/exec", long, nil); status != 202 {
		t.Errorf("exec with a 2h timeout after a refused reload = %d; want 202 (the running config kept)", status)
	}

	waitFor(t, "the job to end", 60*time.Second, func() bool { return c.job(job).State == "done" })
	if r := resultsByHost(c.job(job))["h1"]; r.State != "ok" || r.Stdout != "survived\n" {
		t.Errorf("the job running across the reloads: %s %q %q; want ok", r.State, r.Stdout, r.Error)
	}
}

// TestSighupReloadNotifyAndSSH: SIGHUP hands callbacks.*, slack.* and
// ssh.* to the running master. A job running across the reload still ends
// ok with exactly one callback, and its Slack summary, sent when it ends,
// goes to the new webhook; the next job's callback may go where only the
// new callbacks.allow permits; an agentless host whose key only the new
// ssh.known_hosts holds is reached.
func TestSighupReloadNotifyAndSSH(t *testing.T) {
	s := sshtest.Start(t, "127.0.0.53")
	emptyKH := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(emptyKH, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	oldSlack, newSlack := newSlackReceiver(t), newSlackReceiver(t)
	rcv1, rcv2 := newReceiver(t, 0), newReceiver(t, 0)
	tables := func(slackURL, knownHosts string, allow ...string) string {
		return fmt.Sprintf("[callbacks]\nsecret = %q\nallow = [%s]\n[slack]\nwebhook_url = %q\n"+
			"[ssh]\nknown_hosts = %q\nkey_files = [%q]\nagent = false\n",
			e2eSecret, `"`+strings.Join(allow, `", "`)+`"`, slackURL, knownHosts, s.ClientKey)
	}
	hostPort := func(r *receiver) string { return strings.TrimPrefix(r.srv.URL, "http://") }
	before := tables(oldSlack.srv.URL, emptyKH, hostPort(rcv1))
	c := startMasterWith(t, before)
	c.joinAll("h1")
	if out, errOut, code := c.felix("hosts", "add", s.Host, "--id", "hs", "--port", strconv.Itoa(s.Port)); code != 0 {
		t.Fatalf("felix hosts add hs: exit %d %s%s", code, out, errOut)
	}
	sshExec := func() wire.HostResult {
		t.Helper()
		out, errOut, _ := c.felix("exec", "-o", "json", "-t", "hs", "--", "echo over ssh")
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("felix exec on hs: %v\n%s%s", err, out, errOut)
		}
		return resultsByHost(j)["hs"]
	}
	if r := sshExec(); r.State == "ok" {
		t.Fatalf("ssh exec with an empty known_hosts = ok; want its host key refused")
	}
	cb2 := wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"h1"}, CallbackURL: rcv2.srv.URL + "/hook"}, CmdLine: "true"}
	if status := c.api("POST", "/api/v1/exec", cb2, nil); status != 400 {
		t.Fatalf("exec with a callback to %s, not allow-listed = %d; want 400", rcv2.srv.URL, status)
	}
	first := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"h1"}}, CmdLine: "true"})
	waitFor(t, "the first job's Slack summary", 30*time.Second, func() bool { return oldSlack.count(first) == 1 })

	running := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"h1"}, CallbackURL: rcv1.srv.URL + "/hook"},
		CmdLine: "sleep 3; echo survived"})
	waitFor(t, "the job running", 30*time.Second, func() bool { return c.job(running).State == "running" })
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, []byte(s.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(c.config)
	if err != nil {
		t.Fatal(err)
	}
	after := tables(newSlack.srv.URL, kh, hostPort(rcv1), hostPort(rcv2))
	if err := os.WriteFile(c.config, []byte(strings.Replace(string(old), before, after, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	c.master.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload", 30*time.Second, func() bool { return strings.Contains(c.master.output(), "msg=\"config reloaded\"") })
	if out := c.master.output(); !strings.Contains(out, "changed=callbacks.allow,slack.webhook_url,ssh.known_hosts") ||
		strings.Contains(out, "need a restart") {
		t.Errorf("reload did not apply callbacks.allow, slack.webhook_url and ssh.known_hosts:\n%s", out)
	}
	if r := sshExec(); r.State != "ok" || r.Stdout != "over ssh\n" || r.Transport != "ssh" {
		t.Errorf("ssh exec after the new known_hosts: %s %q %q over %s; want ok", r.State, r.Stdout, r.Error, r.Transport)
	}
	next := c.submit(cb2) // 202 now that rcv2 is allow-listed
	waitFor(t, "the next job's callback", 30*time.Second, func() bool { _, ok := rcv2.callback(next); return ok })

	waitFor(t, "the running job to end", 60*time.Second, func() bool { return c.job(running).State == "done" })
	if r := resultsByHost(c.job(running))["h1"]; r.State != "ok" || r.Stdout != "survived\n" {
		t.Errorf("the job running across the reload: %s %q %q; want ok", r.State, r.Stdout, r.Error)
	}
	waitFor(t, "its callback", 30*time.Second, func() bool { _, ok := rcv1.callback(running); return ok })
	waitFor(t, "the Slack summaries at the new webhook", 30*time.Second, func() bool {
		return newSlack.count(running) == 1 && newSlack.count(next) == 1
	})
	time.Sleep(time.Second) // a second delivery would come within this
	rcv1.mu.Lock()
	if n := rcv1.events["cb-"+running]; n != 1 || len(rcv1.bad) != 0 {
		t.Errorf("the running job's callback arrived %d times (signature failures %q); want once", n, rcv1.bad)
	}
	rcv1.mu.Unlock()
	if n := oldSlack.count(running) + oldSlack.count(next); n != 0 {
		t.Errorf("the old webhook got %d summaries of jobs ending after the reload; want 0", n)
	}
	if n := newSlack.count(running) + newSlack.count(next); n != 2 {
		t.Errorf("the new webhook got %d summaries of the two jobs ending after the reload; want 2", n)
	}
}

// TestSystemdNotify runs the master and a minion as systemd would with
// Type=notify and WatchdogSec (NOTIFY_SOCKET, WATCHDOG_USEC), against a
// unixgram socket of the test's: READY=1 once serving, WATCHDOG=1 while
// running, RELOADING=1 then READY=1 again across a restart in place,
// STOPPING=1 when draining.
func TestSystemdNotify(t *testing.T) {
	ns := testenv.NotifySocket(t, false)
	t.Setenv("WATCHDOG_USEC", "1000000")
	c := startMaster(t)
	const masterReady = "READY=1\nSTATUS=serving on https://"
	waitFor(t, "the master's READY=1", 30*time.Second, func() bool { return ns.Count(masterReady) == 1 })
	ps := c.joinAll("n1")
	waitFor(t, "the minion's READY=1", 30*time.Second, func() bool { return ns.Count("READY=1\nSTATUS=serving gRPC on ") == 1 })
	waitFor(t, "WATCHDOG=1", 30*time.Second, func() bool { return ns.Count("WATCHDOG=1") >= 2 })
	if out, code := daemonCmd(t, "master", "restart", "--config", c.config, "--data-dir", filepath.Join(c.dir, "master")); code != 0 {
		t.Fatalf("master restart: exit %d\n%s", code, out)
	}
	waitFor(t, "RELOADING=1 and READY=1 again from the restarted master", 30*time.Second, func() bool {
		return ns.Count("RELOADING=1") == 1 && ns.Count(masterReady) == 2
	})
	if n := ns.Count("STOPPING=1"); n != 0 {
		t.Errorf("%d STOPPING=1 before anything stopped (a restart in place is a reload): %q", n, ns.All())
	}
	ps["n1"].stop(t)
	c.master.stop(t)
	waitFor(t, "STOPPING=1 from both", 30*time.Second, func() bool { return ns.Count("STOPPING=1") == 2 })
}
