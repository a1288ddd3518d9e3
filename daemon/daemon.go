// Package daemon holds what the master and minion share as long-running
// processes: pid files, the start/stop/status sub-commands' mechanics, and
// signal handling (SIGTERM or SIGINT drains; a second signal forces exit).
package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// WritePID writes the process id to path and returns a func that removes
// it, if it still holds this process's id (after a handover, the new
// process's file is left alone). A file naming this very process (it
// re-executed itself in place, see Reexec) is taken over.
func WritePID(path string) (remove func(), err error) {
	if pid, err := ReadPID(path); err == nil && pid != os.Getpid() && alive(pid) {
		return nil, fmt.Errorf("already running with pid %d (pid file %s)", pid, path)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return func() {
		if pid, err := ReadPID(path); err == nil && pid == os.Getpid() {
			os.Remove(path)
		}
	}, nil
}

// ReadPID reads a pid file.
func ReadPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content", path)
	}
	return pid, nil
}

// alive reports whether pid is a running process. A zombie (exited, not yet
// reaped) counts as dead: it will never remove its pid file, and where no one
// reaps orphans (PID 1 in some containers) it stays a zombie for good.
func alive(pid int) bool {
	return processExists(pid) && !zombie(pid)
}

// zombie reports whether /proc says pid has exited ('Z' or 'X'); false when
// there is no procfs to ask.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) S ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// Running returns the pid of the process named by the pid file, if it runs.
func Running(path string) (int, bool) {
	pid, err := ReadPID(path)
	if err != nil || !alive(pid) {
		return 0, false
	}
	return pid, true
}

// Stop sends SIGTERM (see terminate) to the process in the pid file and waits for it to exit.
func Stop(path string, wait time.Duration) error {
	pid, ok := Running(path)
	if !ok {
		return fmt.Errorf("not running (no live process in %s)", path)
	}
	if err := terminate(pid); err != nil {
		return fmt.Errorf("signal pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("pid %d still running after %s", pid, wait)
}

// SignalContext returns a context cancelled by the first SIGINT or SIGTERM;
// a second one exits the process at once with status 1.
func SignalContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, stopSignals...)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			signal.Stop(ch)
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "second signal: exiting without draining")
			os.Exit(1)
		case <-parent.Done():
		}
	}()
	return ctx, cancel
}

// Command is one sub-command of a daemon's command line.
type Command func(args []string) error

// Dispatch runs the sub-command named by args[0] and returns the exit
// status: 0 on success, 1 with one line on stderr on failure, 2 for usage
// errors. "version" and "help" are built in.
func Dispatch(prog, usage, version string, cmds map[string]Command, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q; run %s help\n", prog, args[0], prog)
		return 2
	}
	if err := cmd(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s %s: %v\n", prog, args[0], err)
		return 1
	}
	return 0
}
