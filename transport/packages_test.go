package transport

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// scripted is a transport whose calls end as its outcomes say, in turn
// (the last one repeats); it records the command lines.
type scripted struct {
	name     string
	outcomes []outcome

	mu    sync.Mutex // protects lines
	lines []string
}

func (f *scripted) Name() string { return f.name }

func (f *scripted) Exec(_ context.Context, _ model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	f.mu.Lock()
	n := len(f.lines)
	f.lines = append(f.lines, cmd.Line)
	f.mu.Unlock()
	o := f.outcomes[min(n, len(f.outcomes)-1)]
	if o.out != "" {
		out(model.Stdout, []byte(o.out))
	}
	return o.exit, o.err
}

func (f *scripted) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// stubDriver stands in for packages.Run: it runs a query whose output it
// keeps, then the manager, whose output it streams, and reports the spec's
// packages installed. An error of a command is returned unchanged.
func stubDriver(ctx context.Context, run Runner, t model.Target, spec *model.PkgSpec, out model.OutputFunc) (model.Exit, error) {
	if _, err := run(ctx, model.Command{Line: "query"}, func(model.Stream, []byte) {}); err != nil {
		return model.Exit{Code: -1}, err
	}
	if _, err := run(ctx, model.Command{Line: "manager " + t.PkgManager}, out); err != nil {
		return model.Exit{Code: -1}, err
	}
	rep := &model.PkgReport{Manager: t.PkgManager}
	for _, p := range spec.Packages {
		rep.Packages = append(rep.Packages, model.PkgChange{Name: p.Name, After: "1.0", State: model.PkgChanged})
	}
	rep.Count()
	return model.Exit{Packages: rep}, nil
}

// TestSelectPackages: a package job goes to the package driver, whose
// commands run through the selected transport's Exec; it falls back to
// SSH only when its first command could not reach the minion.
func TestSelectPackages(t *testing.T) {
	defer func(old func(context.Context, Runner, model.Target, *model.PkgSpec, model.OutputFunc) (model.Exit, error)) {
		runPackages = old
	}(runPackages)
	runPackages = stubDriver
	ok := []outcome{{out: "query output, kept by the driver\n"}, {out: "Setting up nginx\n"}}
	both := model.Target{ID: "web1", Fingerprint: "fp", SSH: sshSettings, PkgManager: model.PkgApt}
	tests := []struct {
		name       string
		target     model.Target
		agent, ssh []outcome
		wantAgent  []string // command lines run
		wantSSH    []string
		wantUsed   string
		wantErr    string
		wantReport bool
	}{
		{name: "auto: on the minion", target: both, agent: ok,
			wantAgent: []string{"query", "manager apt"}, wantUsed: NameAgent, wantReport: true},
		{name: "ssh mode: over ssh", target: withMode(both, model.ModeSSH), ssh: ok,
			wantSSH: []string{"query", "manager apt"}, wantUsed: NameSSH, wantReport: true},
		{name: "auto: minion unreachable at the first command falls back to ssh", target: both,
			agent: []outcome{{err: unreachable}}, ssh: ok,
			wantAgent: []string{"query"}, wantSSH: []string{"query", "manager apt"}, wantUsed: NameSSH, wantReport: true},
		{name: "auto: minion unreachable after a command ran is never retried", target: both,
			agent:     []outcome{{}, {err: unreachable}},
			wantAgent: []string{"query", "manager apt"}, wantUsed: NameAgent, wantErr: "connection refused"},
		{name: "agent mode: unreachable never falls back", target: withMode(both, model.ModeAgent),
			agent:     []outcome{{err: unreachable}},
			wantAgent: []string{"query"}, wantUsed: NameAgent, wantErr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := &scripted{name: "agent-fake", outcomes: append(tt.agent, outcome{})}
			ssh := &scripted{name: "ssh-fake", outcomes: append(tt.ssh, outcome{})}
			s := &Select{Agent: agent, SSH: ssh}
			var out strings.Builder
			spec := &model.PkgSpec{Action: model.PkgInstall, Packages: []model.Pkg{{Name: "nginx"}}}
			exit, err := s.Exec(context.Background(), tt.target, model.Command{Packages: spec}, func(_ model.Stream, p []byte) {
				out.Write(p)
			})
			if got := agent.calls(); !reflect.DeepEqual(got, tt.wantAgent) {
				t.Errorf("agent ran %q; want %q", got, tt.wantAgent)
			}
			if got := ssh.calls(); !reflect.DeepEqual(got, tt.wantSSH) {
				t.Errorf("ssh ran %q; want %q", got, tt.wantSSH)
			}
			if exit.Transport != tt.wantUsed {
				t.Errorf("Exit.Transport = %q; want %q", exit.Transport, tt.wantUsed)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Exec = %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Exec = %v; want an error containing %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Exec = %v; want it to wrap ErrUnreachable", err)
			}
			if (exit.Packages != nil) != tt.wantReport {
				t.Errorf("report %+v; want one: %v", exit.Packages, tt.wantReport)
			}
			if tt.wantReport && out.String() != "Setting up nginx\n" {
				t.Errorf("output %q; want the manager's, once", out.String())
			}
		})
	}
}

// TestSelectPackagesWithoutDriver: without a package driver a package
// job fails on the host, and nothing runs there.
func TestSelectPackagesWithoutDriver(t *testing.T) {
	defer func(old func(context.Context, Runner, model.Target, *model.PkgSpec, model.OutputFunc) (model.Exit, error)) {
		runPackages = old
	}(runPackages)
	runPackages = nil
	agent := &scripted{name: "agent-fake", outcomes: []outcome{{}}}
	s := &Select{Agent: agent}
	_, err := s.Exec(context.Background(), model.Target{ID: "web1", Fingerprint: "fp"},
		model.Command{Packages: &model.PkgSpec{Action: model.PkgList}}, func(model.Stream, []byte) {})
	if err == nil || !strings.Contains(err.Error(), "no package driver") || len(agent.calls()) != 0 {
		t.Errorf("Exec = %v after %q; want no package driver, nothing run", err, agent.calls())
	}
}

func withMode(t model.Target, mode string) model.Target {
	t.Mode = mode
	return t
}
