package jobs

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

// testHosts are the agentless hosts added to the test inventory for the
// tests below: web1 (an accepted minion) and web3 (a pending one) also
// have SSH settings; the others have no minion.
var testHosts = []inventory.Host{
	{ID: "web1", Address: "10.0.0.1", User: "deploy", Labels: map[string]string{"via": "ssh", "role": "ignored"}},
	{ID: "web3", Address: "10.0.0.3", Port: 2222},
	{ID: "web5", Address: "10.0.0.5", Become: true, BecomeUser: "www", Labels: map[string]string{"role": "web"}},
	{ID: "ssh1", Address: "10.0.5.1", Port: 2222, KeyPath: "/etc/felix/id_ssh1", Labels: map[string]string{"role": "db"}},
	{ID: "ssh2", Address: "ssh2.example", User: "admin"},
}

// addTestHosts adds testHosts to store.
func addTestHosts(t *testing.T, store *inventory.Store) {
	t.Helper()
	for _, h := range testHosts {
		if _, err := store.AddHost(context.Background(), h, false, time.Now()); err != nil {
			t.Fatalf("add host %s: %v", h.ID, err)
		}
	}
}

// sshOf is the SSH part of a test host's target.
func sshOf(id string) *model.SSHTarget {
	for _, h := range testHosts {
		if h.ID == id {
			port := h.Port
			if port == 0 {
				port = 22
			}
			return &model.SSHTarget{Host: h.Address, Port: port, User: h.User, KeyPath: h.KeyPath, Become: h.Become, BecomeUser: h.BecomeUser}
		}
	}
	panic("no test host " + id)
}

// hostOnly is the target of a host without an accepted minion.
func hostOnly(id string) model.Target {
	s := sshOf(id)
	return model.Target{ID: id, Addr: fmt.Sprintf("%s:%d", s.Host, s.Port), SSH: s}
}

// factsUnknown is the target of a host whose facts a filter needs and
// could not be gathered.
func factsUnknown(id string) model.Target {
	t := hostOnly(id)
	t.Skip = model.StateUnreachable // TestResolveHosts compares errors apart; TestResolveHostFacts checks them
	return t
}

// both is the target of an accepted minion with SSH settings.
func both(id string) model.Target {
	t := accepted(id)
	t.SSH = sshOf(id)
	return t
}

