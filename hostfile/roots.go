//go:build !windows

package hostfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// resolve resolves the symlinks of a checked path's directory, as far as
// it exists, and checks the result against the Roots. It returns the
// resolved path (its last element is never resolved) and whether its
// directory exists. Unless follow, only symlinks root (or this process's
// user) owns are followed (see ResolveTrusted).
func (s *Store) resolve(p string, follow bool) (string, bool, error) {
	d, missing, err := resolvePath(filepath.Dir(p), follow)
	if err != nil {
		return "", false, errorf(ErrRefused, "%s: %w", p, err)
	}
	resolved := filepath.Join(d, filepath.Base(p))
	if !s.underRoots(resolved) {
		return "", false, errorf(ErrOutside, "%s is outside this minion's file_roots", p)
	}
	return resolved, missing == 0, nil
}

// resolvePath resolves the symlinks of the absolute, clean path p as far
// as it exists and appends the missing rest as it is. It returns the
// result and how many components are missing. Unless follow, a symlink
// that neither root nor this process's user owns is refused.
func resolvePath(p string, follow bool) (string, int, error) {
	d := p
	var missing []string
	eval := filepath.EvalSymlinks
	if !follow {
		trusted := OwnedBy(0, uint32(os.Geteuid()))
		eval = func(p string) (string, error) { return ResolveTrusted(osLinks{}, p, trusted) }
	}
	for {
		r, err := eval(d)
		if err == nil {
			d = r
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || d == "/" {
			return "", 0, err
		}
		missing = append(missing, filepath.Base(d))
		d = filepath.Dir(d)
	}
	slices.Reverse(missing)
	return filepath.Join(append([]string{d}, missing...)...), len(missing), nil
}

// underRoots reports whether the resolved path p is inside one of the
// Roots (their symlinks resolved too), or there are none.
func (s *Store) underRoots(p string) bool {
	if len(s.Roots) == 0 {
		return true
	}
	for _, root := range s.Roots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			r = filepath.Clean(root)
		}
		if r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// osLinks is the local file system, for ResolveTrusted.
type osLinks struct{}

func (osLinks) Lstat(p string) (fs.FileInfo, error) { return os.Lstat(p) }
func (osLinks) ReadLink(p string) (string, error)   { return os.Readlink(p) }
