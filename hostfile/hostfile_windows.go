package hostfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/felix-ops/felix/model"
	"golang.org/x/sys/windows"
)

// On Windows a Store puts and gets regular files at drive paths
// (model.CheckWindowsPath: C:\dir\file, no UNC or device path, no
// reserved name). A put writes a temp file in the destination's
// directory, verifies its size and sha256, flushes it and moves it over
// the destination with MoveFileEx(MOVEFILE_REPLACE_EXISTING |
// MOVEFILE_WRITE_THROUGH); a destination that already has the content is
// left alone. Mode and owner mean nothing there (a new file inherits its
// directory's ACL), so a put that asks for either is refused, as are
// directory and symlink puts and backups; a symlink or junction
// (reparse point) at the destination or its directory is never written
// or read through.

// checkLocalPath checks a path of this host (model.CheckWindowsPath).
func checkLocalPath(p string) error { return model.CheckWindowsPath(p) }

// Put places the regular file f.Dest atomically; see the comment above.
func (s *Store) Put(ctx context.Context, f model.PutFile) (model.PutResult, error) {
	op := "put " + f.Kind.String() + " " + f.Dest
	if err := checkWindowsPut(f); err != nil {
		return model.PutResult{}, errorf(ErrInvalid, "%s: %w", op, err)
	}
	if err := ctx.Err(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if !s.underRoots(f.Dest) {
		return model.PutResult{}, errorf(ErrOutside, "%s: outside this minion's file_roots", op)
	}
	dir := filepath.Dir(f.Dest)
	if f.Mkdir {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return model.PutResult{}, errorf(ErrRefused, "%s: %w", op, err)
		}
	}
	if err := checkNoReparse(dir); err != nil {
		return model.PutResult{}, errorf(ErrRefused, "%s: %w", op, err)
	}
	old, err := os.Lstat(f.Dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return model.PutResult{}, errorf(ErrRefused, "%s: %w", op, err)
	case old.Mode()&fs.ModeSymlink != 0 || old.Mode()&fs.ModeIrregular != 0:
		return model.PutResult{}, errorf(ErrRefused, "%s: the destination is a symlink or junction; refusing to follow it", op)
	case !old.Mode().IsRegular():
		return model.PutResult{}, errorf(ErrRefused, "%s: the destination is not a regular file (%s)", op, typeName(old.Mode()))
	case old.Size() == f.Size:
		if sum, err := fileSHA256(f.Dest); err == nil && sum == strings.ToLower(f.SHA256) {
			return model.PutResult{}, nil // already there
		}
	}
	if f.Open == nil {
		return model.PutResult{}, errorf(ErrInvalid, "%s: the content is needed but cannot be opened", op)
	}
	r, err := f.Open()
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: open the content: %w", op, err)
	}
	defer r.Close()

	tmp := filepath.Join(dir, model.PutTempPrefix+filepath.Base(f.Dest)+"-"+randomHex())
	unjournal, err := s.journal(tmp)
	if err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", op, err)
	}
	defer unjournal()
	tf, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return model.PutResult{}, errorf(ErrRefused, "%s: create temp file: %w", op, err)
	}
	moved := false
	defer func() {
		tf.Close() // a no-op error after the explicit Close
		if !moved {
			if err := os.Remove(tmp); err != nil {
				s.log().Error("remove temp file", "path", tmp, "err", err)
			}
		}
	}()
	if err := copyVerified(ctx, tf, r, f.Size, strings.ToLower(f.SHA256)); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := tf.Sync(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: flush: %w", op, err)
	}
	if err := tf.Close(); err != nil {
		return model.PutResult{}, fmt.Errorf("%s: write: %w", op, err)
	}
	if err := moveOver(tmp, f.Dest); err != nil {
		return model.PutResult{}, errorf(ErrRefused, "%s: %w", op, err)
	}
	moved = true
	unjournal()
	return model.PutResult{Changed: true}, nil
}

// checkWindowsPut refuses what a Windows minion cannot do as asked.
func checkWindowsPut(f model.PutFile) error {
	if err := model.CheckWindowsPath(f.Dest); err != nil {
		return err
	}
	switch {
	case f.Kind != model.KindFile:
		return fmt.Errorf("a Windows minion puts regular files only, not a %s", f.Kind)
	case f.Owner != "":
		return errors.New("owner is not supported on a Windows minion: a new file inherits the ACL of its directory")
	case f.Mode != 0:
		return errors.New("mode is not supported on a Windows minion: a new file inherits the ACL of its directory")
	case f.Backup:
		return errors.New("backup is not supported on a Windows minion")
	case f.Size < 0:
		return fmt.Errorf("size %d is negative", f.Size)
	case len(f.SHA256) != 64:
		return errors.New("sha256 must be 64 hex digits")
	}
	if _, err := hex.DecodeString(f.SHA256); err != nil {
		return errors.New("sha256 must be 64 hex digits")
	}
	return nil
}

