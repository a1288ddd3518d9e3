package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type testConfig struct {
	Listen  string   `toml:"listen"`
	Timeout Duration `toml:"timeout"`
	Log     struct {
		Level string `toml:"level"`
	} `toml:"log"`
}

const testTemplate = `# felix test configuration
# Where to listen.
listen = "0.0.0.0:4505"
# How long to wait.
timeout = "30s"

[log]
level = "info"
`

// writeFile writes content to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadWritesTemplate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "felix") // parents do not exist yet
	path := filepath.Join(dir, "master.toml")

	var c testConfig
	created, err := Load(path, testTemplate, &c)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !created {
		t.Errorf("created = false; want true for a missing file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %v; want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %v; want 0700", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != testTemplate {
		t.Errorf("written file = %q, %v; want the template", data, err)
	}
	if c.Listen != "0.0.0.0:4505" || c.Timeout.Duration != 30*time.Second || c.Log.Level != "info" {
		t.Errorf("decoded %+v; want the template's values", c)
	}

	// The second load reads the (edited) file and does not rewrite it.
	if err := os.WriteFile(path, []byte(`listen = "127.0.0.1:1"`), 0o600); err != nil {
		t.Fatal(err)
	}
	var c2 testConfig
	created, err = Load(path, testTemplate, &c2)
	if err != nil || created {
		t.Fatalf("second Load = %v, %v; want false, nil", created, err)
	}
	if c2.Listen != "127.0.0.1:1" {
		t.Errorf("Listen = %q; want the edited file's 127.0.0.1:1", c2.Listen)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string // "" means the file is missing
		template string
		wantIn   []string // substrings of the error
	}{
		{name: "unknown top-level key", file: "listen = \"x\"\nlisten_adress = \"y\"\n", wantIn: []string{"listen_adress"}},
		{name: "unknown nested key", file: "[log]\nlevel = \"info\"\nformat = \"json\"\n", wantIn: []string{"log.format"}},
		{name: "unknown table", file: "[metrics]\nport = 1\n", wantIn: []string{"metrics"}},
		{name: "bad duration", file: "timeout = \"soon\"\n", wantIn: []string{"soon"}},
		{name: "duration without unit", file: "timeout = \"30\"\n", wantIn: []string{"30"}},
		{name: "wrong type", file: "listen = 3\n", wantIn: []string{"listen"}},
		{name: "bad syntax", file: "listen = \n", wantIn: []string{"config"}},
		{name: "bad template", template: "nope = 1\n", wantIn: []string{"nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "c.toml")
			if tt.file != "" {
				writeFile(t, dir, "c.toml", tt.file)
			}
			tmpl := tt.template
			if tmpl == "" {
				tmpl = testTemplate
			}
			var c testConfig
			_, err := Load(path, tmpl, &c)
			if err == nil {
				t.Fatalf("Load = nil error; want one naming %q", tt.wantIn)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Load error = %q; want it to contain %q", err, s)
				}
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	// A directory where the file should be is an error, not a new template.
	dir := t.TempDir()
	var c testConfig
	if _, err := Load(dir, testTemplate, &c); err == nil {
		t.Errorf("Load(a directory) = nil error; want an error")
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "1h2m3s", want: time.Hour + 2*time.Minute + 3*time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "0", want: 0},
		{in: "", wantErr: true},
		{in: "30", wantErr: true},
		{in: "thirty seconds", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var d Duration
			err := d.UnmarshalText([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Errorf("UnmarshalText(%q) = nil, %v; want an error", tt.in, d.Duration)
				}
				return
			}
			if err != nil || d.Duration != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, %v; want %v, nil", tt.in, d.Duration, err, tt.want)
			}
			// Round trip.
			b, err := d.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back != d {
				t.Errorf("round trip of %v through %q = %v, %v", d.Duration, b, back.Duration, err)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	const env = "FELIX_TEST_LISTEN"
	tests := []struct {
		name string
		env  *string // nil: unset
		args []string
		want string
	}{
		{name: "file only", want: "file"},
		{name: "env beats file", env: ptr("env"), want: "env"},
		{name: "set but empty env beats file", env: ptr(""), want: ""},
		{name: "flag beats env", env: ptr("env"), args: []string{"--listen=flag"}, want: "flag"},
		{name: "flag beats file", args: []string{"--listen", "flag"}, want: "flag"},
		{name: "flag given its default still wins", env: ptr("env"), args: []string{"--listen=default"}, want: "default"},
		{name: "other flag given", env: ptr("env"), args: []string{"--other=x"}, want: "env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(env, "") // restores the variable at cleanup
			if tt.env == nil {
				os.Unsetenv(env)
			} else {
				t.Setenv(env, *tt.env)
			}
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.String("listen", "default", "")
			fs.String("other", "", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := "file"
			Override(&got, fs, "listen", env)
			if got != tt.want {
				t.Errorf("value = %q; want %q", got, tt.want)
			}
		})
	}

	t.Run("nil flag set", func(t *testing.T) {
		t.Setenv(env, "env")
		got := "file"
		Override(&got, nil, "listen", env)
		if got != "env" {
			t.Errorf("value = %q; want env", got)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestLogger(t *testing.T) {
	for _, level := range []string{"debug", "info", "warn", "error", "INFO"} {
		if _, err := Logger(level); err != nil {
			t.Errorf("Logger(%q) = %v; want no error", level, err)
		}
	}
	for _, level := range []string{"", "loud", "verbose"} {
		if _, err := Logger(level); err == nil {
			t.Errorf("Logger(%q) = nil error; want an error", level)
		}
	}
}

func TestLoadKeepsTemplateDefaults(t *testing.T) {
	type cfg struct {
		A string `toml:"a"`
		S struct {
			N int  `toml:"n"`
			B bool `toml:"b"`
		} `toml:"s"`
	}
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("[s]\nn = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c cfg
	if _, err := Load(path, "a = \"dflt\"\n[s]\nn = 1\nb = true\n", &c); err != nil {
		t.Fatal(err)
	}
	if c.A != "dflt" || c.S.N != 7 || !c.S.B {
		t.Errorf("Load = %+v; want a=dflt (default), n=7 (file), b=true (default)", c)
	}
}
