//go:build !windows

package hostfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSweep removes what the journal names as the temp files of puts a
// crash interrupted, and only temp files and symlinks.
func TestSweep(t *testing.T) {
	dir, journal := t.TempDir(), t.TempDir()
	tmp := filepath.Join(dir, ".felix-tmp-f-0123456789abcdef")
	tmpLink := filepath.Join(dir, ".felix-tmp-l-0123456789abcdef")
	tmpDir := filepath.Join(dir, ".felix-tmp-d-0123456789abcdef")
	keep := filepath.Join(dir, "keep")
	for _, p := range []string{tmp, keep} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("keep", tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A transfer that died, a symlink put that died, one whose temp file
	// is already gone, an entry naming something that is not a temp file,
	// and one naming a directory (never removed).
	entries := map[string]string{"a": tmp + "\n", "b": filepath.Join(dir, ".felix-tmp-gone-1") + "\n", "c": keep + "\n",
		"d": tmpLink + "\n", "e": tmpDir + "\n"}
	for name, content := range entries {
		if err := os.WriteFile(filepath.Join(journal, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := newStore(t, journal)
	if err := s.Sweep(); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	if got, want := strings.Join(names(t, dir), " "), filepath.Base(tmpDir)+" keep"; got != want {
		t.Errorf("dir holds %q; want %q", got, want)
	}
	if got := readFile(t, keep); got != "x" {
		t.Errorf("keep = %q; want it untouched", got)
	}
	if got := names(t, journal); len(got) != 0 {
		t.Errorf("journal holds %v; want nothing", got)
	}
}

// TestSweepNoJournal checks that a Store without a journal directory has
// nothing to sweep and makes nothing.
func TestSweepNoJournal(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := (&Store{}).Sweep(); err != nil {
		t.Fatalf("Sweep without a journal: %v", err)
	}
	if got := names(t, "."); len(got) != 0 {
		t.Errorf("the working directory holds %v; want nothing", got)
	}
}