func TestResolveHosts(t *testing.T) {
	store := newTestStore(t)
	addTestHosts(t, store)
	s := &Service{Store: store}
	tests := []struct {
		name     string
		patterns []string
		want     []model.Target
		wantErr  error
	}{
		{name: "host-only id", patterns: []string{"ssh1"}, want: []model.Target{hostOnly("ssh1")}},
		{name: "host with a DNS name", patterns: []string{"ssh2"}, want: []model.Target{hostOnly("ssh2")}},
		{name: "minion with ssh settings gets both", patterns: []string{"web1"}, want: []model.Target{both("web1")}},
		{name: "minion without ssh settings is unchanged", patterns: []string{"web2"}, want: []model.Target{accepted("web2")}},
		{name: "pending minion with ssh settings runs without its minion", patterns: []string{"web3"}, want: []model.Target{hostOnly("web3")}},
		{name: "rejected minion without ssh settings stays not accepted", patterns: []string{"web4"}, want: []model.Target{notAccepted("web4")}},
		{name: "unknown alone is no target", patterns: []string{"ssh9"}, wantErr: ErrNoTargets},
		{name: "glob over minions and hosts", patterns: []string{"web*"},
			want: []model.Target{both("web1"), accepted("web2"), hostOnly("web3"), hostOnly("web5")}},
		{name: "glob over hosts only", patterns: []string{"ssh?"}, want: []model.Target{hostOnly("ssh1"), hostOnly("ssh2")}},
		{name: "ip of a host", patterns: []string{"10.0.5.1"}, want: []model.Target{hostOnly("ssh1")}},
		{name: "ip of a minion and its host is one target", patterns: []string{"10.0.0.1"}, want: []model.Target{both("web1")}},
		{name: "ip of a pending minion with ssh settings", patterns: []string{"10.0.0.3"}, want: []model.Target{hostOnly("web3")}},
		{name: "cidr over hosts", patterns: []string{"10.0.5.0/24"}, want: []model.Target{hostOnly("ssh1")}},
		{name: "cidr over minions and hosts", patterns: []string{"10.0.0.0/29"},
			want: []model.Target{accepted("db2"), both("web1"), accepted("web2"), hostOnly("web3"), hostOnly("web5")}},
		{name: "host label filter", patterns: []string{"role=db"},
			want: []model.Target{accepted("db1"), accepted("db2"), hostOnly("ssh1")}},
		{name: "minion label beats its host's", patterns: []string{"role=web"},
			want: []model.Target{both("web1"), accepted("web2"), hostOnly("web3"), hostOnly("web5")}},
		{name: "host label of a minion", patterns: []string{"via=ssh"}, want: []model.Target{both("web1")}},
		{name: "hosts' facts cannot be gathered without ssh", patterns: []string{"ssh*", "os=debian"},
			want: []model.Target{factsUnknown("ssh1"), factsUnknown("ssh2")}},
		{name: "a label filter that fails needs no facts", patterns: []string{"ssh*", "role=web", "os=debian"}, wantErr: ErrNoTargets},
		{name: "glob and host label", patterns: []string{"ssh*", "role=db"}, want: []model.Target{hostOnly("ssh1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Resolve(context.Background(), tt.patterns)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want error %v", tt.patterns, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.patterns, err)
			}
			for i := range got {
				if (got[i].Skip != "") != (got[i].Error != "") {
					t.Errorf("%s: Skip %q with Error %q; want an error exactly when skipped", got[i].ID, got[i].Skip, got[i].Error)
				}
				got[i].Error = ""
				if got[i].SSH != nil {
					got[i].SSH.Labels = nil // the machine's labels, which the patterns already checked
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q) =\n  %s\nwant\n  %s", tt.patterns, show(got), show(tt.want))
			}
		})
	}
}

// show prints targets with their SSH settings.
func show(ts []model.Target) string {
	var parts []string
	for _, t := range ts {
		s := fmt.Sprintf("%+v", t)
		if t.SSH != nil {
			s += fmt.Sprintf(" ssh=%+v", *t.SSH)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n  ")
}

// TestTransportModes checks how the spec's transport reaches each target,
// and which hosts a forced mode skips before anything runs.
func TestTransportModes(t *testing.T) {
	store := newTestStore(t)
	addTestHosts(t, store)
	s := &Service{Store: store}
	targets := []string{"web1", "web2", "web3", "ssh1"}
	tests := []struct {
		mode string
		want string // id=mode/skip
	}{
		{"", "ssh1=auto/ web1=auto/ web2=auto/ web3=auto/"},
		{"auto", "ssh1=auto/ web1=auto/ web2=auto/ web3=auto/"},
		{"agent", "ssh1=agent/unreachable web1=agent/ web2=agent/ web3=agent/unreachable"},
		{"ssh", "ssh1=ssh/ web1=ssh/ web2=ssh/unreachable web3=ssh/"},
	}
	for _, tt := range tests {
		got, err := s.DryRun(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: targets, Transport: tt.mode})
		if err != nil {
			t.Fatalf("DryRun(transport %q) = %v", tt.mode, err)
		}
		var parts []string
		for _, tg := range got {
			parts = append(parts, fmt.Sprintf("%s=%s/%s", tg.ID, tg.Mode, tg.Skip))
			if tg.Skip != "" && tg.Error == "" {
				t.Errorf("transport %q: %s skipped without a reason", tt.mode, tg.ID)
			}
		}
		if g := strings.Join(parts, " "); g != tt.want {
			t.Errorf("DryRun(transport %q) = %s; want %s", tt.mode, g, tt.want)
		}
	}
	if _, err := s.DryRun(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: targets, Transport: "rsh"}); !errors.Is(err, ErrBadTarget) {
		t.Errorf("DryRun(transport rsh) = %v; want ErrBadTarget", err)
	}
}

