package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/felix-ops/felix/daemon/selfupdate"
)

// Update is `master update FILE` / `minion update FILE`: it checks FILE,
// installs it over the daemon's binary (keeping BINARY.prev), restarts the
// running daemon and waits for it to be healthy with FILE's version;
// otherwise it rolls back and starts the old binary again. The process that
// watches is this one, running known-good code, never the new binary.
type Update struct {
	Restart
	File   string
	SHA256 string        // wanted sha256 (hex); "" checks nothing
	Wait   time.Duration // how long the new binary has to become healthy
	// Self is the binary to replace when no daemon runs; "" means this
	// process's own.
	Self string
	// LogFile receives the output of an old binary started again after a
	// rollback (it has no terminal to write to).
	LogFile string
	Out     io.Writer
}

// procStart is how a running daemon was started, read from /proc before it
// is restarted, so that the old binary can be started the same way after a
// rollback.
type procStart struct {
	exe  string
	args []string
	env  []string
	dir  string
}

func readProc(pid int) (procStart, error) {
	p := "/proc/" + strconv.Itoa(pid) + "/"
	var s procStart
	exe, err := os.Readlink(p + "exe")
	if err != nil {
		return s, fmt.Errorf("find the running binary: %w", err)
	}
	s.exe = strings.TrimSuffix(exe, " (deleted)")
	split := func(name string) ([]string, error) {
		b, err := os.ReadFile(p + name)
		if err != nil {
			return nil, fmt.Errorf("read %s of pid %d: %w", name, pid, err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
	}
	if s.args, err = split("cmdline"); err != nil {
		return s, err
	}
	if s.env, err = split("environ"); err != nil {
		return s, err
	}
	if s.dir, err = os.Readlink(p + "cwd"); err != nil {
		return s, fmt.Errorf("read cwd of pid %d: %w", pid, err)
	}
	return s, nil
}

// Do runs the update.
func (u Update) Do(ctx context.Context) error {
	c, err := selfupdate.Check(ctx, u.File, runtime.GOOS, runtime.GOARCH, u.SHA256)
	if err != nil {
		return err
	}
	fmt.Fprintf(u.Out, "%s: %s/%s, sha256 %s, version %s\n", u.File, c.GOOS, c.GOARCH, c.SHA256, c.Version)
	pid, running := Running(u.PIDFile)
	var start procStart
	exe := u.Self
	if running {
		if start, err = readProc(pid); err != nil {
			return err
		}
		exe = start.exe
	} else if exe == "" {
		if exe, err = Executable(); err != nil {
			return err
		}
	}
	oldVersion, _ := selfupdate.Version(ctx, exe)
	if err := selfupdate.Install(exe, c); err != nil {
		return err
	}
	if !running {
		fmt.Fprintf(u.Out, "installed %s as %s (was %s, kept as %s); not running, nothing restarted\n",
			c.Version, exe, oldVersion, selfupdate.Prev(exe))
		return nil
	}
	fmt.Fprintf(u.Out, "installed %s as %s (was %s, kept as %s); restarting pid %d\n",
		c.Version, exe, oldVersion, selfupdate.Prev(exe), pid)
	r := u.Restart
	ready := r.Ready
	r.Ready = func(ctx context.Context, pid int) (string, bool) {
		if ready == nil {
			return "", true
		}
		v, ok := ready(ctx, pid)
		return v, ok && v == c.Version
	}
	wctx, cancel := context.WithTimeout(ctx, u.Wait)
	newPID, _, err := r.Do(wctx)
	cancel()
	if err == nil {
		fmt.Fprintf(u.Out, "updated to %s: pid %d healthy\n", c.Version, newPID)
		return nil
	}
	why := err
	if err := selfupdate.Rollback(exe); err != nil {
		return fmt.Errorf("%s did not come up (%w); and the rollback failed: %w", c.Version, why, err)
	}
	fmt.Fprintf(u.Out, "%s did not come up (%v); rolled back to %s\n", c.Version, why, oldVersion)
	oldPID, err := u.startOld(ctx, pid, start, oldVersion)
	if err != nil {
		return fmt.Errorf("update to %s failed (%w); rolled back to %s but it did not start: %w", c.Version, why, oldVersion, err)
	}
	return fmt.Errorf("update to %s failed (%v); rolled back: %s running again, pid %d", c.Version, why, oldVersion, oldPID)
}

// startOld starts the restored binary as the daemon was started: through
// systemd when it runs the unit, else (the failed process killed if it
// still lives) as a new session with the saved arguments, environment and
// directory, its output to LogFile.
func (u Update) startOld(ctx context.Context, pid int, start procStart, oldVersion string) (int, error) {
	r := u.Restart
	ready := r.Ready
	r.Ready = func(ctx context.Context, pid int) (string, bool) {
		if ready == nil {
			return "", true
		}
		return ready(ctx, pid)
	}
	wctx, cancel := context.WithTimeout(ctx, u.Wait)
	defer cancel()
	before, _ := stampOf(r.PIDFile)
	if unit := SystemdUnit(pid); unit != "" && alive(pid) {
		n, _, err := r.Do(wctx)
		return n, err
	}
	if alive(pid) {
		kill(pid)
		for alive(pid) {
			select {
			case <-wctx.Done():
				return 0, fmt.Errorf("pid %d does not die: %w", pid, wctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	var out *os.File
	if u.LogFile != "" {
		f, err := os.OpenFile(u.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", u.LogFile, err)
		}
		defer f.Close()
		out = f
	}
	cmd := exec.Command(start.exe, start.args[1:]...)
	cmd.Args[0] = start.args[0]
	cmd.Env, cmd.Dir = start.env, start.dir
	cmd.Stdout, cmd.Stderr = out, out
	newSession(cmd)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", start.exe, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }() // reaps it if it fails; else it outlives this process
	fmt.Fprintf(u.Out, "started %s again (pid %d, output to %s)\n", oldVersion, cmd.Process.Pid, u.LogFile)
	n, _, err := r.wait(wctx, pid, before, false)
	if err != nil {
		select {
		case <-exited:
			err = fmt.Errorf("%w; it exited: %v", err, cmd.ProcessState)
		default:
		}
	}
	return n, err
}

// WriteReady writes, atomically, this process's pid and version
// ("PID VERSION\n") to path: a daemon does once it is ready (the minion:
// registered), for ReadyFile.
func WriteReady(path, version string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+" "+version+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadyFile is a Restart.Ready that reads a file written by WriteReady.
func ReadyFile(path string) func(context.Context, int) (string, bool) {
	return func(_ context.Context, pid int) (string, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false
		}
		p, v, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
		if !ok || p != strconv.Itoa(pid) {
			return "", false
		}
		return v, true
	}
}
