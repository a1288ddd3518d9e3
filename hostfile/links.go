package hostfile

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// A directory on a destination's path that is a symlink made by a user
// other than root could send a root write (or read) anywhere: a user who
// owns /home/u/dir turns it into a link to /etc, and a push to
// /home/u/dir/f writes /etc/f. So a put or get that does not follow
// symlinks follows one on its path only when root (or the process's own
// user) owns it — the host's own links, such as /lib -> usr/lib or
// /var/run -> /run, are root's — and refuses any other, naming it.

// ErrUntrustedLink marks a path through a symlink that is not root's.
var ErrUntrustedLink = errors.New("symlink not owned by root")

// maxLinks bounds the symlinks one resolution follows (as Linux does).
const maxLinks = 40

// LinkFS is what ResolveTrusted reads of a file system.
type LinkFS interface {
	Lstat(p string) (fs.FileInfo, error)
	ReadLink(p string) (string, error)
}

// ResolveTrusted resolves the symlinks of the absolute, clean path p as
// filepath.EvalSymlinks does, component by component through fsys, and
// refuses a link that trusted says no to (it also says whose the link is)
// with an error wrapping ErrUntrustedLink. A missing component fails with
// an error wrapping fs.ErrNotExist.
func ResolveTrusted(fsys LinkFS, p string, trusted func(fs.FileInfo) (ok bool, owner string)) (string, error) {
	resolved := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			resolved = path.Dir(resolved)
			continue
		}
		next := path.Join(resolved, name)
		fi, err := fsys.Lstat(next)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			if len(rest) > 0 && !fi.IsDir() {
				return "", &fs.PathError{Op: "resolve", Path: next, Err: syscall.ENOTDIR}
			}
			resolved = next
			continue
		}
		if ok, owner := trusted(fi); !ok {
			return "", fmt.Errorf("%s is a %w (%s); refusing to follow it (follow_symlinks not asked)", next, ErrUntrustedLink, owner)
		}
		if links++; links > maxLinks {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
		}
		target, err := fsys.ReadLink(next)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return resolved, nil
}
