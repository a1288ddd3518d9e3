package model

import (
	"errors"
	"fmt"
	"strings"
)

// LooksWindowsPath reports whether p is written as a Windows path: it
// starts with a drive letter and a colon, or with a backslash (UNC and
// device paths). CheckHostPath checks such a path by Windows's rules.
func LooksWindowsPath(p string) bool {
	return len(p) >= 2 && p[1] == ':' && isDriveLetter(p[0]) || strings.HasPrefix(p, `\`)
}

func isDriveLetter(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// CheckHostPath reports why p cannot name a file on a host, or nil: a
// Windows path (see LooksWindowsPath) by CheckWindowsPath, any other by
// CheckPath. The API and the job engine check push and fetch paths with
// it; each minion checks again by its own platform's rules.
func CheckHostPath(p string) error {
	if LooksWindowsPath(p) {
		return CheckWindowsPath(p)
	}
	return CheckPath(p)
}

// windowsDevices are the names Windows gives to devices in every
// directory, with or without an extension ("NUL.txt" is NUL too).
var windowsDevices = map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}

// CheckWindowsPath reports why p cannot name a file on a Windows host, or
// nil. It wants a drive letter, a colon and a backslash, then names
// separated by single backslashes: no UNC (\\server\share) or device
// (\\?\, \\.\) path, no drive-relative path (C:..\x, C:x), no forward
// slash, no "." or "..", no name ending in a dot or a space (Windows
// drops them, so the file written would not be the one named), none of
// the characters <>:"|?* or control characters, no reserved device name
// (CON, PRN, AUX, NUL, COM1-9, LPT1-9, with any extension), and not the
// root of a drive.
func CheckWindowsPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case len(p) > MaxPathLen:
		return fmt.Errorf("path is %d bytes: at most %d", len(p), MaxPathLen)
	case strings.HasPrefix(p, `\\?\`) || strings.HasPrefix(p, `\\.\`):
		return fmt.Errorf("path %q is a device path: want a drive path such as C:\\dir\\file", p)
	case strings.HasPrefix(p, `\\`):
		return fmt.Errorf("path %q is a network (UNC) path: want a local drive path such as C:\\dir\\file", p)
	case !(len(p) >= 2 && p[1] == ':' && isDriveLetter(p[0])):
		return fmt.Errorf("path %q is not absolute: want a drive letter, as in C:\\dir\\file", p)
	case strings.ContainsRune(p, '/'):
		return fmt.Errorf("path %q has a forward slash: write Windows paths with backslashes", p)
	case len(p) == 2 || p[2] != '\\':
		return fmt.Errorf("path %q is relative to the drive's current directory: want C:\\ then the path", p)
	case len(p) == 3:
		return fmt.Errorf("path %q names no file (the root of a drive)", p)
	}
	for _, name := range strings.Split(p[3:], `\`) {
		if err := checkWindowsName(name); err != nil {
			return fmt.Errorf("path %q: %w", p, err)
		}
	}
	return nil
}

// checkWindowsName reports why name cannot be one component of a
// Windows path.
func checkWindowsName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name (doubled or trailing backslash)")
	case name == "." || name == "..":
		return fmt.Errorf("%q: want a clean path without . or ..", name)
	case strings.HasSuffix(name, ".") || strings.HasSuffix(name, " "):
		return fmt.Errorf("name %q ends in a dot or a space, which Windows drops", name)
	}
	for _, r := range name {
		if r < 32 || strings.ContainsRune(`<>:"|?*`, r) {
			return fmt.Errorf("name %q contains %q, which Windows does not allow in names", name, r)
		}
	}
	base, _, _ := strings.Cut(name, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	runes := []rune(base)
	port := len(runes) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) &&
		strings.ContainsRune("0123456789¹²³", runes[3])
	if windowsDevices[base] || port {
		return fmt.Errorf("name %q is a reserved device name on Windows", name)
	}
	return nil
}
