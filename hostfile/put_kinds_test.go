//go:build !windows

package hostfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/felix-ops/felix/model"
)

func TestPutDir(t *testing.T) {
	journal := t.TempDir()
	s := newStore(t, journal)
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	var opened atomic.Int64
	mkDir := func(dest string, mode uint32) model.PutFile {
		return model.PutFile{Dest: dest, Kind: model.KindDir, Mode: mode, Open: func() (io.ReadCloser, error) {
			opened.Add(1)
			return nil, errors.New("a directory has no content")
		}}
	}
	nested := mkDir(filepath.Join(dir, "a", "b"), 0)
	nestedMkdir := nested
	nestedMkdir.Mkdir = true
	runSteps(t, s, []putStep{
		{name: "create", f: mkDir(d, 0), wantChanged: true, check: wantMode(d, os.ModeDir|0o755)},
		{name: "again", f: mkDir(d, 0), check: wantMode(d, os.ModeDir|0o755)},
		{name: "same mode", f: mkDir(d, 0o755)},
		{name: "mode change", f: mkDir(d, 0o700), wantChanged: true, check: wantMode(d, os.ModeDir|0o700)},
		{name: "mode kept", f: mkDir(d, 0), check: wantMode(d, os.ModeDir|0o700)},
		{name: "create with mode", f: mkDir(d+"2", 0o2750), wantChanged: true, check: wantMode(d+"2", os.ModeDir|os.ModeSetgid|0o750)},
		{name: "missing parent", f: nested, wantErr: "does not exist"},
		{name: "missing parent with mkdir", f: nestedMkdir, wantChanged: true, check: wantMode(nested.Dest, os.ModeDir|0o755)},
		{name: "over a file", f: mkDir(file, 0), wantErr: "not a directory", check: wantContent(file, "precious")},
	})
	if n := opened.Load(); n != 0 {
		t.Errorf("a directory's content was opened %d times; want 0", n)
	}
	noTemp(t, dir, journal)

	t.Run("owner", func(t *testing.T) {
		uid, gid := nobody(t)
		f := mkDir(d, 0)
		f.Owner = "nobody:nogroup"
		runSteps(t, s, []putStep{
			{name: "chown", f: f, wantChanged: true, check: wantMode(d, os.ModeDir|0o700)},
			{name: "chown again", f: f},
		})
		if u, g := ownerOf(t, d); u != uid || g != gid {
			t.Errorf("owner = %d:%d; want %d:%d", u, g, uid, gid)
		}
	})
}

func TestPutSymlink(t *testing.T) {
	journal := t.TempDir()
	s := newStore(t, journal)
	dir := t.TempDir()
	l := filepath.Join(dir, "l")
	file := filepath.Join(dir, "file")
	sub := filepath.Join(dir, "sub")
	if err := os.WriteFile(file, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := func(dest, target string) model.PutFile {
		return model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: target}
	}
	var backup string
	withBackup := link(file, "file.d/current")
	withBackup.Backup = true
	runSteps(t, s, []putStep{
		// Targets are stored as is: relative, dangling.
		{name: "create", f: link(l, "../nowhere"), wantChanged: true, check: wantLink(l, "../nowhere")},
		{name: "again", f: link(l, "../nowhere"), check: wantLink(l, "../nowhere")},
		{name: "retarget", f: link(l, file), wantChanged: true, check: wantLink(l, file)},
		{name: "retarget, following not asked for", f: func() model.PutFile {
			f := link(l, sub)
			f.FollowSymlinks = true // a symlink put replaces the link anyway
			return f
		}(), wantChanged: true, check: func(t *testing.T) {
			wantLink(l, sub)(t)
			wantContent(file, "old")(t)
		}},
		{name: "replace a regular file with a backup", f: withBackup, wantChanged: true, check: func(t *testing.T) {
			wantLink(file, "file.d/current")(t)
			var baks []string
			for _, n := range names(t, dir) {
				if strings.HasPrefix(n, "file.felix-bak-") {
					baks = append(baks, n)
				}
			}
			if len(baks) != 1 {
				t.Fatalf("backups %v; want one", baks)
			}
			backup = filepath.Join(dir, baks[0])
			wantContent(backup, "old")(t)
		}},
		{name: "over a directory", f: link(sub, file), wantErr: "is a directory", check: wantMode(sub, os.ModeDir|0o755)},
		{name: "empty target", f: link(l, ""), wantErr: "empty link target", check: wantLink(l, sub)},
	})
	noTemp(t, dir, journal)
	if backup == "" {
		t.Fatal("no backup made")
	}

	t.Run("owner", func(t *testing.T) {
		uid, gid := nobody(t)
		f := link(l, sub)
		f.Owner = "nobody:nogroup"
		runSteps(t, s, []putStep{
			{name: "lchown in place", f: f, wantChanged: true, check: wantLink(l, sub)},
			{name: "lchown again", f: f},
			{name: "retarget, no owner asked", f: link(l, file), wantChanged: true},
		})
		if u, _ := ownerOf(t, sub); u == uid {
			t.Errorf("the link's target %s was chowned; want only the link", sub)
		}
		f = link(filepath.Join(dir, "l2"), file)
		f.Owner = "nobody:nogroup"
		runSteps(t, s, []putStep{{name: "new with owner", f: f, wantChanged: true}})
		if u, g := ownerOf(t, f.Dest); u != uid || g != gid {
			t.Errorf("owner = %d:%d; want %d:%d", u, g, uid, gid)
		}
	})
}

