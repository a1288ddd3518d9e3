package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// fakeAgentUpgrade is a minion that answers its ping with infoErr, or
// runs binary sha.
type fakeAgentUpgrade struct {
	infoErr error
	sha     string
	pinged  int
}

func (f *fakeAgentUpgrade) Info(context.Context, model.Target) (model.MinionInfo, error) {
	f.pinged++
	return model.MinionInfo{Version: "vA", BinarySHA256: f.sha}, f.infoErr
}

func (f *fakeAgentUpgrade) Upgrade(context.Context, model.Target, model.UpgradeBinary) (string, bool, error) {
	return "", false, errors.New("the fake minion upgrades nothing")
}

// fakeSSHUpgrade is a bootstrapped host: it picks the binary for
// linux/arch and reports rep.
type fakeSSHUpgrade struct {
	arch   string
	rep    model.UpgradeReport
	err    error
	called int
	picked model.UpgradeBinary
}

func (f *fakeSSHUpgrade) Upgrade(_ context.Context, _ model.Target, pick func(goos, goarch string) (model.UpgradeBinary, error)) (model.UpgradeReport, error) {
	f.called++
	bin, err := pick("linux", f.arch)
	if err != nil {
		return model.UpgradeReport{}, fmt.Errorf("%w; nothing changed", err)
	}
	f.picked = bin
	return f.rep, f.err
}

