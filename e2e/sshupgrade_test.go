package e2e

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFleetUpgradeOverSSH bootstraps a host of the agentless inventory with
// minion version A over SSH, then upgrades it with felix minions upgrade
// over SSH: a new binary that exits at once is rolled back (A runs again),
// B is installed with the minion's key kept, again is unchanged, and with
// its minion down the default (auto) upgrade reaches the host over SSH.
func TestFleetUpgradeOverSSH(t *testing.T) {
	buildUpgradeBins(t)
	u := &upgradeBins
	dist := t.TempDir()
	distBin := filepath.Join(dist, "minion-linux-"+runtime.GOARCH)
	useBin := func(from string) { t.Helper(); copyBin(t, from, distBin) }
	useBin(u.a)
	e := newBootstrapEnv(t, dist)
	c := e.c
	if out, errOut, code := c.felix("hosts", "add", e.n.peer, "--id", "up-host"); code != 0 {
		t.Fatalf("felix hosts add: exit %d %s%s", code, out, errOut)
	}
	resp, code, out := c.bootstrap("up-host")
	if code != 0 || len(resp.Results) != 1 || resp.Results[0].ID != "up-host" || resp.Results[0].Action != "installed" {
		t.Fatalf("felix bootstrap up-host: exit %d\n%s", code, out)
	}
	at := func(version string) func() bool {
		return func() bool {
			m := c.minions()["up-host"]
			return m.Version == version && m.State == "accepted" && m.Health == "ok"
		}
	}
	waitFor(t, "up-host at vA", 30*time.Second, at("vA"))
	fp := c.minions()["up-host"].Fingerprint
	pidFile := filepath.Join(e.root, "var/lib/felix/minion/minion.pid")
	bin := filepath.Join(e.root, "usr/local/bin/felix-minion")
	upgrade := func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := c.felix(append([]string{"minions", "upgrade", "-t", "up-host"}, args...)...)
		t.Logf("felix minions upgrade %v: exit %d\n%s%s", args, code, out, errOut)
		return out + errOut, code
	}

	// A new binary that exits at once: rolled back over SSH, A runs again.
	useBin(u.bad)
	out, code = upgrade("--transport", "ssh", "--timeout", "60s")
	if code == 0 || !strings.Contains(out, "rolled_back") || !strings.Contains(out, "vA -> vBad (over ssh)") ||
		!strings.Contains(out, "badminion: exiting at once") {
		t.Errorf("upgrade to a binary that exits at once: exit %d; want rolled_back with its log line\n%s", code, out)
	}
	waitFor(t, "up-host back at vA", 30*time.Second, at("vA"))
	if b, err := exec0(bin, "version"); err != nil || b != "vA" {
		t.Errorf("the binary on the host answers %q, %v; want vA", b, err)
	}

	// A -> B over SSH: same certificate, new version, .prev kept.
	useBin(u.b)
	out, code = upgrade("--transport", "ssh")
	if code != 0 || !strings.Contains(out, "upgraded") || !strings.Contains(out, "vA -> vB (over ssh)") {
		t.Fatalf("upgrade A -> B over ssh: exit %d\n%s", code, out)
	}
	waitFor(t, "up-host at vB", 30*time.Second, at("vB"))
	if m := c.minions()["up-host"]; m.Fingerprint != fp {
		t.Errorf("fingerprint %s after the upgrade; want the pinned %s", m.Fingerprint, fp)
	}
	if b, err := exec0(bin+".prev", "version"); err != nil || b != "vA" {
		t.Errorf("%s.prev answers %q, %v; want vA kept", bin, b, err)
	}
	if out, errOut, code := c.felix("exec", "-t", "up-host", "--transport", "agent", "--", "true"); code != 0 {
		t.Errorf("exec over the agent after the upgrade: exit %d %s%s", code, out, errOut)
	}

	// Again: unchanged, nothing replaced.
	pid := readPid(pidFile)
	out, code = upgrade("--transport", "ssh")
	if code != 0 || !strings.Contains(out, "unchanged") || !strings.Contains(out, "nothing replaced") {
		t.Errorf("upgrade B -> B over ssh: exit %d; want unchanged\n%s", code, out)
	}
	if p := readPid(pidFile); p != pid || gone(pid) {
		t.Errorf("minion pid %d after an unchanged upgrade (was %d); want the same process running", p, pid)
	}

	// The minion down (its supervisor first, which would start it again):
	// the default upgrade cannot reach it over gRPC and goes over SSH,
	// which starts it again (same binary: unchanged).
	killPID(t, filepath.Join(e.root, "var/lib/felix/minion/supervisor.pid"))
	syscall.Kill(pid, syscall.SIGKILL)
	waitFor(t, "up-host unreachable", 30*time.Second, func() bool { return c.minions()["up-host"].Health == "unreachable" })
	out, code = upgrade()
	if code != 0 || !strings.Contains(out, "unchanged") || !strings.Contains(out, "over ssh") || !strings.Contains(out, "minion started") {
		t.Errorf("upgrade with the minion down (auto): exit %d; want unchanged over ssh, minion started\n%s", code, out)
	}
	waitFor(t, "up-host back at vB", 30*time.Second, at("vB"))
	if m := c.minions()["up-host"]; m.Fingerprint != fp {
		t.Errorf("fingerprint %s after the restart; want the pinned %s", m.Fingerprint, fp)
	}
}

// exec0 runs a binary and returns its first output line.
func exec0(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line, err
}
