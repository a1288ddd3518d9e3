package ssh_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

// knownHostsOf writes a known_hosts file holding the keys of servers.
func knownHostsOf(t *testing.T, servers ...*sshtest.Server) string {
	t.Helper()
	var lines []string
	for _, s := range servers {
		lines = append(lines, s.KnownHostsLine)
	}
	p := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hopOf returns a jump hop to s logging in with its client key.
func hopOf(s *sshtest.Server) model.SSHHop {
	return model.SSHHop{Host: s.Host, Port: s.Port, User: s.User, KeyPath: s.ClientKey}
}

// serverAddrOf returns the server address a session on tg arrived at
// (from $SSH_CONNECTION).
func serverAddrOf(t *testing.T, p *ssh.Pool, tg model.Target) string {
	t.Helper()
	stdout, stderr, code, err := p.Run(context.Background(), tg, `set -- $SSH_CONNECTION; echo "$3"`)
	if err != nil || code != 0 {
		t.Fatalf("Run on %s: code %d, err %v, stderr %q", tg.ID, code, err, stderr)
	}
	return strings.TrimSpace(string(stdout))
}

func TestJumpChain(t *testing.T) {
	b1 := sshtest.Start(t, "127.0.31.1")
	b2 := sshtest.Start(t, "127.0.31.2")
	target := sshtest.Start(t, "127.0.31.3")
	p := newPool(t, knownHostsOf(t, b1, b2, target))

	tests := []struct {
		name string
		jump []model.SSHHop
		via  []*sshtest.Server // bastions that must log a login
	}{
		{"one hop", []model.SSHHop{hopOf(b1)}, []*sshtest.Server{b1}},
		{"two hops", []model.SSHHop{hopOf(b1), hopOf(b2)}, []*sshtest.Server{b1, b2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := target.Target()
			tg.SSH.Jump = tt.jump
			if got := serverAddrOf(t, p, tg); got != target.Host {
				t.Errorf("session arrived at %q; want %q", got, target.Host)
			}
			for _, b := range tt.via {
				if !strings.Contains(b.Log(), "Accepted publickey") {
					t.Errorf("jump host %s logged no login:\n%s", b.Addr, b.Log())
				}
			}
		})
	}
}

// publicKeyOf returns the public key of the private key file path.
func publicKeyOf(t *testing.T, path string) gossh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return signer.PublicKey()
}

// TestJumpSharedConnection: many hosts behind one bastion make one
// connection to it; the bastion dying is survived by redialling.
func TestJumpSharedConnection(t *testing.T) {
	bastion := sshtest.Start(t, "127.0.31.10")
	var targets []*sshtest.Server
	for _, h := range []string{"127.0.31.11", "127.0.31.12", "127.0.31.13"} {
		targets = append(targets, sshtest.Start(t, h))
	}
	p := newPool(t, knownHostsOf(t, append([]*sshtest.Server{bastion}, targets...)...))
	run := func() {
		t.Helper()
		var wg sync.WaitGroup
		for _, s := range targets {
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tg := s.Target()
					tg.SSH.Jump = []model.SSHHop{hopOf(bastion)}
					if got := serverAddrOf(t, p, tg); got != s.Host {
						t.Errorf("session arrived at %q; want %q", got, s.Host)
					}
				}()
			}
		}
		wg.Wait()
	}
	run()
	if n := strings.Count(bastion.Log(), "Accepted publickey"); n != 1 {
		t.Errorf("bastion logged %d logins for 9 commands on 3 hosts; want 1", n)
	}
	if st := p.Stats(); st.Conns != 4 {
		t.Errorf("pool has %d connections; want 4 (the bastion and 3 hosts)", st.Conns)
	}

	// The bastion restarts: every tunnel dies with it; the next commands
	// dial the chain again.
	bastion.Stop()
	bastion2 := sshtest.Start(t, bastion.Host, sshtest.Port(bastion.Port), sshtest.HostKeyFile(bastion.HostKeyFile))
	bastion2.AuthorizeKey(t, publicKeyOf(t, bastion.ClientKey))
	run()
	if n := strings.Count(bastion2.Log(), "Accepted publickey"); n != 1 {
		t.Errorf("restarted bastion logged %d logins; want 1", n)
	}
}

