//go:build !windows

package hostfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/model"
)

// setHook sets a test hook for the rest of the test. The hooks are
// package variables: a test that sets one must not run in parallel.
func setHook(t *testing.T, hook *func(string), fn func(string)) {
	t.Helper()
	*hook = fn
	t.Cleanup(func() { *hook = nil })
}

// swapOnce returns a hook that, on its first call, does what a local user
// racing the minion would: moves the directory dir aside (when there is
// one) and puts a symlink to to in its place. fired reports the call.
func swapOnce(t *testing.T, dir, to string) (hook func(string), fired *atomic.Bool) {
	fired = new(atomic.Bool)
	return func(string) {
		if fired.Swap(true) {
			return
		}
		if err := os.Rename(dir, dir+".moved"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Error(err)
		}
		if err := os.Symlink(to, dir); err != nil {
			t.Error(err)
		}
	}, fired
}

// TestPutRace swaps a directory of the destination's path for a symlink
// after the Store checked the path and before it writes: the put must be
// refused with nothing written where the symlink leads.
func TestPutRace(t *testing.T) {
	const want = "changed while being written (a symlink appeared); refusing"
	tests := []struct {
		name  string
		swap  string // the directory of the tree swapped, relative to it
		f     func(tree string) model.PutFile
		roots bool // Roots is the tree, so the symlink leads out of them
		// checked swaps after the check below Root, before resolving,
		// rather than after resolving, before the walk.
		checked bool
	}{
		{name: "file", swap: "a", f: func(tree string) model.PutFile {
			return putBytes(tree+"/a/f", []byte("evil"), nil)
		}},
		{name: "file over an old one with a backup", swap: "a", f: func(tree string) model.PutFile {
			f := putBytes(tree+"/a/target", []byte("evil"), nil)
			f.Backup = true
			return f
		}},
		{name: "dir", swap: "a", f: func(tree string) model.PutFile {
			return model.PutFile{Dest: tree + "/a/d", Kind: model.KindDir, Mode: 0o777}
		}},
		{name: "symlink", swap: "a", f: func(tree string) model.PutFile {
			return model.PutFile{Dest: tree + "/a/l", Kind: model.KindSymlink, Link: "/etc/shadow"}
		}},
		{name: "file, an ancestor swapped", swap: "a", f: func(tree string) model.PutFile {
			return putBytes(tree+"/a/b/f", []byte("evil"), nil)
		}},
		{name: "file, a directory to make made a symlink", swap: "new", f: func(tree string) model.PutFile {
			f := putBytes(tree+"/new/sub/f", []byte("evil"), nil)
			f.Mkdir = true
			return f
		}},
		{name: "file out of the file_roots", swap: "a", roots: true, f: func(tree string) model.PutFile {
			return putBytes(tree+"/a/f", []byte("evil"), nil)
		}},
		{name: "dir out of the file_roots", swap: "a", roots: true, f: func(tree string) model.PutFile {
			return model.PutFile{Dest: tree + "/a/b", Kind: model.KindDir, Mode: 0o777}
		}},
		{name: "file through a followed link, out of the file_roots", swap: "real", roots: true, f: func(tree string) model.PutFile {
			f := putBytes(tree+"/link", []byte("evil"), nil)
			f.FollowSymlinks = true
			return f
		}},
		{name: "file below a Root", swap: "a", checked: true, f: func(tree string) model.PutFile {
			f := putBytes(tree+"/a/f", []byte("evil"), nil)
			f.Root = tree
			return f
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree, other, journal := t.TempDir(), t.TempDir(), t.TempDir()
			for _, d := range []string{tree + "/a/b", tree + "/real"} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{tree + "/a/target", tree + "/real/target"} {
				if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("real/target", tree+"/link"); err != nil {
				t.Fatal(err)
			}
			secret, private := filepath.Join(other, "target"), filepath.Join(other, "b")
			if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(private, 0o700); err != nil {
				t.Fatal(err)
			}
			otherMode := modeOf(t, other)

			hook, fired := swapOnce(t, filepath.Join(tree, tt.swap), other)
			if tt.checked {
				setHook(t, &testHookChecked, hook)
			} else {
				setHook(t, &testHookResolved, hook)
			}
			var roots []string
			if tt.roots {
				roots = []string{tree}
			}
			s := newStore(t, journal, roots...)
			f := tt.f(tree)
			_, err := s.Put(t.Context(), f)
			if !fired.Load() {
				t.Fatalf("Put(%s) = %v without the hook swapping %s", f.Dest, err, tt.swap)
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Put(%s) with %s swapped for a symlink = %v; want an error with %q", f.Dest, tt.swap, err, want)
			}

			if got := strings.Join(names(t, other), " "); got != "b target" {
				t.Errorf("the symlink's target holds %q; want only b and target", got)
			}
			wantContent(secret, "secret")(t)
			wantMode(secret, 0o600)(t)
			wantMode(private, os.ModeDir|0o700)(t)
			if got := names(t, private); len(got) != 0 {
				t.Errorf("%s holds %q; want nothing", private, got)
			}
			wantMode(other, otherMode)(t)
			// The swapped directory, moved aside, and the others hold only
			// what the test made; the tree, only those and the symlink.
			inTree := []string{"a", "link", "real", tt.swap}
			for _, d := range []string{"a", "real"} {
				moved := d
				if d == tt.swap {
					moved += ".moved"
					inTree[len(inTree)-1] = moved
				}
				wantContent(filepath.Join(tree, moved, "target"), "old")(t)
				if d == "a" {
					if got := strings.Join(names(t, filepath.Join(tree, moved)), " "); got != "b target" {
						t.Errorf("%s holds %q; want only b and target", moved, got)
					}
				}
			}
			slices.Sort(inTree)
			if got := names(t, tree); !slices.Equal(inTree, got) {
				t.Errorf("the tree holds %q; want %q", got, inTree)
			}
			noTempIn(t, tree)
			noTemp(t, other, journal)
		})
	}
}

// TestGetRace swaps the directory of a file for a symlink after the
// minion checked the path and before it opens the file.
func TestGetRace(t *testing.T) {
	tree, outside := t.TempDir(), t.TempDir()
	if err := os.Mkdir(tree+"/a", 0o755); err != nil {
		t.Fatal(err)
	}
	for p, content := range map[string]string{tree + "/a/f": "public", outside + "/f": "secret"} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hook, fired := swapOnce(t, tree+"/a", outside)
	setHook(t, &testHookResolved, hook)
	s := newStore(t, "", tree)
	var buf bytes.Buffer
	_, _, err := s.Get(t.Context(), model.GetFile{Path: tree + "/a/f"}, &buf)
	if !fired.Load() {
		t.Fatalf("Get = %v without the hook swapping the directory", err)
	}
	const want = "changed while being read (a symlink appeared); refusing"
	if err == nil || !strings.Contains(err.Error(), want) || buf.Len() != 0 {
		t.Errorf("Get with the directory swapped = %v with %q; want an error with %q and nothing", err, buf.String(), want)
	}
}

// TestPutKeepRace swaps the destination of a file put, whose content the
// minion has but not its mode, after the minion looked at it and before
// it opens it to compare and change it in place: no other file gets the
// mode.
func TestPutKeepRace(t *testing.T) {
	const content = "same\n"
	tests := []struct {
		name string
		// swap replaces dest, using the file other (same content, 0644).
		swap    func(t *testing.T, dest, other string)
		wantErr string // "": the put succeeds, replacing what was swapped in
	}{
		{name: "a symlink", wantErr: "too many levels of symbolic links",
			swap: func(t *testing.T, dest, other string) {
				if err := os.Remove(dest); err != nil {
					t.Error(err)
				}
				if err := os.Symlink(other, dest); err != nil {
					t.Error(err)
				}
			}},
		{name: "another file with the content", // only one link, as dest had
			swap: func(t *testing.T, dest, other string) {
				if err := os.Rename(other, dest); err != nil {
					t.Error(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			dest, other := filepath.Join(dir, "f"), filepath.Join(outside, "f")
			for p, m := range map[string]os.FileMode{dest: 0o644, other: 0o644} {
				if err := os.WriteFile(p, []byte(content), m); err != nil {
					t.Fatal(err)
				}
			}
			// The file swapped in, however it is named by then.
			swapped, err := os.Open(other)
			if err != nil {
				t.Fatal(err)
			}
			defer swapped.Close()
			var fired atomic.Bool
			setHook(t, &testHookKeep, func(string) {
				if !fired.Swap(true) {
					tt.swap(t, dest, other)
				}
			})
			s := newStore(t, "")
			var opened atomic.Int64
			f := putBytes(dest, []byte(content), &opened)
			f.Mode = 0o600
			res, err := s.Put(t.Context(), f)
			if !fired.Load() {
				t.Fatalf("Put = %+v, %v without the hook swapping %s", res, err, dest)
			}
			switch {
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Put = %+v, %v; want an error with %q", res, err, tt.wantErr)
			case tt.wantErr == "" && (err != nil || !res.Changed || opened.Load() != 1):
				t.Errorf("Put = %+v, %v (opened %d); want changed, the content sent", res, err, opened.Load())
			case tt.wantErr == "":
				wantMode(dest, 0o600)(t)
				wantContent(dest, content)(t)
			}
			st, err := swapped.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if m := st.Mode(); m != 0o644 {
				t.Errorf("the file swapped in has mode %v; want 0644 kept", m)
			}
			noTempIn(t, dir)
		})
	}
}

// TestWalkDir checks the walk every put and get opens its directory with.
func TestWalkDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(dir+"/real/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/file", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, to := range map[string]string{"link": "real", "flink": "file", "dangling": "nowhere"} {
		if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		path    string
		mkdir   bool
		wantErr error // nil: opened
	}{
		{path: "/"},
		{path: dir + "/real/sub"},
		{path: dir + "/link", wantErr: errSymlinkAppeared},
		{path: dir + "/link/sub", wantErr: errSymlinkAppeared},
		{path: dir + "/flink", wantErr: errSymlinkAppeared},
		{path: dir + "/dangling/x", mkdir: true, wantErr: errSymlinkAppeared},
		{path: dir + "/file", wantErr: syscall.ENOTDIR},
		{path: dir + "/file/x", mkdir: true, wantErr: syscall.ENOTDIR},
		{path: dir + "/missing/x", wantErr: fs.ErrNotExist},
		{path: dir + "/made/x", mkdir: true},
	}
	for _, tt := range tests {
		d, err := walkDir(tt.path, tt.mkdir)
		if tt.wantErr == nil {
			if err != nil {
				t.Errorf("walkDir(%s, %v) = %v; want it opened", tt.path, tt.mkdir, err)
				continue
			}
			var st, want syscall.Stat_t
			if err := syscall.Fstat(d.fd, &st); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Stat(tt.path, &want); err != nil {
				t.Fatal(err)
			}
			if st.Dev != want.Dev || st.Ino != want.Ino || d.path != tt.path {
				t.Errorf("walkDir(%s) opened %s, inode %d; want inode %d", tt.path, d.path, st.Ino, want.Ino)
			}
			d.close()
			continue
		}
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("walkDir(%s, %v) = %v; want %v", tt.path, tt.mkdir, err, tt.wantErr)
		}
	}
	if m := modeOf(t, dir+"/made"); !m.IsDir() {
		t.Errorf("made mode = %v; want a directory", m)
	}
	if _, err := os.Lstat(dir + "/nowhere"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("walking a dangling symlink with mkdir made its target: %v", err)
	}
}
