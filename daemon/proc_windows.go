package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"

	"golang.org/x/sys/windows"
)

// RestartSignal is nil on Windows, which has no such signal: a daemon
// installed as a service is restarted by the service manager (minion
// restart), one run by hand is stopped and started again.
var RestartSignal os.Signal

// stopSignals drain a daemon: Ctrl-C and Ctrl-Break (os.Interrupt) and the
// console's close (SIGTERM as Go delivers it). There is no SIGHUP.
var (
	stopSignals   = []os.Signal{os.Interrupt, windows.SIGTERM}
	hangupSignals []os.Signal
)

// processExists reports whether a process pid exists and has not exited.
func processExists(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return errors.Is(err, windows.ERROR_ACCESS_DENIED)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return true
	}
	return code == 259 // STILL_ACTIVE
}

// terminate ends pid. Windows cannot deliver SIGTERM to another process,
// so a daemon run by hand is terminated without draining; one installed
// as a service is stopped through the service manager, which drains it
// (see the minion's service code).
func terminate(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// kill ends pid at once.
func kill(pid int) { _ = terminate(pid) }

// signalRestart is refused: see RestartSignal.
func signalRestart(pid int) error {
	return fmt.Errorf("pid %d: Windows has no restart signal; restart the service (minion restart) or stop and start it", pid)
}

// reexec is refused: Windows has no exec that keeps the pid.
func reexec(exe string) error {
	return errors.New("Windows cannot replace a running process in place; the service manager restarts " + exe)
}

// newSession makes cmd start detached from this process's console.
func newSession(cmd *exec.Cmd) {
	cmd.SysProcAttr = &windows.SysProcAttr{CreationFlags: windows.DETACHED_PROCESS | windows.CREATE_NEW_PROCESS_GROUP}
}

// errLocked is lockFile's error when another process holds the lock.
var errLocked = errors.New("locked")

// openLockFile opens (creating) the lock file at path.
func openLockFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
}

// lockFile takes an exclusive LockFileEx lock on f's first byte without
// waiting; errLocked when another process holds it.
func lockFile(f *os.File) error {
	ol := new(windows.Overlapped)
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}

// checkOwner has nothing to compare on Windows, where the data directory
// is kept private by its ACL (see the minion's secure-directory code)
// rather than by its owner and mode bits.
func checkOwner(string, fs.FileInfo) error { return nil }

// modeBitsMatter is false: Windows reports every file 0666 or 0444 and
// chmod only toggles read-only; restrictDir's ACL keeps a data directory
// private instead.
const modeBitsMatter = false

// restrictDir gives dir a protected DACL (nothing inherited from its
// parent) granting full control to SYSTEM and the Administrators group
// only, inherited by every file and directory in it: the Windows
// equivalent of a 0700 directory of 0600 files. Windows applies the new
// inheritable entries to what the directory already holds.
func restrictDir(dir string) error {
	var access []windows.EXPLICIT_ACCESS
	for _, sidType := range []windows.WELL_KNOWN_SID_TYPE{windows.WinLocalSystemSid, windows.WinBuiltinAdministratorsSid} {
		sid, err := windows.CreateWellKnownSid(sidType)
		if err != nil {
			return fmt.Errorf("restrict %s: %w", dir, err)
		}
		access = append(access, windows.EXPLICIT_ACCESS{
			AccessPermissions: windows.GENERIC_ALL,
			AccessMode:        windows.GRANT_ACCESS,
			Inheritance:       windows.SUB_CONTAINERS_AND_OBJECTS_INHERIT,
			Trustee: windows.TRUSTEE{
				TrusteeForm:  windows.TRUSTEE_IS_SID,
				TrusteeType:  windows.TRUSTEE_IS_WELL_KNOWN_GROUP,
				TrusteeValue: windows.TrusteeValueFromSID(sid),
			},
		})
	}
	acl, err := windows.ACLFromEntries(access, nil)
	if err != nil {
		return fmt.Errorf("restrict %s: %w", dir, err)
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, acl, nil); err != nil {
		return fmt.Errorf("restrict %s to SYSTEM and Administrators: %w", dir, err)
	}
	return nil
}
