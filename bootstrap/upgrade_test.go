package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

// upgradeBin is a fake minion binary picked for linux/amd64 only.
func upgradeBin(content string) func(goos, goarch string) (model.UpgradeBinary, error) {
	return func(goos, goarch string) (model.UpgradeBinary, error) {
		if goos != "linux" || goarch != "amd64" {
			return model.UpgradeBinary{}, io.ErrUnexpectedEOF
		}
		sum := sha256.Sum256([]byte(content))
		return model.UpgradeBinary{Name: "test-bin", Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}, nil
	}
}

// TestUpgrade upgrades a bootstrapped fake host over its SSH: A -> B with
// A kept as .prev and the key kept, B again unchanged (nothing uploaded), a
// binary that exits at once rolled back to B; a host without a minion and
// one whose certificate is not the pinned one are refused with nothing
// written.
func TestUpgrade(t *testing.T) {
	b, ssh := setup(t, "amd64")
	h := newFakeHost(t, b.Store, "x86_64")
	ssh["10.0.0.5"] = h
	tgt := target("10.0.0.5")
	up := func(content string, pinned string) (model.UpgradeReport, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		tt := tgt
		tt.Fingerprint = pinned
		return b.Upgrade(ctx, tt, upgradeBin(content))
	}

	// No minion on the host: refused, nothing written.
	if _, err := up("version:vB\n", ""); err == nil || !strings.Contains(err.Error(), "felix bootstrap") {
		t.Fatalf("upgrade of a host without a minion: %v; want refused, naming felix bootstrap", err)
	}
	if _, uploads := h.snapshot(); len(uploads) > 0 {
		t.Fatalf("uploads %v to a host without a minion; want none", uploads)
	}

	// Bootstrapped with A.
	if err := os.WriteFile(filepath.Join(b.MinionDir, "minion-linux-amd64"), []byte("version:vA\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if r := b.Host(context.Background(), tgt, "web1"); r.State != StateOK || r.Action != ActionInstalled {
		t.Fatalf("bootstrap: %+v", r)
	}
	m, err := b.Store.Minion(context.Background(), "web1")
	if err != nil {
		t.Fatal(err)
	}
	fp := m.Fingerprint
	if m.Version != "vA" {
		t.Fatalf("bootstrapped minion at %q; want vA", m.Version)
	}
	h.reset()

	// Another certificate pinned: refused, nothing written.
	if _, err := up("version:vB\n", "sha256:other"); err == nil || !strings.Contains(err.Error(), "not the pinned") {
		t.Errorf("upgrade with another pinned certificate: %v; want refused", err)
	}
	if scripts, uploads := h.snapshot(); len(uploads) > 0 || slices.Contains(scripts, markKeep) {
		t.Errorf("scripts %v, uploads %v with another pinned certificate; want the probe only", scripts, uploads)
	}

	// A -> B.
	rep, err := up("version:vB\n", fp)
	if err != nil || rep.Outcome != model.OutcomeUpgraded || rep.From != "vA" || rep.To != "vB" {
		t.Fatalf("A -> B: %+v, %v; want upgraded vA -> vB", rep, err)
	}
	if !bytes.Equal(h.files[BinPath+".prev"], []byte("version:vA\n")) || !bytes.Equal(h.files[BinPath], []byte("version:vB\n")) {
		t.Errorf("binary %q, .prev %q; want B, A kept", h.files[BinPath], h.files[BinPath+".prev"])
	}
	if m, _ := b.Store.Minion(context.Background(), "web1"); m.Fingerprint != fp || m.Version != "vB" {
		t.Errorf("minion after the upgrade: %s %s; want %s at vB", m.Fingerprint, m.Version, fp)
	}

	// B again: unchanged, nothing uploaded or restarted.
	h.reset()
	rep, err = up("version:vB\n", fp)
	if err != nil || rep.Outcome != model.OutcomeUnchanged || rep.From != "vB" || rep.Detail != "" {
		t.Errorf("B -> B: %+v, %v; want unchanged vB", rep, err)
	}
	if scripts, uploads := h.snapshot(); len(uploads) > 0 || slices.Contains(scripts, markKeep) {
		t.Errorf("B -> B: scripts %v, uploads %v; want nothing replaced", scripts, uploads)
	}

	// A binary that exits at once: rolled back, B runs again.
	rep, err = up("version:vBad\nexits at once\n", fp)
	if err == nil || rep.Outcome != model.OutcomeRolledBack || rep.From != "vB" || rep.To != "vBad" ||
		!strings.Contains(rep.Detail, "did not register with version vBad") {
		t.Fatalf("B -> bad: %+v, %v; want rolled_back vB -> vBad", rep, err)
	}
	if !bytes.Equal(h.files[BinPath], []byte("version:vB\n")) || !h.running {
		t.Errorf("after the rollback: binary %q, running %v; want B running", h.files[BinPath], h.running)
	}
	if m, _ := b.Store.Minion(context.Background(), "web1"); m.Fingerprint != fp || m.Version != "vB" {
		t.Errorf("minion after the rollback: %s %s; want %s at vB", m.Fingerprint, m.Version, fp)
	}
}
