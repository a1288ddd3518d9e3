package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
)

// TestForeignArchMinions runs the static linux/arm64 and linux/s390x (big
// endian) minions under qemu-user-static, each invoked explicitly as
// `qemu-ARCH-static minion ...` (binfmt_misc is often missing in
// containers): each registers with a real master over mTLS, reports the
// emulated machine in its facts, runs a command and receives a file. The
// commands they run are the host's own /bin/sh, which is fine: what is
// tested is the minion.
func TestForeignArchMinions(t *testing.T) {
	arches := []struct{ goarch, qemu, machine, ip string }{
		{"arm64", "qemu-aarch64-static", "aarch64", "127.0.17.2"},
		{"s390x", "qemu-s390x-static", "s390x", "127.0.17.3"},
	}
	for _, a := range arches {
		if _, err := exec.LookPath(a.qemu); err != nil {
			testenv.Missing(t, "%s is not installed (Debian package qemu-user-static): %v", a.qemu, err)
		}
	}
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	join = strings.TrimSpace(join)

	ids := []string{}
	for _, a := range arches {
		bin := testenv.Build(t, "minion-linux-"+a.goarch, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + a.goarch}, "../cmd/minion")
		qemu, _ := exec.LookPath(a.qemu)
		id := "q-" + a.goarch
		ids = append(ids, id)
		dir := filepath.Join(c.dir, id)
		startBin(t, "minion "+id, qemu, bin, "start", "--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir,
			"--id", id, "--listen", a.ip+":0", "--master", c.url, "--master-fingerprint", c.fingerprint,
			"--join-token", join)
	}
	// qemu is slow: the minions take a while to start, make a key and register.
	waitFor(t, "the emulated minions to register", 3*time.Minute, func() bool {
		ms := c.minions()
		for _, id := range ids {
			if ms[id].State != "pending" {
				return false
			}
		}
		return true
	})
	if out, errOut, code := c.felix(append([]string{"keys", "accept"}, ids...)...); code != 0 {
		t.Fatalf("felix keys accept: exit %d: %s%s", code, out, errOut)
	}
	for _, a := range arches {
		var m wire.Minion
		if status := c.api("GET", "/api/v1/minions/q-"+a.goarch, nil, &m); status != http.StatusOK {
			t.Fatalf("GET minion q-%s: %d", a.goarch, status)
		}
		var f struct{ System, Arch string }
		if err := json.Unmarshal(m.Facts, &f); err != nil {
			t.Fatalf("facts of q-%s: %v: %s", a.goarch, err, m.Facts)
		}
		if f.System != "linux" || f.Arch != a.machine {
			t.Errorf("q-%s reports system %q arch %q; want linux %s (the emulated machine)", a.goarch, f.System, f.Arch, a.machine)
		}
	}

	out, errOut, code := c.felix("exec", "-t", strings.Join(ids, ","), "-o", "json", "--", "echo hello from $0; exit 3")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("felix exec: exit %d: %v\n%s%s", code, err, out, errOut)
	}
	res := resultsByHost(job)
	for _, id := range ids {
		r := res[id]
		if r.State != "failed" || r.ExitCode != 3 || r.Stdout != "hello from /bin/sh\n" || r.Transport != "agent" {
			t.Errorf("exec on %s: state %s exit %d stdout %q transport %q; want failed, 3, \"hello from /bin/sh\\n\", agent",
				id, r.State, r.ExitCode, r.Stdout, r.Transport)
		}
	}

	src := filepath.Join(t.TempDir(), "motd")
	content := "pushed to an emulated minion\n"
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		dest := filepath.Join(t.TempDir(), "motd-"+id)
		j, code, errOut := c.cp(src, "-t", id, dest)
		if code != 0 || len(j.Results) != 1 || j.Results[0].State != "ok" {
			t.Errorf("felix cp to %s: exit %d, results %+v: %s", id, code, j.Results, errOut)
			continue
		}
		if got, err := os.ReadFile(dest); err != nil || string(got) != content {
			t.Errorf("%s on %s: %q, %v; want %q", dest, id, got, err, content)
		}
	}
}
