//go:build !windows

package hostfile

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/felix-ops/felix/model"
)

// putDir makes the directory name in d, where nothing is (old nil), or
// gives the directory there the mode and owner asked for. A directory it
// makes but cannot give them is removed again.
func putDir(d *destDir, name string, old *entry, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	made := old == nil
	if made {
		// Private until it has its mode.
		if err := unix.Mkdirat(d.fd, name, 0o700); err != nil {
			return model.PutResult{}, errorf(ErrRefused, "%s: %w", sp.op, &fs.PathError{Op: "mkdir", Path: d.join(name), Err: err})
		}
	}
	changed, err := setDirAttrs(d, name, made, sp)
	if err != nil {
		if made {
			if rerr := d.remove(name, true); rerr != nil {
				log.Error("remove the directory just made", "path", d.join(name), "err", rerr)
			}
		}
		if errors.Is(err, errSymlinkAppeared) {
			return model.PutResult{}, changedError(sp.op, d.join(name))
		}
		return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
	}
	if made {
		if err := d.sync(); err != nil {
			log.Warn("fsync directory", "dir", d.path, "err", err)
		}
	}
	return model.PutResult{Changed: made || changed}, nil
}

// setDirAttrs gives the directory name in d (opened without following a
// symlink) the owner and then the mode asked for (0: the one it has, or
// 0755 when made is true); chown may clear set-id bits, so it comes first.
// It reports whether anything changed.
func setDirAttrs(d *destDir, name string, made bool, sp putSpec) (bool, error) {
	f, err := d.openDir(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	have := st.Mode() & model.PutModeBits
	mode := sp.mode
	switch {
	case mode != 0:
	case made:
		mode = 0o755
	default:
		mode = have
	}
	changed := false
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && (sp.uid >= 0 && uint32(sp.uid) != sys.Uid || sp.gid >= 0 && uint32(sp.gid) != sys.Gid) {
		if err := f.Chown(sp.uid, sp.gid); err != nil {
			return false, err
		}
		changed = true
	}
	if changed || have != mode {
		if err := f.Chmod(mode); err != nil {
			return false, err
		}
		changed = changed || have != mode
	}
	return changed, nil
}
