//go:build !windows

package hostfile

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/felix-ops/felix/model"
)

// putSymlink makes name in d a symlink to sp.link, where old (nil for
// nothing) is the symlink or regular file there: unchanged when it is a
// symlink to that target already (its owner set if asked), else a symlink
// made at a temp name (journalled) and renamed over name. A replaced
// regular file is backed up when backup asks.
func (s *Store) putSymlink(d *destDir, name string, old *entry, backup bool, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	chown := sp.uid >= 0 || sp.gid >= 0
	if old != nil && old.mode&fs.ModeSymlink != 0 {
		cur, err := d.readlink(name)
		if err != nil {
			return model.PutResult{}, fmt.Errorf("%s: read the old link: %w", sp.op, err)
		}
		if cur == sp.link {
			if !chown || sameOwner(old, sp) {
				return model.PutResult{}, nil
			}
			if err := d.lchown(name, sp.uid, sp.gid); err != nil {
				return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
			}
			return model.PutResult{Changed: true}, nil
		}
	}

	tmp := filepath.Base(model.PutTempName(d.join(name), randomHex()))
	unjournal, err := s.journal(d.join(tmp))
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
	}
	defer unjournal() // after the temp symlink is gone (defers run in reverse)
	if err := unix.Symlinkat(sp.link, d.fd, tmp); err != nil {
		err = &os.LinkError{Op: "symlink", Old: sp.link, New: d.join(tmp), Err: err}
		return model.PutResult{}, fmt.Errorf("%s: create temp symlink: %w", sp.op, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			if err := d.remove(tmp, false); err != nil {
				log.Error("remove temp symlink", "path", d.join(tmp), "err", err)
			}
		}
	}()
	if chown {
		if err := d.lchown(tmp, sp.uid, sp.gid); err != nil {
			return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
		}
	}
	res, err := replace(d, tmp, name, backup && old != nil && old.mode.IsRegular(), sp, log)
	if err == nil {
		renamed = true
	}
	return res, err
}
