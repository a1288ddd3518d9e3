package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// newStore opens a store in a fresh temporary directory, logging to t.
func newStore(t *testing.T, o Options) *Store {
	t.Helper()
	o.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	s, err := Open(t.TempDir(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// checkTmpEmpty fails if an upload left a temporary file behind.
func checkTmpEmpty(t *testing.T, s *Store) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in tmp: %s", e.Name())
	}
}

// checkUsage compares Usage with want and with the files on disk.
func checkUsage(t *testing.T, s *Store, wantBlobs int, wantBytes int64) {
	t.Helper()
	if n, b := s.Usage(); n != wantBlobs || b != wantBytes {
		t.Errorf("Usage() = %d, %d; want %d, %d", n, b, wantBlobs, wantBytes)
	}
	var n int
	var b int64
	if err := s.walk(func(_ string, fi fs.FileInfo) { n++; b += fi.Size() }); err != nil {
		t.Fatal(err)
	}
	if n != wantBlobs || b != wantBytes {
		t.Errorf("on disk: %d blobs, %d bytes; want %d, %d", n, b, wantBlobs, wantBytes)
	}
}

// age sets a blob's last use to d ago.
func age(t *testing.T, s *Store, sha string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	if err := os.Chtimes(s.path(sha), old, old); err != nil {
		t.Fatal(err)
	}
}

func TestPutStatOpenRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name    string
		content []byte
		wantSHA bool // pass the sha256 to Put
	}{
		{"empty", nil, false},
		{"small", []byte("hello, minions\n"), false},
		{"small with sha", []byte("hello, minions\n"), true},
		{"1MiB with sha", big, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			want := Blob{SHA256: sum(tt.content), Size: int64(len(tt.content))}
			sha := ""
			if tt.wantSHA {
				sha = want.SHA256
			}
			b, err := s.Put(bytes.NewReader(tt.content), sha)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if b != want {
				t.Errorf("Put = %+v; want %+v", b, want)
			}
			if b, err := s.Stat(want.SHA256); err != nil || b != want {
				t.Errorf("Stat = %+v, %v; want %+v", b, err, want)
			}
			f, b, err := s.Open(want.SHA256)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer f.Close()
			if b != want {
				t.Errorf("Open blob = %+v; want %+v", b, want)
			}
			got, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if sum(got) != want.SHA256 {
				t.Errorf("read back sha256 %s; want %s", sum(got), want.SHA256)
			}
			checkUsage(t, s, 1, want.Size)
			checkTmpEmpty(t, s)
		})
	}
}

func TestPermissions(t *testing.T) {
	s := newStore(t, Options{})
	b, err := s.Put(strings.NewReader("secret"), "")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{
		s.Dir():                        fs.ModeDir | 0o700,
		filepath.Join(s.Dir(), "tmp"):  fs.ModeDir | 0o700,
		filepath.Dir(s.path(b.SHA256)): fs.ModeDir | 0o700,
		s.path(b.SHA256):               0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("mode of %s = %v; want %v", path, fi.Mode(), want)
		}
	}
}

func TestStatMissing(t *testing.T) {
	s := newStore(t, Options{})
	sha := sum([]byte("absent"))
	if _, err := s.Stat(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat = %v; want ErrNotFound", err)
	}
	if _, _, err := s.Open(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open = %v; want ErrNotFound", err)
	}
	if _, _, err := s.Hold(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("Hold = %v; want ErrNotFound", err)
	}
}

func TestPutSameContentStoredOnce(t *testing.T) {
	s := newStore(t, Options{})
	content := []byte("same bytes")
	for i := range 3 {
		if _, err := s.Put(bytes.NewReader(content), ""); err != nil {
			t.Fatalf("Put #%d: %v", i, err)
		}
	}
	checkUsage(t, s, 1, int64(len(content)))
	checkTmpEmpty(t, s)
}

