//go:build !windows

package local

import (
	"context"
	"errors"
	"fmt"
	osexec "os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/unix"
)

// Run runs cmd.Line with /bin/sh -c in its own process group, streaming
// output to out as it is produced. out may be nil to discard output.
//
// If cmd.Timeout is positive it bounds the run in addition to ctx. At the
// deadline or when ctx is done, the whole process group gets SIGTERM and,
// killGrace later, SIGKILL. When the shell exits normally, background children
// are left alone; Run waits for them to close stdout and stderr for at most
// waitDelay.
//
// A non-zero exit is reported in Exit, not as an error; an error is returned
// only if the command could not be started.
//
// cmd.Shell must be empty: cmd.exe and PowerShell are Windows's.
func Run(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	if cmd.Shell != "" {
		return model.Exit{}, fmt.Errorf("start command: shell %q is for Windows minions; this one runs /bin/sh", cmd.Shell)
	}
	runCtx, cancel := runContext(ctx, cmd.Timeout)
	defer cancel()

	c := osexec.CommandContext(runCtx, "/bin/sh", "-c", cmd.Line)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setup(c, cmd, out)

	var killed atomic.Bool
	var killTimer atomic.Pointer[time.Timer]
	c.Cancel = func() error {
		killed.Store(true)
		pgid := c.Process.Pid
		// SIGKILL follows even if the shell dies at once, so children that
		// ignore SIGTERM do not outlive the run. The group id cannot be reused
		// while any member, even a zombie, remains; once Run returns the
		// timer is settled there instead (below).
		killTimer.Store(time.AfterFunc(killGrace, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }))
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("signal process group %d: %w", pgid, err)
		}
		return nil
	}

	start := time.Now()
	if err := c.Start(); err != nil {
		return model.Exit{}, fmt.Errorf("start command: %w", err)
	}
	// Wait's error only repeats what ProcessState and the context say
	// (non-zero exit, ErrWaitDelay, ctx.Err()).
	_ = c.Wait()
	if t := killTimer.Load(); t != nil && t.Stop() {
		// Past the deadline with the shell gone: kill what is left of the
		// group now rather than later, when its id may belong to others.
		pgid := c.Process.Pid
		if syscall.Kill(-pgid, 0) == nil {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
	}

	ex := model.Exit{Duration: time.Since(start), Code: c.ProcessState.ExitCode()}
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.Code = -1
		ex.Signal = unix.SignalName(ws.Signal())
		if ex.Signal == "" {
			ex.Signal = ws.Signal().String()
		}
	}
	if killed.Load() {
		markKilled(&ex, ctx, runCtx)
	}
	return ex, nil
}
