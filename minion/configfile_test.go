package minion

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStatusStopWriteNothing: status, stop and config check never write a
// config file; start's first-run file holds the flags given, so a plain
// status finds the same data directory.
func TestStatusStopWriteNothing(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "etc", "minion.toml")
	for _, args := range [][]string{{"status", "--config", conf}, {"stop", "--config", conf}, {"config", "check", "--config", conf}} {
		var out, errOut bytes.Buffer
		if code := Main(context.Background(), args, &out, &errOut); code != 1 {
			t.Errorf("minion %v = %d; want 1", args, code)
		}
		if _, err := os.Stat(filepath.Dir(conf)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("minion %v created %s (stat: %v)", args, filepath.Dir(conf), err)
		}
	}
	data := filepath.Join(dir, "data")
	var out bytes.Buffer
	cfg, _, err := load("start", []string{"--config", conf, "--data-dir", data, "--master", "https://m.example:8443", "--id", "web1"}, &out)
	if err != nil || cfg.DataDir != data || !strings.Contains(out.String(), "wrote default config") {
		t.Fatalf("load(start) = %q, %v, out %q", cfg.DataDir, err, out.String())
	}
	again, _, err := load("status", []string{"--config", conf}, nil)
	if err != nil || again.DataDir != data || again.Master != "https://m.example:8443" || again.ID != "web1" {
		t.Errorf("load(status) after start's first run = %+v, %v; want the flags start had", again, err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"config", "check", "--config", conf}, &stdout, &stderr); code != 0 || stdout.String() != "config "+conf+": ok\n" {
		t.Errorf("minion config check on the first-run file = %d %q %q; want 0 and ok", code, stdout.String(), stderr.String())
	}
}
