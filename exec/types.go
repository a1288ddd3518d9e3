// Package exec is felix's job engine: it resolves nothing itself, but fans one
// command out to many hosts through a Transport with bounded parallelism,
// per-host deadlines and output caps, and gives every host exactly one final
// State. Its subpackage exec/local runs a single command on this machine and is
// what a minion uses.
//
// The package deliberately imports neither the inventory (SQLite) nor any API
// code, so the minion binary can link it and stay small and cgo-free.
package exec

import (
	"io"
	"time"
)

// Stream names an output stream of a remote command.
type Stream uint8

// The output streams of a command.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "unknown"
}

// Command is one command line to run on a host.
type Command struct {
	// Line is run with /bin/sh -c. It is the only field ever given to a shell.
	Line string
	// Env holds extra KEY=VALUE pairs added to the minion's environment.
	Env []string
	// Dir is the working directory; empty means the runner's default.
	Dir string
	// Timeout bounds the run; zero means no deadline besides the context's.
	Timeout time.Duration
	// File, when set, is written into a private working directory created
	// for this run (and removed after it), made executable, and Line runs
	// there: the script and file command types.
	File *File
	// Push or Fetch, when set, make the job a file transfer: nothing runs
	// and Line is empty; transports hand the command to Transfer.
	Push  *Push
	Fetch *Fetch
}

// IsTransfer reports whether c is a file transfer rather than a command.
func (c Command) IsTransfer() bool { return c.Push != nil || c.Fetch != nil }

// File is content to place beside a command.
type File struct {
	// Name is the file's base name in the working directory.
	Name string
	// Size is the content's length in bytes.
	Size int64
	// Open returns a new reader of the content; each host gets its own, so
	// the content is streamed from its store rather than held per host.
	Open func() (io.ReadCloser, error)
}

// Exit describes how a command ended.
type Exit struct {
	// Code is the exit status, or -1 when the process was killed by a signal.
	Code int
	// Signal is the name of the signal that killed the process ("SIGKILL"), if any.
	Signal string
	// Duration is the wall time from start to exit.
	Duration time.Duration
	// TimedOut is true when the runner killed the process at its deadline.
	TimedOut bool
	// Cancelled is true when the run was cancelled before it finished.
	Cancelled bool
	// Transport, when set, names the transport that ran the command (a
	// selecting transport sets it, also on errors).
	Transport string
	// Files reports what a transfer did (see Transfer).
	Files *FileReport
}

// OutputFunc receives output chunks as they are produced. Implementations
// must be safe for concurrent use: stdout and stderr arrive from different
// goroutines. The slice is only valid during the call.
type OutputFunc func(s Stream, p []byte)

// ValidEnvName reports whether k can name an environment variable passed
// to a command: a shell variable name.
func ValidEnvName(k string) bool {
	if k == "" || (k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
