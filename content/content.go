// Package content is the master's content store: uploaded file content (and
// files fetched back from hosts) is kept once, by sha256, on the master's
// disk, so a push to thousands of hosts streams from one file instead of
// holding thousands of copies in memory.
//
// Layout: Dir/ab/abcdef… (the 64-hex sha256, sharded by its first two
// digits), files 0600, directories 0700; uploads are written to temporary
// files in Dir/tmp, checked, fsynced and renamed into place. A blob's last
// use is its file's mtime, so it survives restarts: committing, opening and
// holding a blob touch it; garbage collection removes blobs that are neither
// held nor used for Options.KeepUnused.
//
// One Store owns its directory: two processes must not open the same Dir
// (Open removes the other's temporary files). Blobs are trusted as written;
// Open does not re-hash them.
package content

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("content: blob not found")
	ErrTooLarge = errors.New("content: blob too large")
	ErrFull     = errors.New("content: store full")
	ErrMismatch = errors.New("content: size or sha256 mismatch")
	ErrBadSHA   = errors.New("content: invalid sha256 (want 64 lower-case hex digits)")
)

// errWriterDone is returned by a Writer used after Commit or Abort.
var errWriterDone = errors.New("content: writer already committed or aborted")

// Defaults for zero (or negative) Options fields.
const (
	DefaultMaxFileSize  = 1 << 30  // 1 GiB
	DefaultMaxTotalSize = 10 << 30 // 10 GiB
	DefaultKeepUnused   = 7 * 24 * time.Hour
)

// Options tune a Store. Zero values take the defaults above.
type Options struct {
	// MaxFileSize is one blob's limit; writing beyond it fails with ErrTooLarge.
	MaxFileSize int64
	// MaxTotalSize is the store's limit (blobs only, not temporary files).
	// A commit that would pass it first collects garbage, then fails with
	// ErrFull. Only blobs unused for an hour (or KeepUnused, when shorter)
	// and not held are collected for room: a fresh upload is likely about
	// to be pushed by a job that has not held it yet, and evicting it
	// would break that push, so a store full of recent content refuses the
	// new blob instead.
	MaxTotalSize int64
	// KeepUnused is how long a blob may go unused (not written, opened or
	// held) before GC removes it.
	KeepUnused time.Duration
	// Log receives warnings (ignored files, failed fsyncs). Nil discards.
	Log *slog.Logger
	// Keep, if set, lists blobs no collection may remove, however long
	// unused (content stored state documents name); it is asked at each
	// collection.
	Keep func() ([]string, error)
}

// Blob describes one stored content.
type Blob struct {
	SHA256 string // 64 lower-case hex digits
	Size   int64
}

// Store keeps content by sha256 under a directory. It is safe for use by
// many goroutines.
type Store struct {
	dir        string
	tmp        string
	maxFile    int64
	maxTotal   int64
	keepUnused time.Duration
	keep       func() ([]string, error)
	log        *slog.Logger
	gcMu       sync.Mutex     // serializes GC runs
	mu         sync.Mutex     // protects total, count and holds, and orders blob renames, removals and touches
	total      int64          // bytes in blobs
	count      int            // number of blobs
	holds      map[string]int // sha256 → number of unreleased holds
}

