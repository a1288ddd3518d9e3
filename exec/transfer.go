package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/felix-ops/felix/model"
)

// FileTransport places files on one host and reads them back. The agent
// (gRPC) and agentless (SFTP) transports satisfy it.
type FileTransport interface {
	// Put places f on t. It returns an error wrapping ErrUnreachable when
	// nothing was sent to the host.
	Put(ctx context.Context, t model.Target, f model.PutFile) (model.PutResult, error)
	// Get streams the regular file g.Path on t to w and returns its size
	// and sha256 (lower-case hex), verified end to end.
	Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error)
}

// PutBatcher is a FileTransport that places many entries through one call,
// reusing what it opened for the first (an SFTP session) for the rest;
// Transfer uses it when a transport has it.
type PutBatcher interface {
	// PutBatch puts files in order and calls done after each with its
	// result; done returning false stops it. It returns an error only
	// when the batch itself failed: nothing reached the host (wrapping
	// ErrUnreachable, before any done call), or ctx ended between files.
	PutBatch(ctx context.Context, t model.Target, files []model.PutFile, done func(i int, res model.PutResult, err error) bool) error
}

// Transfer runs cmd's Push or Fetch on t through ft. Each changed entry
// and each backup made is reported on out as a line of stdout. A push
// stops at its first failing entry; entries placed before it stay placed
// (each one atomically). The error wraps ErrUnreachable only when nothing
// at all was sent to the host.
func Transfer(ctx context.Context, ft FileTransport, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	switch {
	case cmd.Push != nil:
		return push(ctx, ft, t, cmd.Push, out)
	case cmd.Fetch != nil:
		return fetch(ctx, ft, t, cmd.Fetch)
	}
	return model.Exit{Code: -1}, errors.New("transfer: neither a push nor a fetch")
}

func push(ctx context.Context, ft FileTransport, t model.Target, p *model.Push, out model.OutputFunc) (model.Exit, error) {
	var rep model.FileReport
	files := make([]model.PutFile, len(p.Entries))
	for i, e := range p.Entries {
		rep.Size += e.Size
		files[i] = model.PutFile{
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
	exit := model.Exit{Code: -1, Files: &rep}
	var failed error
	handled := 0
	handle := func(i int, res model.PutResult, err error) bool {
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
			out(model.Stdout, []byte("changed "+files[i].Dest+"\n"))
			if res.Backup != "" {
				out(model.Stdout, []byte("backup "+res.Backup+"\n"))
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

func fetch(ctx context.Context, ft FileTransport, t model.Target, f *model.Fetch) (model.Exit, error) {
	exit := model.Exit{Code: -1}
	sink, err := f.Sink(t.ID)
	if err != nil {
		// Nothing was asked of the host.
		return exit, fmt.Errorf("fetch %s from %s: %w", f.Path, t.ID, err)
	}
	n, sum, err := ft.Get(ctx, t, model.GetFile{Path: f.Path, FollowSymlinks: f.FollowSymlinks}, sink)
	if err != nil {
		sink.Abort()
		return exit, err
	}
	if err := sink.Commit(n, sum); err != nil {
		return exit, fmt.Errorf("fetch %s from %s: store the copy: %w", f.Path, t.ID, err)
	}
	exit.Code = 0
	exit.Files = &model.FileReport{Size: n, SHA256: sum}
	return exit, nil
}
