package ssh_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/felix-ops/felix/exec"
)

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// putFile returns a PutFile of content whose Open calls are counted.
func putFile(dest string, content []byte, opens *int) exec.PutFile {
	return exec.PutFile{
		Dest:   dest,
		Size:   int64(len(content)),
		SHA256: sum256(content),
		Open: func() (io.ReadCloser, error) {
			if opens != nil {
				*opens++
			}
			return io.NopCloser(bytes.NewReader(content)), nil
		},
	}
}

// noTemp fails the test if a temp file is left in dir.
func noTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".felix-tmp-") {
			t.Errorf("temp file %s left in %s", e.Name(), dir)
		}
	}
}

func mustContent(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Errorf("%s = %q, %v; want %q", path, b, err, want)
	}
}

func TestPut(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.39")
	ctx := context.Background()
	dir := t.TempDir()
	dest := filepath.Join(dir, "conf")

	// A new file gets its content and mode.
	var opens int
	f := putFile(dest, []byte("one\n"), &opens)
	f.Mode = 0o640
	res, err := p.Put(ctx, s.Target(), f)
	if err != nil || !res.Changed || res.Backup != "" {
		t.Fatalf("Put new = %+v, %v; want changed", res, err)
	}
	mustContent(t, dest, "one\n")
	if st, err := os.Stat(dest); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, %v; want 0640", st.Mode(), err)
	}

	// The same again: unchanged, the content is not opened.
	opens = 0
	res, err = p.Put(ctx, s.Target(), f)
	if err != nil || res.Changed || opens != 0 {
		t.Errorf("Put same = %+v, %v, %d opens; want unchanged, no open", res, err, opens)
	}

	// The same content with another mode is a change.
	f.Mode = 0o600
	if res, err = p.Put(ctx, s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put new mode = %+v, %v; want changed", res, err)
	}
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", st.Mode())
	}

	// New content with a backup; mode 0 keeps the old file's, a numeric
	// owner (our own) is accepted.
	f = putFile(dest, []byte("two\n"), nil)
	f.Backup = true
	f.Owner = strconv.Itoa(os.Getuid()) + ":" + strconv.Itoa(os.Getgid())
	res, err = p.Put(ctx, s.Target(), f)
	if err != nil || !res.Changed || !strings.HasPrefix(res.Backup, dest+".felix-bak-") {
		t.Fatalf("Put backup = %+v, %v", res, err)
	}
	mustContent(t, dest, "two\n")
	mustContent(t, res.Backup, "one\n")
	if st, _ := os.Stat(dest); st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want the old 0600", st.Mode())
	}

	// A missing directory: an error without Mkdir, made with it.
	deep := filepath.Join(dir, "a", "b", "c")
	f = putFile(deep, []byte("deep"), nil)
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put into a missing directory without Mkdir succeeded")
	}
	f.Mkdir = true
	if res, err := p.Put(ctx, s.Target(), f); err != nil || !res.Changed {
		t.Errorf("Put with Mkdir = %+v, %v", res, err)
	}
	mustContent(t, deep, "deep")
	if st, _ := os.Stat(deep); st.Mode().Perm() != 0o644 {
		t.Errorf("new file mode = %v; want 0644", st.Mode())
	}

	// Bad destinations are refused before anything is written.
	for _, d := range []string{"rel/x", dir + "/../" + filepath.Base(dir) + "/x", dir + "//x", dir + "/x\x00y", dir + "/", "/"} {
		var opens int
		if _, err := p.Put(ctx, s.Target(), putFile(d, []byte("bad"), &opens)); err == nil || opens != 0 {
			t.Errorf("Put(%q) = %v, %d opens; want an error, no open", d, err, opens)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Errorf("%s was written", filepath.Join(dir, "x"))
	}
	f = putFile(filepath.Join(dir, "named"), []byte("x"), nil)
	f.Owner = "root; touch /tmp/pwned"
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a non-numeric owner succeeded")
	}
	noTemp(t, dir)
}

func TestPutRefused(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.40")
	ctx := context.Background()
	dir := t.TempDir()

	// A symlink destination is refused; its target is untouched.
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put(ctx, s.Target(), putFile(link, []byte("evil"), nil)); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Put over a symlink = %v; want refused", err)
	}
	mustContent(t, target, "target\n")
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v, %v", st, err)
	}
	// A directory is not a file.
	if _, err := p.Put(ctx, s.Target(), putFile(filepath.Join(dir), []byte("x"), nil)); err == nil {
		t.Errorf("Put over a directory succeeded")
	}

	dest := filepath.Join(dir, "file")
	if err := os.WriteFile(dest, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A lying sha256: an error, the old file is intact.
	f := putFile(dest, []byte("new\n"), nil)
	f.SHA256 = sum256([]byte("other"))
	if _, err := p.Put(ctx, s.Target(), f); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("Put with a lying sha256 = %v; want a sha256 error", err)
	}
	mustContent(t, dest, "old\n")
	// A wrong size.
	f = putFile(dest, []byte("new\n"), nil)
	f.Size = 2
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a short size succeeded")
	}
	mustContent(t, dest, "old\n")
	// A failing reader.
	f = putFile(dest, []byte("new content\n"), nil)
	f.Open = func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(strings.NewReader("new"), brokenReader{})), nil
	}
	if _, err := p.Put(ctx, s.Target(), f); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("Put with a failing reader = %v; want its error", err)
	}
	mustContent(t, dest, "old\n")
	// A failing Open.
	f.Open = func() (io.ReadCloser, error) { return nil, errors.New("cannot open") }
	if _, err := p.Put(ctx, s.Target(), f); err == nil {
		t.Errorf("Put with a failing Open succeeded")
	}
	mustContent(t, dest, "old\n")
	noTemp(t, dir)
}

type brokenReader struct{}

func (brokenReader) Read([]byte) (int, error) { return 0, errors.New("broken reader") }

func TestGet(t *testing.T) {
	t.Parallel()
	s, p := server(t, "127.0.0.41")
	ctx := context.Background()
	dir := t.TempDir()

	data := make([]byte, 3<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "big")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, sum, err := p.Get(ctx, s.Target(), path, &buf)
	if err != nil || n != int64(len(data)) || sum != sum256(data) || !bytes.Equal(buf.Bytes(), data) {
		t.Errorf("Get = %d, %s, %v (%d bytes); want %d, %s", n, sum, err, buf.Len(), len(data), sum256(data))
	}

	// Put skips the transfer of the same big file (hashed remotely).
	var opens int
	if res, err := p.Put(ctx, s.Target(), putFile(path, data, &opens)); err != nil || res.Changed || opens != 0 {
		t.Errorf("Put same big file = %+v, %v, %d opens", res, err, opens)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{link, dir, filepath.Join(dir, "missing"), "rel", dir + "/../x"} {
		buf.Reset()
		if _, _, err := p.Get(ctx, s.Target(), bad, &buf); err == nil || buf.Len() != 0 {
			t.Errorf("Get(%q) = %v, %d bytes; want an error, nothing", bad, err, buf.Len())
		}
	}
}
