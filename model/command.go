package model

import (
	"fmt"
	"io"
	"time"
)

// Command is one command line to run on a host.
type Command struct {
	// Line is run with /bin/sh -c (cmd.exe /C on Windows, see Shell). It
	// is the only field ever given to a shell.
	Line string
	// Shell picks the interpreter of Line on a Windows host: "" or "cmd"
	// for cmd.exe /C, "powershell" for PowerShell -Command. Other hosts
	// run /bin/sh and refuse any other value than "".
	Shell string
	// FileName is, on the host that runs the command, the name of the
	// script or file placed in Dir: a Windows runner picks the interpreter
	// by its extension. Empty for a line.
	FileName string
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
	// and Line is empty; transports hand the command to exec.Transfer.
	Push  *Push
	Fetch *Fetch
	// Packages, when set, makes the job a package job: Line is empty and
	// transports hand the command to the package driver, which runs its
	// own fixed commands on the host.
	Packages *PkgSpec
	// Apply, when set, makes the job an apply job: Line is empty and
	// transports hand the command to the state driver.
	Apply *Apply
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
	// Files reports what a transfer did (see exec.Transfer).
	Files *FileReport
	// Packages reports what a package job did.
	Packages *PkgReport
	// Apply reports what an apply job did.
	Apply *ApplyReport
}

// OutputFunc receives output chunks as they are produced. Implementations
// must be safe for concurrent use: stdout and stderr arrive from different
// goroutines. The slice is only valid during the call.
type OutputFunc func(s Stream, p []byte)

// FileKind is what a put places at its destination.
type FileKind uint8

// The kinds of a put. A tree is copied as directories, files and symlinks.
const (
	KindFile    FileKind = iota // a regular file with content
	KindDir                     // a directory (no content)
	KindSymlink                 // a symbolic link to PutFile.Link, stored as is
)

// String returns "file", "dir" or "symlink".
func (k FileKind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ParseFileKind reads a kind as String writes it: "file", "dir" or
// "symlink".
func ParseFileKind(s string) (FileKind, error) {
	for _, k := range []FileKind{KindFile, KindDir, KindSymlink} {
		if s == k.String() {
			return k, nil
		}
	}
	return 0, fmt.Errorf("kind %q: want file, dir or symlink", s)
}

// PutFile is one file, directory or symlink to place at Dest on a host.
type PutFile struct {
	// Dest is the absolute, clean path of the file on the host.
	Dest string
	// Kind is what to place; the zero value is a regular file. A directory
	// is created (or given Mode and Owner when it exists); Size, SHA256 and
	// Open are only for files.
	Kind FileKind
	// Link is a symlink's target, stored as is (never resolved on the
	// host). An existing symlink at Dest is replaced atomically; a
	// directory there is an error.
	Link string
	// Root, when set, is an ancestor directory of Dest (a tree's top): no
	// existing component of Dest below Root may be a symlink, so a tree is
	// never written through a link out of it. Dest itself is checked in
	// any case (see FollowSymlinks).
	Root string
	// FollowSymlinks allows a Dest (and components below Root) that is an
	// existing symlink: the put goes where it points (on a minion still
	// inside its file_roots). Without it such a destination is refused.
	// A KindSymlink put replaces a symlink at Dest rather than following it.
	FollowSymlinks bool
	// Size is the content's length in bytes.
	Size int64
	// SHA256 is the content's sha256 in lower-case hex; the host verifies it
	// before the file is put in place, and skips the transfer when Dest
	// already has it.
	SHA256 string
	// Mode holds the permission bits; 0 keeps an existing file's and means
	// 0644 for a new file, 0755 for a new directory. Symlinks have none.
	Mode uint32
	// Owner is "user:group", resolved on the host; "" leaves it unchanged.
	Owner string
	// Mkdir creates missing parent directories (0755).
	Mkdir bool
	// Backup keeps the old file beside the new one when the content
	// changes (not for a change of mode or owner alone, made in place).
	Backup bool
	// Open returns a new reader of the content; it is called only when the
	// host needs the content.
	Open func() (io.ReadCloser, error)
}

// PutResult says what a put did.
type PutResult struct {
	// Changed is false when the host already had the content (a
	// directory, the same link target), mode and owner.
	Changed bool
	// Backup is the path of the backup of the old file, if one was made.
	Backup string
}

// GetFile names a file to read from a host.
type GetFile struct {
	// Path is the absolute, clean path of a regular file.
	Path string
	// FollowSymlinks reads the file a symlink at Path points to; without
	// it a symlink is refused.
	FollowSymlinks bool
}

// Push is a file transfer job: files (or a tree) placed on every host
// instead of a command run there.
type Push struct {
	// Dest is the absolute, clean destination: the file, or the directory
	// a tree is copied to.
	Dest string
	// Entries are placed in order, each directory before what it holds; a
	// single file is one KindFile entry with Rel ".".
	Entries []PushEntry
	// Owner is "user:group" for every entry; "" leaves owners alone.
	Owner string
	// Mkdir creates Dest's missing parent directories.
	Mkdir bool
	// Backup keeps each replaced file beside its new version.
	Backup bool
	// FollowSymlinks allows destinations that are symlinks (see
	// PutFile.FollowSymlinks).
	FollowSymlinks bool
}

// PushEntry is one file, directory or symlink of a Push.
type PushEntry struct {
	// Rel is the slash-separated path below Push.Dest; "." is Dest itself.
	Rel  string
	Kind FileKind
	// Mode holds the permission bits; 0 keeps an existing entry's (0644
	// for a new file, 0755 for a new directory).
	Mode uint32
	// Size and SHA256 describe a file's content; Open reads it.
	Size   int64
	SHA256 string
	Open   func() (io.ReadCloser, error)
	// Link is a symlink's target.
	Link string
}

// Fetch is a file transfer job that reads one file from every host.
type Fetch struct {
	// Path is the absolute, clean path of a regular file on the hosts.
	Path string
	// FollowSymlinks reads what a symlink at Path points to.
	FollowSymlinks bool
	// Sink returns where one host's copy is written.
	Sink func(host string) (FetchSink, error)
}

// FetchSink receives one host's copy of a fetched file. Exactly one of
// Commit (after the whole, verified content arrived) or Abort is called.
type FetchSink interface {
	io.Writer
	Commit(size int64, sha256 string) error
	Abort()
}
