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

// TestRemoteTmpNoexecHost drives a host whose /tmp is mounted noexec
// through the real master and CLI: a script runs from the host's
// --remote-tmp; without one, from /var/tmp with a note saying why; with
// every candidate noexec, through its #! interpreter. A remote_tmp that is
// relative or holds .. is a 400 and nothing is stored.
func TestRemoteTmpNoexecHost(t *testing.T) {
	// root's home is a tmpfs of sshd's own: what the test makes there
	// stays out of the machine's /root.
	s := sshtest.Start(t, "127.0.0.60", sshtest.NoExec("/tmp"), sshtest.Tmpfs("/root", false))
	all := sshtest.Start(t, "127.0.0.61", sshtest.NoExec("/tmp", "/var/tmp"), sshtest.Tmpfs("/root", true))
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(s.KnownHostsLine+"\n"+all.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q]\nagent = false\n", known, s.ClientKey, all.ClientKey))

	add := func(id string, srv *sshtest.Server, extra ...string) {
		t.Helper()
		args := append([]string{"hosts", "add", srv.Host, "--id", id, "--port", strconv.Itoa(srv.Port)}, extra...)
		if out, errOut, code := cl.felix(args...); code != 0 {
			t.Fatalf("felix %v: exit %d %s%s", args, code, out, errOut)
		}
	}
	add("own", s, "--remote-tmp", "~/stage")
	add("plain", s)
	add("none", all)
	if h := cl.sshHosts()["own"]; h.RemoteTmp != "~/stage" {
		t.Errorf("felix hosts list: own has remote_tmp %q; want ~/stage", h.RemoteTmp)
	}

	script := filepath.Join(t.TempDir(), "where.sh")
	writeFile(t, script, "#!/bin/sh\necho \"[$1]\"; pwd\n", 0o755)
	tests := []struct {
		id, wantIn, wantStderr string
	}{
		{"own", "/root/stage", ""},
		{"plain", "/var/tmp", "felix: staging in /var/tmp: /tmp (noexec)\n"},
		{"none", "/tmp", "felix: every staging directory is noexec (/tmp (noexec), /var/tmp (noexec), ~/.felix/tmp (noexec)): scripts run through their #! interpreter from /tmp\n"},
	}
	for _, tt := range tests {
		out, errOut, code := cl.felix("exec", "-o", "json", "-t", tt.id, "--transport", "ssh", "--script", script, "--", "a b")
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil {
			t.Fatalf("felix exec on %s: exit %d: %v\n%s%s", tt.id, code, err, out, errOut)
		}
		r := resultsByHost(j)[tt.id]
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.State != "ok" || code != 0 || len(lines) != 2 || lines[0] != "[a b]" ||
			filepath.Dir(lines[1]) != tt.wantIn || !strings.HasPrefix(filepath.Base(lines[1]), "felix-job-") {
			t.Errorf("script on %s: exit %d, %s, stdout %q, stderr %q, error %q; want ok from a job directory in %s",
				tt.id, code, r.State, r.Stdout, r.Stderr, r.Error, tt.wantIn)
		}
		if r.Stderr != tt.wantStderr {
			t.Errorf("script on %s: stderr %q; want %q", tt.id, r.Stderr, tt.wantStderr)
		}
	}

	// Bad remote_tmp values: 400, nothing stored.
	for _, bad := range []string{"../x", "rel/dir", "/tmp/../etc", "/tmp/$(reboot)"} {
		var e struct{ Error string }
		status := cl.api("POST", "/api/v1/hosts", map[string]any{"host": s.Host, "id": "bad", "remote_tmp": bad}, &e)
		if status != 400 || !strings.Contains(e.Error, "remote_tmp") {
			t.Errorf("POST /api/v1/hosts remote_tmp %q = %d %q; want 400 naming remote_tmp", bad, status, e.Error)
		}
	}
	if _, ok := cl.sshHosts()["bad"]; ok {
		t.Errorf("a host with a bad remote_tmp was stored")
	}
	if out, errOut, code := cl.felix("hosts", "add", s.Host, "--id", "bad", "--remote-tmp", "rel/dir"); code == 0 ||
		strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "remote_tmp") {
		t.Errorf("felix hosts add --remote-tmp rel/dir: exit %d %q %q; want one line naming remote_tmp", code, out, errOut)
	}
}
