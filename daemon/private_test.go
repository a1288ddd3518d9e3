//go:build !windows

package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
)

func perm(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestPrivateDir(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "data")
	if err := os.Mkdir(dir, 0o755); err != nil { // as a package would make it
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"felix.db": 0o644, "felix.db-wal": 0o644, "master.key": 0o600, "pid": 0o640} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, name), mode) // past the umask
	}
	os.Mkdir(filepath.Join(dir, "content"), 0o755)
	fixed, err := PrivateDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fixed) != 4 || !strings.Contains(fixed[0], "was 0755") {
		t.Errorf("fixed = %q; want the dir and the three loose files", fixed)
	}
	if p := perm(t, dir); p != 0o700 {
		t.Errorf("dir is %#o, want 0700", p)
	}
	for _, name := range []string{"felix.db", "felix.db-wal", "master.key"} {
		if p := perm(t, filepath.Join(dir, name)); p != 0o600 {
			t.Errorf("%s is %#o, want 0600", name, p)
		}
	}
	if p := perm(t, filepath.Join(dir, "pid")); p != 0o600 {
		t.Errorf("pid is %#o, want 0600 (0640 less group)", p)
	}
	if fixed, err := PrivateDir(dir); err != nil || len(fixed) != 0 {
		t.Errorf("second PrivateDir = %q, %v; want nothing to fix", fixed, err)
	}

	nested := filepath.Join(root, "a", "b")
	if _, err := PrivateDir(nested); err != nil || perm(t, nested) != 0o700 {
		t.Errorf("new nested dir: %v", err)
	}
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o600)
	if _, err := PrivateDir(file); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("PrivateDir(file) = %v, want not a directory", err)
	}
	link := filepath.Join(root, "link")
	os.Symlink(dir, link)
	if _, err := PrivateDir(link); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("PrivateDir(symlink) = %v, want refused", err)
	}
}

func TestPrivateDirOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Missing(t, "making a directory of another user needs root")
	}
	dir := filepath.Join(t.TempDir(), "data")
	os.Mkdir(dir, 0o700)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := PrivateDir(dir); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("PrivateDir = %v, want refused: another user's", err)
	}
}

func TestPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "felix.db")
	if err := PrivateFile(path); err != nil || perm(t, path) != 0o600 {
		t.Fatalf("PrivateFile of a new file: %v", err)
	}
	os.WriteFile(path, []byte("data"), 0o600)
	os.Chmod(path, 0o644)
	if err := PrivateFile(path); err != nil || perm(t, path) != 0o600 {
		t.Errorf("PrivateFile of a 0644 file: %v, %#o", err, perm(t, path))
	}
	if b, _ := os.ReadFile(path); string(b) != "data" {
		t.Errorf("PrivateFile changed the content: %q", b)
	}
}