// TestUpgradeVia checks which path a fleet upgrade takes per host: the
// minion over gRPC when it answers, SSH for a host without an accepted
// minion, and SSH in auto mode only when the minion is unreachable and
// the host has SSH settings; the outcome and transport as reported.
func TestUpgradeVia(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	unreachable := fmt.Errorf("dial minion web1: connection refused: %w", exec.ErrUnreachable)
	ssh := &model.SSHTarget{Host: "127.0.0.8", Port: 22}
	both := model.Target{ID: "web1", Fingerprint: fakeFingerprint("web1"), SSH: ssh}
	minionOnly := model.Target{ID: "web1", Fingerprint: fakeFingerprint("web1")}
	sshOnly := model.Target{ID: "web1", SSH: ssh}
	upgraded := model.UpgradeReport{Outcome: model.OutcomeUpgraded, From: "vA", To: "vB"}
	tests := []struct {
		name      string
		mode      string
		target    model.Target
		infoErr   error
		noSSH     bool // the master has no SSH transport
		rep       model.UpgradeReport
		repErr    error
		arch      string
		wantPing  bool
		wantSSH   bool
		wantState string // "ok", "unreachable", "failed"
		wantOut   string
		wantErr   string
		wantTrans string
	}{
		{name: "auto: the minion answers: gRPC", mode: model.ModeAuto, target: both, wantPing: true,
			wantState: "ok", wantOut: "unchanged vA (it runs that binary"},
		{name: "auto: minion unreachable, SSH settings: SSH", mode: model.ModeAuto, target: both, infoErr: unreachable, rep: upgraded,
			wantPing: true, wantSSH: true, wantState: "ok", wantOut: "upgraded vA -> vB (over ssh)", wantTrans: "ssh"},
		{name: "auto: minion refuses (not unreachable): no SSH", mode: model.ModeAuto, target: both, infoErr: errors.New("certificate mismatch"),
			wantPing: true, wantState: "failed", wantErr: "certificate mismatch (nothing changed)"},
		{name: "auto: minion unreachable, no SSH settings", mode: model.ModeAuto, target: minionOnly, infoErr: unreachable,
			wantPing: true, wantState: "unreachable", wantErr: "nothing changed"},
		{name: "auto: agentless only: SSH", mode: model.ModeAuto, target: sshOnly, rep: upgraded,
			wantSSH: true, wantState: "ok", wantOut: "upgraded vA -> vB (over ssh)", wantTrans: "ssh"},
		{name: "agent: never SSH", mode: model.ModeAgent, target: both, infoErr: unreachable,
			wantPing: true, wantState: "unreachable", wantErr: "nothing changed"},
		{name: "ssh: never the minion", mode: model.ModeSSH, target: both, rep: model.UpgradeReport{Outcome: model.OutcomeUnchanged, From: "vB", To: "vB"},
			wantSSH: true, wantState: "ok", wantOut: "unchanged vB (over ssh: it has that binary, nothing replaced)", wantTrans: "ssh"},
		{name: "auto: agentless, master without SSH", mode: model.ModeAuto, target: sshOnly, noSSH: true,
			wantState: "unreachable", wantErr: "without an ssh transport", wantTrans: "ssh"},
		{name: "rolled back over SSH", mode: model.ModeAuto, target: sshOnly,
			rep:    model.UpgradeReport{Outcome: model.OutcomeRolledBack, From: "vA", To: "vB", Detail: "did not register"},
			repErr: errors.New("rolled back to vA: did not register"), wantSSH: true, wantState: "failed",
			wantOut: "rolled_back vA -> vB (over ssh): did not register", wantErr: "rolled back to vA", wantTrans: "ssh"},
		{name: "SSH host of another arch: the binary refused", mode: model.ModeAuto, target: sshOnly, arch: "arm64",
			wantSSH: true, wantState: "failed", wantErr: "the binary is for linux/amd64, the host is linux/arm64; nothing changed", wantTrans: "ssh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := &fakeAgentUpgrade{infoErr: tt.infoErr, sha: sha}
			arch := tt.arch
			if arch == "" {
				arch = "amd64"
			}
			sshUp := &fakeSSHUpgrade{arch: arch, rep: tt.rep, err: tt.repErr}
			s := &Service{Store: newTestStore(t), Upgrader: agent}
			if !tt.noSSH {
				s.SSHUpgrader = sshUp
			}
			spec := model.JobSpec{Timeout: 5 * time.Second,
				Upgrade: &model.UpgradeSpec{Binary: sha, BinaryOS: "linux", BinaryArch: "amd64"}}
			u := &upgrader{s: s, spec: spec, dists: map[string]*distBinary{}}
			target := tt.target
			target.Mode = tt.mode
			var out strings.Builder
			exit, err := u.Exec(context.Background(), target, model.Command{}, func(_ model.Stream, p []byte) { out.Write(p) })

			if got := agent.pinged > 0; got != tt.wantPing {
				t.Errorf("minion pinged = %v; want %v", got, tt.wantPing)
			}
			if got := sshUp.called > 0; got != tt.wantSSH {
				t.Errorf("upgraded over SSH = %v; want %v", got, tt.wantSSH)
			}
			state := "ok"
			switch {
			case err != nil && errors.Is(err, exec.ErrUnreachable):
				state = "unreachable"
			case err != nil || exit.Code != 0:
				state = "failed"
			}
			if state != tt.wantState {
				t.Errorf("state = %s (exit %d, err %v); want %s", state, exit.Code, err, tt.wantState)
			}
			if !strings.HasPrefix(out.String(), tt.wantOut) {
				t.Errorf("stdout = %q; want it to start with %q", out.String(), tt.wantOut)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err = %v; want it to contain %q", err, tt.wantErr)
			}
			if exit.Transport != tt.wantTrans {
				t.Errorf("transport = %q; want %q", exit.Transport, tt.wantTrans)
			}
			if tt.wantSSH && tt.wantState == "ok" && sshUp.picked.SHA256 != sha {
				t.Errorf("binary sent over SSH = %+v; want the request's (sha256 %s)", sshUp.picked, sha)
			}
		})
	}
}

// TestPickRefusesWindows: a fleet upgrade sends nothing to a Windows
// minion (its hand-over is not built), and says what to do instead.
func TestPickRefusesWindows(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		_, err := (&upgrader{}).pick("windows", arch)
		if err == nil || !strings.Contains(err.Error(), "not supported") || !strings.Contains(err.Error(), "nothing was sent") {
			t.Errorf("pick(windows, %s) = %v; want a refusal saying nothing was sent", arch, err)
		}
	}
}
