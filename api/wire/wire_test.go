package wire

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"web01", true},
		{"web01.example.net", true},
		{"db_2-a", true},
		{strings.Repeat("a", 253), true},
		{"", false},
		{strings.Repeat("a", 254), false},
		{"a/b", false},
		{"a..b", false},
		{"..", false},
		{"a\x00b", false},
		{"\xff", false},
		{"-rf", false},
		{".hidden", false},
		{"a b", false},
		{"a;reboot", false},
		{"$(id)", false},
	}
	for _, tt := range tests {
		err := ValidID(tt.id)
		if (err == nil) != tt.ok {
			t.Errorf("ValidID(%q) = %v; want ok=%v", tt.id, err, tt.ok)
		}
	}
}
