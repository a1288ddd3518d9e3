package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "minion.toml")
	c, exists, err := ReadMinion(path)
	if err != nil || exists {
		t.Fatalf("ReadMinion(missing) = exists %v, %v; want false, nil", exists, err)
	}
	if c.Listen != ":4510" {
		t.Errorf("ReadMinion(missing).Listen = %q; want the default :4510", c.Listen)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMinion created %s (stat: %v)", filepath.Dir(path), err)
	}
}

// TestWriteMinionFirstRun: the first-run file carries the values given and
// loads back to them; a second write refuses to replace it.
func TestWriteMinionFirstRun(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "minion.toml")
	c := DefaultMinion()
	c.Master, c.DataDir, c.Listen = "https://m.example:8443", "/srv/felix/minion", "127.0.0.1:4600"
	if err := WriteMinionFirstRun(path, c); err != nil {
		t.Fatal(err)
	}
	got, exists, err := ReadMinion(path)
	if err != nil || !exists || got.Master != c.Master || got.DataDir != c.DataDir || got.Listen != c.Listen {
		t.Errorf("read back = %+v, exists %v, %v; want %+v", got, exists, err, c)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("first-run file mode: %v %v; want 0600", fi.Mode(), err)
	}
	if err := WriteMinionFirstRun(path, c); err == nil {
		t.Errorf("a second WriteMinionFirstRun replaced the file")
	}
}

// TestCheckMinion: config check names the file and the line of the fault.
func TestCheckMinion(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // in the error; "" means ok
	}{
		{"ok", "master = \"https://m:8443\"\nlisten = \":4510\"\n", ""},
		{"empty file is the defaults", "", ""},
		{"toml syntax", "master = \"https://m:8443\"\nlisten = :4510\n", "line 2:"},
		{"unterminated string", "\n\nmaster = \"https://m:8443\n", "line 3:"},
		{"unknown key", "master = \"https://m:8443\"\n\nlistne = \":1\"\n", "line 3: unknown keys: listne"},
		{"wrong type", "log_level = \"info\"\nfile_roots = \"/etc\"\n", `line 2 (last key "file_roots")`},
		{"bad value", "master = \"https://m:8443\"\nlog_level = \"info\"\nlisten = \"nope\"\n", "line 3: listen"},
		{"bad log level", "log_level = \"loud\"\n", "line 1: log_level"},
		{"bad log format", "log_level = \"info\"\nlog_format = \"xml\"\n", `line 2: log_format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "minion.toml")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			err := CheckMinion(path)
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckMinion = %v; want ok", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "config "+path+": ") ||
				strings.Contains(err.Error(), "\n") {
				t.Errorf("CheckMinion = %v; want one line naming %s and %q", err, path, tt.want)
			}
		})
	}
	if err := CheckMinion(filepath.Join(t.TempDir(), "none.toml")); err == nil {
		t.Errorf("CheckMinion(missing file) = nil; want an error")
	}
}

func TestKeyLine(t *testing.T) {
	data := []byte("# comment\nlisten = \":1\"\n\n[exec]\n# max_parallel = 3\nmax_parallel = 5\n[health]\ninterval = \"1s\"\n")
	tests := []struct {
		key  string
		want int
	}{
		{"listen", 2}, {"exec", 4}, {"exec.max_parallel", 6}, {"health.interval", 8}, {"interval", 0}, {"nope", 0},
	}
	for _, tt := range tests {
		if got := KeyLine(data, tt.key); got != tt.want {
			t.Errorf("KeyLine(%q) = %d; want %d", tt.key, got, tt.want)
		}
	}
}
