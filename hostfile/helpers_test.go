//go:build !windows

package hostfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
)

// newStore returns a Store with the journal directory and roots given,
// logging to t.
func newStore(t *testing.T, journal string, roots ...string) *Store {
	return &Store{Roots: roots, JournalDir: journal, Log: testenv.Logger(t)}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putBytes is a PutFile of fixed content whose Open calls are counted.
func putBytes(dest string, b []byte, opened *atomic.Int64) model.PutFile {
	return model.PutFile{Dest: dest, Size: int64(len(b)), SHA256: sha256Hex(b), Open: func() (io.ReadCloser, error) {
		if opened != nil {
			opened.Add(1)
		}
		return io.NopCloser(bytes.NewReader(b)), nil
	}}
}

// genReader yields n deterministic pseudo-random bytes made on the fly;
// after failAfter bytes (if positive) it fails instead. It has no WriteTo,
// so it is read through a buffer.
type genReader struct {
	rng       *rand.ChaCha8
	left      int64
	read      int64
	failAfter int64
	closed    atomic.Bool
}

var errDiskOnFire = errors.New("disk on fire")

func newGenReader(seed byte, n int64) *genReader {
	return &genReader{rng: rand.NewChaCha8([32]byte{seed}), left: n}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.failAfter > 0 && g.read >= g.failAfter {
		return 0, errDiskOnFire
	}
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.rng.Read(p)
	g.left -= int64(n)
	g.read += int64(n)
	return n, nil
}

func (g *genReader) Close() error {
	g.closed.Store(true)
	return nil
}

// putStep is one put of a sequence against the same Store, and what it
// must answer.
type putStep struct {
	name        string
	f           model.PutFile
	wantChanged bool
	wantErr     string // a part of the error; "" for success
	check       func(t *testing.T)
}

// runSteps runs steps in order; a failed step fails the test at once, as
// the later ones build on it.
func runSteps(t *testing.T, s *Store, steps []putStep) {
	t.Helper()
	for _, st := range steps {
		res, err := s.Put(t.Context(), st.f)
		switch {
		case st.wantErr == "" && err != nil:
			t.Fatalf("%s: Put = %v; want success", st.name, err)
		case st.wantErr != "" && (err == nil || !strings.Contains(err.Error(), st.wantErr)):
			t.Fatalf("%s: Put = %+v, %v; want an error with %q", st.name, res, err, st.wantErr)
		case err == nil && res.Changed != st.wantChanged:
			t.Fatalf("%s: Put changed = %v; want %v", st.name, res.Changed, st.wantChanged)
		}
		if st.check != nil {
			st.check(t)
		}
	}
}

// names lists a directory's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

// noTemp fails if dir holds a temp file or journal holds an entry.
func noTemp(t *testing.T, dir, journal string) {
	t.Helper()
	for _, n := range names(t, dir) {
		if strings.HasPrefix(n, model.PutTempPrefix) {
			t.Errorf("temp file %s left in %s", n, dir)
		}
	}
	if journal != "" {
		if n := names(t, journal); len(n) != 0 {
			t.Errorf("journal holds %v; want nothing", n)
		}
	}
}

// noTempIn fails if a temp file is anywhere below dir (symlinks are not
// followed).
func noTempIn(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), model.PutTempPrefix) {
			t.Errorf("temp file %s left", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readlink(t *testing.T, path string) string {
	t.Helper()
	l, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func wantMode(path string, want os.FileMode) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if m := modeOf(t, path); m != want {
			t.Errorf("%s mode = %v; want %v", path, m, want)
		}
	}
}

func wantLink(path, target string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if m := modeOf(t, path); m&os.ModeSymlink == 0 {
			t.Fatalf("%s mode = %v; want a symlink", path, m)
		}
		if got := readlink(t, path); got != target {
			t.Errorf("%s -> %q; want %q", path, got, target)
		}
	}
}

func wantContent(path, content string) func(t *testing.T) {
	return func(t *testing.T) {
		t.Helper()
		if got := readFile(t, path); got != content {
			t.Errorf("%s = %q; want %q", path, got, content)
		}
	}
}

// nobody returns the uid and gid of nobody:nogroup, or skips the test.
func nobody(t *testing.T) (uint32, uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "changing owners needs root")
	}
	u, uerr := user.Lookup("nobody")
	g, gerr := user.LookupGroup("nogroup")
	if uerr != nil || gerr != nil {
		testenv.Missing(t, "no nobody:nogroup here: %v, %v", uerr, gerr)
	}
	uid, uerr := strconv.Atoi(u.Uid)
	gid, gerr := strconv.Atoi(g.Gid)
	if uerr != nil || gerr != nil {
		testenv.Missing(t, "nobody:nogroup is %s:%s, not numeric", u.Uid, g.Gid)
	}
	return uint32(uid), uint32(gid)
}

func ownerOf(t *testing.T, path string) (uint32, uint32) {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid
}
