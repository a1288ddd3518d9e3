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

// TestHostsWithoutSFTPServer drives a Dropbear host (no sftp-server of its
// own, none installed) and an OpenSSH host with no sftp subsystem through
// the real master and CLI: script exec, felix cp and felix fetch work
// through the exec channel, and the master tells once per host why.
func TestHostsWithoutSFTPServer(t *testing.T) {
	db := sshtest.StartDropbear(t, "127.0.0.60")
	ossh := sshtest.Start(t, "127.0.0.61", sshtest.NoSFTP(), sshtest.Shell("/bin/sh"))
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := writeKnown(known, db.KnownHostsLine, ossh.KnownHostsLine); err != nil {
		t.Fatal(err)
	}
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q]\nagent = false\n", known, db.ClientKey, ossh.ClientKey))
	hosts := []struct {
		id     string
		s      *sshtest.Server
		reason string
	}{
		{"dropbear", db, "the sftp session exited 127 (command not found) before its version packet: sh: 1: /usr/lib/sftp-server: not found"},
		{"nosftp", ossh, "the server refused the sftp subsystem"},
	}
	for _, h := range hosts {
		if out, errOut, code := cl.felix("hosts", "add", h.s.Host, "--id", h.id, "--port", strconv.Itoa(h.s.Port)); code != 0 {
			t.Fatalf("felix hosts add %s: exit %d %s%s", h.id, code, out, errOut)
		}
	}
	script := filepath.Join(t.TempDir(), "deploy.sh")
	writeFile(t, script, "#!/bin/sh\nprintf '[%s]' \"$@\"; echo\n", 0o755)
	src := filepath.Join(t.TempDir(), "app.conf")
	writeFile(t, src, strings.Repeat("listen 80;\n", 5000), 0o644)

	for _, h := range hosts {
		t.Run(h.id, func(t *testing.T) {
			// A script, a few times: staged through exec sessions.
			for range 3 {
				out, errOut, code := cl.felix("exec", "-o", "json", "-t", h.id, "--transport", "ssh", "--script", script, "--", "arg one", "two")
				var j wire.Job
				if err := json.Unmarshal([]byte(out), &j); err != nil {
					t.Fatalf("felix exec: exit %d: %v\n%s%s", code, err, out, errOut)
				}
				if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" || r.Stdout != "[arg one][two]\n" {
					t.Fatalf("script: exit %d %s %q %q", code, r.State, r.Stdout, r.Error)
				}
			}
			// Push, then the same again (unchanged, hashed on the host).
			dest := filepath.Join(t.TempDir(), h.id, "etc", "app.conf")
			j, code, errOut := cl.cp(src, "-t", h.id, dest, "--mkdir", "--mode", "0640")
			if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" || r.Transport != "ssh" || r.Files == nil || r.Files.Changed != 1 {
				t.Fatalf("push: exit %d %+v %s", code, r, errOut)
			}
			if sha256File(t, dest) != sha256File(t, src) {
				t.Errorf("pushed content differs")
			}
			if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("pushed mode %v, %v; want 0640", st, err)
			}
			j, code, _ = cl.cp(src, "-t", h.id, dest, "--mode", "0640")
			if r := resultsByHost(j)[h.id]; code != 0 || r.State != "ok" || r.Files.Unchanged != 1 {
				t.Errorf("re-push: exit %d %+v; want unchanged", code, r)
			}
			// Fetch into OUTDIR/HOST/NAME.
			out := filepath.Join(t.TempDir(), "out")
			stdout, errOut, code := cl.felix("fetch", "-t", h.id, dest, out)
			if saved := filepath.Join(out, h.id, "app.conf"); code != 0 || sha256File(t, saved) != sha256File(t, src) {
				t.Errorf("fetch: exit %d\n%s%s", code, stdout, errOut)
			}
			want := "no sftp-server on root@" + h.s.Addr + ": " + h.reason + "; transferring through the exec channel"
			if n := strings.Count(cl.master.output(), want); n != 1 {
				t.Errorf("master log has %q %d times; want once\n%s", want, n, cl.master.output())
			}
		})
	}
}

// writeKnown writes known_hosts lines to path.
func writeKnown(path string, lines ...string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}
