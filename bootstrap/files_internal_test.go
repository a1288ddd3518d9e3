package bootstrap

import (
	"testing"

	"github.com/felix-ops/felix/config"
)

// A minion config an older felix wrote, without log_format, is the same
// as one with the default format: a rerun does not rewrite it (and
// restart the minion) for that alone; another format is a change.
func TestSameConfigLogFormat(t *testing.T) {
	cur := config.DefaultMinion()
	cur.Master, cur.ID = "https://m:8443", "web1"
	old := cur
	old.LogFormat = ""
	tests := []struct {
		name string
		old  string
		want bool
	}{
		{"written before log_format", "", true},
		{"text", "text", true},
		{"json", "json", false},
	}
	for _, tt := range tests {
		o := old
		o.LogFormat = tt.old
		if got := sameConfig(o, cur); got != tt.want {
			t.Errorf("%s: sameConfig = %v; want %v", tt.name, got, tt.want)
		}
	}
}
