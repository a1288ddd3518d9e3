package master

import (
	"context"
	"encoding/json"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// upgradeReason is the reason minion id reported for rolling back an
// upgrade to version ("" if it reported none): its last_upgrade.
func upgradeReason(store *inventory.Store) func(ctx context.Context, id, version string) string {
	return func(ctx context.Context, id, version string) string {
		m, err := store.Minion(ctx, id)
		if err != nil || m.LastUpgrade == "" {
			return ""
		}
		var lu model.LastUpgrade
		if json.Unmarshal([]byte(m.LastUpgrade), &lu) != nil || lu.To != version || lu.State != model.UpgradeRolledBack {
			return ""
		}
		return lu.Reason
	}
}
