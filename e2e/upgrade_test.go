package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
)

// upgradeBins are minion binaries built once per test run for the fleet
// upgrade tests: version A, version B, and B that exits at once.
var upgradeBins struct {
	once        sync.Once
	a, b, bad   string
	err         error
	hasWatchdog bool // the minion hands over to the new process and rolls back by itself
}

// buildUpgradeBins builds the binaries static, as make dist does, with
// their version stamped.
func buildUpgradeBins(t *testing.T) {
	t.Helper()
	u := &upgradeBins
	u.once.Do(func() {
		dir := filepath.Join(binDir, "upgrade")
		build := func(out, pkg, ver string) string {
			if u.err != nil {
				return ""
			}
			p := filepath.Join(dir, out)
			args := []string{"build", "-o", p}
			if ver != "" {
				args = append(args, "-ldflags", "-X github.com/felix-ops/felix/version.Version="+ver)
			}
			cmd := exec.Command("go", append(args, pkg)...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				u.err = fmt.Errorf("build %s: %v\n%s", out, err, b)
			}
			return p
		}
		u.a = build("minion-vA", "../cmd/minion", "vA")
		u.b = build("minion-vB", "../cmd/minion", "vB")
		u.bad = build("minion-bad", "./testdata/badminion", "")
		if u.err == nil {
			// helper B's self-upgrade (the old process watches the new one)
			// comes with `minion update`.
			out, _ := exec.Command(u.a, "help").CombinedOutput()
			u.hasWatchdog = strings.Contains(string(out), "minion update")
		}
	})
	if u.err != nil {
		t.Fatal(u.err)
	}
}

// upMinion is a minion started from its own copy of a binary, which its
// upgrades replace.
type upMinion struct {
	id, dir string
	p       *proc
}

// pid is the pid in the minion's pid file: the process an upgrade handed
// over to, not necessarily the one the test started.
func (m *upMinion) pid(t *testing.T) int {
	t.Helper()
	return readPid(filepath.Join(m.dir, "minion.pid"))
}

