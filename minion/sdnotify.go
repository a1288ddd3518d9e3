package minion

import "github.com/felix-ops/felix/daemon"

// notifySystemd tells systemd state (daemon.Notify), logging a failure.
// The minion's watchdog is petted while its process runs: its main loop is
// the gRPC server, which has no state that can hang apart from it.
func (m *Minion) notifySystemd(state string) {
	if err := daemon.Notify(state); err != nil {
		m.log.Warn("notify systemd", "err", err)
	}
}
