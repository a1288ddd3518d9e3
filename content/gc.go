package content

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// roomAge is how long a blob must have been unused before a write that
// needs room may collect it, when KeepUnused is longer: long enough for an
// uploaded file to be pushed by the job it was uploaded for, short enough
// that a burst of uploads or fetched copies cannot fill the store for days.
const roomAge = time.Hour

// GC removes the blobs that are not held and whose last use is older than
// now minus KeepUnused, and returns how many it removed and the bytes
// freed. It keeps going past a failed removal and returns the errors
// joined. Writes that would pass MaxTotalSize collect too, blobs unused for
// an hour (or KeepUnused when shorter) and not held.
func (s *Store) GC(now time.Time) (removed int, freed int64, err error) {
	return s.gc(now, s.keepUnused)
}

// Verify hashes the blob sha again and, when its content no longer has
// that sha256 (damaged on disk), removes it so that the next upload
// stores it afresh; it reports whether the blob was sound. A missing blob
// is ErrNotFound.
func (s *Store) Verify(sha string) (bool, error) {
	f, b, err := s.Open(sha)
	if err != nil {
		return false, err
	}
	got, _, err := Sum(f)
	f.Close()
	if err != nil {
		return false, fmt.Errorf("verify blob %s: %w", sha, err)
	}
	if got == sha {
		return true, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.path(sha)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("remove damaged blob %s: %w", sha, err)
	} else if err == nil {
		s.total -= b.Size
		s.count--
	}
	s.log.Warn("content: removed a blob whose content no longer matches its sha256", "sha256", sha)
	return false, nil
}

func (s *Store) gc(now time.Time, keep time.Duration) (removed int, freed int64, err error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	cutoff := now.Add(-keep)
	var old []string
	var errs []error
	kept := map[string]bool{}
	if s.keep != nil {
		shas, err := s.keep()
		if err != nil {
			// Not knowing what must stay, remove nothing.
			return 0, 0, fmt.Errorf("gc content store %s: what to keep: %w", s.dir, err)
		}
		for _, sha := range shas {
			kept[sha] = true
		}
	}
	// The scan runs without s.mu; each removal re-checks under it.
	if err := s.walk(func(sha string, fi fs.FileInfo) {
		if fi.ModTime().Before(cutoff) && !kept[sha] {
			old = append(old, sha)
		}
	}); err != nil {
		errs = append(errs, err)
	}
	for _, sha := range old {
		n, ok, err := s.removeUnused(sha, cutoff)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			removed++
			freed += n
		}
	}
	if removed > 0 {
		s.log.Info("content: gc", "removed", removed, "freed", freed)
	}
	if len(errs) > 0 {
		return removed, freed, fmt.Errorf("gc content store %s: %w", s.dir, errors.Join(errs...))
	}
	return removed, freed, nil
}

// removeUnused removes the blob sha if it is not held and still unused
// since cutoff, and returns its size and whether it was removed.
func (s *Store) removeUnused(sha string, cutoff time.Time) (int64, bool, error) {
	p := s.path(sha)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds[sha] > 0 {
		return 0, false, nil
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil // removed by a concurrent GC
	}
	if err != nil {
		return 0, false, fmt.Errorf("remove blob %s: %w", sha, err)
	}
	if !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
		return 0, false, nil // used since the scan
	}
	if err := os.Remove(p); err != nil {
		return 0, false, fmt.Errorf("remove blob %s: %w", sha, err)
	}
	s.total -= fi.Size()
	s.count--
	return fi.Size(), true, nil
}

// walk calls fn for every blob file: a regular file named by a valid
// sha256 inside the shard directory of its first two digits. Anything
// else, apart from Dir/tmp, is logged and ignored, never removed.
func (s *Store) walk(fn func(sha string, fi fs.FileInfo)) error {
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	for _, d := range shards {
		name := d.Name()
		if name == "tmp" {
			continue
		}
		if !d.IsDir() || !validShard(name) {
			s.log.Warn("content: ignoring unexpected file", "path", filepath.Join(s.dir, name))
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, name))
		if err != nil {
			return err
		}
		for _, e := range entries {
			sha := e.Name()
			if !ValidSHA(sha) || sha[:2] != name || !e.Type().IsRegular() {
				s.log.Warn("content: ignoring unexpected file", "path", filepath.Join(s.dir, name, sha))
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed since ReadDir
			}
			if err != nil {
				return err
			}
			fn(sha, fi)
		}
	}
	return nil
}

// validShard reports whether name is two lower-case hex digits.
func validShard(name string) bool {
	return len(name) == 2 && isLowerHex(name)
}
