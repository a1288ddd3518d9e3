package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the lock file inside a data directory.
const LockFile = "lock"

// ErrInUse is returned by LockDataDir when another process holds the lock.
var ErrInUse = errors.New("data dir is in use")

// LockDataDir takes an exclusive lock on dir (flock on dir/lock), creating
// the directory (0700) and the file when missing, and writes the process id
// into the file. The lock is held for as long as the process lives (the
// descriptor is close-on-exec, so a child does not inherit it) or until
// unlock is called. A daemon takes it before anything else touches its data
// directory: a second start on the same directory fails at once, having
// changed nothing.
func LockDataDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	return Lock(filepath.Join(dir, LockFile), "data dir "+dir)
}

// Lock takes an exclusive lock on the file at path (flock, created 0600
// when missing) and writes the process id into it, as LockDataDir does for
// a data directory; what names the locked thing in the ErrInUse message.
func Lock(path, what string) (unlock func(), err error) {
	f, err := openLockFile(path)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			if pid := lockHolder(path); pid > 0 {
				return nil, inUse(fmt.Sprintf("%s is in use by pid %d", what, pid))
			}
			return nil, inUse(fmt.Sprintf("%s is in use by another process", what))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() { f.Close() }, nil
}

// lockHolder is the pid the lock's holder wrote, 0 when unknown.
func lockHolder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// inUse is an ErrInUse whose text is the one line the operator reads.
type inUse string

func (e inUse) Error() string        { return string(e) }
func (e inUse) Is(target error) bool { return target == ErrInUse }
