// Package config loads felix's TOML configuration files in layers: defaults,
// then the file, then FELIX_* environment variables, then flags. A missing
// file is written out first from a commented template, so an operator always
// has a documented file to edit. It also holds the minion's configuration
// (Minion), which the minion daemon and bootstrap share.
//
// Each configuration is one struct whose field tags say everything about its
// keys, so that the commented first-run file (Template), the defaults
// Validate fills in (FillZero) and the environment and flag overrides
// (AddFlags, Apply) come from one place:
//
//	toml:"key"       the key; a field of struct type is a [table]
//	default:"text"   the default, as Go text for the field's type: "60s" for
//	                 a Duration, "5000", "true", "a,b" for a list
//	doc:"text"       the comment above the key in the written file (wrapped;
//	                 "\n" breaks a line); on a table, the comment under [table]
//	env:"FELIX_..."  an environment variable that overrides the key
//	flag:"name"      a flag (AddFlags) that overrides the key and the environment
//	zero:"error"     an unset value is an error (Validate says why), not the default
//	zero:"computed"  an unset value is worked out by the component's Validate
//	                 (from other keys or the machine); default is what the file shows
//
// Fields may be string, int, int64, bool, Duration or []string. A malformed
// tag is a programming error: this package's functions panic on it, and every
// config's tests call them.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/pflag"
)

// Load decodes the TOML file at path into v, on top of the defaults in
// template: keys the file leaves out keep the template's values. When the
// file does not exist it is created (0600, parents 0700) from template, and
// created is true. Unknown keys are an error naming them.
func Load(path, template string, v any) (created bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := WriteNew(path, []byte(template)); err != nil {
			return false, err
		}
		created = true
	}
	_, err = Read(path, template, v)
	return created, err
}

// Override sets *dst from the environment variable env when it is set, then
// from flag name in fs when that flag was given: flags win over environment,
// which wins over the file.
func Override(dst *string, fs *pflag.FlagSet, name, env string) {
	if v, ok := os.LookupEnv(env); ok {
		*dst = v
	}
	if fs != nil && fs.Changed(name) {
		*dst, _ = fs.GetString(name)
	}
}

// Duration is a time.Duration written in TOML as a string such as "30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as Go does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Logger returns a text logger to w at the named level (debug, info, warn, error).
func Logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log_level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// DefaultDir returns the directory for kind ("config" or "data") of app:
// /etc/felix and /var/lib/felix/APP for root, else the XDG directories;
// %ProgramData%\felix and %ProgramData%\felix\APP on Windows.
func DefaultDir(kind, app string) string {
	if runtime.GOOS == "windows" {
		// %ProgramData%\felix (the config) and %ProgramData%\felix\APP:
		// where a service running as SYSTEM keeps its state.
		base := os.Getenv("ProgramData")
		if base == "" {
			base = `C:\ProgramData`
		}
		if kind == "config" {
			return filepath.Join(base, "felix")
		}
		return filepath.Join(base, "felix", app)
	}
	if os.Geteuid() == 0 {
		if kind == "config" {
			return "/etc/felix"
		}
		return filepath.Join("/var/lib/felix", app)
	}
	home, _ := os.UserHomeDir()
	if kind == "config" {
		if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
			return filepath.Join(x, "felix")
		}
		return filepath.Join(home, ".config", "felix")
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "felix", app)
	}
	return filepath.Join(home, ".local", "share", "felix", app)
}
