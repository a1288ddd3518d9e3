package master

import (
	"context"
	"fmt"

	"github.com/felix-ops/felix/daemon"
)

// notifySystemd tells systemd state (daemon.Notify), logging a failure.
func (m *Master) notifySystemd(state string) {
	if err := daemon.Notify(state); err != nil {
		m.log.Warn("notify systemd", "err", err)
	}
}

// healthy is the watchdog's check of the main loop: the inventory answers.
func (m *Master) healthy(ctx context.Context) error {
	if _, err := m.store.SchemaVersion(ctx); err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	return nil
}