// readPid reads a pid file; 0 if there is none.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// copyBin copies the binary from to to, executable.
func copyBin(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// startUpMinion starts minion id from a copy of bin, with a short
// self-upgrade deadline.
func (c *cluster) startUpMinion(id, ip, join, bin string) *upMinion {
	t := c.t
	t.Helper()
	dir := filepath.Join(c.dir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "minion")
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &upMinion{id: id, dir: dir}
	p := &proc{name: "minion " + id, done: make(chan struct{})}
	p.cmd = exec.Command(exe, "start", "--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir,
		"--id", id, "--listen", ip+":0", "--master", c.url, "--master-fingerprint", c.fingerprint,
		"--join-token", join, "--log-level", "debug")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Env = append(os.Environ(), "FELIX_MINION_UPGRADE_DEADLINE=15s")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start minion %s: %v", id, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	m.p = p
	t.Cleanup(func() {
		// The process an upgrade handed over to, then the one started.
		if pid := m.pid(t); pid > 0 && pid != p.cmd.Process.Pid {
			syscall.Kill(pid, syscall.SIGTERM)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", p.name, p.output())
		}
	})
	return m
}

// TestFleetUpgrade upgrades three real minions from version A to B through
// felix minions upgrade, then again (unchanged), refuses a binary for
// another arch before anything is swapped, reports an offline minion
// unreachable, and rolls a canary back whose new binary exits at once.
func TestFleetUpgrade(t *testing.T) {
	buildUpgradeBins(t)
	u := &upgradeBins
	dist := t.TempDir()
	distBin := filepath.Join(dist, "minion-linux-"+runtime.GOARCH)
	copyFile := func(from, to string) { t.Helper(); copyBin(t, from, to) }
	copyFile(u.b, distBin)
	c := startMasterWith(t, fmt.Sprintf("[bootstrap]\nminion_dir = %q\n", dist))
	join, errOut, code := c.felix("token", "join", "--ttl", "10m", "--auto-accept", "--uses", "10")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	join = strings.TrimSpace(join)
	ids := []string{"m1", "m2", "m3"}
	ms := map[string]*upMinion{}
	for i, id := range ids {
		ms[id] = c.startUpMinion(id, fmt.Sprintf("127.0.0.%d", 60+i), join, u.a)
	}
	versions := func(want string, which ...string) func() bool {
		return func() bool {
			all := c.minions()
			for _, id := range which {
				if m := all[id]; m.Version != want || m.State != "accepted" || m.Health != "ok" {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, "three accepted minions at vA", 60*time.Second, versions("vA", ids...))
	before := c.minions()
	pids := map[string]int{}
	for _, id := range ids {
		pids[id] = ms[id].pid(t)
	}

	// A -> B: every host upgraded, same certificates, new version.
	out, errOut, code := c.felix("minions", "upgrade", "-t", "m*", "--canary", "1", "--batch", "50%", "--timeout", "90s")
	t.Logf("felix minions upgrade:\n%s", out)
	if code != 0 || !strings.Contains(out, "upgraded") || !strings.Contains(out, "vA -> vB") || strings.Contains(out, "failed") {
		t.Fatalf("upgrade A -> B: exit %d\n%s%s", code, out, errOut)
	}
	waitFor(t, "three minions at vB", 30*time.Second, versions("vB", ids...))
	after := c.minions()
	for _, id := range ids {
		if after[id].Fingerprint != before[id].Fingerprint {
			t.Errorf("%s: fingerprint %s after the upgrade; want the pinned %s", id, after[id].Fingerprint, before[id].Fingerprint)
		}
		if pid := ms[id].pid(t); u.hasWatchdog && pid == pids[id] {
			t.Errorf("%s: pid %d after the upgrade; want a new process", id, pid)
		}
	}

	// Again: nothing to do, nothing sent.
	out, errOut, code = c.felix("minions", "upgrade", "-t", "m*")
	if code != 0 || !strings.Contains(out, "m[1-3] (3 hosts)") || !strings.Contains(out, "unchanged") {
		t.Fatalf("upgrade B -> B: exit %d; want all unchanged\n%s%s", code, out, errOut)
	}

	// A binary for another arch: refused before anything is stored or swapped.
	wrong, err := os.ReadFile(u.b)
	if err != nil {
		t.Fatal(err)
	}
	wrong[18], wrong[19] = 0xb7, 0 // e_machine: EM_AARCH64 (or EM_X86_64 below)
	if runtime.GOARCH == "arm64" {
		wrong[18] = 0x3e
	}
	status, body := c.apiRaw("POST", "/api/v1/content", "application/octet-stream", bytes.NewReader(wrong))
	var blob wire.Blob
	if status != http.StatusCreated || json.Unmarshal(body, &blob) != nil {
		t.Fatalf("POST /api/v1/content = %d %s", status, body)
	}
	var refusal map[string]string
	if status := c.api("POST", "/api/v1/minions/upgrade", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"m1"}},
		Binary: blob.SHA256, OS: "linux", Arch: runtime.GOARCH}, &refusal); status != http.StatusBadRequest || !strings.Contains(refusal["error"], "built for linux/") {
		t.Errorf("upgrade with a binary for another arch = %d %v; want 400 naming its arch", status, refusal)
	}
	wrongFile := filepath.Join(t.TempDir(), "minion-wrong")
	os.WriteFile(wrongFile, wrong, 0o755)
	if _, errOut, code := c.felix("minions", "upgrade", "-t", "m1", "--binary", wrongFile); code == 0 {
		t.Errorf("felix minions upgrade --binary <wrong arch> exit 0; want refused: %s", errOut)
	}
	if m := c.minions()["m1"]; m.Version != "vB" {
		t.Errorf("m1 runs %s after the refused upgrade; want vB", m.Version)
	}

	// An offline minion: unreachable, nothing changed.
	if u.hasWatchdog {
		syscall.Kill(ms["m3"].pid(t), syscall.SIGTERM)
	} else {
		ms["m3"].p.stop(t)
	}
	waitFor(t, "m3 offline", 30*time.Second, func() bool { return c.minions()["m3"].Health == "unreachable" })
	copyFile(u.a, distBin)
	out, _, code = c.felix("minions", "upgrade", "-t", "m3")
	if code == 0 || !strings.Contains(out, "unreachable") {
		t.Errorf("upgrade of an offline minion: exit %d; want unreachable\n%s", code, out)
	}

	// A canary whose new binary exits at once: the minion rolls back by
	// itself, the rollout stops, the other minion is untouched.
	if !u.hasWatchdog {
		t.Log("the canary rollback needs the minion's watchdog (helper B's self-upgrade): not run")
		return
	}
	copyFile(u.bad, distBin)
	out, _, code = c.felix("minions", "upgrade", "-t", "m1,m2", "--canary", "1", "--timeout", "60s")
	t.Logf("felix minions upgrade (bad canary):\n%s", out)
	// The reason is the minion's own (its last_upgrade): badminion exits 3.
	if code == 0 || !strings.Contains(out, "rolled_back") || !strings.Contains(out, "exit status 3") || !strings.Contains(out, "canary host m1 failed") {
		t.Errorf("bad canary: exit %d; want m1 rolled_back and m2 not started\n%s", code, out)
	}
	waitFor(t, "m1 and m2 at vB", 60*time.Second, versions("vB", "m1", "m2"))
}
