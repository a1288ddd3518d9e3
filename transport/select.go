// Package transport chooses, per host, how a command reaches it: through
// the host's minion (the agent transport, gRPC with mutual TLS, in
// transport/agent) or agentlessly over SSH (transport/ssh). The choice
// follows the request's mode:
//
//   - "agent" runs on the minion only. A host without an accepted minion
//     ends unreachable, and an unreachable minion is never replaced by SSH.
//   - "ssh" runs over SSH only; a host without SSH settings ends unreachable.
//   - "auto" (the default) runs on the minion when the host has an accepted
//     one (a pinned fingerprint), else over SSH when the host has SSH
//     settings. When the minion cannot be reached before the command was
//     sent (an error wrapping exec.ErrUnreachable, and no output seen) and
//     the host has SSH settings, the command runs over SSH instead.
//
// A command is never run twice on a host: the only fallback is after an
// error that guarantees nothing was sent. A minion that failed after the
// command started (a broken stream, a timeout) ends as that failure.
// Every Exit names the transport that ran, or was last tried, so each
// host's result records it. File transfers (model.Command Push and Fetch)
// follow the same selection and fallback through the transports' Put and
// Get (exec.FileTransport). Package jobs (model.Command Packages) too: the
// package driver (packages.Run) runs its fixed commands one by one through
// the chosen transport's Exec — a minion, or SSH with the host's become —
// and falls back only when its very first command could not reach the
// host (then nothing ran). Apply jobs (model.Command Apply) the same way
// through the state driver (state.Run), which also places files through
// the transport's Put.
package transport

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/packages"
	"github.com/felix-ops/felix/state"
)

// Names of the transports as recorded in results. They are the names the
// agent and ssh transports report; kept here so this package imports
// neither.
const (
	NameAgent = "agent"
	NameSSH   = "ssh"
)

// ErrNoSSH marks a host that needs SSH while the master has no SSH transport.
var ErrNoSSH = errors.New("the master runs without an ssh transport")

// Select is the selecting transport: it runs each target on Agent or SSH
// following the target's Mode (see the package comment). SSH may be nil
// when the master has no SSH transport; hosts that need it then end
// unreachable with a clear error.
type Select struct {
	Agent exec.Transport
	SSH   exec.Transport
}

var _ exec.Transport = (*Select)(nil)

// Name returns "auto"; each Exit says which transport actually ran.
func (s *Select) Name() string { return model.ModeAuto }

// Plan says which transport a target would use first, and which one it
// falls back to in auto mode when the first cannot reach it ("" for none).
// It is what Exec does, for dry runs; "" first means the target cannot run.
func Plan(t model.Target) (first, fallback string) {
	switch t.Mode {
	case model.ModeAgent:
		if t.Fingerprint != "" {
			return NameAgent, ""
		}
	case model.ModeSSH:
		if t.SSH != nil {
			return NameSSH, ""
		}
	case "", model.ModeAuto:
		switch {
		case t.Fingerprint != "" && t.SSH != nil:
			return NameAgent, NameSSH
		case t.Fingerprint != "":
			return NameAgent, ""
		case t.SSH != nil:
			return NameSSH, ""
		}
	}
	return "", ""
}

// Exec runs cmd on t through the transport its mode selects.
func (s *Select) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	switch t.Mode {
	case model.ModeAgent:
		if t.Fingerprint == "" {
			return model.Exit{Transport: NameAgent}, fmt.Errorf("%s has no accepted minion (transport agent): %w", t.ID, exec.ErrUnreachable)
		}
		return s.agent(ctx, t, cmd, out, nil)
	case model.ModeSSH:
		return s.ssh(ctx, t, cmd, out)
	case "", model.ModeAuto:
	default:
		return model.Exit{}, fmt.Errorf("run on %s: %w", t.ID, model.ValidMode(t.Mode))
	}
	if t.Fingerprint == "" {
		if t.SSH == nil {
			return model.Exit{}, fmt.Errorf("%s has no accepted minion and no ssh settings (add them with felix hosts add): %w", t.ID, exec.ErrUnreachable)
		}
		return s.ssh(ctx, t, cmd, out)
	}
	var wrote, ran atomic.Bool
	exit, err := s.agent(ctx, t, cmd, func(st model.Stream, p []byte) {
		wrote.Store(true)
		out(st, p)
	}, &ran)
	// Only an error that guarantees nothing was sent allows another try.
	if err == nil || !errors.Is(err, exec.ErrUnreachable) || wrote.Load() || ran.Load() || t.SSH == nil || s.SSH == nil || ctx.Err() != nil {
		return exit, err
	}
	exit, sshErr := s.ssh(ctx, t, cmd, out)
	if sshErr != nil {
		return exit, fmt.Errorf("%w (after the minion was unreachable: %v)", sshErr, err)
	}
	return exit, nil
}