// Open opens the store in dir, creating dir and dir/tmp (0700) as needed,
// removing temporary files left by an earlier process and counting the
// blobs already present.
func Open(dir string, o Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open content store: empty directory")
	}
	s := &Store{
		dir:        dir,
		tmp:        filepath.Join(dir, "tmp"),
		maxFile:    o.MaxFileSize,
		maxTotal:   o.MaxTotalSize,
		keepUnused: o.KeepUnused,
		keep:       o.Keep,
		log:        o.Log,
		holds:      make(map[string]int),
	}
	if s.maxFile <= 0 {
		s.maxFile = DefaultMaxFileSize
	}
	if s.maxTotal <= 0 {
		s.maxTotal = DefaultMaxTotalSize
	}
	if s.keepUnused <= 0 {
		s.keepUnused = DefaultKeepUnused
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	// The store may hold configuration secrets: keep it private even if
	// the directory existed with looser permissions.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	if err := os.RemoveAll(s.tmp); err != nil {
		return nil, fmt.Errorf("open content store %s: remove leftover temporary files: %w", dir, err)
	}
	if err := os.Mkdir(s.tmp, 0o700); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	err := s.walk(func(sha string, fi fs.FileInfo) {
		s.total += fi.Size()
		s.count++
	})
	if err != nil {
		return nil, fmt.Errorf("open content store %s: count blobs: %w", dir, err)
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Usage returns the number of blobs and their total size in bytes.
func (s *Store) Usage() (blobs int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.total
}

// Stat returns the blob with the given sha256, or ErrNotFound. It does not
// count as a use.
func (s *Store) Stat(sha string) (Blob, error) {
	if !ValidSHA(sha) {
		return Blob{}, fmt.Errorf("stat blob %q: %w", sha, ErrBadSHA)
	}
	fi, err := os.Lstat(s.path(sha))
	if err != nil || !fi.Mode().IsRegular() {
		return Blob{}, fmt.Errorf("stat blob %s: %w", sha, notFound(err))
	}
	return Blob{SHA256: sha, Size: fi.Size()}, nil
}

// Open opens the blob with the given sha256 for reading (streaming it to
// hosts) and touches its last use. The caller closes the file. An open file
// stays readable even if GC removes the blob afterwards; a job that opens a
// blob more than once should Hold it.
func (s *Store) Open(sha string) (*os.File, Blob, error) {
	if !ValidSHA(sha) {
		return nil, Blob{}, fmt.Errorf("open blob %q: %w", sha, ErrBadSHA)
	}
	p := s.path(sha)
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.Open(p)
	if err != nil {
		return nil, Blob{}, fmt.Errorf("open blob %s: %w", sha, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, Blob{}, fmt.Errorf("open blob %s: %w", sha, notFound(err))
	}
	s.touchLocked(p)
	return f, Blob{SHA256: sha, Size: fi.Size()}, nil
}

// Hold marks the blob as in use by a running job: GC never removes a held
// blob. Holds are counted; each release (safe to call more than once)
// drops one. Holding and releasing both touch the blob's last use, so it is
// kept for KeepUnused after the job ends. It returns the blob as Stat
// does; ErrNotFound if it is absent.
func (s *Store) Hold(sha string) (b Blob, release func(), err error) {
	if !ValidSHA(sha) {
		return Blob{}, nil, fmt.Errorf("hold blob %q: %w", sha, ErrBadSHA)
	}
	p := s.path(sha)
	s.mu.Lock()
	defer s.mu.Unlock()
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() {
		return Blob{}, nil, fmt.Errorf("hold blob %s: %w", sha, notFound(err))
	}
	s.holds[sha]++
	s.touchLocked(p)
	var once sync.Once
	return Blob{SHA256: sha, Size: fi.Size()}, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.holds[sha]--; s.holds[sha] <= 0 {
				delete(s.holds, sha)
			}
			s.touchLocked(p)
		})
	}, nil
}

// Put stores everything read from r. With wantSHA set, content whose
// sha256 differs fails with ErrMismatch and is not stored.
func (s *Store) Put(r io.Reader, wantSHA string) (Blob, error) {
	if wantSHA != "" && !ValidSHA(wantSHA) {
		return Blob{}, fmt.Errorf("put blob %q: %w", wantSHA, ErrBadSHA)
	}
	w, err := s.Create()
	if err != nil {
		return Blob{}, err
	}
	defer w.Abort()
	if _, err := io.Copy(w, r); err != nil {
		return Blob{}, fmt.Errorf("put blob: %w", err)
	}
	return w.Commit(-1, wantSHA)
}

// Create starts a new upload into a temporary file. The caller writes the
// content, then calls Commit, and defers Abort to clean up on any failure.
func (s *Store) Create() (*Writer, error) {
	f, err := os.CreateTemp(s.tmp, "upload-*") // 0600
	if err != nil {
		return nil, fmt.Errorf("create upload: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

// Writer is one upload in progress: it counts and hashes what is written.
// It is not safe for concurrent use.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	err  error // sticky write error
	done bool  // committed or aborted: the temporary file is gone
}

// Write appends p to the upload. Writing past MaxFileSize fails with
// ErrTooLarge; after any write error the temporary file is removed and the
// upload can only be aborted.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, errWriterDone
	}
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(p)) > w.s.maxFile-w.n {
		w.fail(fmt.Errorf("write upload: more than %d bytes: %w", w.s.maxFile, ErrTooLarge))
		return 0, w.err
	}
	n, err := w.f.Write(p)
	w.n += int64(n)
	w.h.Write(p[:n])
	if err != nil {
		w.fail(fmt.Errorf("write upload: %w", err))
		return n, w.err
	}
	return n, nil
}

// fail records err and removes the temporary file early to free the disk.
func (w *Writer) fail(err error) {
	w.err = err
	w.cleanup()
}

// cleanup closes and removes the temporary file, once.
func (w *Writer) cleanup() {
	if w.f == nil {
		return
	}
	w.f.Close()
	os.Remove(w.f.Name())
	w.f = nil
}