// TestJumpUnknownBastionKey: the chain stops at a bastion whose key is
// unknown; the target never sees a connection.
func TestJumpUnknownBastionKey(t *testing.T) {
	b1 := sshtest.Start(t, "127.0.31.20")
	b2 := sshtest.Start(t, "127.0.31.21")
	target := sshtest.Start(t, "127.0.31.22")

	tests := []struct {
		name    string
		known   []*sshtest.Server
		jump    []model.SSHHop
		failing *sshtest.Server   // the hop named in the error
		silent  []*sshtest.Server // servers that must log no connection at all
	}{
		{"first hop unknown", []*sshtest.Server{b2, target}, []model.SSHHop{hopOf(b1), hopOf(b2)}, b1, []*sshtest.Server{b2, target}},
		{"second hop unknown", []*sshtest.Server{b1, target}, []model.SSHHop{hopOf(b1), hopOf(b2)}, b2, []*sshtest.Server{target}},
		{"target unknown", []*sshtest.Server{b1}, []model.SSHHop{hopOf(b1)}, target, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, knownHostsOf(t, tt.known...))
			tg := target.Target()
			tg.SSH.Jump = tt.jump
			_, _, _, err := p.Run(context.Background(), tg, "true")
			if !errors.Is(err, ssh.ErrHostKey) || !errors.Is(err, exec.ErrUnreachable) {
				t.Fatalf("Run = %v; want a host-key error wrapping ErrUnreachable", err)
			}
			if want := "host key of " + tt.failing.Addr + " is unknown"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			for _, s := range tt.silent {
				if log := s.Log(); strings.Contains(log, "Connection from") || strings.Contains(log, "publickey") {
					t.Errorf("%s saw a connection although the chain stopped before it:\n%s", s.Addr, log)
				}
			}
		})
	}
}

// TestJumpBadHop: hops that cannot be jump hosts are refused before any
// connection.
func TestJumpBadHop(t *testing.T) {
	p := newPool(t, filepath.Join(t.TempDir(), "known_hosts"))
	for _, hop := range []model.SSHHop{
		{Host: "-oProxyCommand=id"},
		{Host: "b;id"},
		{Host: "bastion", User: "$(id)"},
		{Host: "bastion", Port: 70000},
		{Host: "bastion", KeyPath: "relative/key"},
	} {
		tg := model.Target{ID: "t", SSH: &model.SSHTarget{Host: "127.0.31.30", Jump: []model.SSHHop{hop}}}
		if _, _, _, err := p.Run(context.Background(), tg, "true"); err == nil || !strings.Contains(err.Error(), "jump host") {
			t.Errorf("Run through %+v = %v; want a jump host error", hop, err)
		}
	}
}

