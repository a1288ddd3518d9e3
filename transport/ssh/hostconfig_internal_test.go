package ssh

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
)

func TestLoadSSHConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config")
	conf := `User first
Host *.lab !db.lab
    User lab
    Port 2222
    IdentityFile ~/.ssh/lab_key
Host db.lab
    User dba
Host web?
    HostName 10.0.0.9
    ProxyJump ops@bastion:2200,jump2
    ProxyJump ignored-second
Host bad
    HostName a;reboot
    User $(id)
    ProxyJump -oProxyCommand=id
    IdentityFile %d/.ssh/k
    ProxyCommand nc %h %p
Include other.conf
Match host x
    User matched
Host *
    Port 2200
    User last
`
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	c, err := loadSSHConfig(file, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	tests := []struct {
		host string
		want sshHost
	}{
		{"web1.lab", sshHost{user: "first", port: 2222, identityFile: filepath.Join(home, ".ssh/lab_key")}},
		{"db.lab", sshHost{user: "first", port: 2200}},
		{"web1", sshHost{user: "first", port: 2200, hostName: "10.0.0.9", proxyJump: "ops@bastion:2200,jump2"}},
		{"bad", sshHost{user: "first", port: 2200}},
		{"x", sshHost{user: "first", port: 2200}},
	}
	for _, tt := range tests {
		if got := c.lookup(tt.host); got != tt.want {
			t.Errorf("lookup(%q) = %+v; want %+v", tt.host, got, tt.want)
		}
	}
	log := logBuf.String()
	for _, want := range []string{"line=15", "line=16", "line=17", "line=18", "ProxyCommand is not supported", "Include is not supported", "Match blocks are not supported"} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not mention %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "line=11") {
		t.Errorf("log refused the second ProxyJump of web?, which is merely ignored:\n%s", log)
	}
}

func TestApplyHostConfigPrecedence(t *testing.T) {
	rules, err := parseJumpRules([]string{"group=lab gw1", "env=prod gw2:2200"})
	if err != nil {
		t.Fatal(err)
	}
	set := &settings{jumpRules: rules, sshConfig: &sshConfig{blocks: []sshBlock{
		{patterns: []string{"h1"}, values: map[string]string{"hostname": "10.0.0.1", "user": "cfg", "port": "2022", "proxyjump": "gw3"}},
		{patterns: []string{"gw1"}, values: map[string]string{"hostname": "10.9.9.9", "user": "gwuser"}},
	}}}
	tests := []struct {
		name string
		in   model.SSHTarget
		want model.SSHTarget
	}{
		{"ssh_config fills unset fields", model.SSHTarget{Host: "h1", Port: 22},
			model.SSHTarget{Host: "10.0.0.1", Port: 2022, User: "cfg", Jump: []model.SSHHop{{Host: "gw3"}}}},
		{"inventory wins", model.SSHTarget{Host: "h1", Port: 2200, User: "inv", Jump: []model.SSHHop{{Host: "own"}}},
			model.SSHTarget{Host: "10.0.0.1", Port: 2200, User: "inv", Jump: []model.SSHHop{{Host: "own"}}}},
		{"group rule before ssh_config, its hop an alias", model.SSHTarget{Host: "h1", Labels: map[string]string{"group": "lab"}},
			model.SSHTarget{Host: "10.0.0.1", Port: 2022, User: "cfg", Labels: map[string]string{"group": "lab"}, Jump: []model.SSHHop{{Host: "10.9.9.9", User: "gwuser"}}}},
		{"group rule matches an inventory group (an ancestor)", model.SSHTarget{Host: "h2", Groups: []string{"web", "lab"}},
			model.SSHTarget{Host: "h2", Groups: []string{"web", "lab"}, Jump: []model.SSHHop{{Host: "10.9.9.9", User: "gwuser"}}}},
		{"only the group key matches groups", model.SSHTarget{Host: "h2", Groups: []string{"prod"}},
			model.SSHTarget{Host: "h2", Groups: []string{"prod"}}},
		{"none wins over both", model.SSHTarget{Host: "h1", NoJump: true, Labels: map[string]string{"env": "prod"}},
			model.SSHTarget{Host: "10.0.0.1", Port: 2022, User: "cfg", NoJump: true, Labels: map[string]string{"env": "prod"}}},
	}
	for _, tt := range tests {
		got := set.applyHostConfig(tt.in)
		if model.FormatProxyJump(got.Jump) != model.FormatProxyJump(tt.want.Jump) || got.Host != tt.want.Host || got.Port != tt.want.Port || got.User != tt.want.User {
			t.Errorf("%s: applyHostConfig(%+v) = %+v; want %+v", tt.name, tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"group=lab", "lab gw1", "group=lab gw1;id", "=x gw1", "group=[ gw1"} {
		if _, err := parseJumpRules([]string{bad}); err == nil {
			t.Errorf("parseJumpRules(%q) succeeded", bad)
		}
	}
}
