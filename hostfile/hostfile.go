// Package hostfile puts and gets files on this machine, for the minion:
// atomic (a temp file renamed over the destination), verified against the
// announced size and sha256, confined to the file roots, safe against a
// local user swapping a directory for a symlink between the checks and
// the writes (every change goes through a directory descriptor opened
// without following symlinks), and with a crash journal of the temp files
// in flight, swept at start-up.
//
// It knows nothing of the network: the agent transport's gRPC handlers
// translate its messages to Store calls and its errors to status codes.
// It sits beside exec in the engine layer and imports neither protobuf,
// gRPC nor any transport.
package hostfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
)

// Store puts and gets files on this machine. Its zero value touches any
// absolute path and keeps no journal; a Store is safe for concurrent use
// once configured.
type Store struct {
	// Roots, when not empty, are the directories Put and Get may touch
	// (the minion's file_roots, symlinks resolved); empty means any
	// absolute path.
	Roots []string
	// JournalDir records the temp file of each put in flight, so Sweep can
	// remove what a crash left; empty means no journal.
	JournalDir string
	// Log receives what goes wrong beside a call's own error (a temp file
	// that could not be removed, an fsync of a directory); nil discards it.
	Log *slog.Logger
}

// The kinds of failure of Put and Get, for callers that map them to a
// protocol's codes (the agent transport to gRPC's). An error wraps at
// most one of them; one that wraps none is a failure of the host (I/O).
// Each keeps the message of the error it marks.
var (
	// ErrInvalid marks a malformed request: a bad path, header or owner,
	// or content that is not the size announced.
	ErrInvalid = errors.New("invalid request")
	// ErrRefused marks a request the file system as it is refuses: a
	// missing directory, a symlink not to follow, a file of another type,
	// a path that changed while being written.
	ErrRefused = errors.New("refused")
	// ErrOutside marks a path outside the Roots.
	ErrOutside = errors.New("outside the file roots")
	// ErrNotFound marks a Get of a file that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt marks content whose sha256 is not the one announced.
	ErrCorrupt = errors.New("content corrupt")
)

// kindError marks err with one of the kinds above, keeping its message.
type kindError struct{ kind, err error }

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.err} }

// errorf formats an error marked with kind.
func errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}

// log returns s.Log, or a logger that discards.
func (s *Store) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// copyBufSize is the size of the buffers old files are hashed and
// copied through.
const copyBufSize = 32 << 10

// randomHex returns 16 random hex digits.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// typeName names the type of a file mode: "a directory", "a symlink" ...
func typeName(m fs.FileMode) string {
	switch t := m.Type(); {
	case t == 0:
		return "a regular file"
	case t&fs.ModeDir != 0:
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symlink"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	default:
		return "type " + t.String()
	}
}

// Test hooks, nil outside tests. They run where a put or get has checked
// a path but not yet opened it, so a test can change the file system there
// as a racing local user would.
var (
	// testHookChecked runs after the components below a put's Root are
	// checked, before its destination is resolved.
	testHookChecked func(dest string)
	// testHookResolved runs after a path is resolved and checked, before
	// walkDir opens its directory dir.
	testHookResolved func(dir string)
	// testHookKeep runs after a file put looked at the regular file at its
	// destination path, before it opens it to compare its content.
	testHookKeep func(path string)
)
