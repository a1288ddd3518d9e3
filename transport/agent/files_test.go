package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/model"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putBytes is a PutFile of fixed content whose Open calls are counted.
func putBytes(dest string, b []byte, opened *atomic.Int64) model.PutFile {
	return model.PutFile{Dest: dest, Size: int64(len(b)), SHA256: sha256Hex(b), Open: func() (io.ReadCloser, error) {
		if opened != nil {
			opened.Add(1)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// withFiles gives the server a Store with the journal directory and file
// roots given.
func withFiles(journal string, roots ...string) func(*Server) {
	return func(s *Server) {
		s.Files = &hostfile.Store{Roots: roots, JournalDir: journal, Log: s.Log}
	}
}

// names lists a directory's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func TestPutFile(t *testing.T) {
	journal := t.TempDir()
	h := newHarness(t, withFiles(journal))
	ctx := testCtx(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	var opened atomic.Int64

	// A new file.
	f := putBytes(dest, []byte("v1\n"), &opened)
	f.Mode = 0o640
	res, err := h.pool.Put(ctx, h.target, f)
	if err != nil || !res.Changed || res.Backup != "" {
		t.Fatalf("Put new = %+v, %v; want changed, no backup", res, err)
	}
	if got := readFile(t, dest); got != "v1\n" {
		t.Errorf("content = %q; want %q", got, "v1\n")
	}
	if m := modeOf(t, dest); m != 0o640 {
		t.Errorf("mode = %v; want 0640", m)
	}

	// The same again: nothing is sent.
	opened.Store(0)
	res, err = h.pool.Put(ctx, h.target, f)
	if err != nil || res.Changed {
		t.Fatalf("re-Put = %+v, %v; want unchanged", res, err)
	}
	if n := opened.Load(); n != 0 {
		t.Errorf("re-Put opened the content %d times; want 0", n)
	}
	f.Mode = 0 // keep the file's mode: still unchanged
	if res, err = h.pool.Put(ctx, h.target, f); err != nil || res.Changed || opened.Load() != 0 {
		t.Fatalf("re-Put without mode = %+v, %v (opened %d); want unchanged", res, err, opened.Load())
	}

	// New content with a backup; the mode is kept.
	f = putBytes(dest, []byte("v2\n"), &opened)
	f.Backup = true
	res, err = h.pool.Put(ctx, h.target, f)
	if err != nil || !res.Changed || res.Backup == "" {
		t.Fatalf("Put changed = %+v, %v; want changed with a backup", res, err)
	}
	if got := readFile(t, dest); got != "v2\n" {
		t.Errorf("content = %q; want %q", got, "v2\n")
	}
	if m := modeOf(t, dest); m != 0o640 {
		t.Errorf("mode = %v; want 0640 kept", m)
	}
	if !strings.HasPrefix(res.Backup, dest+".felix-bak-") {
		t.Errorf("backup = %q; want %s.felix-bak-<time>", res.Backup, dest)
	}
	if got := readFile(t, res.Backup); got != "v1\n" {
		t.Errorf("backup content = %q; want %q", got, "v1\n")
	}

	// A mode change alone is made in place (TestPutFileAttrsInPlace).
	opened.Store(0)
	f.Backup, f.Mode = false, 0o600
	if res, err = h.pool.Put(ctx, h.target, f); err != nil || !res.Changed || opened.Load() != 0 {
		t.Fatalf("Put with a new mode = %+v, %v (opened %d); want changed, not opened", res, err, opened.Load())
	}
	if m := modeOf(t, dest); m != 0o600 {
		t.Errorf("mode = %v; want 0600", m)
	}

	if os.Geteuid() == 0 {
		// Another owner, then root:root back.
		f.Owner = "nobody:nogroup"
		if _, err := h.pool.Put(ctx, h.target, f); err != nil {
			t.Logf("no nobody:nogroup here: %v", err)
		}
		f.Owner = "root:root"
		if _, err := h.pool.Put(ctx, h.target, f); err != nil {
			t.Fatalf("Put owner root:root: %v", err)
		}
		st, _ := os.Stat(dest)
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 0 || s.Gid != 0 {
			t.Errorf("owner = %d:%d; want 0:0", s.Uid, s.Gid)
		}
		opened.Store(0)
		if res, err := h.pool.Put(ctx, h.target, f); err != nil || res.Changed || opened.Load() != 0 {
			t.Errorf("re-Put root:root = %+v, %v; want unchanged", res, err)
		}
	}

	// Nothing left beside the files, nothing in the journal.
	for _, n := range names(t, dir) {
		if strings.HasPrefix(n, ".felix-tmp-") {
			t.Errorf("temp file %s left", n)
		}
	}
	if n := names(t, journal); len(n) != 0 {
		t.Errorf("journal holds %v; want nothing", n)
	}
}

// TestPutFileFailures checks that a transfer that fails leaves the old
// file intact and no temp file or journal entry behind.
func TestPutFileFailures(t *testing.T) {
	tests := []struct {
		name string
		f    func(dest string) model.PutFile
		want string
	}{
		{name: "sha256 mismatch", want: "sha256", f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("new content"), nil)
			f.SHA256 = sha256Hex([]byte("what the client claimed"))
			return f
		}},
		{name: "reader fails midway", want: errDiskOnFire.Error(), f: func(dest string) model.PutFile {
			return model.PutFile{Dest: dest, Size: 1 << 20, SHA256: sha256Hex(nil), Open: func() (io.ReadCloser, error) {
				g := newGenReader(3, 1<<20)
				g.failAfter = 300 << 10
				return g, nil
			}}
		}},
		{name: "content shorter than its size", want: "not its size", f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("short"), nil)
			f.Size = 100
			return f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			journal := t.TempDir()
			h := newHarness(t, withFiles(journal))
			dir := t.TempDir()
			dest := filepath.Join(dir, "f")
			if err := os.WriteFile(dest, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := h.pool.Put(testCtx(t), h.target, tt.f(dest))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put = %v; want an error with %q", err, tt.want)
			}
			h.stop() // waits for the handler
			if got := readFile(t, dest); got != "old" {
				t.Errorf("dest = %q; want the old content", got)
			}
			if got := names(t, dir); len(got) != 1 {
				t.Errorf("dir holds %v; want only f", got)
			}
			if got := names(t, journal); len(got) != 0 {
				t.Errorf("journal holds %v; want nothing", got)
			}
		})
	}
}

