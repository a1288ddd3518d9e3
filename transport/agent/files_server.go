package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// The minion's file handlers: PutFile and GetFile translate the proto
// messages to calls of the Server's hostfile.Store, which does the work
// on the host, and its errors to status codes. They know nothing of the
// file system.

// files returns the Server's Store, or one with no roots and no journal.
func (s *Server) files() *hostfile.Store {
	if s.Files != nil {
		return s.Files
	}
	return &hostfile.Store{Log: s.Log}
}

// PutFile places a file, directory or symlink atomically (see
// hostfile.Store.Put); see the proto for the exchange. The minion answers
// the header with Done when it needs no content (a directory, a symlink,
// a file it has already), else with Send; it then reads the data messages
// until the client closes its side, and only then puts the file in place
// and answers Done.
func (s *Server) PutFile(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "put file: the first message must be a header")
	}
	log := s.Log.With("dest", h.Dest, "kind", kindName(h.Kind))
	res, err := s.putFile(stream, h)
	if err != nil {
		log.Warn("put file failed", "err", err)
		return err
	}
	log.Info("put file", "changed", res.Changed, "size", h.Size, "backup", res.Backup)
	return nil
}

func (s *Server) putFile(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], h *felixv1.PutFileHeader) (model.PutResult, error) {
	kind, ok := fileKind(h.Kind)
	if !ok {
		return model.PutResult{}, status.Errorf(codes.InvalidArgument, "put %s: unknown kind %d", h.Dest, h.Kind)
	}
	content := &putContent{stream: stream, op: "put " + kind.String() + " " + h.Dest}
	res, err := s.files().Put(stream.Context(), model.PutFile{
		Dest: h.Dest, Kind: kind, Link: h.Link, Root: h.Root, FollowSymlinks: h.FollowSymlinks,
		Size: h.Size, SHA256: h.Sha256, Mode: h.Mode, Owner: h.Owner, Mkdir: h.Mkdir, Backup: h.Backup,
		Open: content.open})
	if err != nil {
		if content.err != nil {
			return model.PutResult{}, content.err // the stream's own failure, as it is
		}
		return model.PutResult{}, fileStatus(err)
	}
	return res, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
		Done: &felixv1.PutFileDone{Changed: res.Changed, Backup: res.Backup}}})
}

// putContent is the content of a PutFile stream: open asks the client for
// it (Send); Read and WriteTo then give the data messages until the client
// closes its side (io.EOF). A failure of the stream, or a message that is
// not data, is kept for the handler to return as it is.
type putContent struct {
	stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse]
	op     string // "put <kind> <dest>", the prefix of error messages
	rest   []byte // what Read has not given yet of the last message
	err    error  // the stream's failure
}

// open sends Send and returns c as the content's reader.
func (c *putContent) open() (io.ReadCloser, error) {
	if err := c.stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Send{Send: &felixv1.PutFileSend{}}}); err != nil {
		c.err = err
		return nil, err
	}
	return c, nil
}

// next returns the next data message's content.
func (c *putContent) next() ([]byte, error) {
	m, err := c.stream.Recv()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		c.err = err
		return nil, err
	}
	d, ok := m.Msg.(*felixv1.PutFileRequest_Data)
	if !ok {
		c.err = status.Errorf(codes.InvalidArgument, "%s: a second header", c.op)
		return nil, c.err
	}
	return d.Data, nil
}

// Read copies the content into p.
func (c *putContent) Read(p []byte) (int, error) {
	for len(c.rest) == 0 {
		b, err := c.next()
		if err != nil {
			return 0, err
		}
		c.rest = b
	}
	n := copy(p, c.rest)
	c.rest = c.rest[n:]
	return n, nil
}

// WriteTo writes each data message to w as it arrives, without a copy.
func (c *putContent) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		b := c.rest
		c.rest = nil
		if len(b) == 0 {
			var err error
			if b, err = c.next(); err == io.EOF {
				return n, nil
			} else if err != nil {
				return n, err
			}
		}
		k, err := w.Write(b)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
}

// Close does nothing: the stream is the handler's.
func (c *putContent) Close() error { return nil }

// GetFile streams a regular file (see hostfile.Store.Get) in chunks, then
// its size and sha256.
func (s *Server) GetFile(req *felixv1.GetFileRequest, stream grpc.ServerStreamingServer[felixv1.GetFileChunk]) error {
	out := &chunkSender{stream: stream}
	n, sum, err := s.files().Get(stream.Context(), model.GetFile{Path: req.Path, FollowSymlinks: req.FollowSymlinks}, out)
	if err != nil {
		if out.err != nil {
			return out.err // the stream's own failure, as it is
		}
		return fileStatus(err)
	}
	s.Log.Info("get file", "path", req.Path, "size", n)
	return stream.Send(&felixv1.GetFileChunk{Msg: &felixv1.GetFileChunk_Trailer{
		Trailer: &felixv1.GetFileTrailer{Size: n, Sha256: sum}}})
}

// chunkSender sends what is written to it as GetFile data messages of at
// most chunkSize bytes. A failure of the stream is kept for the handler
// to return as it is.
type chunkSender struct {
	stream grpc.ServerStreamingServer[felixv1.GetFileChunk]
	msg    felixv1.GetFileChunk_Data
	err    error // the stream's failure
}

// send sends b as one message; Send marshals it before it returns, so b
// is free after.
func (c *chunkSender) send(b []byte) error {
	c.msg.Data = b
	if err := c.stream.Send(&felixv1.GetFileChunk{Msg: &c.msg}); err != nil {
		c.err = err
		return err
	}
	return nil
}

// Write sends p in messages of at most chunkSize bytes.
func (c *chunkSender) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := min(len(p)-n, chunkSize)
		if err := c.send(p[n : n+k]); err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

// ReadFrom reads r to its end through one buffer of chunkSize, sending
// each read as a message.
func (c *chunkSender) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, chunkSize)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if err := c.send(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fileStatus converts an error of the Store to the status the client
// gets, keeping its message: the code of its hostfile kind, Internal when
// it has none (the host failed).
func fileStatus(err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, hostfile.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, hostfile.ErrRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, hostfile.ErrOutside):
		code = codes.PermissionDenied
	case errors.Is(err, hostfile.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, hostfile.ErrCorrupt):
		code = codes.DataLoss
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	return status.Error(code, err.Error())
}

// fileKind converts a header's kind; ok is false for an unknown one.
func fileKind(k felixv1.FileKind) (kind model.FileKind, ok bool) {
	switch k {
	case felixv1.FileKind_FILE_KIND_FILE:
		return model.KindFile, true
	case felixv1.FileKind_FILE_KIND_DIR:
		return model.KindDir, true
	case felixv1.FileKind_FILE_KIND_SYMLINK:
		return model.KindSymlink, true
	}
	return 0, false
}

// kindName names a header's kind for logs: "file", "dir", "symlink" or
// "kind(N)".
func kindName(k felixv1.FileKind) string {
	if kind, ok := fileKind(k); ok {
		return kind.String()
	}
	return fmt.Sprintf("kind(%d)", k)
}
