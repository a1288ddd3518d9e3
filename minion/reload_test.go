package minion

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/internal/testenv"
)

// TestReload: log_level applies at once; listen is kept with a warning; a
// join token blanked in the file is no change.
func TestReload(t *testing.T) {
	cfg := config.DefaultMinion()
	cfg.ID, cfg.Master, cfg.DataDir, cfg.JoinToken = "m1", "https://127.0.0.1:8443", t.TempDir(), "fjt_x"
	m, err := New(cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	_, m.logVar, err = config.DaemonLogger(io.Discard, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		t.Fatal(err)
	}
	next := cfg
	next.LogLevel, next.LogFormat, next.Listen, next.JoinToken = "debug", "json", "127.0.0.1:9999", ""
	if got := m.Reload(next); !slices.Equal(got, []string{"log_level", "log_format"}) {
		t.Errorf("Reload changed %v; want [log_level log_format]", got)
	}
	if m.logVar.Level() != slog.LevelDebug || m.logVar.Format() != "json" || m.applied.Listen != cfg.Listen {
		t.Errorf("after Reload: level %v, format %s, listen %q; want debug, json and the running %q",
			m.logVar.Level(), m.logVar.Format(), m.applied.Listen, cfg.Listen)
	}
	if got := m.Reload(next); len(got) != 0 {
		t.Errorf("the same reload again changed %v; want nothing", got)
	}
}
