package daemon

import (
	"embed"
	"fmt"
	"strings"
)

// The systemd units of the daemons: one text each, shipped by make dist
// (master unit NAME prints it) and written by bootstrap.
//
//go:embed units/felix-master.service units/felix-minion.service
var units embed.FS

// Unit returns the systemd unit of name ("master" or "minion") for the
// binary at bin, the config file conf and the data directory dataDir.
func Unit(name, bin, conf, dataDir string) (string, error) {
	b, err := units.ReadFile("units/felix-" + name + ".service")
	if err != nil {
		return "", fmt.Errorf("no unit %q: want master or minion", name)
	}
	return strings.NewReplacer("@BIN@", bin, "@CONFIG@", conf, "@DATA_DIR@", dataDir).Replace(string(b)), nil
}

// Default install paths of the units make dist ships.
const (
	MasterBin    = "/usr/local/bin/felix-master"
	MasterConfig = "/etc/felix/master.toml"
	MasterData   = "/var/lib/felix/master"
	MinionBin    = "/usr/local/bin/felix-minion"
	MinionConfig = "/etc/felix/minion.toml"
	MinionData   = "/var/lib/felix/minion"
)

// DefaultUnit is Unit at the default install paths.
func DefaultUnit(name string) (string, error) {
	if name == "minion" {
		return Unit(name, MinionBin, MinionConfig, MinionData)
	}
	return Unit(name, MasterBin, MasterConfig, MasterData)
}
