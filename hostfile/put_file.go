//go:build !windows

package hostfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/felix-ops/felix/model"
)

// putContent puts a regular file at name in d, where old (nil for
// nothing) is the regular file there: done at once when it already has
// the content (given the mode and owner in place when they differ; see
// keepOld), else f's content is read into a temp file in d, which is
// renamed over name, backing up the old file when f.Backup asks and the
// content changes: a file whose content stays is never backed up.
func (s *Store) putContent(ctx context.Context, d *destDir, name string, old *entry, f model.PutFile, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	fate := replaceOld
	if old != nil {
		var err error
		if fate, err = keepOld(d, name, old, sp); err != nil {
			return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
		}
		if fate == keptOld || fate == fixedOld {
			return model.PutResult{Changed: fate == fixedOld}, nil
		}
	}
	if f.Open == nil {
		return model.PutResult{}, errorf(ErrInvalid, "%s: the content is needed but cannot be opened", sp.op)
	}
	r, err := f.Open()
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: open the content: %w", sp.op, err)
	}
	defer r.Close()

	tmp := filepath.Base(model.PutTempName(d.join(name), randomHex()))
	unjournal, err := s.journal(d.join(tmp))
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
	}
	defer unjournal() // after the temp file is gone (defers run in reverse)
	tf, err := d.create(tmp, 0o600)
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: create temp file: %w", sp.op, err)
	}
	renamed := false
	defer func() {
		tf.Close() // a no-op error after the explicit Close
		if !renamed {
			if err := d.remove(tmp, false); err != nil {
				log.Error("remove temp file", "path", d.join(tmp), "err", err)
			}
		}
	}()
	if err := receive(ctx, tf, r, sp); err != nil {
		return model.PutResult{}, err
	}
	if err := setAttrs(tf, old, sp); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", sp.op, err)
	}
	if err := tf.Sync(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: fsync: %w", sp.op, err)
	}
	if err := tf.Close(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: write: %w", sp.op, err)
	}
	res, err := replace(d, tmp, name, f.Backup && old != nil && fate == replaceOld, sp, log)
	if err != nil {
		return res, err
	}
	renamed = true
	unjournal() // before returning: the temp file is gone, and the caller may look at once
	return res, nil
}

// receive copies the content r to f until r ends (io.EOF), then checks
// its size and sha256. A failure of r is returned wrapped, whatever it
// is; content beyond the announced size fails at once.
func receive(ctx context.Context, f *os.File, r io.Reader, sp putSpec) error {
	w := &contentWriter{ctx: ctx, f: f, sum: sha256.New(), sp: &sp}
	if _, err := io.Copy(w, r); err != nil {
		if w.err != nil {
			return w.err // the writer's own failure, whatever r made of it
		}
		return fmt.Errorf("%s: read the content: %w", sp.op, err)
	}
	if w.n != sp.size {
		return errorf(ErrInvalid, "%s: got %d bytes of the announced %d", sp.op, w.n, sp.size)
	}
	if got := hex.EncodeToString(w.sum.Sum(nil)); got != sp.sha256 {
		return errorf(ErrCorrupt, "%s: sha256 of the content is %s, not the announced %s", sp.op, got, sp.sha256)
	}
	return nil
}

// contentWriter writes a put's content to its temp file, hashing and
// counting it, and refuses more than the announced size.
type contentWriter struct {
	ctx context.Context
	f   *os.File
	sum hash.Hash
	sp  *putSpec
	n   int64 // bytes written
	err error // the first failure of Write
}

// Write writes p to the temp file, unless ctx has ended or p goes past
// the announced size.
func (w *contentWriter) Write(p []byte) (int, error) {
	switch {
	case w.err != nil:
	case w.ctx.Err() != nil:
		w.err = fmt.Errorf("%s: %w", w.sp.op, w.ctx.Err())
	case w.n+int64(len(p)) > w.sp.size:
		w.err = errorf(ErrInvalid, "%s: more content than the announced %d bytes", w.sp.op, w.sp.size)
	default:
		if _, err := w.f.Write(p); err != nil {
			w.err = fmt.Errorf("%s: write: %w", w.sp.op, err)
			break
		}
		w.sum.Write(p)
		w.n += int64(len(p))
		return len(p), nil
	}
	return 0, w.err
}

