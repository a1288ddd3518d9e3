//go:build !windows

package minion

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// hangupSignals reload the configuration; the supervisor passes them on.
var hangupSignals = []os.Signal{syscall.SIGHUP}

// sendHangup asks pid to reload its configuration (SIGHUP).
func sendHangup(pid int) { _ = syscall.Kill(pid, syscall.SIGHUP) }

// killPID ends pid at once (SIGKILL).
func killPID(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }

// closeOnExec keeps fd from being inherited by commands.
func closeOnExec(fd int) { syscall.CloseOnExec(fd) }

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// it. (Go's os package does the same at start since Go 1.19; the swarm does
// it itself so that it can check the result against what it needs.)
func raiseNoFile() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read RLIMIT_NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise RLIMIT_NOFILE to %d: %w", lim.Max, err)
		}
	}
	return uint64(lim.Cur), nil // int64 on the BSDs
}
