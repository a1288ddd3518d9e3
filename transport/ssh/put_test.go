package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport/ssh"
	"github.com/felix-ops/felix/transport/ssh/sshtest"
)

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putFile returns a PutFile of content whose Open calls are counted.
func putFile(dest string, content []byte, opens *int) model.PutFile {
	return model.PutFile{
		Dest:   dest,
		Size:   int64(len(content)),
		SHA256: sum256(content),
		Open: func() (io.ReadCloser, error) {
			if opens != nil {
				*opens++
			}
			return io.NopCloser(bytes.NewReader(content)), nil
		},
	}
}

// noTemp fails the test if a temp file is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".felix-tmp-") {
			t.Errorf("temp file %s left in %s", e.Name(), dir)
		}
	}
}

func mustContent(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s = %q, %v; want %q", path, b, err, want)
	}
}

func TestPut(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.39")
	ctx := context.Background()
	dir := t.TempDir()
	dest := filepath.Join(dir, "conf")

	// A new file gets its content and mode.
	var opens int
	f := putFile(dest, []byte("one\n"), &opens)
	f.Mode = 0o640
	res, err := p.Put(ctx, s.Target(), f)
	if err != nil || !res.Changed || res.Backup != "" {
		t.Fatalf("Put new = %+v, %v; want changed", res, err)
	}
	mustContent(t, dest, "one\n")
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, %v; want 0640", st.Mode(), err)
	}

	// The same again: unchanged, the content is not opened.
	opens = 0
	res, err = p.Put(ctx, s.Target(), f)
	if err != nil || res.Changed || opens != 0 {
		t.Errorf("Put same = %+v, %v, %d opens; want unchanged, no open", res, err, opens)
	}

	// The same content with another mode is a change.
	f.Mode = 0o600
	if res, err = p.Put(ctx, s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put new mode = %+v, %v; want changed", res, err)
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", st.Mode())
	}

	// New content with a backup; mode 0 keeps the old file's, a numeric
	// owner (our own) is accepted.
	f = putFile(dest, []byte("two\n"), nil)
	f.Backup = true
	f.Owner = strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	res, err = p.Put(ctx, s.Target(), f)
	if err != nil || !res.Changed || !strings.HasPrefix(res.Backup, dest+".felix-bak-") {
		t.Fatalf("Put backup = %+v, %v", res, err)
	}
	mustContent(t, dest, "two\n")
	mustContent(t, res.Backup, "one\n")
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want the old 0600", st.Mode())
	}

	// A missing directory: an error without Mkdir, made with it.
	deep := filepath.Join(dir, "a", "b", "c")
	f = putFile(deep, []byte("deep"), nil)
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put into a missing directory without Mkdir succeeded")
	}
	f.Mkdir = true
	if res, err := p.Put(ctx, s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put with Mkdir = %+v, %v", res, err)
	}
	mustContent(t, deep, "deep")
	if st, _ := os.Stat(deep); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode = %v; want 0644", st.Mode())
	}

	// Bad destinations are refused before anything is written.
	for _, d := range []string{"rel/x", dir + "/../" + filepath.Base(dir) + "/x", dir + "//x", dir + "/x\x00y", dir + "/", "/"} {
		var opens int
		if _, err := p.Put(ctx, s.Target(), putFile(d, []byte("bad"), &opens)); err == nil || opens != 0 {
			t.Errorf("Put(%q) = %v, %d opens; want an error, no open", d, err, opens)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Errorf("%s was written", filepath.Join(dir, "x"))
	}
	f = putFile(filepath.Join(dir, "named"), []byte("x"), nil)
	f.Owner = "root; touch /tmp/pwned"
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a non-numeric owner succeeded")
	}
	noTemp(t, dir)

	// Names are resolved on the host; mixed with numbers too.
	for _, tc := range []struct {
		owner    string
		uid, gid uint32
	}{{"nobody:nogroup", 65534, 65534}, {"root", 0, 65534}, {"0:root", 0, 0}, {":nogroup", 0, 65534}} {
		f = putFile(filepath.Join(dir, "owned"), []byte("x"), nil)
		f.Owner = tc.owner
		if _, err := p.Put(ctx, s.Target(), f); err != nil {
			t.Errorf("Put owner %q: %v", tc.owner, err)
			continue
		}
		st, _ := os.Stat(filepath.Join(dir, "owned"))
		if sys := st.Sys().(*syscall.Stat_t); sys.Uid != tc.uid || sys.Gid != tc.gid {
			t.Errorf("owner %q: %d:%d; want %d:%d", tc.owner, sys.Uid, sys.Gid, tc.uid, tc.gid)
		}
	}
	for _, bad := range []string{"no-such-user-felix", "root:no-such-group-felix"} {
		f = putFile(filepath.Join(dir, "owned"), []byte("y"), nil)
		f.Owner = bad
		if _, err := p.Put(ctx, s.Target(), f); err == nil || !strings.Contains(err.Error(), "no-such") {
			t.Errorf("Put owner %q = %v; want an error naming it", bad, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "owned")); string(b) != "x" {
		t.Errorf("a put with an unknown owner wrote %q", b)
	}
	noTemp(t, dir)
}

