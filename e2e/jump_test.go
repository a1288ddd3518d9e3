package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/api/wire"
)

// newNetnsBehind makes a network namespace reachable only from front: a
// veth pair 10.251.Y.0/30 between front and it, and a blackhole route for
// that range in the root namespace, so nothing sent there from here
// leaves the machine. Its sshd (startNsSSHD) can only be reached through
// front's.
func newNetnsBehind(t *testing.T, front *netns) *netns { return newNetnsBehindWith(t, front, false) }

// newNetnsBehindWith is newNetnsBehind; routed, front forwards between the
// two links instead of the blackhole: the namespace's default route is
// front's inner address and the root namespace routes 10.251.Y.0/30 via
// front, so its minion reaches a master here and the master reaches the
// minion. Its sshd is then kept to logins from front by sshdOnlyFrom.
func newNetnsBehindWith(t *testing.T, front *netns, routed bool) *netns {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	n := &netns{name: "felix-bh-" + tag, behind: true}
	y := 1 + int(b[0])%250
	n.local, n.peer = fmt.Sprintf("10.251.%d.1", y), fmt.Sprintf("10.251.%d.2", y)
	subnet := fmt.Sprintf("10.251.%d.0/30", y)
	if err := run(t, "ip", "netns", "add", n.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := run(t, "ip", "netns", "del", n.name); err != nil {
			t.Errorf("remove the namespace: %v", err)
		}
	})
	if !routed {
		if err := run(t, "ip", "route", "add", "blackhole", subnet); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { exec.Command("ip", "route", "del", "blackhole", subnet).Run() })
	}
	veth, peer := "fjf"+tag, "fjb"+tag
	steps := [][]string{
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", peer},
		{"ip", "link", "set", veth, "netns", front.name},
		{"ip", "link", "set", peer, "netns", n.name},
		{"ip", "netns", "exec", front.name, "ip", "addr", "add", n.local + "/30", "dev", veth},
		{"ip", "netns", "exec", front.name, "ip", "link", "set", veth, "up"},
		{"ip", "netns", "exec", n.name, "ip", "addr", "add", n.peer + "/30", "dev", peer},
		{"ip", "netns", "exec", n.name, "ip", "link", "set", peer, "up"},
		{"ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up"},
	}
	if routed {
		n.sshdOnlyFrom = n.local
		steps = append(steps,
			[]string{"ip", "netns", "exec", n.name, "ip", "route", "add", "default", "via", n.local},
			[]string{"ip", "netns", "exec", front.name, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
			[]string{"ip", "route", "add", subnet, "via", front.peer})
		t.Cleanup(func() { exec.Command("ip", "route", "del", subnet, "via", front.peer).Run() }) // gone with front's veth, normally
	}
	for _, s := range steps {
		if err := run(t, s[0], s[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestProxyJump reaches a host that only a bastion can reach, through the
// real master and CLI: by a host's --proxy-jump, and by an ssh_config
// alias whose ProxyJump is another alias. The sessions arrive from the
// bastion's side of the inner link.
func TestProxyJump(t *testing.T) {
	front := newNetns(t)
	back := newNetnsBehind(t, front)
	bastion, target := startNsSSHD(t, front), startNsSSHD(t, back)
	dir := t.TempDir()
	knownHosts := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(bastion.hostKeyLine+target.hostKeyLine), 0o600); err != nil {
		t.Fatal(err)
	}
	sshConfig := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(sshConfig, []byte(fmt.Sprintf(`Host lab-target
    HostName %s
    ProxyJump lab-bastion
Host lab-bastion
    HostName %s
    User root
Host lab-evil
    ProxyCommand nc %%h %%p
`, back.peer, front.peer)), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startMasterWith(t, fmt.Sprintf("[ssh]\nknown_hosts = %q\nkey_files = [%q, %q]\nagent = false\nuse_ssh_config = true\nssh_config = %q\n",
		knownHosts, bastion.clientKey, target.clientKey, sshConfig))

	tests := []struct {
		name string
		add  []string
	}{
		{"--proxy-jump", []string{"hosts", "add", "root@" + back.peer, "--id", "behind", "--proxy-jump", "root@" + front.peer}},
		{"ssh_config alias", []string{"hosts", "add", "lab-target", "--id", "alias"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if out, errOut, code := c.felix(tt.add...); code != 0 {
				t.Fatalf("felix %s: exit %d %s%s", strings.Join(tt.add, " "), code, out, errOut)
			}
			id := tt.add[len(tt.add)-1]
			if tt.name == "--proxy-jump" {
				id = "behind"
			}
			out, errOut, code := c.felix("exec", "-o", "json", "-t", id, "--", `set -- $SSH_CONNECTION; echo "$1 $3"`)
			var j wire.Job
			if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || len(j.Results) != 1 {
				t.Fatalf("felix exec on %s: exit %d %v\n%s%s", id, code, err, out, errOut)
			}
			// From the bastion's end of the inner link to the target.
			if r := j.Results[0]; r.State != "ok" || r.Transport != "ssh" || strings.TrimSpace(r.Stdout) != back.local+" "+back.peer {
				t.Errorf("exec on %s: %+v; want ok over ssh, %q", id, r, back.local+" "+back.peer)
			}
		})
	}

	// Bad jump hosts: refused with one line, nothing stored.
	for _, bad := range []string{"root@" + front.peer + ";id", "-oProxyCommand=id", "a b", "%h"} {
		out, errOut, code := c.felix("hosts", "add", back.peer, "--id", "bad", "--proxy-jump", bad)
		if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "proxy jump") {
			t.Errorf("hosts add --proxy-jump %q: exit %d %s%s; want 1 and one line", bad, code, out, errOut)
		}
	}
	if _, ok := c.sshHosts()["bad"]; ok {
		t.Errorf("a host with a bad jump host was stored")
	}
}
