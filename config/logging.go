package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
)

// Log formats (log_format).
const (
	LogText = "text" // slog's TextHandler: key=value pairs
	LogJSON = "json" // slog's JSONHandler: one JSON object a line
)

// ValidLogFormat checks a log_format value: text or json.
func ValidLogFormat(format string) error {
	if format != LogText && format != LogJSON {
		return fmt.Errorf("log_format %q: want text or json", format)
	}
	return nil
}

// LogVar is a daemon logger's level and format, which a SIGHUP reload
// changes while the daemon runs (Set).
type LogVar struct {
	level slog.LevelVar
	json  atomic.Bool
}

// Set sets the level (debug, info, warn, error) and format (text, json);
// on an error it changes neither.
func (v *LogVar) Set(level, format string) error {
	if err := ValidLogFormat(format); err != nil {
		return err
	}
	if err := SetLevel(&v.level, level); err != nil {
		return err
	}
	v.json.Store(format == LogJSON)
	return nil
}

// Level is the level in force.
func (v *LogVar) Level() slog.Level { return v.level.Level() }

// Format is the format in force.
func (v *LogVar) Format() string {
	if v.json.Load() {
		return LogJSON
	}
	return LogText
}

// DaemonLogger returns a logger writing to w at the named level and in the
// named format, both changeable later through the returned LogVar.
func DaemonLogger(w io.Writer, level, format string) (*slog.Logger, *LogVar, error) {
	v := new(LogVar)
	if err := v.Set(level, format); err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: &v.level}
	return slog.New(&switchHandler{v: v, text: slog.NewTextHandler(w, opts), json: slog.NewJSONHandler(w, opts)}), v, nil
}

// switchHandler hands each record to its text or its JSON handler, as
// its LogVar's format says at the time. Both carry the same attributes
// and groups, so a logger derived with With before a reload logs them in
// the new format too.
type switchHandler struct {
	v          *LogVar
	text, json slog.Handler
}

func (h *switchHandler) pick() slog.Handler {
	if h.v.json.Load() {
		return h.json
	}
	return h.text
}

func (h *switchHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.pick().Enabled(ctx, l)
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.pick().Handle(ctx, r)
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &switchHandler{v: h.v, text: h.text.WithAttrs(as), json: h.json.WithAttrs(as)}
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return &switchHandler{v: h.v, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}