func TestCommitMismatch(t *testing.T) {
	content := []byte("the real content")
	tests := []struct {
		name     string
		wantSize int64
		wantSHA  string
	}{
		{"wrong sha", -1, sum([]byte("other content"))},
		{"wrong size", int64(len(content)) + 1, ""},
		{"right sha wrong size", 3, sum(content)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{})
			w, err := s.Create()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Abort()
			if _, err := w.Write(content); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Commit(tt.wantSize, tt.wantSHA); !errors.Is(err, ErrMismatch) {
				t.Errorf("Commit = %v; want ErrMismatch", err)
			}
			checkTmpEmpty(t, s)
			checkUsage(t, s, 0, 0)
		})
	}
	t.Run("Put", func(t *testing.T) {
		s := newStore(t, Options{})
		if _, err := s.Put(bytes.NewReader(content), sum([]byte("x"))); !errors.Is(err, ErrMismatch) {
			t.Errorf("Put = %v; want ErrMismatch", err)
		}
		checkTmpEmpty(t, s)
		checkUsage(t, s, 0, 0)
	})
}

func TestTooLarge(t *testing.T) {
	const limit = 10
	tests := []struct {
		name    string
		size    int
		wantErr error
	}{
		{"at limit", limit, nil},
		{"one over", limit + 1, ErrTooLarge},
		{"far over", 10 * limit, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Options{MaxFileSize: limit})
			content := bytes.Repeat([]byte("x"), tt.size)
			// One byte per read: the limit is crossed mid-stream.
			_, err := s.Put(iotest.OneByteReader(bytes.NewReader(content)), "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put = %v; want %v", err, tt.wantErr)
			}
			checkTmpEmpty(t, s)
			if tt.wantErr != nil {
				checkUsage(t, s, 0, 0)
			} else {
				checkUsage(t, s, 1, limit)
			}
		})
	}
	t.Run("writer", func(t *testing.T) {
		s := newStore(t, Options{MaxFileSize: limit})
		w, err := s.Create()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(make([]byte, limit-1)); err != nil {
			t.Fatal(err)
		}
		if n, err := w.Write(make([]byte, 2)); n != 0 || !errors.Is(err, ErrTooLarge) {
			t.Errorf("Write past limit = %d, %v; want 0, ErrTooLarge", n, err)
		}
		if _, err := w.Write([]byte{1}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Write after failure = %v; want ErrTooLarge (sticky)", err)
		}
		if _, err := w.Commit(-1, ""); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Commit after failure = %v; want ErrTooLarge", err)
		}
		w.Abort()
		checkTmpEmpty(t, s)
		checkUsage(t, s, 0, 0)
	})
}

func TestFullStoreCollectsGarbage(t *testing.T) {
	const keep = time.Hour
	s := newStore(t, Options{MaxTotalSize: 100, KeepUnused: keep})
	blob := func(c byte) []byte { return bytes.Repeat([]byte{c}, 40) }
	put := func(c byte) (Blob, error) { return s.Put(bytes.NewReader(blob(c)), "") }

	a, err := put('a')
	if err != nil {
		t.Fatal(err)
	}
	b, err := put('b')
	if err != nil {
		t.Fatal(err)
	}
	age(t, s, a.SHA256, 2*keep)
	age(t, s, b.SHA256, 2*keep)
	_, release, err := s.Hold(a.SHA256) // touches a, but a held blob is kept regardless
	if err != nil {
		t.Fatal(err)
	}
	age(t, s, a.SHA256, 2*keep)

	// 80 + 40 > 100: GC removes old, unheld b; held a survives.
	c, err := put('c')
	if err != nil {
		t.Fatalf("Put c into a full store: %v", err)
	}
	if _, err := s.Stat(b.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(b) = %v; want ErrNotFound (collected)", err)
	}
	if _, err := s.Stat(a.SHA256); err != nil {
		t.Errorf("Stat(a) = %v; want held blob kept", err)
	}
	checkUsage(t, s, 2, 80)

	// Nothing is collectable now (a held, c recent): ErrFull, nothing left.
	if _, err := put('d'); !errors.Is(err, ErrFull) {
		t.Errorf("Put d = %v; want ErrFull", err)
	}
	checkTmpEmpty(t, s)
	checkUsage(t, s, 2, 80)

	// Content already stored still commits: it needs no room.
	if _, err := s.Put(bytes.NewReader(blob('c')), c.SHA256); err != nil {
		t.Errorf("Put of stored content into a full store: %v", err)
	}

	// Released and unused for long enough, a goes.
	release()
	release() // a second release is a no-op
	age(t, s, a.SHA256, 2*keep)
	if _, err := put('d'); err != nil {
		t.Errorf("Put d after release: %v", err)
	}
	checkUsage(t, s, 2, 80)

	// A blob larger than the whole store never fits.
	if _, err := s.Put(bytes.NewReader(make([]byte, 101)), ""); !errors.Is(err, ErrFull) {
		t.Errorf("Put of 101 bytes = %v; want ErrFull", err)
	}
	checkTmpEmpty(t, s)
}

