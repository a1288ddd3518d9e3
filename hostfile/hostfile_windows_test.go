package hostfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"

	"github.com/felix-ops/felix/model"
)

// winPut is a file put of content to dest.
func winPut(dest, content string) model.PutFile {
	sum := sha256.Sum256([]byte(content))
	return model.PutFile{Dest: dest, Size: int64(len(content)), SHA256: hex.EncodeToString(sum[:]),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
}

func TestWindowsPutGet(t *testing.T) {
	dir := testenv.RemovableTempDir(t)
	s := &Store{Roots: []string{dir}, JournalDir: filepath.Join(testenv.RemovableTempDir(t), "journal")}
	ctx := context.Background()
	dest := filepath.Join(dir, "sub", "app.conf")

	if _, err := s.Put(ctx, winPut(dest, "one")); !errors.Is(err, ErrRefused) {
		t.Errorf("put without mkdir into a missing directory: %v; want ErrRefused", err)
	}
	f := winPut(dest, "one")
	f.Mkdir = true
	if res, err := s.Put(ctx, f); err != nil || !res.Changed {
		t.Fatalf("put: %+v, %v", res, err)
	}
	if res, err := s.Put(ctx, f); err != nil || res.Changed {
		t.Errorf("the same put again: %+v, %v; want unchanged", res, err)
	}
	if res, err := s.Put(ctx, winPut(dest, "two!")); err != nil || !res.Changed {
		t.Errorf("a new content: %+v, %v", res, err)
	}
	var buf bytes.Buffer
	n, sum, err := s.Get(ctx, model.GetFile{Path: dest}, &buf)
	want := sha256.Sum256([]byte("two!"))
	if err != nil || n != 4 || buf.String() != "two!" || sum != hex.EncodeToString(want[:]) {
		t.Errorf("get: %d %s %q %v", n, sum, buf.String(), err)
	}
	bad := winPut(dest, "three")
	bad.SHA256 = strings.Repeat("0", 64)
	if _, err := s.Put(ctx, bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("a put of corrupt content: %v; want ErrCorrupt", err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "two!" {
		t.Errorf("after a failed put the file holds %q; want the old content", b)
	}
	ents, _ := os.ReadDir(filepath.Dir(dest))
	if len(ents) != 1 {
		t.Errorf("temp files left: %v", ents)
	}

	for name, f := range map[string]model.PutFile{
		"mode":     func() model.PutFile { f := winPut(dest, "x"); f.Mode = 0o600; return f }(),
		"owner":    func() model.PutFile { f := winPut(dest, "x"); f.Owner = "root"; return f }(),
		"device":   winPut(filepath.Join(dir, "NUL"), "x"),
		"relative": winPut(`sub\x`, "x"),
	} {
		if _, err := s.Put(ctx, f); !errors.Is(err, ErrInvalid) {
			t.Errorf("put with %s: %v; want ErrInvalid", name, err)
		}
	}
	outside := winPut(filepath.Join(testenv.RemovableTempDir(t), "x"), "x")
	if _, err := s.Put(ctx, outside); !errors.Is(err, ErrOutside) {
		t.Errorf("put outside the roots: %v; want ErrOutside", err)
	}
	if _, _, err := s.Get(ctx, model.GetFile{Path: filepath.Join(dir, "missing")}, io.Discard); !errors.Is(err, ErrNotFound) {
		t.Errorf("get of a missing file: %v; want ErrNotFound", err)
	}
}