// TestPutAttrsInPlace puts files the host already has: another mode or
// owner is set in place (the same inode), the content is not opened and
// no backup is made; another content is sent and replaces the file.
func TestPutAttrsInPlace(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.58")
	ctx := context.Background()
	dir := t.TempDir()
	dest := filepath.Join(dir, "conf")
	if err := os.WriteFile(dest, []byte("v1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	asRoot := func(t *testing.T, owner string) string {
		if os.Geteuid() != 0 {
			testenv.Missing(t, "changing owners needs root")
		}
		return owner
	}
	steps := []struct {
		name     string
		content  string
		mode     uint32
		owner    func(t *testing.T) string // nil: none asked
		changed  bool
		sent     bool // the content was opened, the file replaced
		wantMode os.FileMode
		uid, gid uint32 // checked when owner is set
	}{
		{name: "all the same", content: "v1\n", mode: 0o640, wantMode: 0o640},
		{name: "mode differs", content: "v1\n", mode: 0o600, changed: true, wantMode: 0o600},
		{name: "mode 0 keeps it", content: "v1\n", wantMode: 0o600},
		{name: "setuid", content: "v1\n", mode: 0o4755, changed: true, wantMode: os.ModeSetuid | 0o755},
		{name: "owner differs, the set-id mode kept", content: "v1\n", changed: true, wantMode: os.ModeSetuid | 0o755,
			owner: func(t *testing.T) string { return asRoot(t, "65534:65534") }, uid: 65534, gid: 65534},
		{name: "owner and mode differ", content: "v1\n", mode: 0o640, changed: true, wantMode: 0o640,
			owner: func(t *testing.T) string { return asRoot(t, "0:0") }},
		{name: "same owner", content: "v1\n", wantMode: 0o640,
			owner: func(t *testing.T) string { return asRoot(t, "0:0") }},
		{name: "content differs", content: "v2\n", mode: 0o640, changed: true, sent: true, wantMode: 0o640},
		{name: "all the same again", content: "v2\n", mode: 0o640, wantMode: 0o640},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			f := model.PutFile{Dest: dest, Size: int64(len(st.content)), SHA256: sum256([]byte(st.content)),
				Mode: st.mode, Backup: true}
			opened := false
			f.Open = func() (io.ReadCloser, error) {
				opened = true
				if !st.sent {
					t.Errorf("the content was opened")
				}
				return io.NopCloser(strings.NewReader(st.content)), nil
			}
			if st.owner != nil {
				f.Owner = st.owner(t)
			}
			before, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.Put(ctx, s.Target(), f)
			if err != nil || res.Changed != st.changed {
				t.Fatalf("Put = %+v, %v; want changed %v", res, err, st.changed)
			}
			if opened != st.sent {
				t.Errorf("the content opened: %v; want %v", opened, st.sent)
			}
			if backup := res.Backup != ""; backup != st.sent {
				t.Errorf("Put made the backup %q; want one: %v", res.Backup, st.sent)
			} else if backup {
				mustContent(t, res.Backup, "v1\n")
			}
			after, err := os.Stat(dest)
			if err != nil {
				t.Fatal(err)
			}
			if same := os.SameFile(before, after); same == st.sent {
				t.Errorf("the same file after the put: %v; want %v", same, !st.sent)
			}
			mustContent(t, dest, st.content)
			if m := after.Mode(); m != st.wantMode {
				t.Errorf("mode = %v; want %v", m, st.wantMode)
			}
			if sys := after.Sys().(*syscall.Stat_t); st.owner != nil && (sys.Uid != st.uid || sys.Gid != st.gid) {
				t.Errorf("owner = %d:%d; want %d:%d", sys.Uid, sys.Gid, st.uid, st.gid)
			}
		})
		if !ok {
			break // the later steps build on this one
		}
	}
	noTemp(t, dir)
}