func TestGCByAge(t *testing.T) {
	const keep = time.Hour
	s := newStore(t, Options{KeepUnused: keep})
	put := func(c string) Blob {
		t.Helper()
		b, err := s.Put(strings.NewReader(c), "")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old, recent, held, opened := put("old"), put("recent"), put("held"), put("opened")
	age(t, s, old.SHA256, 2*keep)
	age(t, s, recent.SHA256, keep/2)
	_, release, err := s.Hold(held.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	_, release2, err := s.Hold(held.SHA256) // refcounted
	if err != nil {
		t.Fatal(err)
	}
	age(t, s, held.SHA256, 2*keep)
	age(t, s, opened.SHA256, 2*keep)
	f, _, err := s.Open(opened.SHA256) // touches
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	removed, freed, err := s.GC(time.Now())
	if err != nil || removed != 1 || freed != old.Size {
		t.Errorf("GC = %d, %d, %v; want 1, %d, nil", removed, freed, err, old.Size)
	}
	for _, b := range []Blob{recent, held, opened} {
		if _, err := s.Stat(b.SHA256); err != nil {
			t.Errorf("Stat(%s) after GC = %v; want kept", b.SHA256, err)
		}
	}

	// One of two holds released: still held.
	release()
	age(t, s, held.SHA256, 2*keep)
	if removed, _, _ := s.GC(time.Now()); removed != 0 {
		t.Errorf("GC with one hold left removed %d; want 0", removed)
	}
	// Releasing the last hold touches the blob: kept for KeepUnused more.
	release2()
	if removed, _, _ := s.GC(time.Now()); removed != 0 {
		t.Errorf("GC right after release removed %d; want 0", removed)
	}
	n, _ := s.Usage()
	removed, _, err = s.GC(time.Now().Add(2 * keep))
	if err != nil || removed != n {
		t.Errorf("GC later = %d, %v; want %d (all)", removed, err, n)
	}
	checkUsage(t, s, 0, 0)
}

func TestBadSHA(t *testing.T) {
	valid := sum([]byte("x"))
	tests := []struct{ name, sha string }{
		{"empty", ""},
		{"traversal", "../x"},
		{"traversal padded", "../../../../etc/passwd" + valid[22:]},
		{"uppercase", strings.ToUpper(valid)},
		{"short", valid[:63]},
		{"long", valid + "0"},
		{"non-hex", "g" + valid[1:]},
		{"slash", valid[:2] + "/" + valid[3:]},
		{"tmp", "tmp"},
	}
	s := newStore(t, Options{})
	if _, err := s.Put(strings.NewReader("x"), valid); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ValidSHA(tt.sha) {
				t.Errorf("ValidSHA(%q) = true; want false", tt.sha)
			}
			if _, err := s.Stat(tt.sha); !errors.Is(err, ErrBadSHA) {
				t.Errorf("Stat(%q) = %v; want ErrBadSHA", tt.sha, err)
			}
			if _, _, err := s.Open(tt.sha); !errors.Is(err, ErrBadSHA) {
				t.Errorf("Open(%q) = %v; want ErrBadSHA", tt.sha, err)
			}
			if _, _, err := s.Hold(tt.sha); !errors.Is(err, ErrBadSHA) {
				t.Errorf("Hold(%q) = %v; want ErrBadSHA", tt.sha, err)
			}
			if tt.sha == "" {
				return // "" means "accept the computed sum" to Put and Commit
			}
			if _, err := s.Put(strings.NewReader("x"), tt.sha); !errors.Is(err, ErrBadSHA) {
				t.Errorf("Put(%q) = %v; want ErrBadSHA", tt.sha, err)
			}
			w, err := s.Create()
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("x"))
			if _, err := w.Commit(-1, tt.sha); !errors.Is(err, ErrBadSHA) {
				t.Errorf("Commit(%q) = %v; want ErrBadSHA", tt.sha, err)
			}
			checkTmpEmpty(t, s)
		})
	}
	checkUsage(t, s, 1, 1)
}

