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
