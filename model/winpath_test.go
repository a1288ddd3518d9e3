package model

import (
	"strings"
	"testing"
)

func TestCheckWindowsPath(t *testing.T) {
	tests := []struct {
		path string
		want string // "" for valid, else a part of the error
	}{
		{`C:\felix\x.txt`, ""},
		{`d:\Program Files\app\conf.ini`, ""},
		{`C:\a\b.c.d`, ""},
		{`C:\a\CONSOLE`, ""},
		{`C:\a\COM10`, ""},
		{``, "empty"},
		{`C:..\x`, "relative to the drive"},
		{`C:x`, "relative to the drive"},
		{`C:`, "relative to the drive"},
		{`C:\`, "root of a drive"},
		{`\\server\share\x`, "network (UNC)"},
		{`\\?\C:\x`, "device path"},
		{`\\.\PhysicalDrive0`, "device path"},
		{`\x`, "not absolute"},
		{`x\y`, "not absolute"},
		{`C:/x/y`, "forward slash"},
		{`C:\a\..\b`, "without . or .."},
		{`C:\a\.\b`, "without . or .."},
		{`C:\a\\b`, "empty name"},
		{`C:\a\`, "empty name"},
		{`C:\a\CON`, "reserved device"},
		{`C:\a\nul`, "reserved device"},
		{`C:\a\NUL.txt`, "reserved device"},
		{`C:\a\com1`, "reserved device"},
		{`C:\LPT9.log`, "reserved device"},
		{`C:\a\COM¹`, "reserved device"},
		{`C:\a\aux .txt`, "reserved device"},
		{`C:\a\x.`, "ends in a dot"},
		{`C:\a\x `, "ends in a dot or a space"},
		{`C:\a. \x`, "ends in a dot or a space"},
		{`C:\a\x:stream`, "does not allow"},
		{`C:\a\x?`, "does not allow"},
		{`C:\a\x|y`, "does not allow"},
		{"C:\\a\\x\x01", "does not allow"},
		{"C:\\a\x00", "NUL"},
		{`C:\` + strings.Repeat("a", MaxPathLen), "at most"},
	}
	for _, tt := range tests {
		err := CheckWindowsPath(tt.path)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckWindowsPath(%q) = %v; want nil", tt.path, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckWindowsPath(%q) = %v; want an error with %q", tt.path, err, tt.want)
		}
	}
}

func TestCheckHostPath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/etc/motd", true},
		{`C:\felix\x.txt`, true},
		{`C:..\x`, false},
		{`\\server\share`, false},
		{"relative/x", false},
		{"/etc/../x", false},
	}
	for _, tt := range tests {
		if err := CheckHostPath(tt.path); (err == nil) != tt.ok {
			t.Errorf("CheckHostPath(%q) = %v; want ok %v", tt.path, err, tt.ok)
		}
	}
}
