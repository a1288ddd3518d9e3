package hostfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/felix-ops/felix/model"
)

// journal records tmp in a new file of JournalDir and returns what removes
// that record.
func (s *Store) journal(tmp string) (func(), error) {
	if s.JournalDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(s.JournalDir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	name := filepath.Join(s.JournalDir, randomHex())
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	_, err = f.WriteString(tmp + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return nil, fmt.Errorf("journal: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := os.Remove(name); err != nil {
				s.log().Error("remove journal entry", "path", name, "err", err)
			}
		})
	}, nil
}

// Sweep removes the temp files and symlinks of puts a crash interrupted,
// as listed in JournalDir, and their journal entries. Only a regular file
// or symlink named like a temp file is ever removed (a symlink itself,
// never what it points to). Call it before the first Put.
func (s *Store) Sweep() error {
	if s.JournalDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.JournalDir, 0o700); err != nil {
		return fmt.Errorf("sweep temp files: %w", err)
	}
	ents, err := os.ReadDir(s.JournalDir)
	if err != nil {
		return fmt.Errorf("sweep temp files: %w", err)
	}
	var errs []error
	for _, e := range ents {
		entry := filepath.Join(s.JournalDir, e.Name())
		b, err := readSmall(entry, 4096)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep temp files: %w", err))
			continue
		}
		tmp := strings.TrimSpace(string(b))
		if checkLocalPath(tmp) == nil && strings.HasPrefix(filepath.Base(tmp), model.PutTempPrefix) {
			if err := s.sweepTemp(tmp); err != nil {
				errs = append(errs, err)
				continue
			}
		} else {
			s.log().Warn("journal entry names no temp file; ignored", "entry", entry, "content", tmp)
		}
		if err := os.Remove(entry); err != nil {
			errs = append(errs, fmt.Errorf("sweep temp files: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
