package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
)

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

// FileTransport places files on one host and reads them back. The agent
// (gRPC) and agentless (SFTP) transports satisfy it.
type FileTransport interface {
	// Put places f on t. It returns an error wrapping ErrUnreachable when
	// nothing was sent to the host.
	Put(ctx context.Context, t Target, f PutFile) (PutResult, error)
	// Get streams the regular file g.Path on t to w and returns its size
	// and sha256 (lower-case hex), verified end to end.
	Get(ctx context.Context, t Target, g GetFile, w io.Writer) (int64, string, error)
}

// GetFile names a file to read from a host.
type GetFile struct {
	// Path is the absolute, clean path of a regular file.
	Path string
	// FollowSymlinks reads the file a symlink at Path points to; without
	// it a symlink is refused.
	FollowSymlinks bool
}

// PutBatcher is a FileTransport that places many entries through one call,
// reusing what it opened for the first (an SFTP session) for the rest;
// Transfer uses it when a transport has it.
type PutBatcher interface {
	// PutBatch puts files in order and calls done after each with its
	// result; done returning false stops it. It returns an error only
	// when the batch itself failed: nothing reached the host (wrapping
	// ErrUnreachable, before any done call), or ctx ended between files.
	PutBatch(ctx context.Context, t Target, files []PutFile, done func(i int, res PutResult, err error) bool) error
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

// FileReport is what a transfer did on one host.
type FileReport struct {
	// Changed and Unchanged count the entries a push placed and the ones
	// the host already had; a fetch leaves them zero.
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	// Size is the bytes of content pushed (all file entries, sent or not)
	// or fetched.
	Size int64 `json:"size"`
	// SHA256 is the content's sha256 for a single file pushed or fetched.
	SHA256 string `json:"sha256,omitempty"`
}

// Transfer runs cmd's Push or Fetch on t through ft. Each changed entry
// and each backup made is reported on out as a line of stdout. A push
// stops at its first failing entry; entries placed before it stay placed
// (each one atomically). The error wraps ErrUnreachable only when nothing
// at all was sent to the host.
func Transfer(ctx context.Context, ft FileTransport, t Target, cmd Command, out OutputFunc) (Exit, error) {
	switch {
	case cmd.Push != nil:
		return push(ctx, ft, t, cmd.Push, out)
	case cmd.Fetch != nil:
		return fetch(ctx, ft, t, cmd.Fetch)
	}
	return Exit{Code: -1}, errors.New("transfer: neither a push nor a fetch")
}

func push(ctx context.Context, ft FileTransport, t Target, p *Push, out OutputFunc) (Exit, error) {
	var rep FileReport
	files := make([]PutFile, len(p.Entries))
	for i, e := range p.Entries {
		rep.Size += e.Size
		files[i] = PutFile{
			Dest: path.Join(p.Dest, e.Rel), Kind: e.Kind, Size: e.Size, SHA256: e.SHA256,
			Mode: e.Mode, Owner: p.Owner, Backup: p.Backup, Link: e.Link, Open: e.Open,
			FollowSymlinks: p.FollowSymlinks,
		}
		if e.Rel == "." {
			files[i].Mkdir = p.Mkdir
		} else {
			files[i].Root = p.Dest
		}
	}
	if len(p.Entries) == 1 {
		rep.SHA256 = p.Entries[0].SHA256
	}
	exit := Exit{Code: -1, Files: &rep}
	var failed error
	handled := 0
	handle := func(i int, res PutResult, err error) bool {
		handled++
		if err != nil {
			if i == 0 && errors.Is(err, ErrUnreachable) {
				failed = err
				return false
			}
			if errors.Is(err, ErrUnreachable) {
				// Earlier entries were placed: no longer "nothing sent".
				err = errors.New(err.Error())
			}
			failed = fmt.Errorf("%w (%d changed, %d unchanged before it)", err, rep.Changed, rep.Unchanged)
			return false
		}
		if !res.Changed {
			rep.Unchanged++
			return true
		}
		rep.Changed++
		if out != nil {
			out(Stdout, []byte("changed "+files[i].Dest+"\n"))
			if res.Backup != "" {
				out(Stdout, []byte("backup "+res.Backup+"\n"))
			}
		}
		return true
	}
	if b, ok := ft.(PutBatcher); ok {
		if err := b.PutBatch(ctx, t, files, handle); err != nil && failed == nil {
			failed = err
			if handled > 0 {
				failed = fmt.Errorf("push to %s: %w after %d changed, %d unchanged", t.ID, err, rep.Changed, rep.Unchanged)
			}
		}
	} else {
		for i, f := range files {
			if err := ctx.Err(); err != nil {
				failed = fmt.Errorf("push to %s: %w after %d changed, %d unchanged", t.ID, err, rep.Changed, rep.Unchanged)
				break
			}
			res, err := ft.Put(ctx, t, f)
			if !handle(i, res, err) {
				break
			}
		}
	}
	if failed != nil {
		return exit, failed
	}
	exit.Code = 0
	return exit, nil
}

func fetch(ctx context.Context, ft FileTransport, t Target, f *Fetch) (Exit, error) {
	exit := Exit{Code: -1}
	sink, err := f.Sink(t.ID)
	if err != nil {
		// Nothing was asked of the host.
		return exit, fmt.Errorf("fetch %s from %s: %w", f.Path, t.ID, err)
	}
	n, sum, err := ft.Get(ctx, t, GetFile{Path: f.Path, FollowSymlinks: f.FollowSymlinks}, sink)
	if err != nil {
		sink.Abort()
		return exit, err
	}
	if err := sink.Commit(n, sum); err != nil {
		return exit, fmt.Errorf("fetch %s from %s: store the copy: %w", f.Path, t.ID, err)
	}
	exit.Code = 0
	exit.Files = &FileReport{Size: n, SHA256: sum}
	return exit, nil
}
