package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// TestAgentlessGroupsAndFacts: a YAML inventory with a prod:children
// hierarchy is imported through the CLI; group=prod reaches the hosts of
// its child groups over real SSH; felix hosts facts -t gathers their facts
// (this machine is Debian) and a host without sshd says why it has none;
// -t os=debian then selects the SSH hosts, and reports the one whose facts
// cannot be gathered instead of dropping it.
func TestAgentlessGroupsAndFacts(t *testing.T) {
	web := sshtest.Start(t, "127.0.0.171")
	db := sshtest.Start(t, "127.0.0.172")
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(web.KnownHostsLine+"\n"+db.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q]\nagent = false\nconnect_timeout = \"3s\"\n",
		known, web.ClientKey, db.ClientKey))

	// 127.0.0.174 listens on nothing: its facts cannot be gathered.
	inv := filepath.Join(t.TempDir(), "inventory.yml")
	yml := fmt.Sprintf(`all:
  children:
    prod:
      children:
        web:
          hosts:
            fw1: {ansible_host: %s, ansible_port: %d}
        db:
          hosts:
            fd1:
              ansible_host: %s
              ansible_port: %d
    lab:
      hosts:
        fdown: {ansible_host: 127.0.0.174, ansible_port: 22}
`, web.Host, web.Port, db.Host, db.Port)
	if err := os.WriteFile(inv, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := cl.felix("hosts", "import", inv); code != 0 || !strings.Contains(out, "3 hosts added") {
		t.Fatalf("felix hosts import: exit %d\n%s%s", code, out, errOut)
	}

	exec := func(args ...string) (map[string]wire.HostResult, int) {
		t.Helper()
		// A generous timeout: the machine may be busy; this is no timing test.
		out, errOut, code := cl.felix(append([]string{"exec", "-o", "json", "--timeout", "5m"}, args...)...)
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("felix exec %v: exit %d: %v\n%s%s", args, code, err, out, errOut)
		}
		return resultsByHost(j), code
	}
	rs, code := exec("-t", "group=prod", "--", "echo hello from $(hostname)")
	if ids := resultIDs(rs); code != 0 || !slices.Equal(ids, []string{"fd1", "fw1"}) {
		t.Fatalf("exec -t group=prod: exit %d, hosts %q (%+v); want fd1 and fw1 (web and db under prod)", code, ids, rs)
	}
	for id, r := range rs {
		if r.State != "ok" || r.Transport != "ssh" || !strings.Contains(r.Stdout, "hello from") {
			t.Errorf("%s: %s over %q, stdout %q; want ok over ssh", id, r.State, r.Transport, r.Stdout)
		}
	}

	// Facts gathered on request; the host without sshd is an error (exit 1).
	out, errOut, code := cl.felix("hosts", "facts", "-t", "f*")
	if code != 1 || strings.Count(out, "debian") != 2 || !strings.Contains(out, "127.0.0.174") {
		t.Errorf("felix hosts facts -t f*: exit %d\n%s%s\nwant fw1 and fd1 debian, fdown's error naming its address, exit 1", code, out, errOut)
	}
	out, _, code = cl.felix("hosts", "show", "fw1")
	for _, want := range []string{"web, prod", "facts.os_name", "debian", "facts.kernel"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("felix hosts show fw1: exit %d, want %q in\n%s", code, want, out)
		}
	}
	out, _, _ = cl.felix("hosts", "show", "fdown")
	if !strings.Contains(out, "facts error") || !strings.Contains(out, "127.0.0.174") {
		t.Errorf("felix hosts show fdown: want its facts error\n%s", out)
	}

	// Targeting by facts: the SSH hosts match; fdown is reported.
	rs, code = exec("-t", "os=debian", "--", "true")
	if ids := resultIDs(rs); code != 1 || !slices.Equal(ids, []string{"fd1", "fdown", "fw1"}) {
		t.Fatalf("exec -t os=debian: exit %d, hosts %q; want fd1, fdown and fw1, exit 1", code, ids)
	}
	if rs["fw1"].State != "ok" || rs["fd1"].State != "ok" {
		t.Errorf("exec -t os=debian: fw1 %s, fd1 %s; want ok", rs["fw1"].State, rs["fd1"].State)
	}
	if r := rs["fdown"]; r.State != "unreachable" || !strings.Contains(r.Error, "facts unknown") || !strings.Contains(r.Error, "127.0.0.174") {
		t.Errorf("exec -t os=debian: fdown %s %q; want unreachable, its facts unknown and why", r.State, r.Error)
	}
	// A filter no host's facts match selects nothing: 404, no job.
	if _, errOut, code := cl.felix("exec", "-t", "group=prod", "-t", "os=alpine", "--", "true"); code == 0 || !strings.Contains(errOut, "matched none") {
		t.Errorf("exec -t group=prod,os=alpine: exit %d %s; want no host matched", code, errOut)
	}
}

// resultIDs returns the sorted hosts of a result map.
func resultIDs(m map[string]wire.HostResult) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
