package config

import (
	"log/slog"
	"reflect"
	"strings"
)

// SetLevel sets lv to the named level (debug, info, warn, error).
func SetLevel(lv *slog.LevelVar, level string) error {
	if err := ValidLogLevel(level); err != nil {
		return err
	}
	var l slog.Level
	l.UnmarshalText([]byte(level))
	lv.Set(l)
	return nil
}

// Diff returns the dotted keys ("exec.max_timeout") whose values differ
// between a and b, two values of the same config struct type, in file
// order.
func Diff(a, b any) []string {
	old := map[string]any{}
	walk(reflect.ValueOf(a), "", func(f field) { old[f.path] = f.v.Interface() }, nil)
	var out []string
	walk(reflect.ValueOf(b), "", func(f field) {
		if !reflect.DeepEqual(old[f.path], f.v.Interface()) {
			out = append(out, f.path)
		}
	}, nil)
	return out
}

// Reloadable reports whether key is one of keys, where "table.*" stands
// for every key of the table.
func Reloadable(key string, keys []string) bool {
	for _, k := range keys {
		if k == key || (strings.HasSuffix(k, ".*") && strings.HasPrefix(key, strings.TrimSuffix(k, "*"))) {
			return true
		}
	}
	return false
}
