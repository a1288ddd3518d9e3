package agent

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// TestPutFileKinds puts a directory and a symlink through the pool: the
// kinds cross the wire, and the minion answers without asking for
// content.
func TestPutFileKinds(t *testing.T) {
	journal := t.TempDir()
	h := newHarness(t, withFiles(journal))
	ctx := testCtx(t)
	dir := t.TempDir()
	noContent := func() (io.ReadCloser, error) { return nil, errors.New("no content for this kind") }
	for _, f := range []model.PutFile{
		{Dest: dir + "/d", Kind: model.KindDir, Mode: 0o750, Open: noContent},
		{Dest: dir + "/l", Kind: model.KindSymlink, Link: "d", Open: noContent},
	} {
		for i, want := range []bool{true, false} {
			if res, err := h.pool.Put(ctx, h.target, f); err != nil || res.Changed != want {
				t.Fatalf("Put %s %s (#%d) = %+v, %v; want changed %v", f.Kind, f.Dest, i+1, res, err, want)
			}
		}
	}
	if m := modeOf(t, dir+"/d"); m != os.ModeDir|0o750 {
		t.Errorf("d mode = %v; want drwxr-x---", m)
	}
	if l, err := os.Readlink(dir + "/l"); err != nil || l != "d" {
		t.Errorf("l -> %q, %v; want d", l, err)
	}
	if got := names(t, journal); len(got) != 0 {
		t.Errorf("journal holds %v; want nothing", got)
	}
}

// TestPutFileRefused checks that puts the minion refuses come back as
// errors with its message, never "unreachable", the content never opened.
func TestPutFileRefused(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, root+"/escape"); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withFiles(t.TempDir(), root))
	ctx := testCtx(t)
	tests := []struct {
		name string
		f    model.PutFile
		want string
	}{
		{name: "relative", f: putBytes("sub/rel", []byte("x"), nil), want: "put file: path \"sub/rel\" is not absolute"},
		{name: "outside the roots", f: putBytes(outside+"/f", []byte("x"), nil), want: "is outside this minion's file_roots"},
		{name: "through a symlink out of the roots", f: putBytes(root+"/escape/f", []byte("x"), nil), want: "outside"},
		{name: "missing directory", f: putBytes(root+"/none/f", []byte("x"), nil), want: "does not exist (mkdir not asked)"},
		{name: "unknown kind", f: model.PutFile{Dest: root + "/k", Kind: 7}, want: "put " + root + "/k: unknown kind 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opened atomic.Int64
			if open := tt.f.Open; open != nil {
				tt.f.Open = func() (io.ReadCloser, error) {
					opened.Add(1)
					return open()
				}
			}
			_, err := h.pool.Put(ctx, h.target, tt.f)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "on minion m1") {
				t.Fatalf("Put = %v; want an error on minion m1 with %q", err, tt.want)
			}
			if errors.Is(err, exec.ErrUnreachable) {
				t.Errorf("Put = %v; must not be unreachable", err)
			}
			if n := opened.Load(); n != 0 {
				t.Errorf("content opened %d times; want 0", n)
			}
		})
	}
	if got := names(t, outside); len(got) != 0 {
		t.Errorf("outside holds %v; want nothing", got)
	}
}

