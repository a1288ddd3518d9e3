//go:build !linux

package agent

import "time"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist: the
// keepalive probes still end an idle connection to a vanished minion.
func setUserTimeout(uintptr, time.Duration) error { return nil }
