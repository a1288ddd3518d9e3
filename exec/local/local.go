// Package local runs a single command on this machine. It is the runner a
// minion uses: the command runs under /bin/sh -c in its own process group,
// its output is streamed as it is produced, and a deadline or cancellation
// kills the whole group, not just the shell.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/unix"
)

// killGrace is how long a cancelled process group has between SIGTERM and
// SIGKILL. waitDelay bounds how long Run waits for the output pipes after the
// shell has exited (a background child may hold them open) or after
// cancellation. Both are variables so tests can shorten them.
var (
	killGrace = 2 * time.Second
	waitDelay = 2 * time.Second
)

// errDeadline is the cause of the run context when cmd.Timeout fires.
var errDeadline = errors.New("command deadline exceeded")

// commandEnv is the environment commands start from: the daemon's own,
// less its FELIX_* settings — a join token, say, is the daemon's secret,
// not something every command (and so every job's stored output) should
// see. A request's env may still set FELIX_ names.
func commandEnv() []string {
	env := os.Environ()
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "FELIX_") {
			out = append(out, kv)
		}
	}
	return out
}

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
func Run(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	runCtx := ctx
	if cmd.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeoutCause(ctx, cmd.Timeout, errDeadline)
		defer cancel()
	}
	if out == nil {
		out = func(model.Stream, []byte) {}
	}

	c := osexec.CommandContext(runCtx, "/bin/sh", "-c", cmd.Line)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Env = append(commandEnv(), cmd.Env...)
	c.Dir = cmd.Dir
	c.Stdout = streamWriter{model.Stdout, out}
	c.Stderr = streamWriter{model.Stderr, out}
	c.WaitDelay = waitDelay

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
		if errors.Is(context.Cause(runCtx), errDeadline) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			ex.TimedOut = true
		} else {
			ex.Cancelled = true
		}
	}
	return ex, nil
}

// streamWriter hands every chunk written to it to an OutputFunc.
type streamWriter struct {
	stream model.Stream
	out    model.OutputFunc
}

// Write passes p to the OutputFunc and never fails.
func (w streamWriter) Write(p []byte) (int, error) {
	w.out(w.stream, p)
	return len(p), nil
}
