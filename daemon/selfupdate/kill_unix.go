//go:build !windows

package selfupdate

import (
	"os/exec"
	"syscall"
)

// killTreeOnCancel starts cmd in its own process group and makes its
// cancellation kill the whole group.
func killTreeOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
