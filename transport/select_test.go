package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// outcome is what a fake transport's Exec does.
type outcome struct {
	exit model.Exit
	err  error
	out  string // written to stdout before returning
}

// fake is a transport whose outcome the test sets; it records its calls.
type fake struct {
	name string
	outcome

	mu    sync.Mutex // protects calls
	calls int
}

func (f *fake) Name() string { return f.name }

func (f *fake) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	if f.out != "" {
		out(model.Stdout, []byte(f.out))
	}
	return f.exit, f.err
}

func (f *fake) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var (
	unreachable = fmt.Errorf("dial minion web1: connection refused: %w", exec.ErrUnreachable)
	broken      = errors.New("exec on minion web1: stream broke (the minion never confirmed the start; the command may or may not have run)")
	sshSettings = &model.SSHTarget{Host: "10.0.0.1", Port: 22}
)

func TestSelect(t *testing.T) {
	tests := []struct {
		name      string
		target    model.Target
		agent     outcome
		ssh       outcome
		noSSH     bool // the master has no ssh transport
		wantAgent int  // calls
		wantSSH   int
		wantUsed  string // Exit.Transport
		wantErr   string // substring; "" for none
		wantUnr   bool   // the error wraps exec.ErrUnreachable
		wantCode  int
	}{
		{name: "auto: accepted minion runs on the agent",
			target:    model.Target{ID: "web1", Fingerprint: "fp"},
			agent:     outcome{exit: model.Exit{Code: 3}},
			wantAgent: 1, wantUsed: NameAgent, wantCode: 3},
		{name: "auto: minion and ssh settings prefer the agent",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			wantAgent: 1, wantUsed: NameAgent},
		{name: "auto: host without a minion runs over ssh",
			target:  model.Target{ID: "web1", SSH: sshSettings},
			ssh:     outcome{exit: model.Exit{Code: 4}},
			wantSSH: 1, wantUsed: NameSSH, wantCode: 4},
		{name: "auto: agent unreachable falls back to ssh, which runs once",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			agent:     outcome{err: unreachable},
			wantAgent: 1, wantSSH: 1, wantUsed: NameSSH},
		{name: "auto: fallback that fails says both",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			agent:     outcome{err: unreachable},
			ssh:       outcome{err: fmt.Errorf("ssh web1: connection refused: %w", exec.ErrUnreachable)},
			wantAgent: 1, wantSSH: 1, wantUsed: NameSSH, wantErr: "ssh web1: connection refused", wantUnr: true},
		{name: "auto: agent failed after the start is never retried",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			agent:     outcome{err: broken},
			wantAgent: 1, wantUsed: NameAgent, wantErr: "stream broke"},
		{name: "auto: agent unreachable after output is never retried",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			agent:     outcome{err: unreachable, out: "partial\n"},
			wantAgent: 1, wantUsed: NameAgent, wantErr: "connection refused", wantUnr: true},
		{name: "auto: agent unreachable without ssh settings stays unreachable",
			target:    model.Target{ID: "web1", Fingerprint: "fp"},
			agent:     outcome{err: unreachable},
			wantAgent: 1, wantUsed: NameAgent, wantErr: "connection refused", wantUnr: true},
		{name: "auto: agent unreachable and the master has no ssh",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings},
			agent:     outcome{err: unreachable},
			noSSH:     true,
			wantAgent: 1, wantUsed: NameAgent, wantErr: "connection refused", wantUnr: true},
		{name: "auto: neither minion nor ssh settings",
			target:  model.Target{ID: "web1"},
			wantErr: "no accepted minion and no ssh settings", wantUnr: true},
		{name: "auto is the empty mode too",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeAuto},
			agent:     outcome{err: unreachable},
			wantAgent: 1, wantSSH: 1, wantUsed: NameSSH},

		{name: "agent: runs on the agent",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeAgent},
			wantAgent: 1, wantUsed: NameAgent},
		{name: "agent: unreachable never falls back",
			target:    model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeAgent},
			agent:     outcome{err: unreachable},
			wantAgent: 1, wantUsed: NameAgent, wantErr: "connection refused", wantUnr: true},
		{name: "agent: no accepted minion",
			target:   model.Target{ID: "web1", SSH: sshSettings, Mode: model.ModeAgent},
			wantUsed: NameAgent, wantErr: "no accepted minion", wantUnr: true},

		{name: "ssh: runs over ssh although a minion is accepted",
			target:  model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeSSH},
			wantSSH: 1, wantUsed: NameSSH},
		{name: "ssh: no ssh settings",
			target:   model.Target{ID: "web1", Fingerprint: "fp", Mode: model.ModeSSH},
			wantUsed: NameSSH, wantErr: "no ssh settings", wantUnr: true},
		{name: "ssh: the master has no ssh transport",
			target:   model.Target{ID: "web1", SSH: sshSettings, Mode: model.ModeSSH},
			noSSH:    true,
			wantUsed: NameSSH, wantErr: "without an ssh transport", wantUnr: true},
		{name: "ssh: failure is not retried on the agent",
			target:  model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeSSH},
			ssh:     outcome{err: fmt.Errorf("ssh web1: %w", exec.ErrUnreachable)},
			wantSSH: 1, wantUsed: NameSSH, wantErr: "ssh web1", wantUnr: true},

		{name: "unknown mode",
			target:  model.Target{ID: "web1", Fingerprint: "fp", Mode: "carrier-pigeon"},
			wantErr: `transport "carrier-pigeon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, ssh := &fake{name: "agent-fake", outcome: tt.agent}, &fake{name: "ssh-fake", outcome: tt.ssh}
			s := &Select{Agent: agent}
			if !tt.noSSH {
				s.SSH = ssh
			}
			var out strings.Builder
			var mu sync.Mutex
			exit, err := s.Exec(context.Background(), tt.target, model.Command{Line: "true"}, func(_ model.Stream, p []byte) {
				mu.Lock()
				out.Write(p)
				mu.Unlock()
			})
			if agent.n() != tt.wantAgent || ssh.n() != tt.wantSSH {
				t.Errorf("calls: agent %d, ssh %d; want %d, %d", agent.n(), ssh.n(), tt.wantAgent, tt.wantSSH)
			}
			if exit.Transport != tt.wantUsed {
				t.Errorf("Exit.Transport = %q; want %q", exit.Transport, tt.wantUsed)
			}
			if exit.Code != tt.wantCode {
				t.Errorf("Exit.Code = %d; want %d", exit.Code, tt.wantCode)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Exec = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Exec = %v; want an error containing %q", err, tt.wantErr)
			}
			if err != nil && errors.Is(err, exec.ErrUnreachable) != tt.wantUnr {
				t.Errorf("errors.Is(%v, ErrUnreachable) = %v; want %v", err, !tt.wantUnr, tt.wantUnr)
			}
			if tt.agent.out != "" && out.String() != tt.agent.out {
				t.Errorf("output %q; want %q once", out.String(), tt.agent.out)
			}
		})
	}
}

// TestSelectCancelledNoFallback: a job cancelled while the minion was
// being dialled does not start the command over SSH.
func TestSelectCancelledNoFallback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	agent, ssh := &fake{name: "a", outcome: outcome{err: unreachable}}, &fake{name: "s"}
	s := &Select{Agent: agent, SSH: ssh}
	exit, err := s.Exec(ctx, model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings}, model.Command{Line: "true"}, func(model.Stream, []byte) {})
	if ssh.n() != 0 || err == nil || exit.Transport != NameAgent {
		t.Errorf("Exec on a cancelled context = %+v, %v with %d ssh calls; want the agent's error and no ssh", exit, err, ssh.n())
	}
}

// TestSelectInEngine: the engine records which transport ran per host.
func TestSelectInEngine(t *testing.T) {
	agent, ssh := &fake{name: "a", outcome: outcome{err: unreachable}}, &fake{name: "s"}
	e := &exec.Engine{Transport: &Select{Agent: agent, SSH: ssh}}
	rs := e.Run(context.Background(), model.Command{Line: "true"}, []model.Target{
		{ID: "both", Fingerprint: "fp", SSH: sshSettings},
		{ID: "minion-only", Fingerprint: "fp"},
		{ID: "host-only", SSH: sshSettings},
	}, exec.Options{}, exec.Hooks{})
	got := make([]string, len(rs))
	for i, r := range rs {
		got[i] = fmt.Sprintf("%s %s %s", r.Host, r.State, r.Transport)
	}
	want := []string{"both ok ssh", "minion-only unreachable agent", "host-only ok ssh"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("results %q; want %q", got, want)
	}
}

func TestPlan(t *testing.T) {
	tests := []struct {
		t               model.Target
		first, fallback string
	}{
		{model.Target{Fingerprint: "fp", SSH: sshSettings}, NameAgent, NameSSH},
		{model.Target{Fingerprint: "fp"}, NameAgent, ""},
		{model.Target{SSH: sshSettings}, NameSSH, ""},
		{model.Target{}, "", ""},
		{model.Target{Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeAgent}, NameAgent, ""},
		{model.Target{SSH: sshSettings, Mode: model.ModeAgent}, "", ""},
		{model.Target{Fingerprint: "fp", SSH: sshSettings, Mode: model.ModeSSH}, NameSSH, ""},
		{model.Target{Fingerprint: "fp", Mode: model.ModeSSH}, "", ""},
	}
	for _, tt := range tests {
		first, fallback := Plan(tt.t)
		if first != tt.first || fallback != tt.fallback {
			t.Errorf("Plan(%+v) = %q, %q; want %q, %q", tt.t, first, fallback, tt.first, tt.fallback)
		}
	}
}

func TestValidMode(t *testing.T) {
	for _, m := range []string{"", "auto", "agent", "ssh"} {
		if err := model.ValidMode(m); err != nil {
			t.Errorf("ValidMode(%q) = %v; want nil", m, err)
		}
	}
	for _, m := range []string{"AUTO", "grpc", "ssh ", "agent,ssh"} {
		if err := model.ValidMode(m); err == nil {
			t.Errorf("ValidMode(%q) = nil; want an error", m)
		}
	}
}

// fileFake is a transport that can also transfer files.
type fileFake struct {
	fake
	putErr error
	puts   int
}

func (f *fileFake) Put(ctx context.Context, t model.Target, p model.PutFile) (model.PutResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	return model.PutResult{Changed: true}, f.putErr
}

func (f *fileFake) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	return 0, "", f.putErr
}

func TestSelectTransfer(t *testing.T) {
	push := model.Command{Push: &model.Push{Dest: "/etc/motd", Entries: []model.PushEntry{{Rel: ".", SHA256: "aa"}}}}
	target := model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings}

	agent, ssh := &fileFake{fake: fake{name: NameAgent}, putErr: unreachable}, &fileFake{fake: fake{name: NameSSH}}
	exit, err := (&Select{Agent: agent, SSH: ssh}).Exec(context.Background(), target, push, func(model.Stream, []byte) {})
	if err != nil || exit.Transport != NameSSH || exit.Files == nil || exit.Files.Changed != 1 || agent.puts != 1 || ssh.puts != 1 {
		t.Fatalf("unreachable minion: exit %+v, %v; puts agent %d ssh %d", exit, err, agent.puts, ssh.puts)
	}
	if agent.n()+ssh.n() != 0 {
		t.Error("a transfer ran Exec")
	}

	agent, ssh = &fileFake{fake: fake{name: NameAgent}, putErr: broken}, &fileFake{fake: fake{name: NameSSH}}
	if _, err := (&Select{Agent: agent, SSH: ssh}).Exec(context.Background(), target, push, func(model.Stream, []byte) {}); err == nil || ssh.puts != 0 {
		t.Fatalf("broken minion: %v, ssh puts %d (must not fall back)", err, ssh.puts)
	}

	// A transport without Put and Get: the host is unreachable for files.
	exit, err = (&Select{Agent: &fake{name: NameAgent}}).Exec(context.Background(), model.Target{ID: "web1", Fingerprint: "fp"}, push, func(model.Stream, []byte) {})
	if !errors.Is(err, exec.ErrUnreachable) || exit.Transport != NameAgent {
		t.Fatalf("no file transport: %+v, %v", exit, err)
	}
}