func TestGetFile(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	h := newHarness(t, withFiles("", root))
	ctx := testCtx(t)
	content := make([]byte, 5<<20)
	rand.Read(content)
	path := filepath.Join(root, "big")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	size, sum, err := h.pool.Get(ctx, h.target, model.GetFile{Path: path}, &buf)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if size != int64(len(content)) || sum != sha256Hex(content) || !bytes.Equal(buf.Bytes(), content) {
		t.Errorf("Get = %d bytes, sha256 %s; want %d, %s and the same bytes", size, sum, len(content), sha256Hex(content))
	}

	if err := os.Symlink(path, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{root + "/link", root, root + "/missing", root + "/missing/x", "big",
		outside + "/secret", root + "/../" + filepath.Base(outside) + "/secret"} {
		var buf bytes.Buffer
		if _, _, err := h.pool.Get(ctx, h.target, model.GetFile{Path: p}, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("Get(%q) = %v with %d bytes; want an error and nothing", p, err, buf.Len())
		}
	}

	// Asked to, Get follows a symlink, but not out of the file_roots.
	buf.Reset()
	if size, sum, err := h.pool.Get(ctx, h.target, model.GetFile{Path: root + "/link", FollowSymlinks: true}, &buf); err != nil ||
		size != int64(len(content)) || sum != sha256Hex(content) {
		t.Errorf("Get(link, follow) = %d, %s, %v; want the target's content", size, sum, err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, _, err := h.pool.Get(ctx, h.target, model.GetFile{Path: root + "/out", FollowSymlinks: true}, &out); err == nil ||
		!strings.Contains(err.Error(), "file_roots") || out.Len() != 0 {
		t.Errorf("Get(link out of the roots, follow) = %v with %d bytes; want refused naming file_roots", err, out.Len())
	}
}

func TestPutFileLarge(t *testing.T) {
	const size = 50 << 20
	h := newHarness(t, withFiles(t.TempDir()))
	sum := sha256.New()
	if _, err := io.Copy(sum, newGenReader(7, size)); err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(sum.Sum(nil))
	dest := filepath.Join(t.TempDir(), "big")
	var g *genReader
	f := model.PutFile{Dest: dest, Size: size, SHA256: want, Open: func() (io.ReadCloser, error) {
		g = newGenReader(7, size)
		return g, nil
	}}
	res, err := h.pool.Put(testCtx(t), h.target, f)
	if err != nil || !res.Changed {
		t.Fatalf("Put = %+v, %v", res, err)
	}
	if !g.closed.Load() {
		t.Error("the reader was not closed")
	}
	df, err := os.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	got := sha256.New()
	n, err := io.Copy(got, df)
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != want {
		t.Errorf("on disk: %d bytes, sha256 %x, %v; want %d, %s", n, got.Sum(nil), err, size, want)
	}
	if m := modeOf(t, dest); m != 0o644 {
		t.Errorf("mode = %v; want 0644 for a new file", m)
	}
}
