package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// TestAgentlessAndFallback drives hosts without a minion over a real sshd,
// falls back from a dead minion to SSH on a host that has both, reports an
// sshd that is down as unreachable while the others succeed, and refuses an
// unknown host key under the strict policy until it is trusted.
func TestAgentlessAndFallback(t *testing.T) {
	a := sshtest.Start(t, "127.0.0.30") // the machine that also runs minion "ha"
	b := sshtest.Start(t, "127.0.0.31") // agentless only
	c := sshtest.Start(t, "127.0.0.32") // agentless, host key not known yet
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(a.KnownHostsLine+"\n"+b.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q, %q]\nagent = false\nconnect_timeout = \"3s\"\n",
		known, a.ClientKey, b.ClientKey, c.ClientKey))
	minions := cl.joinAll("ha")

	add := func(id string, s *sshtest.Server) {
		t.Helper()
		if out, errOut, code := cl.felix("hosts", "add", s.Host, "--id", id, "--port", strconv.Itoa(s.Port)); code != 0 {
			t.Fatalf("felix hosts add %s: exit %d %s%s", id, code, out, errOut)
		}
	}
	add("ha", a)
	add("hb", b)
	add("hc", c)
	out, _, code := cl.felix("hosts", "list")
	if code != 0 || !strings.Contains(out, "hb") || !strings.Contains(out, "127.0.0.31") {
		t.Errorf("felix hosts list: exit %d\n%s", code, out)
	}

	run := func(args ...string) (wire.Job, int) {
		t.Helper()
		out, errOut, code := cl.felix(append([]string{"exec", "-o", "json"}, args...)...)
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("felix exec %v: exit %d: %v\n%s%s", args, code, err, out, errOut)
		}
		return j, code
	}

	// auto: the minion for ha, SSH for hb, and hc refused: its key is unknown.
	j, code := run("-t", "h*", "--", "echo on $(hostname)")
	rs := resultsByHost(j)
	if rs["ha"].State != "ok" || rs["ha"].Transport != "agent" || rs["hb"].State != "ok" || rs["hb"].Transport != "ssh" {
		t.Errorf("auto: ha %s/%s, hb %s/%s; want ok over agent and ok over ssh", rs["ha"].State, rs["ha"].Transport,
			rs["hb"].State, rs["hb"].Transport)
	}
	if rs["hc"].State != "unreachable" || !strings.Contains(rs["hc"].Error, "felix hosts trust") ||
		!strings.Contains(rs["hc"].Error, c.HostKeyFingerprint) || code != 1 {
		t.Errorf("unknown host key: %s %q (exit %d); want unreachable naming its fingerprint and felix hosts trust",
			rs["hc"].State, rs["hc"].Error, code)
	}
	if log := c.Log(); strings.Contains(log, "Accepted") || strings.Contains(log, "Failed publickey") {
		t.Errorf("an authentication was attempted on the unknown host:\n%s", log)
	}
	if out, errOut, code := cl.felix("hosts", "trust", "hc", c.HostKeyFingerprint); code != 0 {
		t.Fatalf("felix hosts trust: exit %d %s%s", code, out, errOut)
	}

	// A host's own key must be under ssh.key_dirs: the master's TLS key is not
	// an SSH identity an API caller may borrow.
	if out, errOut, code := cl.felix("hosts", "add", c.Host, "--id", "hz", "--port", strconv.Itoa(c.Port),
		"--key", filepath.Join(cl.dir, "master", "master.key")); code != 0 {
		t.Fatalf("felix hosts add hz: exit %d %s%s", code, out, errOut)
	}
	j, _ = run("-t", "hz", "--", "true")
	if r := resultsByHost(j)["hz"]; r.State != "unreachable" || !strings.Contains(r.Error, "ssh.key_dirs") {
		t.Errorf("a key outside ssh.key_dirs: %s %q; want unreachable naming ssh.key_dirs", r.State, r.Error)
	}
	cl.felix("hosts", "rm", "hz")

	// A server that accepts TCP and never speaks: unreachable once
	// ssh.connect_timeout (3s here) is spent, and the error says so.
	silent := sshtest.Silent(t, "127.0.0.33")
	if out, errOut, code := cl.felix("hosts", "add", "127.0.0.33", "--id", "quiet1",
		"--port", strconv.Itoa(silent)); code != 0 {
		t.Fatalf("felix hosts add quiet1: exit %d %s%s", code, out, errOut)
	}
	j, _ = run("-t", "quiet1", "--", "true")
	if r := resultsByHost(j)["quiet1"]; r.State != "unreachable" || !strings.Contains(r.Error, "no SSH handshake within 3s (ssh.connect_timeout)") {
		t.Errorf("a silent server: %s %q; want unreachable, no SSH handshake within 3s", r.State, r.Error)
	}
	cl.felix("hosts", "rm", "quiet1")

	// A script over SSH: quoted arguments; its directory is gone afterwards.
	script := filepath.Join(t.TempDir(), "deploy.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nprintf '[%s]' \"$@\"; echo; pwd\n"), 0o755)
	j, code = run("-t", "hb,hc", "--transport", "ssh", "--script", script, "--", "arg one", "two")
	for _, id := range []string{"hb", "hc"} {
		r := resultsByHost(j)[id]
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.State != "ok" || len(lines) != 2 || lines[0] != "[arg one][two]" {
			t.Errorf("script on %s: %s %q %q", id, r.State, r.Stdout, r.Error)
			continue
		}
		if _, err := os.Stat(lines[1]); !os.IsNotExist(err) {
			t.Errorf("script dir %s on %s still there: %v", lines[1], id, err)
		}
	}

	// The minion dies: auto falls back to SSH for ha, and runs it once.
	minions["ha"].cmd.Process.Kill()
	<-minions["ha"].done
	marker := filepath.Join(t.TempDir(), "ran")
	j, code = run("-t", "ha", "--", "echo x >> "+marker)
	if r := resultsByHost(j)["ha"]; r.State != "ok" || r.Transport != "ssh" || code != 0 {
		t.Errorf("fallback: ha %s over %q (exit %d, %q); want ok over ssh", r.State, r.Transport, code, r.Error)
	}
	if b, _ := os.ReadFile(marker); string(b) != "x\n" {
		t.Errorf("the command ran %d times; want once", strings.Count(string(b), "x"))
	}
	// --transport agent does not fall back.
	j, _ = run("-t", "ha", "--transport", "agent", "--", "true")
	if r := resultsByHost(j)["ha"]; r.State != "unreachable" {
		t.Errorf("--transport agent with the minion down: %s; want unreachable", r.State)
	}

	// sshd down on hb: hb unreachable, the others fine.
	b.Stop()
	j, code = run("-t", "h*", "--", "true")
	rs = resultsByHost(j)
	if rs["hb"].State != "unreachable" || rs["ha"].State != "ok" || rs["hc"].State != "ok" || code != 1 {
		t.Errorf("sshd down: ha %s, hb %s, hc %s (exit %d); want ok, unreachable, ok", rs["ha"].State, rs["hb"].State,
			rs["hc"].State, code)
	}

	// Bad input never reaches SSH.
	for _, bad := range [][]string{{"hosts", "add", "x;reboot"}, {"hosts", "add", "-oProxyCommand=x"},
		{"hosts", "add", "h1", "--user", "root;id"}, {"hosts", "add", "h1", "--key", "/tmp/$(id)"}} {
		if _, errOut, code := cl.felix(bad...); code == 0 || errOut == "" {
			t.Errorf("felix %v: exit %d, stderr %q; want a refusal", bad, code, errOut)
		}
	}
}
