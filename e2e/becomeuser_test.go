package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// TestBecomeUser runs commands as another user than root through the real
// master and CLI: a host added with --become-user runs them as that user
// (sudo -n -u), a run's --become-user does the same on a host without
// become, and a bad name is refused before anything is sent.
func TestBecomeUser(t *testing.T) {
	if _, err := osexec.LookPath("sudo"); err != nil {
		testenv.Missing(t, "sudo is not installed (make deps installs it): %v", err)
	}
	s := sshtest.Start(t, "127.0.0.181", sshtest.Shell("/bin/sh"))
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(known, []byte(s.KnownHostsLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q]\nagent = false\nconnect_timeout = \"5s\"\n",
		known, s.ClientKey))
	port := strconv.Itoa(s.Port)
	if out, errOut, code := cl.felix("hosts", "add", s.Host, "--id", "bu-host", "--port", port, "--become-user", "nobody"); code != 0 ||
		!strings.Contains(out, "+sudo -u nobody") {
		t.Fatalf("felix hosts add --become-user: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := cl.felix("hosts", "add", s.Host, "--id", "bu-plain", "--port", port); code != 0 {
		t.Fatalf("felix hosts add: exit %d\n%s%s", code, out, errOut)
	}

	tests := []struct {
		name string
		args []string
		want string // id -un's output
	}{
		{"host become_user", []string{"-t", "bu-host"}, "nobody\n"},
		{"no become", []string{"-t", "bu-plain"}, "root\n"},
		{"run --become-user", []string{"-t", "bu-plain", "--become-user", "nobody"}, "nobody\n"},
		{"run --become-user over the host's", []string{"-t", "bu-host", "--become-user", "daemon"}, "daemon\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"exec", "-o", "json", "--transport", "ssh"}, tt.args...)
			out, errOut, code := cl.felix(append(args, "--", "id -un")...)
			var j wire.Job
			if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || len(j.Results) != 1 {
				t.Fatalf("felix %v: exit %d (%v)\n%s%s", args, code, err, out, errOut)
			}
			if r := j.Results[0]; r.State != "ok" || r.Stdout != tt.want {
				t.Errorf("felix %v: %s, stdout %q (error %q); want %q", args, r.State, r.Stdout, r.Error, tt.want)
			}
		})
	}

	// felix cp as nobody: the file is nobody's.
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(t.TempDir(), "app.conf")
	if err := os.WriteFile(src, []byte("x=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "app.conf")
	if out, errOut, code := cl.felix("cp", src, "-t", "bu-plain", dest, "--become-user", "nobody"); code != 0 {
		t.Fatalf("felix cp --become-user nobody: exit %d\n%s%s", code, out, errOut)
	}
	if st, err := os.Stat(dest); err != nil || st.Sys().(*syscall.Stat_t).Uid != 65534 {
		t.Errorf("stat %s = %v, %v; want it owned by nobody", dest, st, err)
	}

	out, errOut, code := cl.felix("exec", "-t", "bu-plain", "--become-user", "x;id", "--", "true")
	if code == 0 || !strings.Contains(errOut, "--become-user") {
		t.Errorf("felix exec --become-user 'x;id': exit %d\n%s%s; want refused", code, out, errOut)
	}
}
