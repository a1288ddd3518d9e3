package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A daemon's data directory holds its private key, its database (job
// output, environment values, facts) and tokens: no other local user may
// read it, whoever made the directory first (a package's postinst often
// makes it 0755).

// PrivateDir makes dir, creating it and its parents as needed, a
// directory only its owner can use: mode 0700, and every file directly in
// it 0600 (group and other bits dropped). It refuses a dir that is not a
// directory or that belongs to another user, who could change what is in
// it. fixed names what it had to tighten, for the caller to log. On
// Windows, where mode bits mean little, the directory instead gets an ACL
// that lets only SYSTEM and Administrators in (restrictDir).
func PrivateDir(dir string) (fixed []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("data dir %s is not a directory", dir)
	}
	if err := checkOwner(dir, fi); err != nil {
		return nil, err
	}
	if err := restrictDir(dir); err != nil {
		return nil, err
	}
	if !modeBitsMatter {
		return nil, nil
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("data dir %s is %#o: make it 0700: %w", dir, fi.Mode().Perm(), err)
		}
		fixed = append(fixed, fmt.Sprintf("%s (was %#o, now 0700)", dir, fi.Mode().Perm()))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fixed, fmt.Errorf("data dir: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		was, err := private(path)
		if err != nil {
			return fixed, err
		}
		if was != 0 {
			fixed = append(fixed, fmt.Sprintf("%s (was %#o, now 0600)", path, was))
		}
	}
	return fixed, nil
}

// PrivateFile creates path empty with mode 0600 when it does not exist,
// and drops the group and other bits of one that does. SQLite gives its
// -wal and -shm files the database file's mode, so a database made this
// way before it is opened stays private with all its files.
func PrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if !modeBitsMatter {
		return nil // the directory's ACL, inherited, keeps it private
	}
	_, err = private(path)
	return err
}

// private drops the group and other bits of the regular file path and
// returns its old permissions when it changed them, else 0.
func private(path string) (fs.FileMode, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return 0, fmt.Errorf("data dir: %w", err)
	}
	perm := fi.Mode().Perm()
	if !fi.Mode().IsRegular() || perm&0o077 == 0 {
		return 0, nil
	}
	if err := os.Chmod(path, perm&0o700); err != nil {
		return 0, fmt.Errorf("make %s private: %w", path, err)
	}
	return perm, nil
}
