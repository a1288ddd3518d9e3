//go:build !windows

package hostfile

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/felix-ops/felix/model"
)

// checkLocalPath checks a path of this host (model.CheckPath).
func checkLocalPath(p string) error { return model.CheckPath(p) }

// sweepTemp removes the journalled temp file or symlink tmp (a symlink
// itself, never what it points to) through its directory, walked to
// without following a symlink as it was when tmp was made; anything else
// is left alone.
func (s *Store) sweepTemp(tmp string) error {
	d, err := walkDir(filepath.Dir(tmp), false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, errSymlinkAppeared):
		s.log().Warn("the directory of a journalled temp file is reached through a symlink now; left alone", "path", tmp)
		return nil
	case err != nil:
		return fmt.Errorf("sweep temp file %s: %w", tmp, err)
	}
	defer d.close()
	name := filepath.Base(tmp)
	st, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("sweep temp file %s: %w", tmp, err)
	case !st.mode.IsRegular() && st.mode&fs.ModeSymlink == 0:
		s.log().Warn("journalled temp file is neither a regular file nor a symlink; left alone", "path", tmp)
	default:
		if err := d.remove(name, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sweep temp file: %w", err)
		}
		s.log().Info("removed the temp file of an interrupted transfer", "path", tmp)
	}
	return nil
}
