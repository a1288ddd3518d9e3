//go:build !windows

package hostfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/felix-ops/felix/model"
)

// TestPut puts a new file: its content goes through a temp file named in
// the journal while it is read, the file gets the default mode, and
// nothing is left beside it; put again, its content is not opened.
func TestPut(t *testing.T) {
	journal := t.TempDir()
	s := newStore(t, journal)
	dir := t.TempDir()
	dest := filepath.Join(dir, "app.conf")
	const size = 1 << 20
	sum := sha256.New()
	if _, err := io.Copy(sum, newGenReader(5, size)); err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	var inFlight []string // what the journal named while the content was read
	f := model.PutFile{Dest: dest, Size: size, SHA256: hex.EncodeToString(sum.Sum(nil)), Open: func() (io.ReadCloser, error) {
		opened.Add(1)
		return &readHook{r: newGenReader(5, size), first: func() {
			for _, n := range names(t, journal) {
				inFlight = append(inFlight, readFile(t, filepath.Join(journal, n)))
			}
		}}, nil
	}}
	res, err := s.Put(t.Context(), f)
	if err != nil || !res.Changed || res.Backup != "" {
		t.Fatalf("Put new = %+v, %v; want changed, no backup", res, err)
	}
	if len(inFlight) != 1 || filepath.Dir(inFlight[0]) != dir ||
		!strings.HasPrefix(filepath.Base(inFlight[0]), model.PutTempPrefix+"app.conf-") || !strings.HasSuffix(inFlight[0], "\n") {
		t.Errorf("the journal named %q while the content was read; want one temp file in %s", inFlight, dir)
	}
	wantMode(dest, 0o644)(t)
	if got := sha256File(t, dest); got != f.SHA256 {
		t.Errorf("sha256 on disk = %s; want %s", got, f.SHA256)
	}
	if res, err := s.Put(t.Context(), f); err != nil || res.Changed || opened.Load() != 1 {
		t.Errorf("re-Put = %+v, %v (opened %d); want unchanged, opened once in all", res, err, opened.Load())
	}
	if got := names(t, dir); len(got) != 1 {
		t.Errorf("dir holds %v; want only app.conf", got)
	}
	noTemp(t, dir, journal)
}

// readHook calls first before the first Read of r.
type readHook struct {
	r     io.ReadCloser
	first func()
}

func (h *readHook) Read(p []byte) (int, error) {
	if h.first != nil {
		h.first()
		h.first = nil
	}
	return h.r.Read(p)
}

func (h *readHook) Close() error { return h.r.Close() }

// sha256File returns the sha256 of the file at path.
func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// TestPutAttrsInPlace puts files whose content the minion already
// has: another mode or owner is set in place (the same inode), the
// content is neither asked for nor read and no backup is made; another
// content is sent and replaces the file as before.
func TestPutAttrsInPlace(t *testing.T) {
	journal := t.TempDir()
	s := newStore(t, journal)
	ctx := t.Context()
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
			res, err := s.Put(ctx, f)
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

func TestPutMkdir(t *testing.T) {
	s := newStore(t, "")
	ctx := t.Context()
	dir := t.TempDir()
	dest := filepath.Join(dir, "a", "b", "f")
	f := putBytes(dest, []byte("x"), nil)
	if _, err := s.Put(ctx, f); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Put without mkdir = %v; want a missing directory error", err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("dir holds %v after a refused put", n)
	}
	f.Mkdir = true
	if res, err := s.Put(ctx, f); err != nil || !res.Changed {
		t.Fatalf("Put with mkdir = %+v, %v", res, err)
	}
	if got := readFile(t, dest); got != "x" {
		t.Errorf("content = %q", got)
	}
	if m := modeOf(t, filepath.Join(dir, "a")); !m.IsDir() || m.Perm()&0o755 != 0o755 {
		t.Errorf("made directory mode = %v; want drwxr-xr-x", m)
	}
}

