//go:build !windows

package hostfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/model"
)

// mapLinks is a LinkFS over a map: entries ending in "/" are directories,
// "->target" symlinks (owned by uid 0 unless they start "u:"), anything
// else files.
type mapLinks map[string]string

type linkInfo struct {
	mode fs.FileMode
	uid  uint32
}

func (i linkInfo) Name() string       { return "" }
func (i linkInfo) Size() int64        { return 0 }
func (i linkInfo) ModTime() time.Time { return time.Time{} }
func (i linkInfo) Mode() fs.FileMode  { return i.mode }
func (i linkInfo) IsDir() bool        { return i.mode.IsDir() }
func (i linkInfo) Sys() any           { return &syscall.Stat_t{Uid: i.uid} }

func (m mapLinks) Lstat(p string) (fs.FileInfo, error) {
	v, ok := m[p]
	if !ok {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	var info linkInfo
	switch {
	case v == "/":
		info.mode = fs.ModeDir
	case strings.HasPrefix(v, "u:->"):
		info.mode, info.uid = fs.ModeSymlink, 65534
	case strings.HasPrefix(v, "->"):
		info.mode = fs.ModeSymlink
	}
	return info, nil
}

func (m mapLinks) ReadLink(p string) (string, error) {
	v := m[p]
	_, t, _ := strings.Cut(v, "->")
	return t, nil
}

func TestResolveTrusted(t *testing.T) {
	fsys := mapLinks{
		"/lib": "->usr/lib", "/usr": "/", "/usr/lib": "/", "/usr/lib/x": "/",
		"/home": "/", "/home/u": "/", "/home/u/evil": "u:->/etc", "/etc": "/",
		"/home/u/ok": "->../../usr/lib", "/loop": "->/loop", "/file": "file",
		"/root-to-user": "->/home/u/evil",
	}
	for _, tc := range []struct{ in, want, bad string }{
		{"/lib/x", "/usr/lib/x", ""},
		{"/home/u/ok/x", "/usr/lib/x", ""},
		{"/home/u/evil/passwd", "", "/home/u/evil is a symlink not owned by root (owned by uid 65534)"},
		{"/root-to-user/x", "", "/home/u/evil is a symlink not owned by root"},
		{"/loop/x", "", "too many levels"},
		{"/file/x", "", "not a directory"},
		{"/nope/x", "", "file does not exist"},
		{"/usr/../lib/x", "/usr/lib/x", ""},
	} {
		got, err := ResolveTrusted(fsys, tc.in, OwnedBy(0))
		if tc.bad != "" {
			if err == nil || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("ResolveTrusted(%s) = %q, %v; want an error with %q", tc.in, got, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ResolveTrusted(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := ResolveTrusted(fsys, "/home/u/evil/x", OwnedBy(0)); !errors.Is(err, ErrUntrustedLink) {
		t.Errorf("error %v does not wrap ErrUntrustedLink", err)
	}
}

// TestParentSymlinkOfAnotherUser: a user who owns a directory on the path
// of a single-file push (or fetch) and turns it into a symlink to /etc
// cannot make the minion write (or read) there; a link of root's is
// followed; follow_symlinks follows either.
func TestParentSymlinkOfAnotherUser(t *testing.T) {
	uid, gid := nobody(t)
	dir := t.TempDir()
	s := newStore(t, t.TempDir())
	target := filepath.Join(dir, "etc")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(target, "shadow"), []byte("secret"), 0o600)
	userLink, rootLink := filepath.Join(dir, "evil"), filepath.Join(dir, "lib")
	for _, l := range []string{userLink, rootLink} {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(userLink, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err := s.Put(ctx, putBytes(filepath.Join(userLink, "passwd"), []byte("owned"), nil))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), userLink+" is a symlink not owned by root") {
		t.Errorf("put through another user's link = %v; want refused, naming it", err)
	}
	if _, err := os.Stat(filepath.Join(target, "passwd")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the put wrote through the link: %v", err)
	}
	_, _, err = s.Get(ctx, model.GetFile{Path: filepath.Join(userLink, "shadow")}, io.Discard)
	if !errors.Is(err, ErrRefused) {
		t.Errorf("get through another user's link = %v; want refused", err)
	}

	if _, err := s.Put(ctx, putBytes(filepath.Join(rootLink, "a"), []byte("a"), nil)); err != nil {
		t.Errorf("put through root's link: %v", err)
	}
	f := putBytes(filepath.Join(userLink, "b"), []byte("b"), nil)
	f.FollowSymlinks = true
	if _, err := s.Put(ctx, f); err != nil {
		t.Errorf("put through another user's link with follow_symlinks: %v", err)
	}
	for _, name := range []string{"a", "b"} {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != name {
			t.Errorf("%s = %q, %v; want it written in the link's target", name, b, err)
		}
	}
}
