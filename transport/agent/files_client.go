package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Put places f at f.Dest on the minion. For a file the minion first
// compares what it has: when Dest already has the content, mode and owner,
// Put returns Changed false without calling f.Open; when it has the
// content but another mode or owner, the minion sets them in place and
// Put returns Changed true (no backup), again without calling f.Open. Otherwise the content
// is streamed in chunks through one reused buffer, never whole. If it
// cannot be read completely the stream is cancelled before the client
// closes its side, so the minion, which puts the file in place only after
// that close, changes nothing. A directory or symlink has no content: the
// minion answers the header at once.
func (p *Pool) Put(ctx context.Context, t model.Target, f model.PutFile) (model.PutResult, error) {
	content := f.Kind == model.KindFile
	if content && (f.Open == nil || f.Size < 0) {
		return model.PutResult{}, fmt.Errorf("put %s on minion %s: no content or a negative size", f.Dest, t.ID)
	}
	cl, release, err := p.client(ctx, t)
	if err != nil {
		return model.PutResult{}, err
	}
	defer release()
	op := "put " + f.Dest + " on"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// As for Exec, only a stream that could not be opened is "unreachable".
	stream, err := cl.PutFile(ctx)
	if err != nil {
		return model.PutResult{}, rpcError(op, t, err, true)
	}
	err = stream.Send(&felixv1.PutFileRequest{Msg: &felixv1.PutFileRequest_Header{Header: &felixv1.PutFileHeader{
		Dest: f.Dest, Kind: protoKind(f.Kind), Size: f.Size, Sha256: f.SHA256, Mode: f.Mode, Owner: f.Owner,
		Mkdir: f.Mkdir, Backup: f.Backup, Link: f.Link, Root: f.Root, FollowSymlinks: f.FollowSymlinks}}})
	if err != nil && err != io.EOF { // on io.EOF the minion ended the stream; Recv says why
		return model.PutResult{}, rpcError(op, t, err, false)
	}
	resp, err := stream.Recv()
	if err != nil {
		return model.PutResult{}, rpcError(op, t, err, false)
	}
	switch m := resp.Msg.(type) {
	case *felixv1.PutFileResponse_Done:
		return model.PutResult{Changed: m.Done.Changed, Backup: m.Done.Backup}, nil
	case *felixv1.PutFileResponse_Send:
		if !content {
			return model.PutResult{}, fmt.Errorf("put %s on minion %s: the minion asked for the content of a %s", f.Dest, t.ID, f.Kind)
		}
	default:
		return model.PutResult{}, fmt.Errorf("put %s on minion %s: unexpected answer %T", f.Dest, t.ID, resp.Msg)
	}

	r, err := f.Open()
	if err != nil {
		cancel()
		return model.PutResult{}, fmt.Errorf("put %s on minion %s: open the content: %w (the file was not changed)", f.Dest, t.ID, err)
	}
	defer r.Close()
	data := &felixv1.PutFileRequest_Data{}
	msg := &felixv1.PutFileRequest{Msg: data}
	sendErr := sendChunks(r, f.Size, func(b []byte) error {
		data.Data = b // Send marshals before it returns, so b is free after
		return stream.Send(msg)
	})
	var readErr *fileReadError
	switch {
	case sendErr == nil:
		if err := stream.CloseSend(); err != nil {
			return model.PutResult{}, rpcError(op, t, err, false)
		}
	case errors.As(sendErr, &readErr):
		cancel() // before anything else: the minion must not put the file in place
		return model.PutResult{}, fmt.Errorf("put %s on minion %s: %w (the file was not changed)", f.Dest, t.ID, sendErr)
	case sendErr == io.EOF:
		// The minion ended the stream early; Recv says why.
	default:
		return model.PutResult{}, rpcError(op, t, sendErr, false)
	}
	resp, err = stream.Recv()
	if err != nil {
		return model.PutResult{}, rpcError(op, t, err, false)
	}
	done := resp.GetDone()
	if done == nil {
		return model.PutResult{}, fmt.Errorf("put %s on minion %s: unexpected answer %T", f.Dest, t.ID, resp.Msg)
	}
	return model.PutResult{Changed: done.Changed, Backup: done.Backup}, nil
}

// protoKind converts a put's kind for the wire. An unknown kind keeps its
// number, which the minion refuses.
func protoKind(k model.FileKind) felixv1.FileKind {
	switch k {
	case model.KindFile:
		return felixv1.FileKind_FILE_KIND_FILE
	case model.KindDir:
		return felixv1.FileKind_FILE_KIND_DIR
	case model.KindSymlink:
		return felixv1.FileKind_FILE_KIND_SYMLINK
	}
	return felixv1.FileKind(k)
}

// sendChunks reads r, which must hold exactly size bytes, and passes it to
// send in chunks of chunkSize through one buffer. A failure of send is
// returned as is; a read failure or a size mismatch as a *fileReadError.
func sendChunks(r io.Reader, size int64, send func([]byte) error) error {
	buf := make([]byte, chunkSize)
	// One byte more than announced is read to notice a longer content.
	lr := io.LimitReader(r, min(size, math.MaxInt64-1)+1)
	var sent int64
	for {
		n, err := io.ReadFull(lr, buf)
		if n > 0 {
			if sent+int64(n) > size {
				return &fileReadError{fmt.Errorf("content is longer than its size %d", size)}
			}
			if err := send(buf[:n]); err != nil {
				return err
			}
			sent += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return &fileReadError{fmt.Errorf("read the content after %d bytes: %w", sent, err)}
		}
	}
	if sent != size {
		return &fileReadError{fmt.Errorf("content has %d bytes, not its size %d", sent, size)}
	}
	return nil
}

// Get streams the file at path on the minion to w and returns its size
// and sha256 (hex), checked against the minion's trailer. On an error w
// may have received part of the content.
func (p *Pool) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	path := g.Path
	cl, release, err := p.client(ctx, t)
	if err != nil {
		return 0, "", err
	}
	defer release()
	op := "get " + path + " from"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.GetFile(ctx, &felixv1.GetFileRequest{Path: path, FollowSymlinks: g.FollowSymlinks})
	if err != nil {
		return 0, "", rpcError(op, t, err, true)
	}
	sum := sha256.New()
	var n int64
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return n, "", fmt.Errorf("get %s from minion %s: stream ended without a trailer", path, t.ID)
		}
		if err != nil {
			return n, "", rpcError(op, t, err, false)
		}
		switch m := m.Msg.(type) {
		case *felixv1.GetFileChunk_Data:
			if _, err := w.Write(m.Data); err != nil {
				return n, "", fmt.Errorf("get %s from minion %s: write: %w", path, t.ID, err)
			}
			sum.Write(m.Data)
			n += int64(len(m.Data))
		case *felixv1.GetFileChunk_Trailer:
			got := hex.EncodeToString(sum.Sum(nil))
			if m.Trailer.Size != n || m.Trailer.Sha256 != got {
				return n, "", fmt.Errorf("get %s from minion %s: received %d bytes with sha256 %s; the minion sent %d bytes with sha256 %s",
					path, t.ID, n, got, m.Trailer.Size, m.Trailer.Sha256)
			}
			return n, got, nil
		}
	}
}