// setAttrs gives the temp file its owner (asked, or the old file's) and
// then its mode (asked, the old file's, or 0644); chown clears set-id bits,
// so it comes first.
func setAttrs(f *os.File, old *entry, sp putSpec) error {
	uid, gid := sp.uid, sp.gid
	mode := sp.mode
	if old != nil {
		if uid < 0 {
			uid = int(old.uid)
		}
		if gid < 0 {
			gid = int(old.gid)
		}
		if mode == 0 {
			mode = old.mode & model.PutModeBits
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	cur, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := cur.Sys().(*syscall.Stat_t); ok && (uid >= 0 && uid != int(st.Uid) || gid >= 0 && gid != int(st.Gid)) {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.Chmod(mode)
}

// oldFate is what keepOld makes of the regular file at a put's
// destination.
type oldFate int

const (
	replaceOld oldFate = iota // another content, or another file by now: replace it
	keptOld                   // the content, mode and owner asked for: unchanged
	fixedOld                  // the content asked for, given the mode and owner in place
	relinkOld                 // the content asked for, but hard-linked: replace it, no backup
)

// keepOld compares the regular file name in d (described by old) with the
// size and sha256 asked for. A file with that content is kept: when it
// lacks the owner or mode asked for it gets them in place, the owner
// first (chown clears set-id bits) and then the mode (asked, or the one it
// had), through the descriptor its content was hashed by: opened relative
// to d without following a symlink and checked to be old (device and
// inode), so what changes is the file compared, whatever became of its
// name since. A file with another hard link is replaced rather than
// changed in place, so that no other name of it changes too.
func keepOld(d *destDir, name string, old *entry, sp putSpec) (oldFate, error) {
	if old.size != sp.size {
		return replaceOld, nil
	}
	if testHookKeep != nil {
		testHookKeep(d.join(name))
	}
	f, cur, err := d.openRegular(name)
	if err != nil {
		return replaceOld, fmt.Errorf("read the old file: %w", err)
	}
	defer f.Close()
	if cur.dev != old.dev || cur.ino != old.ino {
		return replaceOld, nil // replaced since it was looked at: put it anew
	}
	sum := sha256.New()
	if _, err := io.CopyBuffer(sum, f, make([]byte, copyBufSize)); err != nil {
		return replaceOld, fmt.Errorf("read the old file: %w", err)
	}
	if hex.EncodeToString(sum.Sum(nil)) != sp.sha256 {
		return replaceOld, nil
	}
	have := cur.mode & model.PutModeBits
	mode := sp.mode
	if mode == 0 {
		mode = have
	}
	chown := !sameOwner(cur, sp)
	switch {
	case !chown && have == mode:
		return keptOld, nil
	case cur.nlink != 1:
		return relinkOld, nil
	}
	if chown {
		if err := f.Chown(sp.uid, sp.gid); err != nil {
			return replaceOld, err
		}
	}
	// After a chown even the same mode, for the set-id bits it cleared.
	if err := f.Chmod(mode); err != nil {
		if chown { // back as it was, as far as it goes
			f.Chown(int(cur.uid), int(cur.gid))
			f.Chmod(have)
		}
		return replaceOld, err
	}
	return fixedOld, nil
}

// backupFile keeps the file name in d as name.felix-bak-<UTC time> in d: a
// hard link where the file system allows one, else a copy with its mode
// and owner. It returns the backup's path.
func backupFile(d *destDir, name string) (string, error) {
	bak := filepath.Base(model.PutBackupName(d.join(name), time.Now()))
	if err := unix.Linkat(d.fd, name, d.fd, bak, 0); err == nil {
		return d.join(bak), nil
	}
	src, st, err := d.openRegular(name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := d.create(bak, 0o600)
	if err != nil {
		return "", err
	}
	err = func() error {
		if _, err := io.CopyBuffer(dst, src, make([]byte, copyBufSize)); err != nil {
			return err
		}
		if err := dst.Chown(int(st.uid), int(st.gid)); err != nil {
			return err
		}
		if err := dst.Chmod(st.mode & model.PutModeBits); err != nil {
			return err
		}
		return dst.Sync()
	}()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.remove(bak, false)
		return "", err
	}
	return d.join(bak), nil
}

// replace renames the finished temp file (or symlink) tmp over name, both
// in d, first keeping the old file as a backup when backup is set, and
// fsyncs d.
func replace(d *destDir, tmp, name string, backup bool, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	res := model.PutResult{Changed: true}
	if backup {
		var err error
		if res.Backup, err = backupFile(d, name); err != nil {
			return model.PutResult{}, fmt.Errorf("%s: backup: %w", sp.op, err)
		}
	}
	if err := unix.Renameat(d.fd, tmp, d.fd, name); err != nil {
		err = &os.LinkError{Op: "rename", Old: d.join(tmp), New: d.join(name), Err: err}
		return model.PutResult{}, fmt.Errorf("%s: rename into place: %w", sp.op, err)
	}
	if err := d.sync(); err != nil {
		// The file is in place; only its durability across a power loss
		// is in doubt.
		log.Warn("fsync directory", "dir", d.path, "err", err)
	}
	return res, nil
}

// sameOwner reports whether old has the owner asked for.
func sameOwner(old *entry, sp putSpec) bool {
	return (sp.uid < 0 || uint32(sp.uid) == old.uid) && (sp.gid < 0 || uint32(sp.gid) == old.gid)
}