// TestJumpGroupRule: ssh.jump rules send hosts of a group through a
// bastion; a host's own setting wins; a reconfigured pool drops the rule.
func TestJumpGroupRule(t *testing.T) {
	bastion := sshtest.Start(t, "127.0.31.40")
	target := sshtest.Start(t, "127.0.31.41")
	kh := knownHostsOf(t, bastion, target)
	rule := "group=la* " + bastion.Addr
	p := newPool(t, kh, func(c *ssh.Config) {
		c.Jump = []string{rule}
		c.KeyFiles = []string{bastion.ClientKey}
	})
	logins := func() int { return strings.Count(bastion.Log(), "Accepted publickey") }

	tests := []struct {
		name    string
		labels  map[string]string
		noJump  bool
		viaJump bool
	}{
		{"other group goes direct", map[string]string{"group": "web"}, false, false},
		{"matching group goes through the bastion", map[string]string{"group": "lab"}, false, true},
		{"proxy_jump none wins over the group", map[string]string{"group": "lab"}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := logins()
			tg := target.Target()
			tg.SSH.Labels, tg.SSH.NoJump = tt.labels, tt.noJump
			serverAddrOf(t, p, tg)
			if got := logins() > before; got != tt.viaJump {
				t.Errorf("went through the bastion: %v; want %v", got, tt.viaJump)
			}
		})
	}
	if err := p.Reconfigure(ssh.Config{KnownHosts: kh, NoAgent: true, Jump: []string{"group=lab"}}); err == nil {
		t.Errorf("Reconfigure with a rule without jump hosts succeeded")
	}
	if err := p.Reconfigure(ssh.Config{KnownHosts: kh, NoAgent: true, Jump: []string{"group=lab -oProxyCommand=id"}}); err == nil {
		t.Errorf("Reconfigure with an option as jump host succeeded")
	}
}

// TestSSHConfigAlias: an inventory host named by an ssh_config alias is
// reached with the file's HostName, Port, IdentityFile and ProxyJump, the
// jump host itself an alias; refused entries are left out.
func TestSSHConfigAlias(t *testing.T) {
	bastion := sshtest.Start(t, "127.0.31.50")
	target := sshtest.Start(t, "127.0.31.51")
	file := filepath.Join(t.TempDir(), "ssh_config")
	conf := fmt.Sprintf(`# felix test
Host web1 web2
    HostName %s
    Port %d
    IdentityFile %s
    ProxyJump jumpbox
Host jumpbox
    HostName=%s
    Port %d
    IdentityFile %s
Host web2
    ProxyCommand nc %%h %%p
Host evil
    HostName $(id)
    ProxyJump -oProxyCommand=id
Host *
    User root
`, target.Host, target.Port, target.ClientKey, bastion.Host, bastion.Port, bastion.ClientKey)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, knownHostsOf(t, bastion, target), func(c *ssh.Config) { c.SSHConfig = file })
	tg := model.Target{ID: "web1", SSH: &model.SSHTarget{Host: "web1"}}
	if got := serverAddrOf(t, p, tg); got != target.Host {
		t.Errorf("web1 arrived at %q; want %q", got, target.Host)
	}
	if !strings.Contains(bastion.Log(), "Accepted publickey") {
		t.Errorf("web1 did not go through jumpbox")
	}
	// evil's entries were refused: it is dialled as named, and fails.
	_, _, _, err := p.Run(context.Background(), model.Target{ID: "evil", SSH: &model.SSHTarget{Host: "evil", Port: 1}}, "true")
	if err == nil || strings.Contains(err.Error(), "id") && strings.Contains(err.Error(), "$(") {
		t.Errorf("evil: %v; want a plain connection failure", err)
	}
}

// TestJumpHungBastion: a bastion that never answers ends the attempt at
// its own connect timeout, and the error names it.
func TestJumpHungBastion(t *testing.T) {
	port := sshtest.Silent(t, "127.0.31.60")
	key := filepath.Join(t.TempDir(), "key")
	sshtest.WriteKey(t, key, "")
	p := newPool(t, filepath.Join(t.TempDir(), "known_hosts"), func(c *ssh.Config) {
		c.ConnectTimeout, c.KeyFiles = time.Second, []string{key}
	})
	tg := model.Target{ID: "t", SSH: &model.SSHTarget{Host: "127.0.31.61", Jump: []model.SSHHop{{Host: "127.0.31.60", Port: port}}}}
	_, _, _, err := p.Run(context.Background(), tg, "true")
	want := fmt.Sprintf("through jump host root@127.0.31.60:%d", port)
	if !errors.Is(err, exec.ErrUnreachable) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "ssh.connect_timeout") {
		t.Errorf("Run through a hung bastion = %v; want unreachable naming %q and ssh.connect_timeout", err, want)
	}
}
