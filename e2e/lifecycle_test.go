package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/daemon/selfupdate"
	"github.com/felix-ops/felix/internal/testenv"
)

// daemonCmd runs binDir's master or minion with args and returns its
// output and exit status.
func daemonCmd(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return out.String(), code
}

// stopPIDFile stops, when the test ends, the process a pid file names when
// it is not one the test started (an old binary started again by update).
func stopPIDFile(t *testing.T, path string) {
	t.Cleanup(func() {
		pid, ok := daemon.Running(path)
		if !ok {
			return
		}
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(40 * time.Second)
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// master restart and minion restart drain and start again in place (same
// pid): finished jobs' results are kept, the minion comes back with the
// same id and certificate, and commands run again.
func TestRestart(t *testing.T) {
	c := startMaster(t)
	ps := c.joinAll("r1")
	out, errOut, code := c.felix("exec", "-t", "r1", "-o", "json", "--", "echo before restart")
	var job wire.Job
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil {
		t.Fatalf("felix exec: exit %d %s%s", code, out, errOut)
	}
	before := c.minions()["r1"]

	masterPID := c.master.cmd.Process.Pid
	began := time.Now()
	out, code = daemonCmd(t, "master", "restart", "--config", c.config, "--data-dir", filepath.Join(c.dir, "master"))
	t.Logf("master restart took %s: %s", time.Since(began).Round(time.Millisecond), strings.TrimSpace(out))
	if code != 0 || !strings.Contains(out, "master restarted: pid "+strconv.Itoa(masterPID)) {
		t.Fatalf("master restart: exit %d\n%s", code, out)
	}
	if got := c.job(job.JobID); got.State != job.State || len(got.Results) != 1 || !strings.Contains(got.Results[0].Stdout, "before restart") {
		t.Errorf("after master restart, job %s = %+v; want it kept as %s with its output", job.JobID, got, job.State)
	}
	waitFor(t, "the minion healthy again after the master restart", 60*time.Second, func() bool {
		return c.minions()["r1"].Health == "ok"
	})

	dir := filepath.Join(c.dir, "r1")
	minionPID := ps["r1"].cmd.Process.Pid
	began = time.Now()
	out, code = daemonCmd(t, "minion", "restart", "--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir)
	t.Logf("minion restart took %s: %s", time.Since(began).Round(time.Millisecond), strings.TrimSpace(out))
	if code != 0 || !strings.Contains(out, "minion restarted: pid "+strconv.Itoa(minionPID)) {
		t.Fatalf("minion restart: exit %d\n%s", code, out)
	}
	after := c.minions()["r1"]
	if after.Fingerprint != before.Fingerprint || after.State != "accepted" {
		t.Errorf("after minion restart: %+v; want the same certificate %s, accepted", after, before.Fingerprint)
	}
	waitFor(t, "the minion healthy after its restart", 60*time.Second, func() bool {
		return c.minions()["r1"].Health == "ok"
	})
	if out, errOut, code := c.felix("exec", "-t", "r1", "--", "echo after restart"); code != 0 || !strings.Contains(out, "after restart") {
		t.Errorf("exec after the restarts: exit %d %s%s", code, out, errOut)
	}
	// Not running: restart says so.
	if out, code := daemonCmd(t, "minion", "restart", "--data-dir", t.TempDir(), "--config", filepath.Join(t.TempDir(), "m.toml")); code != 1 || !strings.Contains(out, "not running") {
		t.Errorf("minion restart with nothing running: exit %d %s; want 1, not running", code, out)
	}
}

// minionVersion builds cmd/minion stamped with version v (no race
// detector: these are the binaries an operator installs).
func minionVersion(t *testing.T, v string) string {
	t.Helper()
	return testenv.Build(t, "minion-"+v, []string{"CGO_ENABLED=0"}, "-ldflags",
		"-X github.com/felix-ops/felix/version.Version="+v, "github.com/felix-ops/felix/cmd/minion")
}

// minion update FILE: A→B is installed and B runs (same pid, re-executed);
// a B that exits at once and one that hangs are rolled back, A running
// again, the minion still registered with the same certificate.
func TestMinionUpdate(t *testing.T) {
	c := startMaster(t)
	tok, errOut, code := c.felix("token", "join", "--auto-accept", "--uses", "-1", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: %s", errOut)
	}
	binA := minionVersion(t, "vA")
	tests := []struct {
		name        string
		file        string
		wantCode    int
		wantOut     string
		wantVersion string
	}{
		{"A to B", minionVersion(t, "vB"), 0, "updated to vB", "vB"},
		{"B exits at once", testenv.Fake(t, "vB", "exit"), 1, "rolled back: vA running again", "vA"},
		{"B hangs", testenv.Fake(t, "vB", "hang"), 1, "rolled back: vA running again", "vA"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "u" + strconv.Itoa(i)
			dir := filepath.Join(c.dir, id)
			exe := filepath.Join(t.TempDir(), "bin", "minion")
			os.MkdirAll(filepath.Dir(exe), 0o755)
			b, _ := os.ReadFile(binA)
			os.WriteFile(exe, b, 0o755)
			flags := []string{"--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir}
			p := startBin(t, "minion "+id, exe, append([]string{"start", "--id", id, "--listen", "127.0.0.1:0", "--master", c.url,
				"--master-fingerprint", c.fingerprint, "--join-token", strings.TrimSpace(tok)}, flags...)...)
			stopPIDFile(t, filepath.Join(dir, "minion.pid"))
			waitFor(t, "the minion registered", 60*time.Second, func() bool {
				_, err := os.Stat(filepath.Join(dir, "minion.ready"))
				return err == nil
			})
			before := c.minions()[id]
			sum, _ := selfupdate.HashFile(tt.file)
			began := time.Now()
			out, code := daemonCmd(t, "minion", append([]string{"update", tt.file, "--sha256", sum, "--wait", "10s"}, flags...)...)
			t.Logf("minion update %s took %s", tt.name, time.Since(began).Round(time.Millisecond))
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("minion update %s: exit %d\n%s\nwant exit %d saying %q\n--- minion output ---\n%s", tt.name, code, out, tt.wantCode, tt.wantOut, p.output())
			}
			t.Logf("minion update %s:\n%s", tt.name, out)
			pid, ok := daemon.Running(filepath.Join(dir, "minion.pid"))
			if !ok {
				t.Fatalf("after update no minion runs")
			}
			if tt.wantCode == 0 && pid != p.cmd.Process.Pid {
				t.Errorf("after update pid %d; want the same pid %d (re-executed in place)", pid, p.cmd.Process.Pid)
			}
			if v, err := selfupdate.Version(t.Context(), exe); err != nil || v != tt.wantVersion {
				t.Errorf("installed binary's version = %q, %v; want %s", v, err, tt.wantVersion)
			}
			waitFor(t, "felix minions to show "+tt.wantVersion, 60*time.Second, func() bool {
				m := c.minions()[id]
				return m.Version == tt.wantVersion && m.Health == "ok"
			})
			if m := c.minions()[id]; m.Fingerprint != before.Fingerprint {
				t.Errorf("after update fingerprint %s; want the same %s", m.Fingerprint, before.Fingerprint)
			}
		})
	}
	// A file for another architecture is refused before anything changes.
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	wrong := testenv.Fake(t, "vB", "exit", "GOARCH="+other)
	if out, code := daemonCmd(t, "minion", "update", wrong, "--data-dir", t.TempDir(), "--config", filepath.Join(t.TempDir(), "m.toml")); code != 1 || !strings.Contains(out, "not an executable for this os/arch") {
		t.Errorf("minion update with a %s binary: exit %d %s; want 1, refused", other, code, out)
	}
}

// master update FILE: A→B in place (same pid, /healthz reports B, the
// admin token and jobs kept); a B that exits at once is rolled back and A
// runs again.
func TestMasterUpdate(t *testing.T) {
	build := func(v string) string {
		return testenv.Build(t, "master-"+v, nil, "-ldflags", "-X github.com/felix-ops/felix/version.Version="+v,
			"github.com/felix-ops/felix/cmd/master")
	}
	exe := filepath.Join(t.TempDir(), "bin", "master")
	os.MkdirAll(filepath.Dir(exe), 0o755)
	b, err := os.ReadFile(build("vA"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(exe, b, 0o755)
	c := startMasterBin(t, exe, "")
	flags := []string{"--config", c.config, "--data-dir", filepath.Join(c.dir, "master")}
	stopPIDFile(t, filepath.Join(c.dir, "master", "master.pid"))
	health := func() string {
		var h struct {
			Version string `json:"version"`
		}
		if status := c.api("GET", "/healthz", nil, &h); status != 200 {
			return ""
		}
		return h.Version
	}
	if v := health(); v != "vA" {
		t.Fatalf("/healthz version %q; want vA", v)
	}
	pid := c.master.cmd.Process.Pid
	binB := build("vB")
	began := time.Now()
	out, code := daemonCmd(t, "master", append([]string{"update", binB, "--wait", "60s"}, flags...)...)
	t.Logf("master update vB took %s:\n%s", time.Since(began).Round(time.Millisecond), out)
	if code != 0 || !strings.Contains(out, "updated to vB: pid "+strconv.Itoa(pid)+" healthy") {
		t.Fatalf("master update to vB: exit %d\n%s", code, out)
	}
	if v := health(); v != "vB" {
		t.Errorf("/healthz version after the update %q; want vB", v)
	}
	if _, errOut, code := c.felix("minions"); code != 0 {
		t.Errorf("felix minions after the update (same admin token): exit %d %s", code, errOut)
	}
	fake := testenv.Fake(t, "vC", "exit")
	out, code = daemonCmd(t, "master", append([]string{"update", fake, "--wait", "5s"}, flags...)...)
	t.Logf("master update to a vC that exits:\n%s", out)
	if code != 1 || !strings.Contains(out, "rolled back: vB running again") {
		t.Fatalf("master update to a failing vC: exit %d\n%s", code, out)
	}
	if v := health(); v != "vB" {
		t.Errorf("/healthz version after the rollback %q; want vB", v)
	}
}
