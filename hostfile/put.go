//go:build !windows

package hostfile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/unix"
)

// Put places a file, directory or symlink at f.Dest atomically. A file's
// content goes to a temp file in the destination's directory (recorded in
// the journal while it exists), is verified against f.Size and f.SHA256,
// gets its mode and owner, and is renamed over the destination; a file
// that already has the content but not the mode or owner asked for gets
// them in place instead. f.Open is called only when the content is needed
// (never when Dest has it already, nor for a directory or symlink), and
// its reader is read to io.EOF before anything is put in place, so a
// reader that fails instead changes nothing. A symlink is made at a temp
// name and renamed the same way; a directory is made or given its mode
// and owner. A backup is made only when a file's content changes. Any
// failure leaves the old destination as it was and removes the temp file;
// its error wraps ErrInvalid, ErrRefused, ErrOutside or ErrCorrupt unless
// the host itself failed.
func (s *Store) Put(ctx context.Context, f model.PutFile) (model.PutResult, error) {
	sp, err := checkPut(f)
	if err != nil {
		return model.PutResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
	}
	log := s.log().With("dest", f.Dest, "kind", sp.kind.String())
	d, name, old, err := s.putDest(f, sp)
	if err != nil {
		return model.PutResult{}, err
	}
	defer d.close()
	switch sp.kind {
	case model.KindDir:
		return putDir(d, name, old, sp, log)
	case model.KindSymlink:
		return s.putSymlink(d, name, old, f.Backup, sp, log)
	}
	return s.putContent(ctx, d, name, old, f, sp, log)
}

// putSpec is a checked PutFile.
type putSpec struct {
	kind     model.FileKind
	op       string // "put <kind> <dest>", the prefix of error messages
	size     int64
	sha256   string
	link     string
	mode     fs.FileMode // 0: keep the old one's, or the default for a new one
	uid, gid int         // -1: keep the old one's
}

// checkPut validates a put (model.PutFile.Check) and resolves its owner.
func checkPut(f model.PutFile) (putSpec, error) {
	op := "put " + f.Kind.String()
	if err := f.Check(); err != nil {
		if model.CheckPath(f.Dest) == nil {
			op += " " + f.Dest
		}
		return putSpec{}, errorf(ErrInvalid, "%s: %w", op, err)
	}
	op += " " + f.Dest
	sp := putSpec{kind: f.Kind, op: op, size: f.Size, sha256: strings.ToLower(f.SHA256), link: f.Link, uid: -1, gid: -1,
		mode: model.FileMode(f.Mode)}
	var err error
	if sp.uid, sp.gid, err = lookupOwner(f.Owner); err != nil {
		return putSpec{}, errorf(ErrInvalid, "%s: %w", op, err)
	}
	return sp, nil
}

// checkBelowRoot refuses a destination with an existing component strictly
// between the checked root and dest (both excluded) that is a symlink: a
// tree is never written through a link out of it.
func checkBelowRoot(root, dest, op string) error {
	names := strings.Split(strings.TrimPrefix(dest[len(root):], "/"), "/")
	p := root
	for _, name := range names[:len(names)-1] {
		p = filepath.Join(p, name)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return nil // nothing deeper exists; the rest is checked on the way
		case err != nil:
			return errorf(ErrRefused, "%s: %w", op, err)
		case st.Mode()&fs.ModeSymlink != 0:
			return errorf(ErrRefused, "%s: %s is a symlink; refusing to follow it out of the tree (follow_symlinks not asked)", op, p)
		}
	}
	return nil
}

