package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

// TestUpgradeRPC streams binaries through the Upgrade RPC: a whole one
// reaches the self-upgrade inside the stage directory, checked; a
// truncated one, a sha256 mismatch or a refusal by the self-upgrade leave
// nothing behind; the running version answers unchanged; and Ping tells
// the running binary's sha256.
func TestUpgradeRPC(t *testing.T) {
	errSame := errors.New("already at that version")
	stage := t.TempDir()
	var mu sync.Mutex
	var got []string // contents handed to the self-upgrade
	h := newHarness(t, func(s *Server) {
		s.StageDir, s.SameVersion, s.BinarySHA256 = stage, errSame, "abc123"
		s.SelfUpgrade = func(_ context.Context, staged, sum string) (string, error) {
			if filepath.Dir(staged) != stage {
				t.Errorf("staged at %s; want inside %s", staged, stage)
			}
			b, err := os.ReadFile(staged)
			if err != nil {
				return "", err
			}
			mu.Lock()
			got = append(got, string(b))
			mu.Unlock()
			switch string(b) {
			case "same":
				return "test", errSame
			case "refused":
				return "", errors.New("not an executable for this arch")
			}
			os.Remove(staged) // swapped in: consumed
			return "v2", nil
		}
	})
	ctx := testCtx(t)
	bin := func(content string, size int64, sum string) model.UpgradeBinary {
		if sum == "" {
			s := sha256.Sum256([]byte(content))
			sum = hex.EncodeToString(s[:])
		}
		return model.UpgradeBinary{Name: "test", Size: size, SHA256: sum,
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
	}
	for _, tc := range []struct {
		name      string
		bin       model.UpgradeBinary
		version   string
		unchanged bool
		err       string
	}{
		{"new version", bin("new binary", 10, ""), "v2", false, ""},
		{"running version", bin("same", 4, ""), "test", true, ""},
		{"refused by the minion", bin("refused", 7, ""), "", false, "not an executable"},
		{"sha256 mismatch", bin("tampered", 8, strings.Repeat("0", 64)), "", false, "sha256 mismatch"},
		{"truncated", bin("short", 9, ""), "", false, "nothing swapped"},
	} {
		v, unchanged, err := h.pool.Upgrade(ctx, h.target, tc.bin)
		if v != tc.version || unchanged != tc.unchanged || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: Upgrade = %q, %v, %v; want %q, %v, error %q", tc.name, v, unchanged, err, tc.version, tc.unchanged, tc.err)
		}
	}
	if want := []string{"new binary", "same", "refused"}; !slices.Equal(got, want) {
		t.Errorf("the self-upgrade got %q; want %q (nothing of a bad transfer)", got, want)
	}
	// The minion's handler of the cancelled (truncated) stream may still
	// be cleaning up after the client has its error.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		left, _ := os.ReadDir(stage)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stage dir holds %d files after the refusals; want none", len(left))
		}
	}
	info, err := h.pool.Info(ctx, h.target)
	if err != nil || info.Version != "test" || info.BinarySHA256 != "abc123" {
		t.Errorf("Info = %+v, %v; want version test, sha256 abc123", info, err)
	}
}
