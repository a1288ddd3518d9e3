package model

import "strconv"

// ExitText is how a host's exit shows in tables and the dashboard: its
// signal when it was killed, "-" when it did not run (code < 0), else its
// exit code.
func ExitText(code int, signal string) string {
	switch {
	case signal != "":
		return signal
	case code < 0:
		return "-"
	}
	return strconv.Itoa(code)
}