// putDest finds where a put goes. It checks the components below Root,
// resolves Dest's directory within the Roots, follows a symlink at Dest
// when allowed (not for a symlink put, which replaces it), and opens the
// resolved directory by walking it without following any symlink (making
// what is missing when Mkdir asks). Every later change goes through that
// directory's descriptor, so a component swapped for a symlink after
// these checks is refused, never followed. It returns the directory, the
// name in it and what is there (nil for nothing), checked to suit the
// kind.
func (s *Store) putDest(f model.PutFile, sp putSpec) (*destDir, string, *entry, error) {
	confined := f.Root != "" && !f.FollowSymlinks
	if confined {
		if err := checkBelowRoot(f.Root, f.Dest, sp.op); err != nil {
			return nil, "", nil, err
		}
		if testHookChecked != nil {
			testHookChecked(f.Dest)
		}
	}
	dest, dirExists, err := s.resolve(f.Dest, f.FollowSymlinks)
	if err != nil {
		return nil, "", nil, err
	}
	if !dirExists && !f.Mkdir {
		return nil, "", nil, errorf(ErrRefused, "%s: directory %s does not exist (mkdir not asked)", sp.op, filepath.Dir(f.Dest))
	}
	if confined {
		// checkBelowRoot looked by path, so a symlink made below Root since
		// was resolved like any other. Resolved, Dest must still be Root's
		// resolution and the same names; the walk then holds to them.
		root, _, err := resolvePath(f.Root, false)
		if err != nil {
			return nil, "", nil, errorf(ErrRefused, "%s: %w", sp.op, err)
		}
		if dest != filepath.Join(root, f.Dest[len(f.Root):]) {
			return nil, "", nil, changedError(sp.op, filepath.Dir(f.Dest))
		}
	}

	following := false
	if dirExists && sp.kind != model.KindSymlink {
		if st, err := os.Lstat(dest); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			if !f.FollowSymlinks {
				return nil, "", nil, errorf(ErrRefused, "%s: the destination is a symlink; refusing to follow it (follow_symlinks not asked)", sp.op)
			}
			r, err := filepath.EvalSymlinks(dest)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, "", nil, errorf(ErrRefused, "%s: the destination is a dangling symlink; not writing through it", sp.op)
			case err != nil:
				return nil, "", nil, errorf(ErrRefused, "%s: %w", sp.op, err)
			case !s.underRoots(r):
				return nil, "", nil, errorf(ErrOutside, "%s: the destination is a symlink to %s, outside this minion's file_roots", sp.op, r)
			}
			dest, following = r, true
		}
	}
	shown := filepath.Dir(f.Dest)
	if following {
		shown = filepath.Dir(dest)
	}
	d, err := openDestDir(filepath.Dir(dest), shown, !dirExists, sp.op)
	if err != nil {
		return nil, "", nil, err
	}
	name := filepath.Base(dest)
	old, err := d.lstat(name)
	if errors.Is(err, fs.ErrNotExist) && !following {
		return d, name, nil, nil
	}
	switch {
	case err != nil:
		err = errorf(ErrRefused, "%s: %w", sp.op, err)
	case old.mode&fs.ModeSymlink != 0 && sp.kind != model.KindSymlink && !f.FollowSymlinks:
		err = errorf(ErrRefused, "%s: the destination is a symlink; refusing to follow it (follow_symlinks not asked)", sp.op)
	case old.mode&fs.ModeSymlink != 0 && sp.kind != model.KindSymlink:
		// It was no symlink, or was followed to what is none, just above.
		err = changedError(sp.op, d.join(name))
	case sp.kind == model.KindFile && !old.mode.IsRegular():
		err = errorf(ErrRefused, "%s: the destination is not a regular file (%s)", sp.op, typeName(old.mode))
	case sp.kind == model.KindDir && !old.mode.IsDir():
		err = errorf(ErrRefused, "%s: the destination is not a directory (%s)", sp.op, typeName(old.mode))
	case sp.kind == model.KindSymlink && old.mode.IsDir():
		err = errorf(ErrRefused, "%s: the destination is a directory; refusing to replace it", sp.op)
	case sp.kind == model.KindSymlink && !old.mode.IsRegular() && old.mode&fs.ModeSymlink == 0:
		err = errorf(ErrRefused, "%s: the destination is neither a symlink nor a regular file (%s)", sp.op, typeName(old.mode))
	}
	if err != nil {
		d.close()
		return nil, "", nil, err
	}
	return d, name, old, nil
}

// openDestDir walks to the resolved directory dir of the put op (see
// walkDir) and marks a failure as refused: a symlink met is the race
// refused; a component that is no directory is named, as shown when it is
// dir itself.
func openDestDir(dir, shown string, mkdir bool, op string) (*destDir, error) {
	d, err := walkDir(dir, mkdir)
	var pe *fs.PathError
	switch {
	case err == nil:
		return d, nil
	case errors.As(err, &pe) && errors.Is(pe.Err, errSymlinkAppeared):
		return nil, changedError(op, pe.Path)
	case errors.As(err, &pe) && errors.Is(pe.Err, unix.ENOTDIR):
		if pe.Path == dir {
			pe.Path = shown
		}
		return nil, errorf(ErrRefused, "%s: %s is not a directory", op, pe.Path)
	}
	return nil, errorf(ErrRefused, "%s: %w", op, err)
}

// changedError refuses a put whose path changed between its checks and
// its writes: where the resolution met no symlink at path, the walk did.
func changedError(op, path string) error {
	return errorf(ErrRefused, "%s: %s changed while being written (a symlink appeared); refusing", op, path)
}
