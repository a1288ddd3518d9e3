//go:build !windows

package hostfile

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/model"
)

func TestGet(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	s := newStore(t, "", root)
	ctx := t.Context()
	content := make([]byte, 5<<20)
	rand.Read(content)
	path := filepath.Join(root, "big")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	size, sum, err := s.Get(ctx, model.GetFile{Path: path}, &buf)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if size != int64(len(content)) || sum != sha256Hex(content) || !bytes.Equal(buf.Bytes(), content) {
		t.Errorf("Get = %d bytes, sha256 %s; want %d, %s and the same bytes", size, sum, len(content), sha256Hex(content))
	}

	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(path, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		g    model.GetFile
		want string
		kind error
	}{
		{g: model.GetFile{Path: root + "/link"}, want: "a symlink; refusing to follow it", kind: ErrRefused},
		{g: model.GetFile{Path: root}, want: "outside this minion's file_roots", kind: ErrOutside}, // a root is no file in it
		{g: model.GetFile{Path: root + "/sub"}, want: "not a regular file", kind: ErrRefused},
		{g: model.GetFile{Path: root + "/missing"}, want: "no such file", kind: ErrNotFound},
		{g: model.GetFile{Path: root + "/missing/x"}, want: "no such file", kind: ErrNotFound},
		{g: model.GetFile{Path: root + "/missing", FollowSymlinks: true}, want: "no such file", kind: ErrNotFound},
		{g: model.GetFile{Path: root + "/big/x"}, want: "no such file", kind: ErrNotFound},
		{g: model.GetFile{Path: "big"}, want: "not absolute", kind: ErrInvalid},
		{g: model.GetFile{Path: outside + "/secret"}, want: "outside this minion's file_roots", kind: ErrOutside},
		{g: model.GetFile{Path: root + "/../" + filepath.Base(outside) + "/secret"}, want: "not clean", kind: ErrInvalid},
		// Asked to, Get follows a symlink, but not out of the file_roots.
		{g: model.GetFile{Path: root + "/out", FollowSymlinks: true}, want: "outside this minion's file_roots", kind: ErrOutside},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		_, _, err := s.Get(ctx, tt.g, &buf)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, tt.kind) || buf.Len() != 0 {
			t.Errorf("Get(%+v) = %v with %d bytes; want an error with %q marked %v, and nothing", tt.g, err, buf.Len(), tt.want, tt.kind)
		}
	}

	buf.Reset()
	if size, sum, err := s.Get(ctx, model.GetFile{Path: root + "/link", FollowSymlinks: true}, &buf); err != nil ||
		size != int64(len(content)) || sum != sha256Hex(content) {
		t.Errorf("Get(link, follow) = %d, %s, %v; want the target's content", size, sum, err)
	}
}

// failWriter takes n bytes, then fails.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskOnFire
	}
	w.n -= len(p)
	return len(p), nil
}

// TestGetFailures checks that a writer's failure and the end of the
// context stop a Get, each named as what it is.
func TestGetFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, "")
	n, sum, err := s.Get(t.Context(), model.GetFile{Path: path}, &failWriter{n: 100 << 10})
	if err == nil || !strings.Contains(err.Error(), "write: "+errDiskOnFire.Error()) || !errors.Is(err, errDiskOnFire) || sum != "" || n != 100<<10 {
		t.Errorf("Get to a failing writer = %d, %q, %v; want 100 KiB written and the writer's error", n, sum, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var buf bytes.Buffer
	if n, _, err := s.Get(ctx, model.GetFile{Path: path}, &buf); !errors.Is(err, context.Canceled) || n != 0 || buf.Len() != 0 {
		t.Errorf("Get with its context ended = %d, %v (%d bytes written); want context.Canceled and nothing", n, err, buf.Len())
	}
}