// TestRunOverrides: a run's ssh_user and become replace the login and sudo
// of the hosts it reaches over SSH, for that run only.
func TestRunOverrides(t *testing.T) {
	store := newTestStore(t)
	addTestHosts(t, store)
	s := &Service{Store: store}
	tests := []struct {
		user       string
		become     bool
		becomeUser string
		want       string // id=user/become[:become user] for hosts with SSH settings
	}{
		{"", false, "", "ssh1=/false ssh2=admin/false web1=deploy/false web3=/false web5=/true:www"},
		{"ops", false, "", "ssh1=ops/false ssh2=ops/false web1=ops/false web3=ops/false web5=ops/true:www"},
		{"", true, "", "ssh1=/true ssh2=admin/true web1=deploy/true web3=/true web5=/true:www"},
		{"", false, "app", "ssh1=/true:app ssh2=admin/true:app web1=deploy/true:app web3=/true:app web5=/true:app"},
	}
	for _, tt := range tests {
		got, err := s.DryRun(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"*"},
			SSHUser: tt.user, Become: tt.become, BecomeUser: tt.becomeUser})
		if err != nil {
			t.Fatalf("DryRun: %v", err)
		}
		var parts []string
		for _, tg := range got {
			if tg.SSH != nil {
				b := fmt.Sprint(tg.SSH.Become)
				if tg.SSH.BecomeUser != "" {
					b += ":" + tg.SSH.BecomeUser
				}
				parts = append(parts, fmt.Sprintf("%s=%s/%s", tg.ID, tg.SSH.User, b))
			}
		}
		if g := strings.Join(parts, " "); g != tt.want {
			t.Errorf("DryRun(ssh_user %q, become %v, become_user %q) = %s; want %s", tt.user, tt.become, tt.becomeUser, g, tt.want)
		}
	}
	// The inventory is unchanged.
	got, _ := s.DryRun(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"web1"}})
	if got[0].SSH.User != "deploy" || got[0].SSH.Become {
		t.Errorf("after overridden runs web1 = %+v; want deploy without sudo", *got[0].SSH)
	}
}

// TestJobOverSelect runs a job through the selecting transport: each host's
// result records the transport that ran, an unreachable minion falls back to
// SSH once, and a rerun keeps the job's transport.
func TestJobOverSelect(t *testing.T) {
	agent := &fakeTransport{run: func(_ context.Context, tg model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
		if tg.ID == "web1" {
			return model.Exit{}, fmt.Errorf("dial minion web1: refused: %w", exec.ErrUnreachable)
		}
		return model.Exit{}, nil
	}}
	ssh := &fakeTransport{}
	s := newService(t, &transport.Select{Agent: agent, SSH: ssh})
	addTestHosts(t, s.Store)
	ctx := context.Background()
	job, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"web1", "web2", "ssh1"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	_, rs := waitJob(t, s, job.ID)
	var got []string
	for _, r := range rs {
		got = append(got, r.Host+"="+string(r.State)+"/"+r.Transport)
	}
	if want := []string{"ssh1=ok/ssh", "web1=ok/ssh", "web2=ok/agent"}; !slices.Equal(got, want) {
		t.Errorf("results %q; want %q", got, want)
	}
	if a, sh := agent.hosts(), ssh.hosts(); len(agent.callsOf("web1")) != 1 || len(ssh.callsOf("web1")) != 1 || len(a) != 2 || len(sh) != 2 {
		t.Errorf("agent ran %q, ssh ran %q; want web1 once on each, web2 on the agent, ssh1 over ssh", a, sh)
	}

	forced, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"web1", "web2"}, Transport: "ssh"}, "")
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, s, forced.ID)
	again, err := s.Rerun(ctx, forced.ID, false)
	if err != nil {
		t.Fatalf("Rerun = %v", err)
	}
	_, rs = waitJob(t, s, again.ID)
	if got := states(rs); got != "web1=ok web2=unreachable" || rs[0].Transport != "ssh" {
		t.Errorf("rerun of a transport=ssh job: %s (web1 over %q); want web1 ok over ssh, web2 unreachable", got, rs[0].Transport)
	}
	if n := len(agent.callsOf("web1")); n != 1 {
		t.Errorf("the agent ran web1 %d times; want 1 (the ssh jobs never use it)", n)
	}
}
