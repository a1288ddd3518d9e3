package testenv

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// RemovableTempDir is t.TempDir for tests that also run under Wine: Go's
// os.RemoveAll on Windows deletes through a call Wine 8 does not have
// ("Invalid function"), so the directory is removed entry by entry with
// os.Remove, deepest first, when the test ends.
func RemovableTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "felix-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var paths []string
		filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				paths = append(paths, p)
			}
			return nil
		})
		slices.Reverse(paths) // children before their directory
		for _, p := range paths {
			if err := os.Remove(p); err != nil {
				t.Errorf("remove test directory entry: %v", err)
			}
		}
	})
	return dir
}