func TestPutRefused(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.40")
	ctx := context.Background()
	dir := t.TempDir()

	// A symlink destination is refused; its target is untouched.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put(ctx, s.Target(), putFile(link, []byte("evil"), nil)); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Put over a symlink = %v; want refused", err)
	}
	mustContent(t, target, "target\n")
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v, %v", st, err)
	}
	// A directory is not a file.
	if _, err := p.Put(ctx, s.Target(), putFile(filepath.Join(dir), []byte("x"), nil)); err == nil {
		t.Errorf("Put over a directory succeeded")
	}

	dest := filepath.Join(dir, "file")
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A lying sha256: an error, the old file is intact.
	f := putFile(dest, []byte("new\n"), nil)
	f.SHA256 = sum256([]byte("other"))
	if _, err := p.Put(ctx, s.Target(), f); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("Put with a lying sha256 = %v; want a sha256 error", err)
	}
	mustContent(t, dest, "old\n")
	// A wrong size.
	f = putFile(dest, []byte("new\n"), nil)
	f.Size = 2
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a short size succeeded")
	}
	mustContent(t, dest, "old\n")
	// A failing reader.
	f = putFile(dest, []byte("new content\n"), nil)
	f.Open = func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("new"), brokenReader{})), nil
	}
	if _, err := p.Put(ctx, s.Target(), f); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Put with a failing reader = %v; want its error", err)
	}
	mustContent(t, dest, "old\n")
	// A failing Open.
	f.Open = func() (io.ReadCloser, error) { return nil, errors.New("cannot open") }
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a failing Open succeeded")
	}
	mustContent(t, dest, "old\n")
	noTemp(t, dir)
}

type brokenReader struct{}

func (brokenReader) Read([]byte) (int, error) { return 0, errors.New("broken reader") }

func TestGet(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.41")
	ctx := context.Background()
	dir := t.TempDir()

	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "big")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, sum, err := p.Get(ctx, s.Target(), model.GetFile{Path: path}, &buf)
	if err != nil || n != int64(len(data)) || sum != sum256(data) || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("Get = %d, %s, %v (%d bytes); want %d, %s", n, sum, err, buf.Len(), len(data), sum256(data))
	}

	// Put skips the transfer of the same big file (hashed remotely).
	var opens int
	if res, err := p.Put(ctx, s.Target(), putFile(path, data, &opens)); err != nil || res.Changed || opens != 0 {
		t.Errorf("Put same big file = %+v, %v, %d opens", res, err, opens)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{link, dir, filepath.Join(dir, "missing"), "rel", dir + "/../x"} {
		buf.Reset()
		if _, _, err := p.Get(ctx, s.Target(), model.GetFile{Path: bad}, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("Get(%q) = %v, %d bytes; want an error, nothing", bad, err, buf.Len())
		}
	}
	// Asked to, Get reads what the symlink points to.
	buf.Reset()
	if n, sum, err := p.Get(ctx, s.Target(), model.GetFile{Path: link, FollowSymlinks: true}, &buf); err != nil ||
		n != int64(len(data)) || sum != sum256(data) {
		t.Errorf("Get(link, follow) = %d, %s, %v; want the target's content", n, sum, err)
	}
}

// mustMode fails the test unless path is a directory (dir) or a regular
// file with the permission bits perm.
func mustMode(t *testing.T, path string, dir bool, perm os.FileMode) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil || st.IsDir() != dir || !dir && !st.Mode().IsRegular() || st.Mode().Perm() != perm {
		t.Errorf("%s = %v, %v; want dir %v, %v", path, st, err, dir, perm)
	}
}

// mustLink fails the test unless path is a symlink to target.
func mustLink(t *testing.T, path, target string) {
	t.Helper()
	got, err := os.Readlink(path)
	if err != nil || got != target {
		t.Errorf("readlink %s = %q, %v; want %q", path, got, err, target)
	}
}

func mustNotExist(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (%v); want nothing there", path, err)
	}
}

// putStep is one Put of a sequence on the same host; err, when set, is a
// part of the error wanted.
type putStep struct {
	name    string
	f       model.PutFile
	changed bool
	err     string
	check   func(t *testing.T)
}

func runSteps(t *testing.T, p *ssh.Pool, target model.Target, steps []putStep) {
	t.Helper()
	for _, st := range steps {
		res, err := p.Put(context.Background(), target, st.f)
		switch {
		case st.err != "" && (err == nil || !strings.Contains(err.Error(), st.err)):
			t.Errorf("%s: Put = %+v, %v; want an error with %q", st.name, res, err, st.err)
		case st.err != "" && !strings.HasPrefix(err.Error(), "put "+st.f.Dest+" on "):
			t.Errorf("%s: error %q; want it to start with %q", st.name, err, "put "+st.f.Dest+" on ")
		case st.err == "" && err != nil:
			t.Errorf("%s: Put: %v", st.name, err)
		case st.err == "" && res.Changed != st.changed:
			t.Errorf("%s: Put = %+v; want changed %v", st.name, res, st.changed)
		}
		if st.check != nil {
			st.check(t)
		}
	}
}

