package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Read decodes the TOML file at path into v on top of the defaults in
// template, like Load, but never writes: a missing file leaves v at the
// template's values and exists false. Commands that only look (status,
// stop, config check) read; only start writes a first-run file.
func Read(path, template string, v any) (exists bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := toml.Decode(template, v); err != nil {
			return false, fmt.Errorf("config template: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read config: %w", err)
	}
	return true, decode(path, template, data, v)
}

// decode decodes data (the file at path) into v over template's values.
// Its errors name the file and, when known, the line: "config PATH: line
// N: what".
func decode(path, template string, data []byte, v any) error {
	if _, err := toml.Decode(template, v); err != nil {
		return fmt.Errorf("config template: %w", err)
	}
	md, err := toml.Decode(string(data), v)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) && pe.Position.Line > 0 {
			line := pe.Position.Line
			// A fault found at a line's end ("got '\n'") is on that line,
			// where the byte offset points, not on the next.
			if st := pe.Position.Start; st > 0 && st <= len(data) {
				line = bytes.Count(data[:st], []byte("\n")) + 1
			}
			return fmt.Errorf("config %s: line %d: %s", path, line, pe.Message)
		}
		// Type errors say "toml: line N (last key ...): ...".
		return fmt.Errorf("config %s: %s", path, strings.TrimPrefix(err.Error(), "toml: "))
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		if n := KeyLine(data, keys[0]); n > 0 {
			return fmt.Errorf("config %s: line %d: unknown keys: %s", path, n, strings.Join(keys, ", "))
		}
		return fmt.Errorf("config %s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	return nil
}

// WriteNew creates the config file at path (0600, parents 0700) holding
// data; it fails when the file exists.
func WriteNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write default config %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write default config %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write default config %s: %w", path, err)
	}
	return nil
}

var (
	tableRe = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]`)
	keyRe   = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\s*=`)
)

// KeyLine returns the line (from 1) of the dotted key ("exec.max_parallel")
// or table ("exec") in the TOML text data, 0 when it is not found. It reads
// the plain layout felix writes ([table] headers, one key = value a line),
// enough to point an operator at the line of a bad value.
func KeyLine(data []byte, dotted string) int {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	table := ""
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if m := tableRe.FindStringSubmatch(line); m != nil {
			table = m[1]
			if table == dotted {
				return n
			}
			continue
		}
		if m := keyRe.FindStringSubmatch(line); m != nil {
			k := m[1]
			if table != "" {
				k = table + "." + k
			}
			if k == dotted {
				return n
			}
		}
	}
	return 0
}

// leadingKey is the dotted key a validation error starts with
// ("exec.max_parallel must be positive" → "exec.max_parallel").
var leadingKey = regexp.MustCompile(`^([a-z_]+(?:\.[a-z_]+)*)[ :]`)

// Check reads and validates the config file at path without writing
// anything: the file must exist, decode over template into v, and pass
// validate. Its error is one line naming the file and, when it can be
// found, the line of the fault.
func Check(path, template string, v any, validate func() error) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := decode(path, template, data, v); err != nil {
		return err
	}
	if err := validate(); err != nil {
		if m := leadingKey.FindStringSubmatch(err.Error()); m != nil {
			if n := KeyLine(data, m[1]); n > 0 {
				return fmt.Errorf("config %s: line %d: %w", path, n, err)
			}
		}
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// ValidLogLevel checks a log_level value: debug, info, warn or error.
func ValidLogLevel(level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log_level %q: want debug, info, warn or error", level)
	}
	return nil
}
