package agent

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
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

// withFiles sets the server's journal directory and file roots.
func withFiles(journal string, roots ...string) func(*Server) {
	return func(s *Server) {
		s.JournalDir = journal
		s.FileRoots = roots
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

// TestPutFileAttrsInPlace puts files whose content the minion already
// has: another mode or owner is set in place (the same inode), the
// content is neither asked for nor read and no backup is made; another
// content is sent and replaces the file as before.
func TestPutFileAttrsInPlace(t *testing.T) {
	journal := t.TempDir()
	h := newHarness(t, withFiles(journal))
	ctx := testCtx(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	alias := filepath.Join(dir, "alias")
	if err := os.WriteFile(dest, []byte("v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		content   string
		mode      uint32
		owner     func(t *testing.T) string // nil: none asked
		setup     func(t *testing.T)
		changed   bool
		sent      bool // the content was opened, the file replaced
		backup    bool
		wantMode  os.FileMode
		wantOwner func(t *testing.T) (uint32, uint32) // nil: not checked
		check     func(t *testing.T)
	}{
		{name: "all the same", content: "v1\n", mode: 0o640, wantMode: 0o640},
		{name: "mode differs", content: "v1\n", mode: 0o600, changed: true, wantMode: 0o600},
		{name: "mode 0 keeps it", content: "v1\n", wantMode: 0o600},
		{name: "setuid", content: "v1\n", mode: 0o4755, changed: true, wantMode: os.ModeSetuid | 0o755},
		{name: "owner differs, the set-id mode kept", content: "v1\n", changed: true,
			owner: func(t *testing.T) string {
				uid, gid := nobody(t)
				return fmt.Sprintf("%d:%d", uid, gid)
			},
			wantMode: os.ModeSetuid | 0o755, wantOwner: nobody},
		{name: "owner and mode differ", content: "v1\n", mode: 0o640, changed: true,
			owner: func(t *testing.T) string {
				nobody(t) // root
				return "0:0"
			},
			wantMode: 0o640, wantOwner: func(*testing.T) (uint32, uint32) { return 0, 0 }},
		{name: "content differs", content: "v2\n", mode: 0o640, changed: true, sent: true, backup: true, wantMode: 0o640,
			check: func(t *testing.T) {
				bak, err := filepath.Glob(dest + ".felix-bak-*")
				if err != nil || len(bak) != 1 {
					t.Fatalf("backups = %q, %v; want the one of v1", bak, err)
				}
				wantContent(bak[0], "v1\n")(t)
			}},
		{name: "hard-linked, mode differs: replaced, no backup", content: "v2\n", mode: 0o600, changed: true, sent: true, wantMode: 0o600,
			setup: func(t *testing.T) {
				if err := os.Link(dest, alias); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T) {
				wantMode(alias, 0o640)(t)
				wantContent(alias, "v2\n")(t)
			}},
		{name: "all the same again", content: "v2\n", mode: 0o600, wantMode: 0o600},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			var opened atomic.Int64
			f := putBytes(dest, []byte(st.content), &opened)
			f.Mode, f.Backup = st.mode, true
			if st.owner != nil {
				f.Owner = st.owner(t)
			}
			if st.setup != nil {
				st.setup(t)
			}
			before, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			res, err := h.pool.Put(ctx, h.target, f)
			if err != nil || res.Changed != st.changed {
				t.Fatalf("Put = %+v, %v; want changed %v", res, err, st.changed)
			}
			if (res.Backup != "") != st.backup {
				t.Errorf("Put made the backup %q; want one: %v", res.Backup, st.backup)
			}
			if n := opened.Load(); n != 0 != st.sent {
				t.Errorf("the content was opened %d times; want sent %v", n, st.sent)
			}
			after, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if same := os.SameFile(before, after); same == st.sent {
				t.Errorf("the same file after the put: %v; want %v", same, !st.sent)
			}
			wantContent(dest, st.content)(t)
			wantMode(dest, st.wantMode)(t)
			if st.wantOwner != nil {
				wu, wg := st.wantOwner(t)
				if u, g := ownerOf(t, dest); u != wu || g != wg {
					t.Errorf("owner = %d:%d; want %d:%d", u, g, wu, wg)
				}
			}
			if st.check != nil {
				st.check(t)
			}
		})
		if !ok {
			break // the later steps build on this one
		}
	}
	noTemp(t, dir, journal)
}

func TestPutFileMkdir(t *testing.T) {
	h := newHarness(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "a", "b", "f")
	f := putBytes(dest, []byte("x"), nil)
	if _, err := h.pool.Put(ctx, h.target, f); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Put without mkdir = %v; want a missing directory error", err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("dir holds %v after a refused put", n)
	}
	f.Mkdir = true
	if res, err := h.pool.Put(ctx, h.target, f); err != nil || !res.Changed {
		t.Fatalf("Put with mkdir = %+v, %v", res, err)
	}
	if got := readFile(t, dest); got != "x" {
		t.Errorf("content = %q", got)
	}
	if m := modeOf(t, filepath.Join(dir, "a")); !m.IsDir() || m.Perm()&0o755 != 0o755 {
		t.Errorf("made directory mode = %v; want drwxr-xr-x", m)
	}
}

func TestPutFileRefused(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withFiles(t.TempDir(), root))
	ctx := testCtx(t)

	good := putBytes(filepath.Join(root, "sub", "ok"), []byte("ok"), nil)
	if res, err := h.pool.Put(ctx, h.target, good); err != nil || !res.Changed {
		t.Fatalf("Put inside the roots = %+v, %v", res, err)
	}

	tests := []struct {
		name, dest, owner, sha, want string
		mkdir                        bool
	}{
		{name: "relative", dest: "sub/rel", want: "not absolute"},
		{name: "dot dot", dest: root + "/sub/../rel", want: "not clean"},
		{name: "trailing slash", dest: root + "/sub/", want: "not clean"},
		{name: "NUL", dest: root + "/sub/a\x00b", want: "NUL"},
		{name: "root", dest: "/", want: "names no file"},
		{name: "outside the roots", dest: outside + "/f", want: "outside", mkdir: true},
		{name: "through a symlink out of the roots", dest: root + "/escape/f", want: "outside"},
		{name: "symlink destination", dest: root + "/link", want: "symlink"},
		{name: "directory destination", dest: root + "/sub", want: "not a regular file"},
		{name: "unknown owner", dest: root + "/sub/o", owner: "no-such-user-felix:root", want: "no-such-user-felix"},
		{name: "bad sha256", dest: root + "/sub/s", sha: "abc", want: "sha256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened atomic.Int64
			f := putBytes(tt.dest, []byte("evil"), &opened)
			f.Owner, f.Mkdir = tt.owner, tt.mkdir
			if tt.sha != "" {
				f.SHA256 = tt.sha
			}
			_, err := h.pool.Put(ctx, h.target, f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put(%q) = %v; want an error with %q", tt.dest, err, tt.want)
			}
			if errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Put(%q) = %v; must not be unreachable", tt.dest, err)
			}
			if n := opened.Load(); n != 0 {
				t.Errorf("content opened %d times; want 0", n)
			}
		})
	}
	if got := names(t, outside); len(got) != 0 {
		t.Errorf("outside holds %v; want nothing", got)
	}
	if got := strings.Join(names(t, root), " "); got != "escape link sub target" {
		t.Errorf("root holds %q; want only what the test made", got)
	}
	if got := strings.Join(names(t, filepath.Join(root, "sub")), " "); got != "ok" {
		t.Errorf("root/sub holds %q; want only ok", got)
	}
	if got := readFile(t, target); got != "precious" {
		t.Errorf("symlink target = %q; want it untouched", got)
	}
	if m := modeOf(t, filepath.Join(root, "link")); m&os.ModeSymlink == 0 {
		t.Errorf("link mode = %v; want still a symlink", m)
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

func TestSweepTemp(t *testing.T) {
	dir, journal := t.TempDir(), t.TempDir()
	tmp := filepath.Join(dir, ".felix-tmp-f-0123456789abcdef")
	tmpLink := filepath.Join(dir, ".felix-tmp-l-0123456789abcdef")
	tmpDir := filepath.Join(dir, ".felix-tmp-d-0123456789abcdef")
	keep := filepath.Join(dir, "keep")
	for _, p := range []string{tmp, keep} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("keep", tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A transfer that died, a symlink put that died, one whose temp file
	// is already gone, an entry naming something that is not a temp file,
	// and one naming a directory (never removed).
	entries := map[string]string{"a": tmp + "\n", "b": filepath.Join(dir, ".felix-tmp-gone-1") + "\n", "c": keep + "\n",
		"d": tmpLink + "\n", "e": tmpDir + "\n"}
	for name, content := range entries {
		if err := os.WriteFile(filepath.Join(journal, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := NewServer("m1", "test", testenv.Logger(t))
	s.JournalDir = journal
	if err := s.SweepTemp(); err != nil {
		t.Fatalf("SweepTemp: %v", err)
	}
	if got, want := strings.Join(names(t, dir), " "), filepath.Base(tmpDir)+" keep"; got != want {
		t.Errorf("dir holds %q; want %q", got, want)
	}
	if got := readFile(t, keep); got != "x" {
		t.Errorf("keep = %q; want it untouched", got)
	}
	if got := names(t, journal); len(got) != 0 {
		t.Errorf("journal holds %v; want nothing", got)
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
