package minion

import (
	"path/filepath"

	"github.com/felix-ops/felix/config"
)

// minionConfigPath is the default config file.
func minionConfigPath() string {
	return filepath.Join(config.DefaultDir("config", "minion"), "minion.toml")
}
