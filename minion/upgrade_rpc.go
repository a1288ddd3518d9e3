package minion

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/felix-ops/felix/transport/agent"
)

// upgradeDir is the directory of the data directory a binary sent by the
// master's fleet upgrade is received into, before Upgrade checks and swaps
// it: the master never names a path on the minion.
const upgradeDir = "upgrade"

// serveUpgrade makes srv answer the Upgrade RPC with the minion's own
// Upgrade, and tell its binary's sha256 in Ping (so the master sends no
// binary the minion already runs). A swarm's minions share one process and
// one binary: they do not upgrade themselves.
func (m *Minion) serveUpgrade(srv *agent.Server) {
	if m.hooks.slots != nil || m.hooks.gather != nil {
		return
	}
	srv.SelfUpgrade = m.Upgrade
	srv.SameVersion = ErrSameVersion
	srv.StageDir = filepath.Join(m.cfg.DataDir, upgradeDir)
	srv.BinarySHA256 = binarySHA256()
}

// binarySHA256 is the sha256 of the running executable, "" when it cannot
// be read; computed once per process.
var binarySHA256 = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
})