func TestPutDir(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.42")
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	own := strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(dir, "a", "b", "c")
	dirAt := func(path string, m model.PutFile) model.PutFile {
		m.Dest, m.Kind = path, model.KindDir
		return m
	}
	runSteps(t, p, s.Target(), []putStep{
		{name: "new", f: dirAt(d, model.PutFile{}), changed: true,
			check: func(t *testing.T) { mustMode(t, d, true, 0o755) }},
		{name: "same", f: dirAt(d, model.PutFile{})},
		{name: "new mode", f: dirAt(d, model.PutFile{Mode: 0o700}), changed: true,
			check: func(t *testing.T) { mustMode(t, d, true, 0o700) }},
		{name: "same mode and owner", f: dirAt(d, model.PutFile{Mode: 0o700, Owner: own})},
		{name: "mode 0 keeps it", f: dirAt(d, model.PutFile{}),
			check: func(t *testing.T) { mustMode(t, d, true, 0o700) }},
		{name: "setgid", f: dirAt(d, model.PutFile{Mode: 0o2750}), changed: true,
			check: func(t *testing.T) {
				if st, err := os.Stat(d); err != nil || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o750 {
					t.Errorf("mode = %v, %v; want setgid 0750", st.Mode(), err)
				}
			}},
		{name: "over a file", f: dirAt(file, model.PutFile{}), err: "not a directory (a regular file)",
			check: func(t *testing.T) { mustContent(t, file, "file\n") }},
		{name: "missing parent", f: dirAt(deep, model.PutFile{Mode: 0o750}), err: "mkdir not asked",
			check: func(t *testing.T) { mustNotExist(t, filepath.Join(dir, "a")) }},
		{name: "mkdir", f: dirAt(deep, model.PutFile{Mode: 0o750, Mkdir: true}), changed: true,
			check: func(t *testing.T) {
				mustMode(t, deep, true, 0o750)
				mustMode(t, filepath.Dir(deep), true, 0o755)
			}},
	})
	noTemp(t, dir)
}

func TestPutSymlink(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.43")
	dir := t.TempDir()
	link := filepath.Join(dir, "link")
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	linkAt := func(path, to string, backup bool) model.PutFile {
		return model.PutFile{Dest: path, Kind: model.KindSymlink, Link: to, Backup: backup,
			Owner: strconv.Itoa(os.Getuid())}
	}
	var backups []string
	runSteps(t, p, s.Target(), []putStep{
		{name: "new", f: linkAt(link, "target", false), changed: true,
			check: func(t *testing.T) { mustLink(t, link, "target") }},
		{name: "same", f: linkAt(link, "target", true),
			check: func(t *testing.T) { mustLink(t, link, "target") }},
		// A target is stored as is, not resolved.
		{name: "retarget", f: linkAt(link, "../x/./y", true), changed: true,
			check: func(t *testing.T) { mustLink(t, link, "../x/./y") }},
		{name: "replace a file", f: linkAt(file, "/etc/hostname", true), changed: true,
			check: func(t *testing.T) {
				mustLink(t, file, "/etc/hostname")
				backups, _ = filepath.Glob(file + ".felix-bak-*")
				if len(backups) != 1 {
					t.Fatalf("backups = %q; want one", backups)
				}
				mustContent(t, backups[0], "old\n")
			}},
		// A symlink is replaced, never followed: the linked file and
		// directory keep what they are.
		{name: "over a link to a dir", f: linkAt(link, "sub", false), changed: true},
		{name: "replace a link to a dir", f: linkAt(link, "other", false), changed: true,
			check: func(t *testing.T) {
				mustLink(t, link, "other")
				mustMode(t, sub, true, 0o755)
			}},
		{name: "over a directory", f: linkAt(sub, "x", false), err: "is a directory",
			check: func(t *testing.T) { mustMode(t, sub, true, 0o755) }},
	})
	noTemp(t, dir)
}

