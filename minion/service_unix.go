//go:build !windows

package minion

import (
	"context"
	"io"
)

// runService reports false: Unix has no service control manager to talk
// to (systemd runs `minion start` in the foreground).
func runService(context.Context, func(context.Context) error) (bool, error) { return false, nil }

// stopService reports false: the pid file is the way (see cmdStop).
func stopService(io.Writer) (bool, error) { return false, nil }

// restartService reports false: see cmdRestart.
func restartService(io.Writer) (bool, error) { return false, nil }
