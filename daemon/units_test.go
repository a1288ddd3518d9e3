package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
)

// unitKeys parses a unit's [Service] keys (the last value wins, as
// systemd reads most of them).
func unitKeys(text string) map[string]string {
	keys := map[string]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = v
		}
	}
	return keys
}

func TestUnits(t *testing.T) {
	tests := []struct {
		name string
		want map[string]string // "" : must be absent
	}{
		{"master", map[string]string{"Type": "notify", "Restart": "on-failure", "WatchdogSec": "60",
			"ExecStart":     "/opt/felix/bin start --config /opt/felix/master.toml --data-dir /srv/felix",
			"ProtectSystem": "strict", "ReadWritePaths": "/etc/felix -/srv/felix", "NoNewPrivileges": "yes", "PrivateTmp": "yes"}},
		{"minion", map[string]string{"Type": "notify", "Restart": "on-failure", "WatchdogSec": "60",
			"ExecStart":     "/opt/felix/bin start --config /opt/felix/minion.toml",
			"ProtectSystem": "", "NoNewPrivileges": "", "PrivateTmp": "", "CapabilityBoundingSet": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := Unit(tt.name, "/opt/felix/bin", "/opt/felix/"+tt.name+".toml", "/srv/felix")
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(text, "@") && strings.Contains(text, "@BIN@") {
				t.Errorf("placeholders left:\n%s", text)
			}
			keys := unitKeys(text)
			for k, want := range tt.want {
				if got, ok := keys[k]; want == "" && ok {
					t.Errorf("%s=%s; want it unset", k, got)
				} else if want != "" && got != want {
					t.Errorf("%s=%q; want %q", k, got, want)
				}
			}
		})
	}
	if _, err := Unit("felix", "/b", "/c", "/d"); err == nil {
		t.Errorf("Unit(felix) = nil error; want one")
	}
}

// TestUnitsVerify runs systemd-analyze verify on both units, their
// ExecStart a real executable.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.Missing(t, "systemd-analyze (apt-get install systemd)")
		return
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"master", "minion"} {
		text, err := Unit(name, bin, filepath.Join(dir, name+".toml"), filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "felix-"+name+".service")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || strings.Contains(string(out), "felix-"+name) {
			t.Errorf("systemd-analyze verify %s: %v\n%s", name, err, out)
		}
	}
}
