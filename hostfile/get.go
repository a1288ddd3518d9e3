//go:build !windows

package hostfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/unix"
)

// Get copies the regular file g.Path to w and returns its size and sha256
// (lower-case hex). A symlink at the path is refused unless
// g.FollowSymlinks, which reads its resolved target (checked against the
// Roots like any path); the file is opened in its resolved directory,
// walked to without following any. The content goes to w as io.Copy sends
// it, through w's ReadFrom when it has one. On an error w may have
// received part of the content; the error wraps ErrInvalid, ErrRefused,
// ErrOutside or ErrNotFound unless the host or w failed.
func (s *Store) Get(ctx context.Context, g model.GetFile, w io.Writer) (int64, string, error) {
	f, err := s.openGet(g)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	return copyHashed(ctx, f, w, g.Path)
}

// openGet checks g and opens the regular file it names.
func (s *Store) openGet(g model.GetFile) (*os.File, error) {
	if err := model.CheckPath(g.Path); err != nil {
		return nil, errorf(ErrInvalid, "get file: %w", err)
	}
	target := g.Path
	if g.FollowSymlinks {
		r, err := filepath.EvalSymlinks(g.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
			return nil, errorf(ErrNotFound, "get file %s: no such file", g.Path)
		case err != nil:
			return nil, errorf(ErrRefused, "get file %s: %w", g.Path, err)
		}
		target = r
	}
	path, dirExists, err := s.resolve(target, g.FollowSymlinks)
	if err != nil {
		return nil, err
	}
	if !dirExists {
		return nil, errorf(ErrNotFound, "get file %s: no such file", g.Path)
	}
	d, err := walkDir(filepath.Dir(path), false)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && errors.Is(pe.Err, errSymlinkAppeared):
		return nil, errorf(ErrRefused, "get file %s: %s changed while being read (a symlink appeared); refusing", g.Path, pe.Path)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		return nil, errorf(ErrNotFound, "get file %s: no such file", g.Path)
	case err != nil:
		return nil, errorf(ErrRefused, "get file %s: %w", g.Path, err)
	}
	defer d.close()
	name := filepath.Base(path)
	st, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		return nil, errorf(ErrNotFound, "get file %s: no such file", g.Path)
	case err != nil:
		return nil, errorf(ErrRefused, "get file %s: %w", g.Path, err)
	case st.mode&fs.ModeSymlink != 0:
		return nil, errorf(ErrRefused, "get file %s: a symlink; refusing to follow it (follow_symlinks not asked)", g.Path)
	case !st.mode.IsRegular():
		return nil, errorf(ErrRefused, "get file %s: not a regular file (%s)", g.Path, st.mode.Type())
	}
	f, _, err := d.openRegular(name)
	switch {
	case errors.Is(err, errNotRegular):
		return nil, errorf(ErrRefused, "get file %s: not a regular file", g.Path)
	case err != nil:
		return nil, errorf(ErrRefused, "get file %s: %w", g.Path, err)
	}
	return f, nil
}
