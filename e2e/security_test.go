package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
)

// TestRolesAuditAndHardening, through the real binaries: tokens with
// roles, a refused request, the audit log naming who did what, revocation,
// escapes shown rather than acted on, and a private data directory.
func TestRolesAuditAndHardening(t *testing.T) {
	c := startMaster(t)
	c.joinAll("s1")

	token := func(name, role string) string {
		out, errOut, code := c.felix("token", "create", name, "--role", role, "--ttl", "1h")
		if code != 0 || !strings.HasPrefix(out, "fat_") {
			t.Fatalf("felix token create %s = %d %q %s", name, code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	ci, viewer := token("ci", "operator"), token("viewer", "read")

	out, errOut, code := c.felixAs(ci, "exec", "-t", "*", "-o", "json", "--", `printf '\033]0;owned\007\033[2Jok'`)
	var job wire.Job
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil || len(job.Results) != 1 {
		t.Fatalf("exec as the operator = %d %s %s", code, out, errOut)
	}
	if job.RequestedBy != "ci" || job.Results[0].Stdout != "\x1b]0;owned\x07\x1b[2Jok" {
		t.Errorf("job = requested by %q, stdout %q; want ci and the bytes as printed", job.RequestedBy, job.Results[0].Stdout)
	}
	out, _, _ = c.felix("job", job.JobID)
	if strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, `\x1b]0;owned\x07\x1b[2Jok`) {
		t.Errorf("felix job shows the escapes raw or not at all:\n%q", out)
	}

	if _, errOut, code := c.felixAs(ci, "keys", "reject", "s1"); code == 0 || !strings.Contains(errOut, "needs the admin role") {
		t.Errorf("keys reject as the operator = %d %s; want refused: needs admin", code, errOut)
	}
	if _, errOut, code := c.felixAs(viewer, "exec", "-t", "*", "--", "true"); code == 0 || !strings.Contains(errOut, "needs the operator role") {
		t.Errorf("exec as a reader = %d %s; want refused: needs operator", code, errOut)
	}
	if _, errOut, code := c.felixAs(viewer, "jobs"); code != 0 {
		t.Errorf("jobs as a reader = %d %s; want allowed", code, errOut)
	}

	out, errOut, code = c.felix("audit", "-o", "json")
	var log wire.AuditLog
	if code != 0 || json.Unmarshal([]byte(out), &log) != nil {
		t.Fatalf("felix audit = %d %s %s", code, out, errOut)
	}
	seen := map[string]bool{}
	for _, e := range log.Entries {
		class := strconv.Itoa(e.Status)
		if e.Status/100 == 2 {
			class = "2xx"
		}
		seen[e.Who+" "+e.Method+" "+e.Path+" "+class+" "+e.JobID] = true
	}
	for _, want := range []string{
		"ci POST /api/v1/exec 2xx " + job.JobID,
		"ci POST /api/v1/minions/s1/reject 403 ",
		"viewer POST /api/v1/exec 403 ",
		"admin POST /api/v1/tokens 2xx ",
	} {
		if !seen[want] {
			t.Errorf("the audit log lacks %q; has %v", want, seen)
		}
	}

	out, _, code = c.felix("token", "list")
	if code != 0 || !strings.Contains(out, "ci") || !strings.Contains(out, "operator") || strings.Contains(out, "fat_") {
		t.Errorf("felix token list = %d\n%s", code, out)
	}
	if _, errOut, code := c.felix("token", "revoke", "ci"); code != 0 {
		t.Fatalf("felix token revoke ci = %d %s", code, errOut)
	}
	if _, errOut, code := c.felixAs(ci, "jobs"); code == 0 || !strings.Contains(errOut, "401") && !strings.Contains(errOut, "invalid") {
		t.Errorf("jobs with the revoked token = %d %s; want refused", code, errOut)
	}

	dataDir := filepath.Join(c.dir, "master")
	for _, p := range []string{dataDir, filepath.Join(dataDir, "felix.db"), filepath.Join(dataDir, "felix.db-wal"), filepath.Join(dataDir, "admin.token")} {
		st, err := os.Stat(p)
		want := os.FileMode(0o600)
		if p == dataDir {
			want = 0o700
		}
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: %v, mode %v; want %#o", p, err, st.Mode().Perm(), want)
		}
	}
}
