package master

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheck runs "master config check" on good and bad files: ok and
// exit 0, or one line naming the file and the line, exit 1; nothing written.
func TestConfigCheck(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // on stderr; "" means ok
	}{
		{"ok", "listen = \"127.0.0.1:8443\"\n[exec]\nmax_parallel = 10\n", ""},
		{"toml syntax", "listen = \"127.0.0.1:8443\"\n[exec\nmax_parallel = 10\n", "line 2:"},
		{"unknown key", "listen = \"127.0.0.1:8443\"\n[exec]\nmax_paralel = 10\n", "line 3: unknown keys: exec.max_paralel"},
		{"bad value", "listen = \"127.0.0.1:8443\"\n[exec]\nmax_parallel = -1\n", "line 3: exec.max_parallel"},
		{"bad duration", "[health]\ninterval = \"soon\"\n", "line 2"},
		{"connect timeout too short", "[ssh]\nconnect_timeout = \"100ms\"\n", "line 2: ssh.connect_timeout"},
		{"relative remote_tmp", "[ssh]\nremote_tmp = \"rel/dir\"\n", "line 2: ssh.remote_tmp"},
		{"remote_tmp with ..", "[ssh]\nuser = \"root\"\nremote_tmp = \"/tmp/../etc\"\n", "line 3: ssh.remote_tmp"},
		{"remote_tmp ok", "[ssh]\nremote_tmp = \"~/.ansible/tmp\"\n", ""},
		{"facts ttl too long", "[ssh]\nfacts_ttl = \"1000h\"\n", "line 2: ssh.facts_ttl"},
		{"bad host keys", "[ssh]\nuser = \"root\"\nhost_keys = \"maybe\"\n", "line 3: ssh.host_keys"},
		{"bad log level", "log_level = \"loud\"\n", "line 1: log_level"},
		{"jump rule", "[ssh]\njump = [\"group=lab ops@bastion:2222,b2\"]\nuse_ssh_config = true\n", ""},
		{"jump rule without hosts", "[ssh]\nuser = \"root\"\njump = [\"group=lab\"]\n", "line 3: ssh.jump"},
		{"jump rule with an option", "[ssh]\njump = [\"group=lab -oProxyCommand=id\"]\n", "line 2: ssh.jump"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "master.toml")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runMain(t, "config", "check", "--config", path)
			if tt.want == "" {
				if code != 0 || out != "config "+path+": ok\n" {
					t.Errorf("config check = %d %q %q; want 0 and ok", code, out, errOut)
				}
			} else if code != 1 || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, path) ||
				strings.Count(errOut, "\n") != 1 {
				t.Errorf("config check = %d, stderr %q; want 1 and one line naming %s and %q", code, errOut, path, tt.want)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("config check wrote files: %v", ents)
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "none.toml")
	if code, _, _ := runMain(t, "config", "check", "--config", missing); code != 1 {
		t.Errorf("config check on a missing file = %d; want 1", code)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("config check created %s", missing)
	}
}

// TestStatusStopWriteNothing: status and stop never write a config file;
// start's first-run file holds the flags given, so a plain status finds
// the same data directory.
func TestStatusStopWriteNothing(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc", "master.toml")
	for _, cmd := range []string{"status", "stop"} {
		if code, _, _ := runMain(t, cmd, "--config", conf); code != 1 {
			t.Errorf("master %s with no master running = %d; want 1", cmd, code)
		}
		if _, err := os.Stat(filepath.Dir(conf)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("master %s created %s (stat: %v)", cmd, filepath.Dir(conf), err)
		}
	}
	data := filepath.Join(dir, "data")
	cfg, _, created, err := load("start", []string{"--config", conf, "--data-dir", data, "--listen", "127.0.0.1:9443", "--log-level", "debug"}, nil)
	if err != nil || !created || cfg.DataDir != data {
		t.Fatalf("load(start) = %+v, created %v, %v", cfg.DataDir, created, err)
	}
	again, _, created, err := load("status", []string{"--config", conf}, nil)
	if err != nil || created || again.DataDir != data || again.Listen != "127.0.0.1:9443" || again.LogLevel != "debug" {
		t.Errorf("load(status) after start's first run = data_dir %q listen %q log_level %q, created %v, %v; want the flags start had",
			again.DataDir, again.Listen, again.LogLevel, created, err)
	}
	b, _ := os.ReadFile(conf)
	if !strings.HasPrefix(string(b), configHeader) || !strings.Contains(string(b), "\n# ") {
		t.Errorf("first-run file lacks its header or comments:\n%s", b)
	}
}

func TestUnitCommand(t *testing.T) {
	for _, name := range []string{"master", "minion"} {
		code, out, _ := runMain(t, "unit", name)
		if code != 0 || !strings.Contains(out, "ExecStart=/usr/local/bin/felix-"+name+" start --config /etc/felix/"+name+".toml") ||
			!strings.Contains(out, "Type=notify") {
			t.Errorf("master unit %s = %d:\n%s", name, code, out)
		}
	}
	if code, _, errOut := runMain(t, "unit", "felix"); code != 1 || !strings.Contains(errOut, "want master or minion") {
		t.Errorf("master unit felix = %d %q; want 1 and an error", code, errOut)
	}
}