func TestPutRoot(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.44")
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{outside, filepath.Join(tree, "a")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// tree/a/esc and tree/esc lead out of the tree.
	for _, l := range []string{filepath.Join(tree, "esc"), filepath.Join(tree, "a", "esc")} {
		if err := os.Symlink(outside, l); err != nil {
			t.Fatal(err)
		}
	}
	// alias is a link to the tree: at the root, it is the host's own.
	alias := filepath.Join(dir, "alias")
	if err := os.Symlink(tree, alias); err != nil {
		t.Fatal(err)
	}

	content := []byte("in\n")
	for _, tc := range []struct {
		name, root, rel string
		follow          bool
		err             string // "" when the put goes through to outside/rel's base
	}{
		{name: "link below root", root: tree, rel: "esc/f", err: tree + "/esc is a symlink; refusing to follow it out of the tree"},
		{name: "deeper link", root: tree, rel: "a/esc/f", err: tree + "/a/esc is a symlink; refusing to follow it out of the tree"},
		{name: "link below root, followed", root: tree, rel: "esc/f", follow: true},
		{name: "deeper link, followed", root: tree, rel: "a/esc/g", follow: true},
	} {
		for _, kind := range []model.FileKind{model.KindFile, model.KindDir, model.KindSymlink} {
			f := model.PutFile{Dest: filepath.Join(tc.root, tc.rel) + "-" + kind.String(), Kind: kind, Root: tc.root, FollowSymlinks: tc.follow}
			switch kind {
			case model.KindFile:
				f = putFile(f.Dest, content, nil)
				f.Root, f.FollowSymlinks = tc.root, tc.follow
			case model.KindSymlink:
				f.Link = "to"
			}
			written := filepath.Join(outside, filepath.Base(f.Dest))
			res, err := p.Put(context.Background(), s.Target(), f)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("%s, %s: Put = %+v, %v; want %q", tc.name, kind, res, err, tc.err)
				}
				mustNotExist(t, written)
				continue
			}
			if err != nil || !res.Changed {
				t.Errorf("%s, %s: Put = %+v, %v; want changed", tc.name, kind, res, err)
			}
			switch kind {
			case model.KindFile:
				mustContent(t, written, string(content))
			case model.KindDir:
				mustMode(t, written, true, 0o755)
			case model.KindSymlink:
				mustLink(t, written, "to")
			}
		}
	}

	// Components at and above the root are not checked; Dest itself is.
	f := putFile(filepath.Join(alias, "a", "f"), content, nil)
	f.Root = alias
	if res, err := p.Put(context.Background(), s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put below a linked root = %+v, %v; want changed", res, err)
	}
	mustContent(t, filepath.Join(tree, "a", "f"), string(content))
	f = putFile(filepath.Join(tree, "esc"), content, nil)
	f.Root = tree
	if _, err := p.Put(context.Background(), s.Target(), f); err == nil || !strings.Contains(err.Error(), "destination is a symlink") {
		t.Errorf("Put over a link in the tree = %v; want refused", err)
	}
	// A missing component ends the check (and Mkdir makes the rest).
	f = putFile(filepath.Join(tree, "new", "deep", "f"), content, nil)
	f.Root, f.Mkdir = tree, true
	if res, err := p.Put(context.Background(), s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put below a missing component = %+v, %v; want changed", res, err)
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) != 6 {
		t.Errorf("outside holds %v, %v; want the 6 followed puts", ents, err)
	}
	noTemp(t, tree)
	noTemp(t, outside)
}

func TestPutFollow(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.45")
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	targetDir := filepath.Join(dir, "tdir")
	if err := os.Mkdir(targetDir, 0o755); err != nil {
		t.Fatal(err)
	}
	link, dirLink, dangling := filepath.Join(dir, "link"), filepath.Join(dir, "dirlink"), filepath.Join(dir, "dangling")
	for l, to := range map[string]string{link: "target", dirLink: targetDir, dangling: "missing"} {
		if err := os.Symlink(to, l); err != nil {
			t.Fatal(err)
		}
	}
	follow := func(f model.PutFile) model.PutFile { f.FollowSymlinks = true; return f }
	newFile := putFile(link, []byte("new\n"), nil)
	newFile.Backup = true
	dirAt := model.PutFile{Dest: dirLink, Kind: model.KindDir, Mode: 0o700}
	runSteps(t, p, s.Target(), []putStep{
		{name: "file", f: newFile, err: "the destination is a symlink; refusing to follow it",
			check: func(t *testing.T) { mustContent(t, target, "target\n") }},
		{name: "file, followed", f: follow(newFile), changed: true,
			check: func(t *testing.T) {
				mustContent(t, target, "new\n")
				mustMode(t, target, false, 0o640)
				mustLink(t, link, "target")
				if baks, _ := filepath.Glob(target + ".felix-bak-*"); len(baks) != 1 {
					t.Errorf("backups of the target = %q; want one", baks)
				}
			}},
		{name: "file, followed again", f: follow(newFile)},
		{name: "dir", f: dirAt, err: "the destination is a symlink; refusing to follow it",
			check: func(t *testing.T) { mustMode(t, targetDir, true, 0o755) }},
		{name: "dir, followed", f: follow(dirAt), changed: true,
			check: func(t *testing.T) {
				mustMode(t, targetDir, true, 0o700)
				mustLink(t, dirLink, targetDir)
			}},
		{name: "a file to a dir, followed", f: follow(putFile(dirLink, []byte("x"), nil)), err: "not a regular file (a directory)"},
		{name: "dangling, followed", f: follow(putFile(dangling, []byte("made\n"), nil)), changed: true,
			check: func(t *testing.T) {
				mustContent(t, filepath.Join(dir, "missing"), "made\n")
				mustLink(t, dangling, "missing")
			}},
	})
	noTemp(t, dir)
}

