// Package testenv holds what felix's tests share about their environment:
// a logger that writes to the test's log, and what a test does when
// something it needs is missing.
package testenv

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// Missing stops a test that cannot run here: skipped on a developer's
// machine, failed in CI (CI=true), where a missing dependency is a broken
// setup, not a reason to test less.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// logWriter writes to t.Log until the test ends; afterwards (a goroutine
// still finishing) lines are dropped instead of panicking.
type logWriter struct {
	t    testing.TB
	mu   sync.Mutex // protects done
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// Logger returns a debug-level logger writing to t's log until t ends.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer returns a writer to t's log (each write a line), safe for
// concurrent use, that drops what comes after t ended: for the output of
// processes a test starts.
func Writer(t testing.TB) io.Writer {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return w
}
