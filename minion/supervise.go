package minion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/internal/backoff"
)

// The supervisor's files in the data directory.
const (
	supervisorPID  = "supervisor.pid"
	supervisorLock = "supervisor.lock"
)

// superviseBackoff spaces restarts of a minion that keeps exiting: 1 s
// doubling to 30 s; a minion that ran for superviseReset starts the count
// again.
var superviseBackoff = backoff.Policy{Base: time.Second, Cap: 30 * time.Second, Jitter: backoff.None}

const superviseReset = time.Minute

// cutBool removes the boolean flag --name (or --name=true) from args
// and reports whether it was there.
func cutBool(args []string, name string) ([]string, bool) {
	out := args[:0:0]
	found := false
	for _, a := range args {
		if a == "--"+name || a == "--"+name+"=true" {
			found = true
			continue
		}
		out = append(out, a)
	}
	return out, found
}

// cmdSupervise is minion start --supervise: where there is no systemd
// (rc.local, a container, OpenRC's command_background), this process runs
// "minion start ARGS" as its child and starts it again whenever it exits,
// after a backoff (superviseBackoff), until SIGTERM, which it passes on to
// the minion and waits for it to drain. A lock (supervisor.lock in the data
// directory) keeps a second supervisor from running; its pid is in
// supervisor.pid; SIGHUP is passed on to the minion. A minion that runs without being its child (one an
// upgrade handed over to, or one left by a killed supervisor) is watched
// through minion.pid instead of started a second time.
func cmdSupervise(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, _, err := load("start", args, stdout)
	if err != nil {
		return err
	}
	if cfg.Master == "" {
		return fmt.Errorf("master URL is not set (--master https://HOST:8443 or master in the config file)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w", cfg.DataDir, err)
	}
	unlock, err := daemon.Lock(filepath.Join(cfg.DataDir, supervisorLock), "the minion supervisor of "+cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	log, _, err := config.DaemonLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	exe, err := daemon.Executable()
	if err != nil {
		return err
	}
	removePID, err := daemon.WritePID(filepath.Join(cfg.DataDir, supervisorPID))
	if err != nil {
		return err
	}
	defer removePID()
	ctx, cancel := daemon.SignalContext(ctx)
	defer cancel()
	// SIGHUP (reload the config) is the minion's: passed on to it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, hangupSignals...)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if pid, ok := daemon.Running(filepath.Join(cfg.DataDir, pidFile)); ok {
					sendHangup(pid)
				}
			}
		}
	}()
	s := &supervisor{exe: exe, args: append([]string{"start"}, args...), minionPID: filepath.Join(cfg.DataDir, pidFile),
		log: log.With("component", "supervisor"), stdout: stdout}
	fmt.Fprintf(stdout, "felix minion supervisor pid %d: running %s %v\n", os.Getpid(), exe, s.args)
	return s.run(ctx)
}

// supervisor keeps one minion running.
type supervisor struct {
	exe       string
	args      []string
	minionPID string // the minion's pid file
	log       *slog.Logger
	stdout    io.Writer
}

// run starts the minion and starts it again when it exits, until ctx ends.
func (s *supervisor) run(ctx context.Context) error {
	for attempt := 1; ; {
		if pid, ok := daemon.Running(s.minionPID); ok && pid != os.Getpid() {
			s.log.Info("a minion runs already: watching it", "pid", pid)
			s.watch(ctx, pid)
		} else {
			began := time.Now()
			err := s.once(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(began) >= superviseReset {
				attempt = 1
			}
			// An upgrade hands over to a new process and the old one exits:
			// the new one is watched from the next round.
			if pid, ok := daemon.Running(s.minionPID); ok && pid != os.Getpid() {
				continue
			}
			wait := superviseBackoff.Duration(attempt)
			attempt++
			s.log.Warn("minion exited; starting it again", "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// once runs the minion until it exits; when ctx ends first, the minion gets
// SIGTERM and the time its drain takes, then SIGKILL.
func (s *supervisor) once(ctx context.Context) error {
	cmd := exec.Command(s.exe, s.args...)
	cmd.Stdout, cmd.Stderr = s.stdout, s.stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.exe, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		return err
	case <-time.After(drainLimit + 5*time.Second):
		cmd.Process.Kill()
		return errors.Join(errors.New("killed: did not stop in time"), <-done)
	}
}

// watch waits until the minion pid (not this process's child) is gone;
// when ctx ends first, it stops it as once does.
func (s *supervisor) watch(ctx context.Context, pid int) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := daemon.Stop(s.minionPID, drainLimit+5*time.Second); err != nil {
				killPID(pid)
			}
			return
		case <-tick.C:
			if p, ok := daemon.Running(s.minionPID); !ok || p != pid {
				return
			}
		}
	}
}