func TestPutBadInput(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.46")
	dir := t.TempDir()
	dest := filepath.Join(dir, "x")
	content := putFile(dest, []byte("x"), nil)
	for _, tc := range []struct {
		name string
		f    model.PutFile
		err  string
	}{
		{"unknown kind", model.PutFile{Dest: dest, Kind: 9}, "unknown kind 9"},
		{"dir with a size", model.PutFile{Dest: dest, Kind: model.KindDir, Size: 1}, "a dir has no content"},
		{"dir with a sha256", model.PutFile{Dest: dest, Kind: model.KindDir, SHA256: content.SHA256}, "a dir has no content"},
		{"dir with a link", model.PutFile{Dest: dest, Kind: model.KindDir, Link: "y"}, "link target"},
		{"dir with a bad mode", model.PutFile{Dest: dest, Kind: model.KindDir, Mode: 0o10755}, "bits beyond 07777"},
		{"symlink with content", model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "y", Size: 1, SHA256: content.SHA256}, "a symlink has no content"},
		{"symlink without a target", model.PutFile{Dest: dest, Kind: model.KindSymlink}, "empty link target"},
		{"symlink target with NUL", model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "a\x00b"}, "contains NUL"},
		{"symlink with a bad owner name", model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "y", Owner: "root;id"}, "want user:group names"},
		{"file with a link", func() model.PutFile { f := content; f.Link = "y"; return f }(), "link target"},
		{"file without content", func() model.PutFile { f := content; f.Open = nil; return f }(), "no content"},
		{"file without sha256", func() model.PutFile { f := content; f.SHA256 = ""; return f }(), "not 64 hex digits"},
		{"relative root", func() model.PutFile { f := content; f.Root = "tmp"; return f }(), "not absolute"},
		{"unclean root", func() model.PutFile { f := content; f.Root = dir + "/"; return f }(), "not clean"},
		{"root not above", func() model.PutFile { f := content; f.Root = dir + "/y"; return f }(), "not an ancestor"},
		{"root a prefix only", func() model.PutFile { f := content; f.Root = dir[:len(dir)-1]; return f }(), "not an ancestor"},
		{"root is dest", func() model.PutFile { f := content; f.Root = dest; return f }(), "not an ancestor"},
		{"dir at /", model.PutFile{Dest: "/", Kind: model.KindDir}, "path /"},
	} {
		_, err := p.Put(context.Background(), s.Target(), tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "put "+tc.f.Dest+" on ") {
			t.Errorf("%s: Put = %v; want put %s on …: …%s…", tc.name, err, tc.f.Dest, tc.err)
		}
		if errors.Is(err, exec.ErrUnreachable) {
			t.Errorf("%s: %v wraps ErrUnreachable", tc.name, err)
		}
	}
	mustNotExist(t, dest)
	// Root "/" is every path's ancestor.
	f := content
	f.Root = "/"
	if res, err := p.Put(context.Background(), s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put with root / = %+v, %v; want changed", res, err)
	}
}

// TestPutSessionLimit checks that a put, which holds an SFTP session while
// it hashes a file on the host, does not wait for a second session: not
// with a pool allowing one session per connection, not on a host allowing
// one (the file is read back over SFTP instead).
func TestPutSessionLimit(t *testing.T) {
	t.Parallel()
	s1 := sshtest.Start(t, "127.0.0.50")
	s2 := sshtest.Start(t, "127.0.0.51", sshtest.MaxSessions(1))
	for _, tc := range []struct {
		name string
		s    *sshtest.Server
		p    *ssh.Pool
	}{
		{"pool limit 1", s1, newPool(t, s1.KnownHosts(t), func(c *ssh.Config) { c.SessionsPerConn = 1 })},
		{"MaxSessions 1", s2, newPool(t, s2.KnownHosts(t))},
	} {
		dest := filepath.Join(t.TempDir(), "conf")
		for i, content := range []string{"one\n", "one\n", "two\n"} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			res, err := tc.p.Put(ctx, tc.s.Target(), putFile(dest, []byte(content), nil))
			cancel()
			if err != nil || res.Changed != (i != 1) {
				t.Errorf("%s: put %d = %+v, %v; want changed %v", tc.name, i, res, err, i != 1)
			}
			mustContent(t, dest, content)
		}
		noTemp(t, filepath.Dir(dest))
	}
}

