package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestMinionValidate(t *testing.T) {
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatalf("no host name: %v", err) // every machine felix runs on has one
	}
	valid := func() Minion {
		return Minion{Master: "https://master.example.net:8443", ID: "web1", Listen: ":4510", DataDir: t.TempDir()}
	}
	tests := []struct {
		name   string
		change func(*Minion)
		want   string // substring of the error; "" for valid
	}{
		{"valid", func(*Minion) {}, ""},
		{"no master yet", func(c *Minion) { c.Master = "" }, ""},
		{"http master", func(c *Minion) { c.Master = "http://master:8443" }, "master"},
		{"master without host", func(c *Minion) { c.Master = "https://" }, "master"},
		{"master without scheme", func(c *Minion) { c.Master = "master:8443" }, "master"},
		{"bad fingerprint", func(c *Minion) { c.MasterFingerprint = "sha256:1234" }, "fingerprint"},
		{"fingerprint not hex", func(c *Minion) { c.MasterFingerprint = strings.Repeat("zz", 32) }, "fingerprint"},
		{"listen without port", func(c *Minion) { c.Listen = "4510" }, "listen"},
		{"listen empty", func(c *Minion) { c.Listen = "" }, "listen"},
		{"bad advertise", func(c *Minion) { c.Advertise = "host" }, "advertise"},
		{"advertise", func(c *Minion) { c.Advertise = "10.0.0.1:4510" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v; want an error mentioning %q", err, tt.want)
			}
		})
	}

	t.Run("defaults", func(t *testing.T) {
		cfg := Minion{Listen: ":4510"}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if cfg.ID != hostname {
			t.Errorf("ID = %q; want the host name %q", cfg.ID, hostname)
		}
		if cfg.DataDir == "" || cfg.LogLevel != "info" {
			t.Errorf("DataDir = %q, LogLevel = %q; want them filled in", cfg.DataDir, cfg.LogLevel)
		}
	})
	t.Run("fingerprint normalised", func(t *testing.T) {
		cfg := valid()
		hex := strings.Repeat("AB", 32)
		var colons []string
		for i := 0; i < len(hex); i += 2 {
			colons = append(colons, hex[i:i+2])
		}
		cfg.MasterFingerprint = "SHA256:" + strings.Join(colons, ":")
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if want := "sha256:" + strings.Repeat("ab", 32); cfg.MasterFingerprint != want {
			t.Errorf("MasterFingerprint = %q; want %q", cfg.MasterFingerprint, want)
		}
	})
}

func TestLoadMinionWritesDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "minion.toml")
	cfg, created, err := LoadMinion(path)
	if err != nil || !created {
		t.Fatalf("LoadMinion = created %v, %v; want true, nil", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("default config: %v, %v; want a 0600 file", st, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("default config does not validate: %v", err)
	}
	if cfg.Listen != ":4510" || cfg.Master != "" {
		t.Errorf("default listen %q master %q; want :4510 and none", cfg.Listen, cfg.Master)
	}
}

// TestMinionTemplate: the first-run file is commented TOML that decodes to
// the defaults, and Render of a config decodes back to it.
func TestMinionTemplate(t *testing.T) {
	if !strings.HasPrefix(MinionTemplate, MinionHeader) || strings.Count(MinionTemplate, "\n# ") < 9 {
		t.Errorf("MinionTemplate lacks its header or a comment per key:\n%s", MinionTemplate)
	}
	var got Minion
	md, err := toml.Decode(MinionTemplate, &got)
	if err != nil {
		t.Fatalf("MinionTemplate does not decode: %v\n%s", err, MinionTemplate)
	}
	if und := md.Undecoded(); len(und) > 0 {
		t.Errorf("MinionTemplate has unknown keys %v", und)
	}
	if want := DefaultMinion(); !reflect.DeepEqual(got, want) {
		t.Errorf("MinionTemplate decodes to %+v; want the defaults %+v", got, want)
	}
	if got.Listen != ":4510" || got.LogLevel != "info" {
		t.Errorf("defaults listen %q, log_level %q; want :4510, info", got.Listen, got.LogLevel)
	}

	in := Minion{Master: "https://m:8443", ID: "web1", Listen: ":1", FileRoots: []string{"/etc/nginx", "/srv"}, LogLevel: "debug"}
	data, err := Render("# test\n", in)
	if err != nil {
		t.Fatal(err)
	}
	var out Minion
	if _, err := toml.Decode(string(data), &out); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("Render round trip = %+v, %v; want %+v\n%s", out, err, in, data)
	}
}

// The file an earlier minion wrote on first run (v0.1,
// testdata/minion-first-run-0.1.toml) loads to today's defaults.
func TestEarlierMinionFileLoads(t *testing.T) {
	old, _, err := LoadMinion(filepath.Join("testdata", "minion-first-run-0.1.toml"))
	if err != nil {
		t.Fatalf("LoadMinion(v0.1 first-run file) = %v", err)
	}
	if got, want := fmt.Sprintf("%+v", old), fmt.Sprintf("%+v", DefaultMinion()); got != want {
		t.Errorf("v0.1 first-run file loads as\n%s\nwant today's defaults\n%s", got, want)
	}
}

func TestScrubJoinToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "minion.toml")
	body := "# felix minion configuration.\nmaster = \"https://m:8443\"\njoin_token = \"fjt_secret\"\nid = \"web1\"\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	changed, err := ScrubJoinToken(path)
	if err != nil || !changed {
		t.Fatalf("ScrubJoinToken = %v, %v; want a change", changed, err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "fjt_secret") || !strings.Contains(string(b), `master = "https://m:8443"`) ||
		!strings.Contains(string(b), `id = "web1"`) {
		t.Errorf("after scrubbing:\n%s", b)
	}
	var c Minion
	if _, err := Load(path, MinionTemplate, &c); err != nil || c.JoinToken != "" || c.ID != "web1" {
		t.Errorf("the scrubbed file loads as %+v, %v", c, err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600 kept", st.Mode().Perm())
	}
	if changed, err := ScrubJoinToken(path); changed || err != nil {
		t.Errorf("second ScrubJoinToken = %v, %v; want nothing to do", changed, err)
	}
	if changed, err := ScrubJoinToken(filepath.Join(dir, "none.toml")); changed || err != nil {
		t.Errorf("ScrubJoinToken of no file = %v, %v", changed, err)
	}
}
