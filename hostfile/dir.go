//go:build !windows

package hostfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/unix"
)

// errSymlinkAppeared is met by a walk through a path resolved free of
// symlinks that finds one: the file system changed since the checks.
var errSymlinkAppeared = errors.New("a symlink appeared")

// errNotRegular is what openRegular says of anything but a regular file.
var errNotRegular = errors.New("not a regular file")

// destDir is a directory opened by walkDir. A put or get names files only
// relative to its descriptor, so a component of its path swapped for a
// symlink after the checks cannot redirect a write or a read.
type destDir struct {
	fd   int
	path string // resolved and absolute, for messages and the journal
}

// dirFlags open a directory on a walk, never through a symlink. O_RDONLY
// rather than O_PATH, which is Linux's only and cannot be fsynced; the
// minion runs as root, which may read any directory.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW

// walkDir opens the directory at the resolved absolute path p by walking
// it from "/" one component at a time, never following a symlink, and
// makes a missing component (0755 less the umask) when mkdir is set. A
// component that is a symlink by now fails with a *fs.PathError wrapping
// errSymlinkAppeared, one that is no directory with one wrapping ENOTDIR.
func walkDir(p string, mkdir bool) (*destDir, error) {
	if testHookResolved != nil {
		testHookResolved(p)
	}
	fd, err := openat(unix.AT_FDCWD, "/", dirFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	for name := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		if name == "" {
			continue // p is "/"
		}
		cur = filepath.Join(cur, name)
		op := "open"
		next, err := openDirAt(fd, name)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(fd, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(fd, name)
			} else {
				op = "mkdir"
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: cur, Err: err}
		}
		fd = next
	}
	return &destDir{fd: fd, path: p}, nil
}

// openDirAt opens the directory name in the directory dirfd without
// following a symlink. A symlink there fails with errSymlinkAppeared
// (O_NOFOLLOW with O_DIRECTORY gives ELOOP or ENOTDIR for one), anything
// else that is no directory with ENOTDIR.
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := openat(dirfd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) {
		return -1, errSymlinkAppeared
	}
	if errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, errSymlinkAppeared
		}
	}
	return fd, err
}

// openat is unix.Openat with O_CLOEXEC (the minion runs commands), retried
// on EINTR as os.OpenFile is.
func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// close closes d; a nil d is nothing to close.
func (d *destDir) close() {
	if d != nil {
		unix.Close(d.fd)
	}
}

// join returns the absolute path of name in d.
func (d *destDir) join(name string) string {
	return filepath.Join(d.path, name)
}

// lstat describes what is at name in d, not following a symlink.
func (d *destDir) lstat(name string) (*entry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return entryOf(&st), nil
}

// create makes the file name in d, where nothing may be, for writing with
// the permissions perm.
func (d *destDir) create(name string, perm uint32) (*os.File, error) {
	fd, err := openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// openDir opens the directory name in d (see openDirAt).
func (d *destDir) openDir(name string) (*os.File, error) {
	fd, err := openDirAt(d.fd, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// openRegular opens the regular file name in d for reading, never through
// a symlink and without blocking on a FIFO swapped in after a check. It
// returns the file and what it is; anything but a regular file fails with
// errNotRegular.
func (d *destDir) openRegular(name string) (*os.File, *entry, error) {
	path := d.join(name)
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	e := entryOf(&st)
	if !e.mode.IsRegular() {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	// Blocking again, as os.File expects of a regular file.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), e, nil
}

// readlink returns the target of the symlink name in d.
func (d *destDir) readlink(name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		k, err := unix.Readlinkat(d.fd, name, b)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: d.join(name), Err: err}
		}
		if k < n {
			return string(b[:k]), nil
		}
	}
}

// lchown gives name in d the owner uid:gid (-1 keeps a part), not
// following a symlink.
func (d *destDir) lchown(name string, uid, gid int) error {
	if err := unix.Fchownat(d.fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lchown", Path: d.join(name), Err: err}
	}
	return nil
}

// remove removes name from d: the directory when dir is set, else the file
// or symlink (never what it points to).
func (d *destDir) remove(name string, dir bool) error {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(d.fd, name, flags); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// sync fsyncs d, making a rename or a new entry in it durable.
func (d *destDir) sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// entry is what is at a name in a destDir: its type, mode bits, size,
// owner and identity, as fstat says.
type entry struct {
	mode     fs.FileMode // type and PutModeBits
	size     int64
	uid, gid uint32
	dev, ino uint64
	nlink    uint64 // hard links
}

// entryOf converts a stat result.
func entryOf(st *unix.Stat_t) *entry {
	m := model.StatMode(uint32(st.Mode))
	return &entry{mode: m, size: st.Size, uid: st.Uid, gid: st.Gid, dev: uint64(st.Dev), ino: uint64(st.Ino), nlink: uint64(st.Nlink)}
}
