package e2e

import (
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
)

// TestBootstrapThroughBastion bootstraps a host whose sshd takes logins
// only from a bastion, through the bastion (felix bootstrap --proxy-jump):
// its minion registers with the master (routed through the bastion's
// namespace), is accepted and runs commands; the SSH host recorded keeps
// the jump host, so once the minion and its supervisor are killed the next
// exec reaches the host over SSH through the bastion, with no felix hosts
// add in between. A rerun by its id goes through the recorded jump hosts.
func TestBootstrapThroughBastion(t *testing.T) {
	e := newBootstrapEnvWith(t, distDir, bootstrapOpts{behindBastion: true})
	c, back, front, root := e.c, e.n, e.front, e.root

	// Directly from here the host's sshd answers (the route is there) but
	// takes no login: only the bastion's way in works.
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(back.peer, "22"), 5*time.Second)
	if err != nil {
		t.Fatalf("TCP to the host's sshd from here: %v; want it routed through the bastion's namespace", err)
	}
	conn.Close()
	if _, err := exec.LookPath("ssh"); err != nil {
		testenv.Missing(t, "no ssh client (openssh-client): %v", err)
	}
	direct := exec.Command("ssh", "-F", "/dev/null", "-i", e.sshd.clientKey, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+e.knownHosts, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "root@"+back.peer, "true")
	if out, err := direct.CombinedOutput(); err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Errorf("direct ssh root@%s: %v %s; want the login refused", back.peer, err, out)
	}

	resp, code, out := c.bootstrap("root@"+back.peer, "--proxy-jump", "root@"+front.peer, "--id", "bs-jump")
	if code != 0 || len(resp.Results) != 1 {
		t.Fatalf("felix bootstrap --proxy-jump: exit %d\n%s", code, out)
	}
	if r := resp.Results[0]; r.State != "ok" || r.Action != "installed" || r.Init != "supervise" || r.SSHHost != "bs-jump" {
		t.Errorf("bootstrap through the bastion: %+v; want ok, installed, supervise, recorded as bs-jump", r)
	}
	if cfg, _, err := config.ReadMinion(filepath.Join(root, "etc/felix/minion.toml")); err != nil || cfg.Master != e.masterURL {
		t.Errorf("minion config: master %q, %v; want bootstrap.master_url %s", cfg.Master, err, e.masterURL)
	}
	if m, ok := c.minions()["bs-jump"]; !ok || m.State != "accepted" || !strings.HasPrefix(m.Address, back.peer+":") {
		t.Fatalf("minion bs-jump: %+v; want accepted at %s", m, back.peer)
	}
	if h, ok := c.sshHosts()["bs-jump"]; !ok || h.Host != back.peer || h.User != "root" || h.ProxyJump != "root@"+front.peer {
		t.Errorf("recorded SSH host bs-jump: %+v (%v); want root@%s via root@%s", h, ok, back.peer, front.peer)
	}

	execOn := func(what, cmd string) wire.HostResult {
		t.Helper()
		out, errOut, code := c.felix("exec", "-t", "bs-jump", "-o", "json", "--", cmd)
		var job wire.Job
		if err := json.Unmarshal([]byte(out), &job); err != nil || len(job.Results) != 1 {
			t.Fatalf("exec on bs-jump %s: exit %d %v\n%s%s", what, code, err, out, errOut)
		}
		return job.Results[0]
	}
	if r := execOn("with its minion", "ip -4 -o addr show"); r.State != "ok" || r.Transport != "agent" || !strings.Contains(r.Stdout, back.peer+"/30") {
		t.Errorf("exec on bs-jump: %+v; want ok over the agent, inside the namespace", r)
	}

	// A rerun by its id: the recorded host's jump hosts take it there,
	// and nothing changes.
	resp, code, out = c.bootstrap("bs-jump")
	if code != 0 || len(resp.Results) != 1 || resp.Results[0].State != "ok" || resp.Results[0].Action != "unchanged" {
		t.Errorf("rerun of bs-jump (the inventory's proxy_jump): exit %d %+v\n%s; want ok, unchanged", code, resp.Results, out)
	}

	// The minion dead (its supervisor first, which would start it again):
	// exec falls back to SSH through the bastion, the session coming from
	// the bastion's end of the inner link.
	killPID(t, filepath.Join(root, "var/lib/felix/minion/supervisor.pid"))
	killPID(t, filepath.Join(root, "var/lib/felix/minion/minion.pid"))
	if r := execOn("with its minion dead", `set -- $SSH_CONNECTION; echo "$1"`); r.State != "ok" || r.Transport != "ssh" ||
		strings.TrimSpace(r.Stdout) != back.local {
		t.Errorf("exec with the minion dead: %+v; want ok over ssh from %s (the bastion)", r, back.local)
	}
	c.master.stop(t)
}