// agent runs on the minion and names the agent transport in the Exit;
// ran, if not nil, is set once a command of a package job reached the
// minion.
func (s *Select) agent(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc, ran *atomic.Bool) (model.Exit, error) {
	if s.Agent == nil {
		return model.Exit{Transport: NameAgent}, fmt.Errorf("%s: the master has no agent transport: %w", t.ID, exec.ErrUnreachable)
	}
	exit, err := run(ctx, s.Agent, t, cmd, out, ran)
	exit.Transport = NameAgent
	return exit, err
}

// ssh runs over SSH and names the ssh transport in the Exit.
func (s *Select) ssh(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	if t.SSH == nil {
		return model.Exit{Transport: NameSSH}, fmt.Errorf("%s has no ssh settings (add them with felix hosts add): %w", t.ID, exec.ErrUnreachable)
	}
	if s.SSH == nil {
		return model.Exit{Transport: NameSSH}, fmt.Errorf("%s: %w (see its log at start): %w", t.ID, ErrNoSSH, exec.ErrUnreachable)
	}
	exit, err := run(ctx, s.SSH, t, cmd, out, nil)
	exit.Transport = NameSSH
	return exit, err
}

// Runner runs one command line on a host through its transport: how the
// package driver reaches a host.
type Runner = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error)

// runPackages is the package driver (packages.Run): it runs a package job
// on a host through run. Tests replace it.
var runPackages = packages.Run

// run executes cmd on tr: a command through Exec, a file transfer through
// exec.Transfer over tr's Put and Get, a package job through the package
// driver, whose commands go through tr's Exec. ran, if not nil, is set
// once one of them reached the host: an answer that is not
// exec.ErrUnreachable (whatever the driver then returns, the job may have
// started, so it is not tried elsewhere).
func run(ctx context.Context, tr exec.Transport, t model.Target, cmd model.Command, out model.OutputFunc, ran *atomic.Bool) (model.Exit, error) {
	if cmd.Apply != nil {
		ft, ok := tr.(exec.FileTransport)
		if !ok {
			return model.Exit{Code: -1}, fmt.Errorf("%s: the %s transport cannot place files: %w", t.ID, tr.Name(), exec.ErrUnreachable)
		}
		return state.Run(ctx, func(ctx context.Context, c model.Command, o model.OutputFunc) (model.Exit, error) {
			exit, err := tr.Exec(ctx, t, c, o)
			if ran != nil && !errors.Is(err, exec.ErrUnreachable) {
				ran.Store(true)
			}
			return exit, err
		}, func(ctx context.Context, f model.PutFile) (model.PutResult, error) {
			return ft.Put(ctx, t, f)
		}, t, cmd.Apply, out)
	}
	if cmd.Packages != nil {
		if runPackages == nil {
			return model.Exit{Code: -1}, fmt.Errorf("%s: this master has no package driver", t.ID)
		}
		return runPackages(ctx, func(ctx context.Context, c model.Command, o model.OutputFunc) (model.Exit, error) {
			exit, err := tr.Exec(ctx, t, c, o)
			if ran != nil && !errors.Is(err, exec.ErrUnreachable) {
				ran.Store(true)
			}
			return exit, err
		}, t, cmd.Packages, out)
	}
	if !cmd.IsTransfer() {
		return tr.Exec(ctx, t, cmd, out)
	}
	ft, ok := tr.(exec.FileTransport)
	if !ok {
		return model.Exit{Code: -1}, fmt.Errorf("%s: the %s transport cannot transfer files: %w", t.ID, tr.Name(), exec.ErrUnreachable)
	}
	return exec.Transfer(ctx, ft, t, cmd, out)
}