// TestPutRoot checks that a tree is not written through a symlink below
// its root unless FollowSymlinks asks, while links above it are resolved.
func TestPutRoot(t *testing.T) {
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	elsewhere := filepath.Join(base, "elsewhere")
	for _, d := range []string{tree + "/real/deeper", elsewhere} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		tree + "/sub":       elsewhere,  // a component below the root
		tree + "/real/hop":  elsewhere,  // a deeper one
		base + "/tree-link": "tree",     // above the root: resolved as usual
		tree + "/real/x":    "/nowhere", // a destination itself
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	journal := t.TempDir()
	s := newStore(t, journal, base)
	ctx := t.Context()

	type kindPut func(dest string) model.PutFile
	kinds := map[string]kindPut{
		"file":    func(dest string) model.PutFile { return putBytes(dest, []byte("x"), nil) },
		"dir":     func(dest string) model.PutFile { return model.PutFile{Dest: dest, Kind: model.KindDir} },
		"symlink": func(dest string) model.PutFile { return model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "t"} },
	}
	for kind, put := range kinds {
		t.Run(kind, func(t *testing.T) {
			for _, dest := range []string{tree + "/sub/" + kind, tree + "/real/hop/" + kind, tree + "/sub/new/" + kind} {
				f := put(dest)
				f.Root, f.Mkdir = tree, true
				_, err := s.Put(ctx, f)
				if err == nil || !strings.Contains(err.Error(), "is a symlink; refusing to follow it out of the tree") {
					t.Errorf("Put(%s) under root %s = %v; want a refusal to follow the symlink", dest, tree, err)
				}
			}
			for _, n := range []string{kind, "new"} {
				if _, err := os.Lstat(filepath.Join(elsewhere, n)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("elsewhere/%s after refused puts: %v; want nothing there", n, err)
				}
			}

			// Through a link above the root, and in a real directory.
			for _, p := range []struct{ root, dest string }{
				{base + "/tree-link", base + "/tree-link/real/deeper/" + kind},
				{tree, tree + "/real/" + kind},
			} {
				f := put(p.dest)
				f.Root = p.root
				if res, err := s.Put(ctx, f); err != nil || !res.Changed {
					t.Errorf("Put(%s) under root %s = %+v, %v; want changed", p.dest, p.root, res, err)
				}
			}

			f := put(tree + "/sub/" + kind)
			f.Root, f.FollowSymlinks = tree, true
			if res, err := s.Put(ctx, f); err != nil || !res.Changed {
				t.Fatalf("Put(%s) following symlinks = %+v, %v; want changed", f.Dest, res, err)
			}
			if _, err := os.Lstat(filepath.Join(elsewhere, kind)); err != nil {
				t.Errorf("following symlinks: %v", err)
			}
		})
	}
	f := putBytes(tree+"/real/x", []byte("x"), nil)
	f.Root = tree
	if _, err := s.Put(ctx, f); err == nil || !strings.Contains(err.Error(), "the destination is a symlink") {
		t.Errorf("Put(%s) = %v; want the destination symlink refused", f.Dest, err)
	}
	if got := readlink(t, tree+"/real/x"); got != "/nowhere" {
		t.Errorf("%s/real/x -> %q; want it untouched", tree, got)
	}
	noTemp(t, elsewhere, journal)
}

