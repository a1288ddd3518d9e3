package master

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
)

// configHeader heads the master's config file.
const configHeader = "# felix master configuration.\n" +
	"# Flags and FELIX_MASTER_* environment variables override what is set here.\n"

// ReadConfig reads the master's config file without writing anything; a
// missing file gives the defaults and exists false.
func ReadConfig(path string) (c Config, exists bool, err error) {
	exists, err = config.Read(path, defaultConfig, &c)
	return c, exists, err
}

// writeFirstRun writes the master's first-run file at path: every key
// commented, at c's values (the defaults with what flags and the
// environment set).
func writeFirstRun(path string, c Config) error {
	b, err := config.Render(configHeader, c)
	if err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	return config.WriteNew(path, b)
}

// CheckConfig reads and validates the master's config file at path the way
// start does, writing nothing (master config check).
func CheckConfig(path string) error {
	var c Config
	return config.Check(path, defaultConfig, &c, c.Validate)
}

// masterConfigPath is the default config file.
func masterConfigPath() string {
	return filepath.Join(config.DefaultDir("config", "master"), "master.toml")
}

// cmdUnit prints the systemd unit of a daemon at the default install
// paths (master unit master|minion).
func cmdUnit(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("want: master unit master|minion")
	}
	u, err := daemon.DefaultUnit(args[0])
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, u)
	return err
}
