// TEMPORARY (branch fleetupgrade only): a minimal stand-in for helper B's
// minion/upgrade.go (Upgrade, ErrSameVersion), so the fleet upgrade RPC
// links and runs before B's branch is merged. It has no watchdog and no
// rollback, and re-executes in place (same pid). DELETE THIS FILE when
// B's minion/upgrade.go lands.
package minion

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/felix-ops/felix/version"
)

// ErrSameVersion is returned by Upgrade for a binary at the running version.
var ErrSameVersion = errors.New("already at that version")

// Upgrade checks staged (ELF for this arch, sha256, `staged version`),
// swaps it in keeping the old binary as .prev, and re-executes shortly after.
func (m *Minion) Upgrade(ctx context.Context, staged, wantSHA256 string) (string, error) {
	defer os.Remove(staged)
	ef, err := elf.Open(staged)
	if err != nil {
		return "", fmt.Errorf("upgrade: %s is not an executable: %w", staged, err)
	}
	machine := ef.Machine
	ef.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64, "386": elf.EM_386, "arm": elf.EM_ARM}[runtime.GOARCH]
	if machine != want {
		return "", fmt.Errorf("upgrade: %s is for %s, not %s", staged, machine, runtime.GOARCH)
	}
	f, err := os.Open(staged)
	if err != nil {
		return "", fmt.Errorf("upgrade: %w", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if got := hex.EncodeToString(h.Sum(nil)); err != nil || got != wantSHA256 {
		return "", fmt.Errorf("upgrade: sha256 %s, want %s (%v)", got, wantSHA256, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := osexec.CommandContext(vctx, staged, "version").Output()
	if err != nil {
		return "", fmt.Errorf("upgrade: %s version: %w", staged, err)
	}
	words := strings.Fields(string(out))
	if len(words) == 0 {
		return "", fmt.Errorf("upgrade: %s version said nothing", staged)
	}
	v := words[len(words)-1]
	if v == version.String() {
		return v, ErrSameVersion
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("upgrade: %w", err)
	}
	b, err := os.ReadFile(staged)
	if err == nil {
		err = os.WriteFile(exe+".new", b, 0o755)
	}
	if err == nil {
		err = os.Link(exe, exe+".prev")
		if errors.Is(err, os.ErrExist) {
			os.Remove(exe + ".prev")
			err = os.Link(exe, exe+".prev")
		}
	}
	if err == nil {
		err = os.Rename(exe+".new", exe)
	}
	if err != nil {
		return "", fmt.Errorf("upgrade: swap %s: %w", exe, err)
	}
	m.log.Info("upgrade: swapped; re-executing", "from", version.String(), "to", v)
	time.AfterFunc(500*time.Millisecond, func() {
		os.Remove(filepath.Join(m.cfg.DataDir, pidFile)) // the new image writes its own
		syscall.Exec(exe, os.Args, os.Environ())
	})
	return v, nil
}
