package bootstrap

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
)

// sameConfig compares two minion configs but for the join token, which a
// registered minion no longer needs.
func sameConfig(a, b config.Minion) bool {
	a.JoinToken, b.JoinToken = "", ""
	// A file an older felix wrote has no log_format: it means the default.
	for _, c := range []*config.Minion{&a, &b} {
		if c.LogFormat == "" {
			c.LogFormat = config.LogText
		}
	}
	if !slices.Equal(a.FileRoots, b.FileRoots) {
		return false
	}
	a.FileRoots, b.FileRoots = nil, nil
	return reflect.DeepEqual(a, b)
}

// renderConfig encodes a minion config as commented TOML: every value
// quoted by the encoder.
func renderConfig(c config.Minion) ([]byte, error) {
	data, err := config.Render("# felix minion configuration, written by felix bootstrap; a rerun rewrites it.\n"+
		"# Flags and FELIX_MINION_* environment variables override what is set here.\n", c)
	if err != nil {
		return nil, fmt.Errorf("encode minion config: %w", err)
	}
	return data, nil
}

// unitFile is the systemd unit of the minion: the one make dist ships
// (daemon.Unit), at the install paths.
func unitFile(p paths) string {
	u, err := daemon.Unit("minion", p.bin, p.conf, p.data)
	if err != nil {
		panic(err) // the unit is embedded: a build without it is broken
	}
	return u
}

// sha256Hex is the hex sha256 of b, as the probe reports the unit's.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// openrcScript is the OpenRC service script of the minion
// (/etc/init.d/felix-minion). Where OpenRC has its own supervise-daemon it
// runs the minion and starts it again when it exits; elsewhere the minion's
// own supervisor (start --supervise) does, started in the background with
// a pid file. Only the install paths go in: plain by ValidInstallRoot
// (command_args is split by OpenRC's eval, so they stay unquoted there).
func openrcScript(p paths) string {
	return `#!/sbin/openrc-run
# felix minion, written by felix bootstrap; a rerun rewrites it.
name="felix-minion"
description="felix minion: runs what the felix master asks, over gRPC with mutual TLS"
command=` + shellQuote(p.bin) + `
output_log=` + shellQuote(p.log) + `
error_log=` + shellQuote(p.log) + `
if [ -x /sbin/supervise-daemon ]; then
	supervisor=supervise-daemon
	command_args="start --config ` + p.conf + `"
	respawn_delay=2
	respawn_max=0
else
	command_args="start --supervise --config ` + p.conf + `"
	command_background=true
	pidfile=/run/felix-minion.pid
fi
retry="TERM/60/KILL/5"

depend() {
	need net
	after firewall
}
`
}