// TestPutFollowSymlinks checks a destination that is a symlink: refused
// unless FollowSymlinks asks, then put where it points, within the roots.
func TestPutFollowSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(root, "target")
	targetDir := filepath.Join(root, "target.d")
	secret := filepath.Join(outside, "secret")
	for p, content := range map[string]string{target: "old", secret: "secret"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(targetDir, 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{"link": "target", "dlink": "target.d", "escape": secret, "escape-dir": outside, "dangling": "missing"}
	for name, to := range links {
		if err := os.Symlink(to, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	outsideMode := modeOf(t, outside)
	journal := t.TempDir()
	s := newStore(t, journal, root)
	follow := func(f model.PutFile) model.PutFile {
		f.FollowSymlinks = true
		return f
	}
	dirPut := func(dest string, mode uint32) model.PutFile {
		return model.PutFile{Dest: dest, Kind: model.KindDir, Mode: mode}
	}
	link := root + "/link"
	withBackup := follow(putBytes(link, []byte("newer"), nil))
	withBackup.Backup = true
	runSteps(t, s, []putStep{
		{name: "file, not followed", f: putBytes(link, []byte("new"), nil), wantErr: "symlink", check: wantContent(target, "old")},
		{name: "file, followed", f: follow(putBytes(link, []byte("new"), nil)), wantChanged: true, check: func(t *testing.T) {
			wantContent(target, "new")(t)
			wantLink(link, "target")(t)
		}},
		{name: "file, followed again", f: follow(putBytes(link, []byte("new"), nil))},
		{name: "file, followed, with a backup", f: withBackup, wantChanged: true, check: func(t *testing.T) {
			wantContent(target, "newer")(t)
			wantLink(link, "target")(t)
			var baks []string
			for _, n := range names(t, root) {
				if strings.HasPrefix(n, "target.felix-bak-") {
					baks = append(baks, n)
				}
			}
			if len(baks) != 1 {
				t.Fatalf("backups %v; want one of target", baks)
			}
			wantContent(filepath.Join(root, baks[0]), "new")(t)
		}},
		{name: "dir, not followed", f: dirPut(root+"/dlink", 0o700), wantErr: "symlink", check: wantMode(targetDir, os.ModeDir|0o755)},
		{name: "dir, followed", f: follow(dirPut(root+"/dlink", 0o700)), wantChanged: true, check: func(t *testing.T) {
			wantMode(targetDir, os.ModeDir|0o700)(t)
			wantLink(root+"/dlink", "target.d")(t)
		}},
		{name: "file over a link to a directory", f: follow(putBytes(root+"/dlink", []byte("x"), nil)), wantErr: "not a regular file"},
		{name: "file out of the roots", f: follow(putBytes(root+"/escape", []byte("pwned"), nil)), wantErr: "outside", check: wantContent(secret, "secret")},
		{name: "dir out of the roots", f: follow(dirPut(root+"/escape-dir", 0o777)), wantErr: "outside", check: wantMode(outside, outsideMode)},
		{name: "dangling", f: follow(putBytes(root+"/dangling", []byte("x"), nil)), wantErr: "dangling"},
	})
	if _, err := os.Lstat(filepath.Join(root, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a put through a dangling link made its target: %v", err)
	}
	if got := names(t, outside); len(got) != 1 {
		t.Errorf("outside holds %v; want only secret", got)
	}
	noTemp(t, root, journal)
}

func TestPutBadHeaders(t *testing.T) {
	s := newStore(t, "")
	dir := t.TempDir()
	dest := filepath.Join(dir, "x")
	tests := []struct {
		name string
		f    model.PutFile
		want string
	}{
		{name: "dir with a size", f: model.PutFile{Dest: dest, Kind: model.KindDir, Size: 3}, want: "has no content"},
		{name: "dir with a sha256", f: model.PutFile{Dest: dest, Kind: model.KindDir, SHA256: sha256Hex(nil)}, want: "has no content"},
		{name: "symlink with a size", f: model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "t", Size: 1}, want: "has no content"},
		{name: "symlink without a target", f: model.PutFile{Dest: dest, Kind: model.KindSymlink}, want: "empty link target"},
		{name: "symlink target with NUL", f: model.PutFile{Dest: dest, Kind: model.KindSymlink, Link: "a\x00b"}, want: "NUL"},
		{name: "link for a dir", f: model.PutFile{Dest: dest, Kind: model.KindDir, Link: "t"}, want: "has no link target"},
		{name: "unknown kind", f: model.PutFile{Dest: dest, Kind: 7}, want: "unknown kind 7"},
		{name: "root not an ancestor", f: model.PutFile{Dest: dest, Kind: model.KindDir, Root: dir + "/y"}, want: "not an ancestor"},
		{name: "root a sibling prefix", f: model.PutFile{Dest: dest, Kind: model.KindDir, Root: dir[:len(dir)-1]}, want: "not an ancestor"},
		{name: "root is dest", f: model.PutFile{Dest: dest, Kind: model.KindDir, Root: dest}, want: "not an ancestor"},
		{name: "root relative", f: model.PutFile{Dest: dest, Kind: model.KindDir, Root: "tmp"}, want: "not absolute"},
		{name: "root not clean", f: model.PutFile{Dest: dest, Kind: model.KindDir, Root: dir + "/"}, want: "not clean"},
		{name: "dir mode beyond 07777", f: model.PutFile{Dest: dest, Kind: model.KindDir, Mode: 0o10000}, want: "beyond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Put(t.Context(), tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put = %v; want an error with %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Put = %v; want it marked ErrInvalid", err)
			}
		})
	}
	if got := names(t, dir); len(got) != 0 {
		t.Errorf("dir holds %v after refused puts", got)
	}
}