// copyVerified copies r to w, which must be exactly size bytes with the
// sha256 sum, stopping when ctx ends.
func copyVerified(ctx context.Context, w io.Writer, r io.Reader, size int64, sum string) error {
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k, err := r.Read(buf)
		if k > 0 {
			if n += int64(k); n > size {
				return errorf(ErrInvalid, "the content is longer than the %d bytes announced", size)
			}
			h.Write(buf[:k])
			if _, werr := w.Write(buf[:k]); werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read the content: %w", err)
		}
	}
	if n != size {
		return errorf(ErrInvalid, "the content is %d bytes, not the %d announced", n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return errorf(ErrCorrupt, "sha256 of the content is %s, not %s", got, sum)
	}
	return nil
}

// moveOver renames tmp over dest atomically, flushed before it returns.
func moveOver(tmp, dest string) error {
	from, err := windows.UTF16PtrFromString(tmp)
	if err != nil {
		return err
	}
	to, err := windows.UTF16PtrFromString(dest)
	if err != nil {
		return err
	}
	if err := windows.MoveFileEx(from, to, windows.MOVEFILE_REPLACE_EXISTING|windows.MOVEFILE_WRITE_THROUGH); err != nil {
		return fmt.Errorf("replace %s: %w", dest, err)
	}
	return nil
}

// checkNoReparse refuses a directory that is, or lies below, a symlink or
// junction: every component from the drive's root is looked at without
// following one.
func checkNoReparse(dir string) error {
	vol := filepath.VolumeName(dir)
	p := vol + `\`
	for name := range strings.SplitSeq(strings.TrimPrefix(dir[len(vol):], `\`), `\`) {
		if name == "" {
			continue
		}
		p = filepath.Join(p, name)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("directory %s does not exist (mkdir not asked)", p)
		case err != nil:
			return err
		case st.Mode()&(fs.ModeSymlink|fs.ModeIrregular) != 0:
			return fmt.Errorf("%s is a symlink or junction; refusing to follow it", p)
		case !st.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		}
	}
	return nil
}

// fileSHA256 returns the sha256 of the file at path in lower-case hex.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, copyBufSize)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// underRoots reports whether p is one of the Roots or below one, compared
// without regard to case as Windows does; any path when there are none.
func (s *Store) underRoots(p string) bool {
	if len(s.Roots) == 0 {
		return true
	}
	for _, r := range s.Roots {
		r = strings.TrimRight(r, `\`)
		if strings.EqualFold(p, r) || len(p) > len(r) && strings.EqualFold(p[:len(r)], r) && p[len(r)] == '\\' {
			return true
		}
	}
	return false
}

// Get copies the regular file g.Path to w and returns its size and sha256
// (lower-case hex). A symlink or junction at the path or above it is
// refused.
func (s *Store) Get(ctx context.Context, g model.GetFile, w io.Writer) (int64, string, error) {
	if err := model.CheckWindowsPath(g.Path); err != nil {
		return 0, "", errorf(ErrInvalid, "get file: %w", err)
	}
	if !s.underRoots(g.Path) {
		return 0, "", errorf(ErrOutside, "get file %s: outside this minion's file_roots", g.Path)
	}
	if err := checkNoReparse(filepath.Dir(g.Path)); err != nil {
		return 0, "", errorf(ErrNotFound, "get file %s: %w", g.Path, err)
	}
	st, err := os.Lstat(g.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, "", errorf(ErrNotFound, "get file %s: no such file", g.Path)
	case err != nil:
		return 0, "", errorf(ErrRefused, "get file %s: %w", g.Path, err)
	case !st.Mode().IsRegular():
		return 0, "", errorf(ErrRefused, "get file %s: not a regular file (%s)", g.Path, typeName(st.Mode()))
	}
	f, err := os.Open(g.Path)
	if err != nil {
		return 0, "", errorf(ErrRefused, "get file %s: %w", g.Path, err)
	}
	defer f.Close()
	return copyHashed(ctx, f, w, g.Path)
}

// sweepTemp removes the journalled temp file tmp when it is a regular
// file; anything else is left alone.
func (s *Store) sweepTemp(tmp string) error {
	st, err := os.Lstat(tmp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("sweep temp file %s: %w", tmp, err)
	case !st.Mode().IsRegular():
		s.log().Warn("journalled temp file is not a regular file; left alone", "path", tmp)
		return nil
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("sweep temp file: %w", err)
	}
	s.log().Info("removed the temp file of an interrupted transfer", "path", tmp)
	return nil
}
