package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// RestartContext returns a context cancelled by RestartSignal, and a func
// that reports whether that is why it ended. The daemon drains as on
// SIGTERM, then calls Reexec.
func RestartContext(parent context.Context) (context.Context, func() bool) {
	if RestartSignal == nil {
		// Windows: the service manager restarts the daemon.
		return parent, func() bool { return false }
	}
	ctx, cancel := context.WithCancel(parent)
	var asked atomic.Bool
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, RestartSignal)
	go func() {
		defer signal.Stop(ch)
		select {
		case <-ch:
			asked.Store(true)
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, asked.Load
}

// Executable is the running binary's path with symlinks resolved, as it
// was when the process started: the file an update replaces and a restart
// runs again.
func Executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own binary: %w", err)
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return exe, nil
}

// Reexec replaces the process by exe run with the same arguments and
// environment (syscall.Exec: same pid, so a supervisor or a shell's job
// control keeps tracking it). Files opened close-on-exec — all of Go's, the
// data-directory lock among them — are released by the exec; the new
// process writes its pid file again. It returns only on failure.
func Reexec(exe string) error {
	err := reexec(exe)
	return fmt.Errorf("re-execute %s: %w", exe, err)
}

// SystemdUnit returns the systemd service unit pid runs in (from
// /proc/PID/cgroup), "" when it is not one: then `restart` signals the
// process itself instead of asking systemctl.
func SystemdUnit(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	return unitOf(string(b))
}

// unitOf finds the service unit in the text of /proc/PID/cgroup.
func unitOf(cgroup string) string {
	for _, line := range strings.Split(strings.TrimSpace(cgroup), "\n") {
		// "0::/system.slice/felix-minion.service" (v2) or
		// "1:name=systemd:/system.slice/felix-minion.service" (v1).
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || (parts[1] != "" && parts[1] != "name=systemd") {
			continue
		}
		unit := filepath.Base(parts[2])
		if strings.HasSuffix(unit, ".service") && !strings.HasPrefix(unit, "user@") {
			return unit
		}
	}
	return ""
}

// pidStamp identifies one writing of a pid file.
type pidStamp struct {
	pid int
	mod time.Time
}

func stampOf(path string) (pidStamp, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return pidStamp{}, false
	}
	pid, err := ReadPID(path)
	if err != nil {
		return pidStamp{}, false
	}
	return pidStamp{pid, st.ModTime()}, true
}

// Restart is how `restart` and `update` restart a running daemon.
type Restart struct {
	PIDFile string
	// Ready reports whether the restarted daemon (pid) is healthy, with the
	// version it runs; nil: a new pid file is enough.
	Ready func(ctx context.Context, pid int) (version string, ok bool)
	// Systemctl is the systemctl binary; "" means "systemctl" on PATH.
	Systemctl string
}

// ErrNotRunning is Restart.Do's error when no daemon runs.
var ErrNotRunning = errors.New("not running")

// Do restarts the daemon of r.PIDFile and waits, until ctx ends, for it to
// be back: a new pid file with a live process, and Ready. Under systemd it
// runs `systemctl restart UNIT`; else it sends RestartSignal. It returns
// the new pid and the version Ready reported.
func (r Restart) Do(ctx context.Context) (pid int, version string, err error) {
	old, ok := Running(r.PIDFile)
	if !ok {
		return 0, "", fmt.Errorf("%w (no live process in %s)", ErrNotRunning, r.PIDFile)
	}
	before, _ := stampOf(r.PIDFile)
	unit := SystemdUnit(old)
	if unit != "" {
		bin := r.Systemctl
		if bin == "" {
			bin = "systemctl"
		}
		if out, err := exec.CommandContext(ctx, bin, "restart", unit).CombinedOutput(); err != nil {
			return 0, "", fmt.Errorf("systemctl restart %s: %w: %s", unit, err, strings.TrimSpace(string(out)))
		}
	} else if err := signalRestart(old); err != nil {
		return 0, "", fmt.Errorf("signal pid %d: %w", old, err)
	}
	// Re-executed in place, the daemon keeps its pid: once that is gone,
	// nothing will take its place (systemd starts a new pid instead).
	return r.wait(ctx, old, before, unit == "")
}

// wait waits, as Do does, for the daemon to be back after something else
// restarted it; before is the pid file as it was then. samePID: the
// daemon re-executes in place, so its pid ending means it failed.
func (r Restart) wait(ctx context.Context, old int, before pidStamp, samePID bool) (int, string, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	why := "the pid file was not written again"
	for {
		if now, ok := stampOf(r.PIDFile); ok && now != before && alive(now.pid) {
			why = fmt.Sprintf("pid %d started but is not healthy yet", now.pid)
			if r.Ready == nil {
				return now.pid, "", nil
			}
			if v, ok := r.Ready(ctx, now.pid); ok {
				return now.pid, v, nil
			}
		} else if !alive(old) && !ok {
			why = fmt.Sprintf("pid %d exited and nothing took its place", old)
		}
		if samePID && !alive(old) {
			return 0, "", fmt.Errorf("not back: pid %d exited", old)
		}
		select {
		case <-ctx.Done():
			return 0, "", fmt.Errorf("not back: %s: %w", why, ctx.Err())
		case <-tick.C:
		}
	}
}