// nobody is a uid and gid no file of the tests belongs to.
const nobody = 65534

// readAsNobody reads path in a child process running as nobody: what any
// other local user of the host could do.
func readAsNobody(path string) error {
	cmd := osexec.Command("cat", "--", path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// publicDir returns a new directory that any user of this machine can
// enter and list, as a destination's directory on a host usually is.
func publicDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // MkdirTemp makes the first 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The tests below set Put's global test hook: they do not run in
// parallel.

func TestPutPrivateTempDir(t *testing.T) {
	s, p := server(t, "127.0.0.47")
	dir := publicDir(t)
	dest := filepath.Join(dir, "conf")
	if err := os.WriteFile(dest, []byte("old secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The check below means something only if nobody can read a
	// readable file here.
	if err := readAsNobody(dest); err != nil {
		testenv.Missing(t, "cannot read as uid %d here: %v", nobody, err)
	}
	content := []byte("new secret\n")
	var stages []string
	ssh.SetTestHookPut(t, func(stage, path string) {
		stages = append(stages, stage)
		if stage == "mkdir" {
			return
		}
		private := filepath.Dir(path)
		if filepath.Dir(private) != dir || !strings.HasPrefix(filepath.Base(private), model.PutTempPrefix+"conf-") {
			t.Errorf("%s: temp file %s; want it in %s/%sconf-*/", stage, path, dir, model.PutTempPrefix)
		}
		st, err := os.Lstat(private)
		if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			t.Errorf("%s: temp directory = %v, %v; want a directory 0700 of uid %d", stage, st, err, os.Getuid())
		}
		if ents, err := os.ReadDir(private); err != nil || len(ents) != 1 {
			t.Errorf("%s: temp directory holds %v, %v; want the temp file only", stage, ents, err)
		}
		if err := readAsNobody(path); err == nil {
			t.Errorf("%s: uid %d can read the temp file", stage, nobody)
		}
		if stage == "written" {
			mustContent(t, path, string(content))
		}
	})
	f := putFile(dest, content, nil)
	f.Mode = 0o644
	if res, err := p.Put(context.Background(), s.Target(), f); err != nil || !res.Changed {
		t.Fatalf("Put = %+v, %v; want changed", res, err)
	}
	if want := []string{"mkdir", "created", "written"}; !slices.Equal(stages, want) {
		t.Errorf("stages = %q; want %q", stages, want)
	}
	mustContent(t, dest, string(content))
	mustMode(t, dest, false, 0o644)
	noTemp(t, dir)
}

func TestPutHostMismatch(t *testing.T) {
	s, p := server(t, "127.0.0.48")
	dir := t.TempDir()
	// Over readBackMax, so that a plain path is hashed with sha256sum.
	content := bytes.Repeat([]byte("new\n"), 100<<10)
	corrupt := bytes.Repeat([]byte("bad\n"), 100<<10)
	ssh.SetTestHookPut(t, func(stage, path string) {
		if stage == "written" {
			// The disk or something on the host changed the content
			// after it was sent.
			if err := os.WriteFile(path, corrupt, 0o600); err != nil {
				t.Error(err)
			}
		}
	})
	// "conf" is hashed with sha256sum, "my conf" read back over SFTP, and
	// so is "small" for its size.
	for _, name := range []string{"conf", "my conf", "small"} {
		if name == "small" {
			content, corrupt = []byte("new\n"), []byte("bad\n") // the hook writes corrupt
		}
		dest := filepath.Join(dir, name)
		if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := p.Put(context.Background(), s.Target(), putFile(dest, content, nil))
		want := "sha256 of the content on the host is " + sum256(corrupt) + ", not the announced " + sum256(content)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "put "+dest+" on ") {
			t.Errorf("%q: Put = %v; want put %s on …: %s", name, err, dest, want)
		}
		mustContent(t, dest, "old\n")
	}
	noTemp(t, dir)
}

func TestPutTempRemoved(t *testing.T) {
	s, p := server(t, "127.0.0.49")
	dir := t.TempDir()
	dest := filepath.Join(dir, "conf")
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, tc := range []struct {
		name, err string
		hook      func(stage, path string)
	}{
		// Another user's directory at the temp name (swapped in before
		// the chmod) is refused before any content is written.
		{"not the login's", "owned by uid 65534, not the login's", func(stage, path string) {
			if stage == "mkdir" {
				if err := os.Chown(path, nobody, nobody); err != nil {
					t.Error(err)
				}
			}
		}},
		// The context ends once the temp file exists: the client is
		// closed, the file and directory are removed on a new one.
		{"cancelled", "context canceled", func(stage, path string) {
			if stage == "created" {
				cancel()
			}
		}},
	} {
		ssh.SetTestHookPut(t, tc.hook)
		_, err := p.Put(ctx, s.Target(), putFile(dest, []byte("new\n"), nil))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Put = %v; want an error with %q", tc.name, err, tc.err)
		}
		mustContent(t, dest, "old\n")
		noTemp(t, dir)
	}
}

func TestPutBatchOneSession(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.57")
	dir := t.TempDir()
	const n = 100
	files := []model.PutFile{{Dest: dir + "/tree", Kind: model.KindDir, Mkdir: true}}
	for i := range n {
		files = append(files, putFile(fmt.Sprintf("%s/tree/f%03d", dir, i), []byte(fmt.Sprintf("file %d\n", i)), nil))
		files[len(files)-1].Root = dir + "/tree"
	}
	files = append(files, model.PutFile{Dest: dir + "/tree/link", Kind: model.KindSymlink, Link: "f000", Root: dir + "/tree"})
	before := strings.Count(s.Log(), "subsystem 'sftp'")
	start := time.Now()
	changed := 0
	err := p.PutBatch(context.Background(), s.Target(), files, func(i int, res model.PutResult, err error) bool {
		if err != nil {
			t.Errorf("entry %d: %v", i, err)
			return false
		}
		if res.Changed {
			changed++
		}
		return true
	})
	took := time.Since(start)
	if err != nil || changed != n+2 {
		t.Fatalf("PutBatch = %v, %d changed; want %d", err, changed, n+2)
	}
	for i := range n {
		mustContent(t, fmt.Sprintf("%s/tree/f%03d", dir, i), fmt.Sprintf("file %d\n", i))
	}
	s.WaitLog("Close session", 5*time.Second)
	if got := strings.Count(s.Log(), "subsystem 'sftp'") - before; got != 1 {
		t.Errorf("the batch started %d SFTP sessions; want 1", got)
	}
	noTemp(t, dir+"/tree")

	// The same entries one Put at a time: a session each (for comparison).
	start = time.Now()
	for _, f := range files {
		if res, err := p.Put(context.Background(), s.Target(), f); err != nil || res.Changed {
			t.Fatalf("Put %s again = %+v, %v; want unchanged", f.Dest, res, err)
		}
	}
	t.Logf("%d entries: one batch (all changed) %v; one Put each (all unchanged) %v", len(files), took, time.Since(start))
}

// TestPutThroughAnotherUsersLink: a directory on the path that is a
// symlink owned by another user is not followed (a user who owns it could
// send a write made with sudo anywhere), for puts and gets; root's links
// are; follow_symlinks follows any.
func TestPutThroughAnotherUsersLink(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "making a link of another user needs root")
	}
	s, p := server(t, "127.0.0.59")
	dir := t.TempDir()
	target := filepath.Join(dir, "etc")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "shadow"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	userLink, rootLink := filepath.Join(dir, "evil"), filepath.Join(dir, "lib")
	for _, l := range []string{userLink, rootLink} {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(userLink, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	follow := func(f model.PutFile) model.PutFile { f.FollowSymlinks = true; return f }
	runSteps(t, p, s.Target(), []putStep{
		{name: "through another user's link", f: putFile(filepath.Join(userLink, "passwd"), []byte("owned"), nil),
			err: userLink + " is a symlink not owned by root (owned by uid 65534)",
			check: func(t *testing.T) {
				if _, err := os.Stat(filepath.Join(target, "passwd")); err == nil {
					t.Error("the put wrote through the link")
				}
			}},
		{name: "through root's link", f: putFile(filepath.Join(rootLink, "a"), []byte("a"), nil), changed: true,
			check: func(t *testing.T) { mustContent(t, filepath.Join(target, "a"), "a") }},
		{name: "through another user's link, followed", f: follow(putFile(filepath.Join(userLink, "b"), []byte("b"), nil)), changed: true,
			check: func(t *testing.T) { mustContent(t, filepath.Join(target, "b"), "b") }},
	})
	var buf bytes.Buffer
	_, _, err := p.Get(context.Background(), s.Target(), model.GetFile{Path: filepath.Join(userLink, "shadow")}, &buf)
	if err == nil || !strings.Contains(err.Error(), "not owned by root") || buf.Len() != 0 {
		t.Errorf("get through another user's link = %v, %d bytes; want refused", err, buf.Len())
	}
	noTemp(t, dir)
}
