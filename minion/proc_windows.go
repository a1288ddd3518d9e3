package minion

import (
	"math"
	"os"
)

// hangupSignals is empty: Windows has no SIGHUP (restart the service to
// reload the configuration).
var hangupSignals []os.Signal

// sendHangup does nothing: see hangupSignals.
func sendHangup(int) {}

// killPID ends pid at once.
func killPID(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}

// closeOnExec does nothing: Windows handles are not inherited unless a
// process is started to inherit them.
func closeOnExec(int) {}

// raiseNoFile reports no limit: Windows has no RLIMIT_NOFILE.
func raiseNoFile() (uint64, error) { return math.MaxInt32, nil }
