//go:build !windows

package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// RestartSignal asks a running daemon to drain and start again (SIGHUP
// reloads the configuration instead).
var RestartSignal os.Signal = syscall.SIGUSR2

// stopSignals drain a daemon (see SignalContext); hangupSignals reload
// its configuration (see OnHangup).
var (
	stopSignals   = []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	hangupSignals = []os.Signal{syscall.SIGHUP}
)

// processExists reports whether a process pid exists (signal 0).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// terminate asks pid to drain and exit (SIGTERM).
func terminate(pid int) error { return syscall.Kill(pid, syscall.SIGTERM) }

// kill ends pid at once (SIGKILL).
func kill(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// signalRestart sends pid RestartSignal.
func signalRestart(pid int) error { return syscall.Kill(pid, syscall.SIGUSR2) }

// reexec replaces this process by exe (execve).
func reexec(exe string) error { return syscall.Exec(exe, os.Args, os.Environ()) }

// newSession makes cmd start in a session of its own, so it outlives
// this process's terminal.
func newSession(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} }

// errLocked is lockFile's error when another process holds the lock.
var errLocked = errors.New("locked")

// openLockFile opens (creating 0600) the lock file at path, never
// through a symlink, close-on-exec.
func openLockFile(path string) (*os.File, error) {
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// lockFile takes an exclusive flock on f without waiting; errLocked when
// another process holds it.
func lockFile(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// checkOwner refuses a data directory that belongs to another user.
func checkOwner(dir string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data dir %s belongs to uid %d, not to this process's uid %d: give it to this user (chown) or choose another", dir, st.Uid, os.Geteuid())
	}
	return nil
}

// modeBitsMatter: PrivateDir and PrivateFile keep modes 0700 and 0600.
const modeBitsMatter = true

// restrictDir does nothing: PrivateDir's modes are the Unix way.
func restrictDir(string) error { return nil }