func TestOpenRestart(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"one", "two", "three"} {
		if _, err := s.Put(strings.NewReader(c), ""); err != nil {
			t.Fatal(err)
		}
	}
	// A crash mid-upload leaves temporary files behind.
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half an upload"))
	if err := os.WriteFile(filepath.Join(dir, "tmp", "upload-stale"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	// Foreign files are ignored, neither counted nor removed.
	stray := filepath.Join(dir, "README")
	if err := os.WriteFile(stray, []byte("not a blob"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(dir, Options{Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	checkTmpEmpty(t, s2)
	checkUsage(t, s2, 3, int64(len("one")+len("two")+len("three")))
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("stray file: %v; want left alone", err)
	}
	w.Abort()
}

func TestConcurrentPut(t *testing.T) {
	s := newStore(t, Options{})
	const (
		workers  = 8
		perSame  = 20
		distinct = 20
	)
	same := bytes.Repeat([]byte("shared content "), 1000)
	var wg sync.WaitGroup
	errs := make(chan error, workers*(perSame+distinct))
	for w := range workers {
		wg.Go(func() {
			for range perSame {
				b, err := s.Put(bytes.NewReader(same), "")
				if err == nil && b.SHA256 != sum(same) {
					err = fmt.Errorf("sha256 %s; want %s", b.SHA256, sum(same))
				}
				if err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			for i := range distinct {
				// Workers 2k and 2k+1 put the same contents.
				c := fmt.Sprintf("content %d/%d", w/2, i)
				if _, err := s.Put(strings.NewReader(c), sum([]byte(c))); err != nil {
					errs <- err
				}
				_, rel, err := s.Hold(sum([]byte(c)))
				if err != nil {
					errs <- err
					continue
				}
				rel()
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, _, err := s.GC(time.Now()); err != nil {
				errs <- err
			}
			s.Usage()
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var wantBytes int64 = int64(len(same))
	for w := range workers / 2 {
		for i := range distinct {
			wantBytes += int64(len(fmt.Sprintf("content %d/%d", w, i)))
		}
	}
	checkUsage(t, s, 1+workers/2*distinct, wantBytes)
	checkTmpEmpty(t, s)
}

func TestAbortAfterCommit(t *testing.T) {
	s := newStore(t, Options{})
	w, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "kept"); err != nil {
		t.Fatal(err)
	}
	b, err := w.Commit(4, sum([]byte("kept")))
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if _, err := s.Stat(b.SHA256); err != nil {
		t.Errorf("Stat after Abort = %v; want blob kept", err)
	}
	if _, err := w.Commit(-1, ""); err == nil {
		t.Error("second Commit succeeded; want an error")
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("Write after Commit succeeded; want an error")
	}
	checkUsage(t, s, 1, 4)
	checkTmpEmpty(t, s)

	// Abort before Commit removes the upload.
	w, err = s.Create()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "dropped")
	w.Abort()
	if _, err := w.Commit(-1, ""); err == nil {
		t.Error("Commit after Abort succeeded; want an error")
	}
	checkTmpEmpty(t, s)
	checkUsage(t, s, 1, 4)
}

func TestVerifyAndRepair(t *testing.T) {
	s := newStore(t, Options{})
	data := []byte("the content\n")
	b, err := s.Put(bytes.NewReader(data), "")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Verify(b.SHA256); !ok || err != nil {
		t.Fatalf("Verify(sound) = %v, %v", ok, err)
	}
	// Damaged on disk (same size): a verified re-upload replaces it.
	if err := os.WriteFile(s.path(b.SHA256), []byte("THE CONTENT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bytes.NewReader(data), b.SHA256); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Verify(b.SHA256); !ok || err != nil {
		t.Errorf("Verify after the re-upload = %v, %v; want repaired", ok, err)
	}
	checkUsage(t, s, 1, int64(len(data)))
	// Damaged again: Verify removes it.
	if err := os.WriteFile(s.path(b.SHA256), []byte("THE CONTENT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Verify(b.SHA256); ok || err != nil {
		t.Errorf("Verify(damaged) = %v, %v; want false", ok, err)
	}
	if _, err := s.Stat(b.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after a failed Verify = %v; want ErrNotFound", err)
	}
	checkUsage(t, s, 0, 0)
	if _, err := s.Verify(b.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Verify(missing) = %v; want ErrNotFound", err)
	}
}

func TestRoomIsMadeFromContentUnusedForAnHour(t *testing.T) {
	// KeepUnused is a week, but a write that needs room may collect
	// content unused for an hour.
	s := newStore(t, Options{MaxTotalSize: 100, KeepUnused: 7 * 24 * time.Hour})
	a, err := s.Put(bytes.NewReader(bytes.Repeat([]byte{'a'}, 60)), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(bytes.NewReader(bytes.Repeat([]byte{'b'}, 60)), ""); !errors.Is(err, ErrFull) {
		t.Fatalf("Put with a fresh blob in the way = %v; want ErrFull", err)
	}
	age(t, s, a.SHA256, 2*time.Hour)
	if _, err := s.Put(bytes.NewReader(bytes.Repeat([]byte{'b'}, 60)), ""); err != nil {
		t.Fatalf("Put with an hour-old blob in the way = %v", err)
	}
	if _, err := s.Stat(a.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat(a) = %v; want collected", err)
	}
	checkUsage(t, s, 1, 60)
}

// TestGCKeeps: blobs Keep names stay however old; when Keep fails, nothing
// is removed.
func TestGCKeeps(t *testing.T) {
	const keep = time.Hour
	var kept []string
	var keepErr error
	s := newStore(t, Options{KeepUnused: keep, Keep: func() ([]string, error) { return kept, keepErr }})
	a, err := s.Put(strings.NewReader("named by a state"), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Put(strings.NewReader("unused"), "")
	if err != nil {
		t.Fatal(err)
	}
	age(t, s, a.SHA256, 2*keep)
	age(t, s, b.SHA256, 2*keep)
	keepErr = errors.New("database locked")
	if removed, _, err := s.GC(time.Now()); err == nil || removed != 0 {
		t.Errorf("GC when Keep fails = %d, %v; want nothing removed and the error", removed, err)
	}
	kept, keepErr = []string{a.SHA256}, nil
	if removed, _, err := s.GC(time.Now()); err != nil || removed != 1 {
		t.Errorf("GC = %d, %v; want the unused blob alone removed", removed, err)
	}
	if _, err := s.Stat(a.SHA256); err != nil {
		t.Errorf("the kept blob: %v", err)
	}
}
