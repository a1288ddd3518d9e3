package config

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A daemon logger writes the format its LogVar says at each record, with
// the attributes of loggers derived before a switch, and its level too.
func TestDaemonLoggerSwitches(t *testing.T) {
	var buf bytes.Buffer
	log, v, err := DaemonLogger(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	child := log.With("component", "health").WithGroup("g")
	child.Info("as text", "n", 1)
	child.Debug("hidden")
	if err := v.Set("debug", "json"); err != nil {
		t.Fatal(err)
	}
	child.Debug("as json", "n", 2)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines; want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "msg=\"as text\"") || !strings.Contains(lines[0], "component=health") || !strings.Contains(lines[0], "g.n=1") {
		t.Errorf("text line = %q", lines[0])
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatalf("second line is not JSON: %v: %q", err, lines[1])
	}
	if rec["msg"] != "as json" || rec["component"] != "health" || rec["level"] != "DEBUG" {
		t.Errorf("json record = %v", rec)
	}
	if g, _ := rec["g"].(map[string]any); g["n"] != float64(2) {
		t.Errorf("json record's group = %v; want n 2", rec["g"])
	}
}

func TestLogVarSet(t *testing.T) {
	tests := []struct {
		level, format string
		wantErr       string
	}{
		{"debug", "json", ""},
		{"warn", "text", ""},
		{"debug", "logfmt", `log_format "logfmt": want text or json`},
		{"loud", "json", `log_level "loud"`},
		{"info", "", `log_format ""`},
	}
	for _, tt := range tests {
		var v LogVar
		v.Set("error", "text")
		err := v.Set(tt.level, tt.format)
		if tt.wantErr == "" {
			var want slog.Level
			want.UnmarshalText([]byte(tt.level))
			if err != nil || v.Level() != want || v.Format() != tt.format {
				t.Errorf("Set(%q, %q) = %v; level %v format %s", tt.level, tt.format, err, v.Level(), v.Format())
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Set(%q, %q) = %v; want an error with %q", tt.level, tt.format, err, tt.wantErr)
		}
		if v.Level() != slog.LevelError || v.Format() != "text" {
			t.Errorf("Set(%q, %q) failed but changed the logger: level %v format %s", tt.level, tt.format, v.Level(), v.Format())
		}
	}
}
