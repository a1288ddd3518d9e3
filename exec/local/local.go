// Package local runs a single command on this machine. It is the runner a
// minion uses: the command runs under /bin/sh -c in its own process group
// (on Windows under cmd.exe /C in a Job Object), its output is streamed as
// it is produced, and a deadline or cancellation kills the whole group or
// job, not just the shell.
package local

import (
	"context"
	"errors"
	"os"
	osexec "os/exec"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
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

// runContext bounds ctx by timeout when it is positive, with errDeadline
// as the cause.
func runContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout > 0 {
		return context.WithTimeoutCause(ctx, timeout, errDeadline)
	}
	return ctx, func() {}
}

// setup gives c the command's environment and directory, streams its
// output to out (nil discards it) and bounds the wait for its pipes.
func setup(c *osexec.Cmd, cmd model.Command, out model.OutputFunc) {
	if out == nil {
		out = func(model.Stream, []byte) {}
	}
	c.Env = append(commandEnv(), cmd.Env...)
	c.Dir = cmd.Dir
	c.Stdout = streamWriter{model.Stdout, out}
	c.Stderr = streamWriter{model.Stderr, out}
	c.WaitDelay = waitDelay
}

// markKilled records why a killed command ended: its deadline (TimedOut)
// or the caller's cancellation.
func markKilled(ex *model.Exit, ctx, runCtx context.Context) {
	if errors.Is(context.Cause(runCtx), errDeadline) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		ex.TimedOut = true
	} else {
		ex.Cancelled = true
	}
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