// Commit checks the upload against wantSize (negative: any) and wantSHA
// ("": accept the computed sum), fsyncs it and moves it into the store. A
// mismatch fails with ErrMismatch and the upload is removed. If the blob is
// already stored the upload is dropped (content-addressed) and the existing
// blob's last use is touched. A commit that would pass MaxTotalSize runs GC
// once, then fails with ErrFull.
func (w *Writer) Commit(wantSize int64, wantSHA string) (Blob, error) {
	if w.done {
		return Blob{}, errWriterDone
	}
	defer w.Abort()
	if w.err != nil {
		return Blob{}, w.err
	}
	b := Blob{SHA256: hex.EncodeToString(w.h.Sum(nil)), Size: w.n}
	if wantSHA != "" && !ValidSHA(wantSHA) {
		return Blob{}, fmt.Errorf("commit blob %q: %w", wantSHA, ErrBadSHA)
	}
	if wantSize >= 0 && wantSize != b.Size {
		return Blob{}, fmt.Errorf("commit blob %s: size %d, want %d: %w", b.SHA256, b.Size, wantSize, ErrMismatch)
	}
	if wantSHA != "" && wantSHA != b.SHA256 {
		return Blob{}, fmt.Errorf("commit blob: sha256 %s, want %s: %w", b.SHA256, wantSHA, ErrMismatch)
	}
	if err := w.f.Sync(); err != nil {
		return Blob{}, fmt.Errorf("commit blob %s: sync: %w", b.SHA256, err)
	}
	tmp := w.f.Name()
	if err := w.f.Close(); err != nil {
		return Blob{}, fmt.Errorf("commit blob %s: close: %w", b.SHA256, err)
	}
	w.f = nil
	if err := w.s.place(tmp, b); err != nil {
		return Blob{}, fmt.Errorf("commit blob %s: %w", b.SHA256, err)
	}
	return b, nil
}

// Abort drops the upload and removes its temporary file. It is safe to call
// more than once and after Commit (then it does nothing).
func (w *Writer) Abort() {
	w.done = true
	w.cleanup()
}

// place renames the synced temporary file tmp into the store as blob b,
// unless b is already there; tmp is removed unless renamed. Existence check,
// rename and accounting happen under s.mu, so concurrent commits of the same
// content count it once.
func (s *Store) place(tmp string, b Blob) (err error) {
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	p := s.path(b.SHA256)
	for gcDone := false; ; gcDone = true {
		s.mu.Lock()
		var old int64 // size of a damaged blob being replaced
		fi, err := os.Lstat(p)
		switch {
		case err == nil && fi.Mode().IsRegular():
			// Stored already: the verified upload replaces it anyway, which
			// repairs a blob damaged on disk at no extra cost.
			if fi.Size() != b.Size {
				s.log.Warn("content: replacing blob of wrong size", "sha256", b.SHA256, "size", fi.Size(), "want", b.Size)
			}
			old = fi.Size()
		case err == nil:
			s.mu.Unlock()
			return fmt.Errorf("%s is not a regular file", p)
		case !errors.Is(err, fs.ErrNotExist):
			s.mu.Unlock()
			return err
		}
		if s.total-old+b.Size > s.maxTotal {
			s.mu.Unlock()
			if gcDone || b.Size > s.maxTotal {
				return fmt.Errorf("%d bytes over the %d-byte limit: %w", b.Size, s.maxTotal, ErrFull)
			}
			if _, _, err := s.gc(time.Now(), min(s.keepUnused, roomAge)); err != nil {
				s.log.Warn("content: gc for room", "err", err)
			}
			continue
		}
		err = s.renameLocked(tmp, p)
		if err == nil {
			renamed = true
			s.total += b.Size - old
			if fi == nil {
				s.count++
			}
			s.touchLocked(p)
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			s.log.Warn("content: sync directory after rename", "dir", filepath.Dir(p), "err", err)
		}
		return nil
	}
}

// renameLocked moves tmp to p, creating p's shard directory.
func (s *Store) renameLocked(tmp, p string) error {
	if err := os.Mkdir(filepath.Dir(p), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return os.Rename(tmp, p)
}

// touchLocked sets the blob file's mtime (its last use) to now. Failure
// only makes the blob look older, so it is logged, not returned.
func (s *Store) touchLocked(p string) {
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("content: touch blob", "path", p, "err", err)
	}
}

// path is the blob file of sha, which the caller has validated.
func (s *Store) path(sha string) string {
	return filepath.Join(s.dir, sha[:2], sha)
}

// Sum reads r to its end and returns the sha256 (lower-case hex) of what
// it read, and how many bytes.
func Sum(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// SumFile returns the sha256 (lower-case hex) and size of the file at path.
func SumFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	sum, n, err := Sum(f)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", path, err)
	}
	return sum, n, nil
}

// ValidSHA reports whether sha is 64 lower-case hex digits, the only form
// from which the store builds a path.
func ValidSHA(sha string) bool {
	return len(sha) == sha256.Size*2 && isLowerHex(sha)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// notFound maps a missing file (or a non-regular one, err nil) to
// ErrNotFound and keeps other errors.
func notFound(err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
