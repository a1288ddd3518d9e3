package selfupdate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// step is called between Install's and Rollback's steps with the step's
// name; tests make it fail or kill the process there. nil in production.
var step func(name string) error

func at(name string) error {
	if step == nil {
		return nil
	}
	return step(name)
}

// tempPrefix starts the names of Install's temporary files, which a crash
// may leave behind; the next Install removes them.
func tempPrefix(current string) string { return "." + filepath.Base(current) + ".new-" }

// Install puts the checked binary at current, keeping the binary that was
// there as current.prev (see Prev). The steps, each leaving a complete
// binary at current:
//
//  1. copy checked.Path to a temporary file beside current (mode 0755),
//     hashing it on the way (it must still be the file Check hashed), fsync;
//  2. hard-link current to a temporary name and rename that over
//     current.prev (a copy when the file system has no hard links);
//  3. rename the new file over current;
//  4. fsync the directory, so the renames survive a power cut.
//
// A process killed between steps leaves current whole (old or new) and at
// worst a stray temporary file, removed by the next Install.
func Install(current string, checked Checked) error {
	dir := filepath.Dir(current)
	sweep(dir, tempPrefix(current))
	tmp, err := copyTemp(current, checked.Path, 0o755, checked.SHA256)
	if err != nil {
		return fmt.Errorf("install %s: %w", current, err)
	}
	defer os.Remove(tmp) // gone once renamed; removed on an error before
	if err := at("copied"); err != nil {
		return err
	}
	if _, err := os.Stat(current); err == nil {
		if err := keepPrev(current); err != nil {
			return fmt.Errorf("install %s: keep the current binary: %w", current, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("install %s: %w", current, err)
	}
	if err := at("kept"); err != nil {
		return err
	}
	if err := os.Rename(tmp, current); err != nil {
		return fmt.Errorf("install %s: %w", current, err)
	}
	if err := at("renamed"); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("install %s: %w", current, err)
	}
	return nil
}

// Prev is where Install keeps the binary it replaced.
func Prev(current string) string { return current + PrevSuffix }

// Rollback puts current.prev back at current (a rename: atomic; .prev is
// gone afterwards) and fsyncs the directory.
func Rollback(current string) error {
	prev := Prev(current)
	if _, err := os.Stat(prev); err != nil {
		return fmt.Errorf("roll back %s: no previous binary: %w", current, err)
	}
	if err := at("rollback"); err != nil {
		return err
	}
	if err := os.Rename(prev, current); err != nil {
		return fmt.Errorf("roll back %s: %w", current, err)
	}
	if err := syncDir(filepath.Dir(current)); err != nil {
		return fmt.Errorf("roll back %s: %w", current, err)
	}
	return nil
}

// keepPrev makes current.prev a hard link to current (a copy where links
// fail), replacing an older .prev atomically.
func keepPrev(current string) error {
	dir := filepath.Dir(current)
	tmp, err := os.CreateTemp(dir, tempPrefix(current))
	if err != nil {
		return err
	}
	tmp.Close()
	os.Remove(tmp.Name())
	if err := os.Link(current, tmp.Name()); err != nil {
		st, serr := os.Stat(current)
		if serr != nil {
			return serr
		}
		name, err := copyTemp(current, current, st.Mode().Perm(), "")
		if err != nil {
			return err
		}
		if err := os.Rename(name, tmp.Name()); err != nil {
			os.Remove(name)
			return err
		}
	}
	// When .prev already is a link to current (a crash after this step
	// last time), rename does nothing and leaves tmp: remove it either way.
	defer os.Remove(tmp.Name())
	return os.Rename(tmp.Name(), Prev(current))
}

// copyTemp copies src to a new temporary file beside current with mode
// perm, fsynced, and returns its name. With wantSHA256 set, the copy's
// hash must match.
func copyTemp(current, src string, perm os.FileMode, wantSHA256 string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(current), tempPrefix(current))
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		out.Close()
		os.Remove(out.Name())
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		return fail(fmt.Errorf("copy %s: %w", src, err))
	}
	if got := hex.EncodeToString(h.Sum(nil)); wantSHA256 != "" && got != wantSHA256 {
		return fail(fmt.Errorf("%s changed since it was checked (sha256 %s, want %s): %w", src, got, wantSHA256, ErrChecksum))
	}
	if err := out.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := out.Sync(); err != nil {
		return fail(fmt.Errorf("fsync %s: %w", out.Name(), err))
	}
	if err := out.Close(); err != nil {
		return fail(err)
	}
	return out.Name(), nil
}

// sweep removes the temporary files a killed Install left in dir.
func sweep(dir, prefix string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
