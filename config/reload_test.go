package config

import (
	"log/slog"
	"slices"
	"testing"
)

func TestDiff(t *testing.T) {
	a := DefaultMinion()
	b := a
	b.LogLevel, b.FileRoots, b.Listen = "debug", []string{"/srv"}, "127.0.0.1:1"
	if got, want := Diff(a, b), []string{"listen", "log_level", "file_roots"}; !slices.Equal(got, want) {
		t.Errorf("Diff = %v; want %v", got, want)
	}
	if got := Diff(a, a); len(got) != 0 {
		t.Errorf("Diff(a, a) = %v; want none", got)
	}
}

func TestReloadable(t *testing.T) {
	keys := []string{"log_level", "limits.*"}
	for key, want := range map[string]bool{"log_level": true, "limits.token_burst": true, "limits": false, "listen": false, "log": false} {
		if got := Reloadable(key, keys); got != want {
			t.Errorf("Reloadable(%q) = %v; want %v", key, got, want)
		}
	}
}

func TestSetLevel(t *testing.T) {
	var lv slog.LevelVar
	if err := SetLevel(&lv, "debug"); err != nil || lv.Level() != slog.LevelDebug {
		t.Errorf("SetLevel(debug) = %v, level %v", err, lv.Level())
	}
	if err := SetLevel(&lv, "loud"); err == nil || lv.Level() != slog.LevelDebug {
		t.Errorf("SetLevel(loud) = %v, level %v; want an error and the level kept", err, lv.Level())
	}
}