func TestPutRefused(t *testing.T) {
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
	s := newStore(t, t.TempDir(), root)
	ctx := t.Context()

	good := putBytes(filepath.Join(root, "sub", "ok"), []byte("ok"), nil)
	if res, err := s.Put(ctx, good); err != nil || !res.Changed {
		t.Fatalf("Put inside the roots = %+v, %v", res, err)
	}

	tests := []struct {
		name, dest, owner, sha, want string
		mkdir                        bool
		kind                         error
	}{
		{name: "relative", dest: "sub/rel", want: "not absolute", kind: ErrInvalid},
		{name: "dot dot", dest: root + "/sub/../rel", want: "not clean", kind: ErrInvalid},
		{name: "trailing slash", dest: root + "/sub/", want: "not clean", kind: ErrInvalid},
		{name: "NUL", dest: root + "/sub/a\x00b", want: "NUL", kind: ErrInvalid},
		{name: "root", dest: "/", want: "names no file", kind: ErrInvalid},
		{name: "outside the roots", dest: outside + "/f", want: "outside", mkdir: true, kind: ErrOutside},
		{name: "through a symlink out of the roots", dest: root + "/escape/f", want: "outside", kind: ErrOutside},
		{name: "symlink destination", dest: root + "/link", want: "symlink", kind: ErrRefused},
		{name: "directory destination", dest: root + "/sub", want: "not a regular file", kind: ErrRefused},
		{name: "missing directory", dest: root + "/none/f", want: "does not exist (mkdir not asked)", kind: ErrRefused},
		{name: "unknown owner", dest: root + "/sub/o", owner: "no-such-user-felix:root", want: "no-such-user-felix", kind: ErrInvalid},
		{name: "bad sha256", dest: root + "/sub/s", sha: "abc", want: "sha256", kind: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened atomic.Int64
			f := putBytes(tt.dest, []byte("evil"), &opened)
			f.Owner, f.Mkdir = tt.owner, tt.mkdir
			if tt.sha != "" {
				f.SHA256 = tt.sha
			}
			_, err := s.Put(ctx, f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put(%q) = %v; want an error with %q", tt.dest, err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("Put(%q) = %v; want it marked %v", tt.dest, err, tt.kind)
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

// TestPutFailures checks that a put that fails leaves the old file
// intact and no temp file or journal entry behind.
func TestPutFailures(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context // nil: the test's
		f    func(dest string) model.PutFile
		want string
		kind error // nil: none of the kinds (the host or the reader failed)
	}{
		{name: "sha256 mismatch", want: "sha256 of the content is", kind: ErrCorrupt, f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("new content"), nil)
			f.SHA256 = sha256Hex([]byte("what the client claimed"))
			return f
		}},
		{name: "reader fails midway", want: "read the content: " + errDiskOnFire.Error(), f: func(dest string) model.PutFile {
			return model.PutFile{Dest: dest, Size: 1 << 20, SHA256: sha256Hex(nil), Open: func() (io.ReadCloser, error) {
				g := newGenReader(3, 1<<20)
				g.failAfter = 300 << 10
				return g, nil
			}}
		}},
		{name: "content shorter than its size", want: "got 5 bytes of the announced 100", kind: ErrInvalid, f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("short"), nil)
			f.Size = 100
			return f
		}},
		{name: "content longer than its size", want: "more content than the announced 3 bytes", kind: ErrInvalid, f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("longer"), nil)
			f.Size = 3
			return f
		}},
		{name: "open fails", want: "open the content: " + errDiskOnFire.Error(), f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("new"), nil)
			f.Open = func() (io.ReadCloser, error) { return nil, errDiskOnFire }
			return f
		}},
		{name: "no Open", want: "cannot be opened", kind: ErrInvalid, f: func(dest string) model.PutFile {
			f := putBytes(dest, []byte("new"), nil)
			f.Open = nil
			return f
		}},
		{name: "context ended", ctx: canceled, want: context.Canceled.Error(), f: func(dest string) model.PutFile {
			return putBytes(dest, []byte("new"), nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			journal := t.TempDir()
			s := newStore(t, journal)
			dir := t.TempDir()
			dest := filepath.Join(dir, "f")
			if err := os.WriteFile(dest, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			_, err := s.Put(ctx, tt.f(dest))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put = %v; want an error with %q", err, tt.want)
			}
			for _, kind := range []error{ErrInvalid, ErrRefused, ErrOutside, ErrNotFound, ErrCorrupt} {
				if errors.Is(err, kind) != (kind == tt.kind) {
					t.Errorf("Put = %v; errors.Is(err, %v) = %v; want %v", err, kind, !(kind == tt.kind), kind == tt.kind)
				}
			}
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