// rawPut runs a PutFile exchange by hand: msgs are sent (after the Send
// answer when wantSend), the client's side closed, and the final answer's
// error returned.
func rawPut(t *testing.T, h *harness, wantSend bool, msgs ...*felixv1.PutFileRequest) error {
	t.Helper()
	cl, _, err := h.pool.client(testCtx(t), h.target)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := cl.PutFile(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		if err := stream.Send(m); err != nil && err != io.EOF {
			t.Fatalf("send #%d: %v", i, err)
		}
		if i == 0 && wantSend {
			resp, err := stream.Recv()
			if err != nil || resp.GetSend() == nil {
				t.Fatalf("answer to the header = %v, %v; want Send", resp, err)
			}
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if resp.GetDone() != nil {
			return nil
		}
	}
}

func header(h *felixv1.PutFileHeader) *felixv1.PutFileRequest {
	return &felixv1.PutFileRequest{Msg: &felixv1.PutFileRequest_Header{Header: h}}
}

func data(b string) *felixv1.PutFileRequest {
	return &felixv1.PutFileRequest{Msg: &felixv1.PutFileRequest_Data{Data: []byte(b)}}
}

// TestFileStatusCodes checks the status code of each kind of failure of
// PutFile and GetFile, and that its message is the Store's.
func TestFileStatusCodes(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Mkdir(root+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, withFiles(t.TempDir(), root))
	file := func(dest, content string) *felixv1.PutFileHeader {
		return &felixv1.PutFileHeader{Dest: dest, Size: int64(len(content)), Sha256: sha256Hex([]byte(content))}
	}
	puts := []struct {
		name     string
		wantSend bool
		msgs     []*felixv1.PutFileRequest
		code     codes.Code
		want     string
	}{
		{name: "no header", msgs: []*felixv1.PutFileRequest{data("x")}, code: codes.InvalidArgument, want: "the first message must be a header"},
		{name: "unknown kind", msgs: []*felixv1.PutFileRequest{header(&felixv1.PutFileHeader{Dest: root + "/k", Kind: 7})},
			code: codes.InvalidArgument, want: "unknown kind 7"},
		{name: "bad path", msgs: []*felixv1.PutFileRequest{header(file("rel", "x"))}, code: codes.InvalidArgument, want: "not absolute"},
		{name: "missing directory", msgs: []*felixv1.PutFileRequest{header(file(root+"/none/f", "x"))},
			code: codes.FailedPrecondition, want: "does not exist"},
		{name: "outside the roots", msgs: []*felixv1.PutFileRequest{header(file(outside+"/f", "x"))},
			code: codes.PermissionDenied, want: "outside this minion's file_roots"},
		{name: "sha256 mismatch", wantSend: true, msgs: []*felixv1.PutFileRequest{
			header(file(root+"/f", "abc")), data("abd")}, code: codes.DataLoss, want: "sha256 of the content is"},
		{name: "more content than announced", wantSend: true, msgs: []*felixv1.PutFileRequest{
			header(file(root+"/f", "abc")), data("ab"), data("cd")}, code: codes.InvalidArgument, want: "more content than the announced 3 bytes"},
		{name: "a second header", wantSend: true, msgs: []*felixv1.PutFileRequest{
			header(file(root+"/f", "abc")), data("a"), header(file(root+"/f", "abc"))},
			code: codes.InvalidArgument, want: "put file " + root + "/f: a second header"},
	}
	for _, tt := range puts {
		t.Run("put "+tt.name, func(t *testing.T) {
			err := rawPut(t, h, tt.wantSend, tt.msgs...)
			if st, _ := status.FromError(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.want) {
				t.Errorf("PutFile = %v; want %v with %q", err, tt.code, tt.want)
			}
		})
	}
	if got := names(t, root); len(got) != 1 {
		t.Errorf("root holds %v; want only sub", got)
	}

	cl, _, err := h.pool.client(testCtx(t), h.target)
	if err != nil {
		t.Fatal(err)
	}
	gets := []struct {
		path string
		code codes.Code
		want string
	}{
		{path: "rel", code: codes.InvalidArgument, want: "get file: path \"rel\" is not absolute"},
		{path: root + "/missing", code: codes.NotFound, want: "no such file"},
		{path: root + "/sub", code: codes.FailedPrecondition, want: "not a regular file"},
		{path: outside + "/f", code: codes.PermissionDenied, want: "outside this minion's file_roots"},
	}
	for _, tt := range gets {
		stream, err := cl.GetFile(testCtx(t), &felixv1.GetFileRequest{Path: tt.path})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		if st, _ := status.FromError(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.want) {
			t.Errorf("GetFile(%s) = %v; want %v with %q", tt.path, err, tt.code, tt.want)
		}
	}

	t.Run("put failing on the host", func(t *testing.T) {
		notDir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(notDir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, withFiles(notDir+"/journal")) // the journal cannot be made
		err := rawPut(t, h, true, header(file(t.TempDir()+"/f", "abc")), data("abc"))
		if st, _ := status.FromError(err); st.Code() != codes.Internal || !strings.Contains(st.Message(), "journal") {
			t.Errorf("PutFile with a broken journal = %v; want Internal naming the journal", err)
		}
	})
}

// fakePutStream is the server side of a PutFile stream holding msgs.
type fakePutStream struct {
	grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse]
	msgs []*felixv1.PutFileRequest
}

func (f *fakePutStream) Recv() (*felixv1.PutFileRequest, error) {
	if len(f.msgs) == 0 {
		return nil, io.EOF
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}

// fakeGetStream is the server side of a GetFile stream, gathering what is
// sent.
type fakeGetStream struct {
	grpc.ServerStreamingServer[felixv1.GetFileChunk]
	chunks []string
}

func (f *fakeGetStream) Send(m *felixv1.GetFileChunk) error {
	f.chunks = append(f.chunks, string(m.GetData()))
	return nil
}

// TestFileStreams checks the readers and writers the handlers give the
// Store: a PutFile's content read in small pieces and then written on,
// empty messages skipped, and GetFile data split into chunkSize messages.
func TestFileStreams(t *testing.T) {
	in := &putContent{stream: &fakePutStream{msgs: []*felixv1.PutFileRequest{data(""), data("hello "), data(""), data("world"), data("!")}}}
	p := make([]byte, 4)
	n, err := in.Read(p) // past an empty message, and part of the next
	if err != nil || string(p[:n]) != "hell" {
		t.Fatalf("Read = %q, %v; want %q", p[:n], err, "hell")
	}
	var got bytes.Buffer
	if n, err := in.WriteTo(&got); err != nil || n != 8 || got.String() != "o world!" {
		t.Errorf("WriteTo = %d, %v, wrote %q; want 8 bytes, %q", n, err, got.String(), "o world!")
	}
	if n, err := in.Read(p); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
	}
	second := &putContent{op: "put file /f", stream: &fakePutStream{msgs: []*felixv1.PutFileRequest{header(&felixv1.PutFileHeader{})}}}
	if _, err := second.Read(p); status.Code(err) != codes.InvalidArgument || err != second.err {
		t.Errorf("Read of a second header = %v; want InvalidArgument, kept for the handler", err)
	}

	out := &fakeGetStream{}
	w := &chunkSender{stream: out}
	big := strings.Repeat("x", 2*chunkSize+1)
	if n, err := w.Write([]byte(big)); err != nil || n != len(big) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if n, err := w.ReadFrom(strings.NewReader("tail")); err != nil || n != 4 {
		t.Fatalf("ReadFrom = %d, %v", n, err)
	}
	var sizes []int
	for _, c := range out.chunks {
		sizes = append(sizes, len(c))
	}
	if want := []int{chunkSize, chunkSize, 1, 4}; !slices.Equal(sizes, want) || strings.Join(out.chunks, "") != big+"tail" {
		t.Errorf("sent chunks of %v bytes; want %v and the same content", sizes, want)
	}
}
