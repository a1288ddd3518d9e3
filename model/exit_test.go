package model

import "testing"

func TestExitText(t *testing.T) {
	for _, tt := range []struct {
		code   int
		signal string
		want   string
	}{
		{0, "", "0"},
		{7, "", "7"},
		{-1, "", "-"},
		{-1, "SIGKILL", "SIGKILL"},
	} {
		if got := ExitText(tt.code, tt.signal); got != tt.want {
			t.Errorf("ExitText(%d, %q) = %q; want %q", tt.code, tt.signal, got, tt.want)
		}
	}
}
