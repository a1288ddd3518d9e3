package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/exec"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// PutFile places a file, directory or symlink atomically; see the proto
// for the exchange. A file's content goes to a temp file in the
// destination's directory (recorded in the journal while it exists), is
// verified against the announced size and sha256, gets its mode and owner,
// and is renamed over the destination; a symlink is made at a temp name
// and renamed the same way; a directory is made or given its mode and
// owner. Any failure leaves the old destination as it was and removes the
// temp file.
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
	res, err := s.putFile(stream, h, log)
	if err != nil {
		log.Warn("put file failed", "err", err)
		return err
	}
	log.Info("put file", "changed", res.Changed, "size", h.Size, "backup", res.Backup)
	return nil
}

// putSpec is a checked PutFileHeader.
type putSpec struct {
	kind     exec.FileKind
	op       string // "put <kind> <dest>", the prefix of error messages
	size     int64
	sha256   string
	link     string
	mode     fs.FileMode // 0: keep the old one's, or the default for a new one
	uid, gid int         // -1: keep the old one's
}

// fileKind converts a header's kind; ok is false for an unknown one.
func fileKind(k felixv1.FileKind) (kind exec.FileKind, ok bool) {
	switch k {
	case felixv1.FileKind_FILE_KIND_FILE:
		return exec.KindFile, true
	case felixv1.FileKind_FILE_KIND_DIR:
		return exec.KindDir, true
	case felixv1.FileKind_FILE_KIND_SYMLINK:
		return exec.KindSymlink, true
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

// checkPutHeader validates a header and resolves its owner.
func checkPutHeader(h *felixv1.PutFileHeader) (putSpec, error) {
	kind, ok := fileKind(h.Kind)
	if !ok {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "put %s: unknown kind %d", h.Dest, h.Kind)
	}
	op := "put " + kind.String()
	if err := exec.CheckPath(h.Dest); err != nil {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
	}
	op += " " + h.Dest
	sp := putSpec{kind: kind, op: op, size: h.Size, sha256: strings.ToLower(h.Sha256), link: h.Link, uid: -1, gid: -1}
	if kind == exec.KindFile {
		if h.Size < 0 {
			return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: negative size %d", op, h.Size)
		}
		if b, err := hex.DecodeString(sp.sha256); err != nil || len(b) != sha256.Size {
			return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: sha256 %q is not 64 hex digits", op, h.Sha256)
		}
	} else if h.Size != 0 || h.Sha256 != "" {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: a %s has no content, but size is %d and sha256 %q", op, kind, h.Size, h.Sha256)
	}
	switch {
	case kind != exec.KindSymlink && h.Link != "":
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: a link target (%q) is only for a symlink", op, h.Link)
	case kind == exec.KindSymlink && h.Link == "":
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: empty link target", op)
	case strings.ContainsRune(h.Link, 0):
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: link target %q contains NUL", op, h.Link)
	}
	if h.Root != "" {
		if err := checkRoot(h.Root, h.Dest); err != nil {
			return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
		}
	}
	if h.Mode&^0o7777 != 0 {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: mode %#o has bits beyond 07777", op, h.Mode)
	}
	sp.mode = fileMode(h.Mode)
	var err error
	if sp.uid, sp.gid, err = lookupOwner(h.Owner); err != nil {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
	}
	return sp, nil
}

// checkRoot accepts a root that is an absolute, clean path without NUL
// and a strict ancestor of the checked path dest.
func checkRoot(root, dest string) error {
	switch {
	case strings.ContainsRune(root, 0):
		return fmt.Errorf("root %q contains NUL", root)
	case !filepath.IsAbs(root):
		return fmt.Errorf("root %q is not absolute", root)
	case filepath.Clean(root) != root:
		return fmt.Errorf("root %q is not clean (it has .., . or extra slashes)", root)
	case root != "/" && !strings.HasPrefix(dest, root+"/"):
		return fmt.Errorf("root %s is not an ancestor of the destination", root)
	}
	return nil
}

// checkBelowRoot refuses a destination with an existing component strictly
// between the checked root and dest (both excluded) that is a symlink: a
// tree is never written through a link out of it.
func checkBelowRoot(root, dest, op string) error {
	names := strings.Split(strings.TrimPrefix(dest[len(root):], "/"), "/")
	p := root
	for _, name := range names[:len(names)-1] {
		p = filepath.Join(p, name)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return nil // nothing deeper exists; the rest is checked on the way
		case err != nil:
			return status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
		case st.Mode()&fs.ModeSymlink != 0:
			return status.Errorf(codes.FailedPrecondition, "%s: %s is a symlink; refusing to follow it out of the tree (follow_symlinks not asked)", op, p)
		}
	}
	return nil
}

func (s *Server) putFile(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], h *felixv1.PutFileHeader, log *slog.Logger) (exec.PutResult, error) {
	sp, err := checkPutHeader(h)
	if err != nil {
		return exec.PutResult{}, err
	}
	dest, old, err := s.putDest(h, sp)
	if err != nil {
		return exec.PutResult{}, err
	}
	var res exec.PutResult
	switch sp.kind {
	case exec.KindDir:
		res, err = putDir(dest, old, sp, log)
	case exec.KindSymlink:
		res, err = s.putSymlink(dest, old, h.Backup, sp, log)
	default:
		return s.putContent(stream, dest, old, h.Backup, sp, log)
	}
	if err != nil {
		return exec.PutResult{}, err
	}
	return res, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
		Done: &felixv1.PutFileDone{Changed: res.Changed, Backup: res.Backup}}})
}

// putDest finds where a put goes. It checks the components below Root,
// resolves Dest's directory within the FileRoots (making it when Mkdir
// asks), follows a symlink at Dest when allowed (not for a symlink put,
// which replaces it) and checks that what is there suits the kind. It
// returns the resolved destination and what is there (nil for nothing).
func (s *Server) putDest(h *felixv1.PutFileHeader, sp putSpec) (string, fs.FileInfo, error) {
	if h.Root != "" && !h.FollowSymlinks {
		if err := checkBelowRoot(h.Root, h.Dest, sp.op); err != nil {
			return "", nil, err
		}
	}
	dest, dirExists, err := s.resolve(h.Dest)
	if err != nil {
		return "", nil, err
	}
	if !dirExists {
		if !h.Mkdir {
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: directory %s does not exist (mkdir not asked)", sp.op, filepath.Dir(h.Dest))
		}
		if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
		}
	} else if st, err := os.Stat(filepath.Dir(dest)); err != nil || !st.IsDir() {
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: %s is not a directory", sp.op, filepath.Dir(h.Dest))
	}

	old, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dest, nil, nil
	case err != nil:
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
	}
	if old.Mode()&fs.ModeSymlink != 0 && sp.kind != exec.KindSymlink {
		if !h.FollowSymlinks {
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is a symlink; refusing to follow it (follow_symlinks not asked)", sp.op)
		}
		r, err := filepath.EvalSymlinks(dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is a dangling symlink; not writing through it", sp.op)
		case err != nil:
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
		case !s.underRoots(r):
			return "", nil, status.Errorf(codes.PermissionDenied, "%s: the destination is a symlink to %s, outside this minion's file_roots", sp.op, r)
		}
		dest = r
		if old, err = os.Lstat(dest); err != nil {
			return "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
		}
	}
	switch {
	case sp.kind == exec.KindFile && !old.Mode().IsRegular():
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is not a regular file (%s)", sp.op, typeName(old.Mode()))
	case sp.kind == exec.KindDir && !old.IsDir():
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is not a directory (%s)", sp.op, typeName(old.Mode()))
	case sp.kind == exec.KindSymlink && old.IsDir():
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is a directory; refusing to replace it", sp.op)
	case sp.kind == exec.KindSymlink && !old.Mode().IsRegular() && old.Mode()&fs.ModeSymlink == 0:
		return "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is neither a symlink nor a regular file (%s)", sp.op, typeName(old.Mode()))
	}
	return dest, old, nil
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

// putContent puts a regular file at the resolved dest, where old (nil for
// nothing) is the regular file there: Done at once when it already has the
// content, mode and owner, else Send, the content into a temp file and a
// rename over dest.
func (s *Server) putContent(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], dest string, old fs.FileInfo, backup bool, sp putSpec, log *slog.Logger) (exec.PutResult, error) {
	if old != nil {
		same, err := sameFile(dest, old, sp)
		if err != nil {
			return exec.PutResult{}, status.Errorf(codes.Internal, "%s: read the old file: %v", sp.op, err)
		}
		if same {
			return exec.PutResult{}, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{Done: &felixv1.PutFileDone{}}})
		}
	}
	if err := stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Send{Send: &felixv1.PutFileSend{}}}); err != nil {
		return exec.PutResult{}, err
	}

	dir := filepath.Dir(dest)
	tmp := filepath.Join(dir, filepath.Base(exec.PutTempName(dest, randomHex())))
	unjournal, err := s.journal(tmp)
	if err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	defer unjournal() // after the temp file is gone (defers run in reverse)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: create temp file: %v", sp.op, err)
	}
	renamed := false
	defer func() {
		f.Close() // a no-op error after the explicit Close
		if !renamed {
			if err := os.Remove(tmp); err != nil {
				log.Error("remove temp file", "path", tmp, "err", err)
			}
		}
	}()
	if err := receiveContent(stream, f, sp); err != nil {
		return exec.PutResult{}, err
	}
	if err := setAttrs(f, old, sp); err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	if err := f.Sync(); err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: fsync: %v", sp.op, err)
	}
	if err := f.Close(); err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: write: %v", sp.op, err)
	}
	res, err := replace(tmp, dest, backup && old != nil, sp, log)
	if err != nil {
		return res, err
	}
	renamed = true
	return res, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
		Done: &felixv1.PutFileDone{Changed: true, Backup: res.Backup}}})
}

// putDir makes the directory dest, where nothing is (old nil), or gives
// the directory there the mode and owner asked for. A directory it makes
// but cannot give them is removed again.
func putDir(dest string, old fs.FileInfo, sp putSpec, log *slog.Logger) (exec.PutResult, error) {
	made := old == nil
	if made {
		// Private until it has its mode.
		if err := os.Mkdir(dest, 0o700); err != nil {
			return exec.PutResult{}, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
		}
	}
	changed, err := setDirAttrs(dest, made, sp)
	if err != nil {
		if made {
			if rerr := os.Remove(dest); rerr != nil {
				log.Error("remove the directory just made", "path", dest, "err", rerr)
			}
		}
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	if made {
		if err := syncDir(filepath.Dir(dest)); err != nil {
			log.Warn("fsync directory", "dir", filepath.Dir(dest), "err", err)
		}
	}
	return exec.PutResult{Changed: made || changed}, nil
}

// setDirAttrs gives the directory at path (opened without following a
// symlink) the owner and then the mode asked for (0: the one it has, or
// 0755 when made is true); chown may clear set-id bits, so it comes first.
// It reports whether anything changed.
func setDirAttrs(path string, made bool, sp putSpec) (bool, error) {
	d, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer d.Close()
	st, err := d.Stat()
	if err != nil {
		return false, err
	}
	have := st.Mode() & exec.PutModeBits
	mode := sp.mode
	switch {
	case mode != 0:
	case made:
		mode = 0o755
	default:
		mode = have
	}
	changed := false
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && (sp.uid >= 0 && uint32(sp.uid) != sys.Uid || sp.gid >= 0 && uint32(sp.gid) != sys.Gid) {
		if err := d.Chown(sp.uid, sp.gid); err != nil {
			return false, err
		}
		changed = true
	}
	if changed || have != mode {
		if err := d.Chmod(mode); err != nil {
			return false, err
		}
		changed = changed || have != mode
	}
	return changed, nil
}

// putSymlink makes dest a symlink to sp.link, where old (nil for nothing)
// is the symlink or regular file there: unchanged when it is a symlink to
// that target already (its owner set if asked), else a symlink made at a
// temp name (journalled) and renamed over dest. A replaced regular file is
// backed up when backup asks.
func (s *Server) putSymlink(dest string, old fs.FileInfo, backup bool, sp putSpec, log *slog.Logger) (exec.PutResult, error) {
	chown := sp.uid >= 0 || sp.gid >= 0
	if old != nil && old.Mode()&fs.ModeSymlink != 0 {
		cur, err := os.Readlink(dest)
		if err != nil {
			return exec.PutResult{}, status.Errorf(codes.Internal, "%s: read the old link: %v", sp.op, err)
		}
		if cur == sp.link {
			if !chown || sameOwner(old, sp) {
				return exec.PutResult{}, nil
			}
			if err := os.Lchown(dest, sp.uid, sp.gid); err != nil {
				return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
			}
			return exec.PutResult{Changed: true}, nil
		}
	}

	dir := filepath.Dir(dest)
	tmp := filepath.Join(dir, filepath.Base(exec.PutTempName(dest, randomHex())))
	unjournal, err := s.journal(tmp)
	if err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	defer unjournal() // after the temp symlink is gone (defers run in reverse)
	if err := os.Symlink(sp.link, tmp); err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: create temp symlink: %v", sp.op, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			if err := os.Remove(tmp); err != nil {
				log.Error("remove temp symlink", "path", tmp, "err", err)
			}
		}
	}()
	if chown {
		if err := os.Lchown(tmp, sp.uid, sp.gid); err != nil {
			return exec.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
		}
	}
	res, err := replace(tmp, dest, backup && old != nil && old.Mode().IsRegular(), sp, log)
	if err == nil {
		renamed = true
	}
	return res, err
}

// replace renames the finished temp file (or symlink) tmp over dest,
// first keeping the old file as a backup when backup is set, and fsyncs
// the directory.
func replace(tmp, dest string, backup bool, sp putSpec, log *slog.Logger) (exec.PutResult, error) {
	res := exec.PutResult{Changed: true}
	if backup {
		var err error
		if res.Backup, err = backupFile(dest); err != nil {
			return exec.PutResult{}, status.Errorf(codes.Internal, "%s: backup: %v", sp.op, err)
		}
	}
	if err := os.Rename(tmp, dest); err != nil {
		return exec.PutResult{}, status.Errorf(codes.Internal, "%s: rename into place: %v", sp.op, err)
	}
	if dir := filepath.Dir(dest); syncDir(dir) != nil {
		// The file is in place; only its durability across a power loss
		// is in doubt.
		log.Warn("fsync directory", "dir", dir)
	}
	return res, nil
}

// sameOwner reports whether what old describes has the owner asked for.
func sameOwner(old fs.FileInfo, sp putSpec) bool {
	st, ok := old.Sys().(*syscall.Stat_t)
	return !ok || (sp.uid < 0 || uint32(sp.uid) == st.Uid) && (sp.gid < 0 || uint32(sp.gid) == st.Gid)
}

// receiveContent writes the data messages of stream to f until the client
// closes its side, then checks the size and sha256.
func receiveContent(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], f *os.File, sp putSpec) error {
	sum := sha256.New()
	var n int64
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		d, ok := m.Msg.(*felixv1.PutFileRequest_Data)
		if !ok {
			return status.Errorf(codes.InvalidArgument, "%s: a second header", sp.op)
		}
		if n+int64(len(d.Data)) > sp.size {
			return status.Errorf(codes.InvalidArgument, "%s: more content than the announced %d bytes", sp.op, sp.size)
		}
		if _, err := f.Write(d.Data); err != nil {
			return status.Errorf(codes.Internal, "%s: write: %v", sp.op, err)
		}
		sum.Write(d.Data)
		n += int64(len(d.Data))
	}
	if n != sp.size {
		return status.Errorf(codes.InvalidArgument, "%s: got %d bytes of the announced %d", sp.op, n, sp.size)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != sp.sha256 {
		return status.Errorf(codes.DataLoss, "%s: sha256 of the content is %s, not the announced %s", sp.op, got, sp.sha256)
	}
	return nil
}

// setAttrs gives the temp file its owner (asked, or the old file's) and
// then its mode (asked, the old file's, or 0644); chown clears set-id bits,
// so it comes first.
func setAttrs(f *os.File, old fs.FileInfo, sp putSpec) error {
	uid, gid := sp.uid, sp.gid
	mode := sp.mode
	if old != nil {
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if uid < 0 {
				uid = int(st.Uid)
			}
			if gid < 0 {
				gid = int(st.Gid)
			}
		}
		if mode == 0 {
			mode = old.Mode() & exec.PutModeBits
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	cur, err := f.Stat()
	if err != nil {
		return err
	}
	if st, ok := cur.Sys().(*syscall.Stat_t); ok && (uid >= 0 && uid != int(st.Uid) || gid >= 0 && gid != int(st.Gid)) {
		if err := f.Chown(uid, gid); err != nil {
			return err
		}
	}
	return f.Chmod(mode)
}

// sameFile reports whether the regular file at path (described by old)
// already has the content, mode and owner asked for.
func sameFile(path string, old fs.FileInfo, sp putSpec) (bool, error) {
	if old.Size() != sp.size || sp.mode != 0 && old.Mode()&exec.PutModeBits != sp.mode {
		return false, nil
	}
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		if sp.uid >= 0 && uint32(sp.uid) != st.Uid || sp.gid >= 0 && uint32(sp.gid) != st.Gid {
			return false, nil
		}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.CopyBuffer(sum, f, make([]byte, chunkSize)); err != nil {
		return false, err
	}
	return hex.EncodeToString(sum.Sum(nil)) == sp.sha256, nil
}

// backupFile keeps the file at path as path.felix-bak-<UTC time>: a hard
// link where the file system allows one, else a copy with its mode and
// owner.
func backupFile(path string) (string, error) {
	bak := exec.PutBackupName(path, time.Now())
	if err := os.Link(path, bak); err == nil {
		return bak, nil
	}
	src, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return "", err
	}
	dst, err := os.OpenFile(bak, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	err = func() error {
		if _, err := io.CopyBuffer(dst, src, make([]byte, chunkSize)); err != nil {
			return err
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			if err := dst.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
		if err := dst.Chmod(st.Mode() & exec.PutModeBits); err != nil {
			return err
		}
		return dst.Sync()
	}()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(bak)
		return "", err
	}
	return bak, nil
}

// GetFile streams a regular file in chunks, then its size and sha256.
// Symlinks are refused, not followed.
func (s *Server) GetFile(req *felixv1.GetFileRequest, stream grpc.ServerStreamingServer[felixv1.GetFileChunk]) error {
	if err := exec.CheckPath(req.Path); err != nil {
		return status.Errorf(codes.InvalidArgument, "get file: %v", err)
	}
	path, dirExists, err := s.resolve(req.Path)
	if err != nil {
		return err
	}
	if !dirExists {
		return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
	case err != nil:
		return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
	case !st.Mode().IsRegular():
		return status.Errorf(codes.FailedPrecondition, "get file %s: not a regular file (%s)", req.Path, st.Mode().Type())
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return status.Errorf(codes.FailedPrecondition, "get file %s: not a regular file", req.Path)
	}
	sum := sha256.New()
	buf := make([]byte, chunkSize)
	data := &felixv1.GetFileChunk_Data{}
	msg := &felixv1.GetFileChunk{Msg: data}
	var n int64
	for {
		k, err := f.Read(buf)
		if k > 0 {
			sum.Write(buf[:k])
			data.Data = buf[:k] // Send marshals before it returns
			if err := stream.Send(msg); err != nil {
				return err
			}
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return status.Errorf(codes.Internal, "get file %s: read after %d bytes: %v", req.Path, n, err)
		}
	}
	s.Log.Info("get file", "path", req.Path, "size", n)
	return stream.Send(&felixv1.GetFileChunk{Msg: &felixv1.GetFileChunk_Trailer{
		Trailer: &felixv1.GetFileTrailer{Size: n, Sha256: hex.EncodeToString(sum.Sum(nil))}}})
}

// resolve resolves the symlinks of a checked path's directory, as far as
// it exists, and checks the result against the FileRoots. It returns the
// resolved path (its last element is never resolved) and whether its
// directory exists.
func (s *Server) resolve(p string) (string, bool, error) {
	d := filepath.Dir(p)
	var missing []string
	for {
		r, err := filepath.EvalSymlinks(d)
		if err == nil {
			d = r
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || d == "/" {
			return "", false, status.Errorf(codes.FailedPrecondition, "%s: %v", p, err)
		}
		missing = append(missing, filepath.Base(d))
		d = filepath.Dir(d)
	}
	slices.Reverse(missing)
	resolved := filepath.Join(append(append([]string{d}, missing...), filepath.Base(p))...)
	if !s.underRoots(resolved) {
		return "", false, status.Errorf(codes.PermissionDenied, "%s is outside this minion's file_roots", p)
	}
	return resolved, len(missing) == 0, nil
}

// underRoots reports whether the resolved path p is inside one of the
// FileRoots (their symlinks resolved too), or there are none.
func (s *Server) underRoots(p string) bool {
	if len(s.FileRoots) == 0 {
		return true
	}
	for _, root := range s.FileRoots {
		r, err := filepath.EvalSymlinks(root)
		if err != nil {
			r = filepath.Clean(root)
		}
		if r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// journal records tmp in a new file of JournalDir and returns what removes
// that record.
func (s *Server) journal(tmp string) (func(), error) {
	if s.JournalDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(s.JournalDir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	name := filepath.Join(s.JournalDir, randomHex())
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	_, err = f.WriteString(tmp + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return nil, fmt.Errorf("journal: %w", err)
	}
	return func() {
		if err := os.Remove(name); err != nil {
			s.Log.Error("remove journal entry", "path", name, "err", err)
		}
	}, nil
}

// SweepTemp removes the temp files and symlinks of transfers a crash
// interrupted, as listed in JournalDir, and their journal entries. Only a
// regular file or symlink named like a temp file is ever removed (a
// symlink itself, never what it points to). Call it before serving.
func (s *Server) SweepTemp() error {
	if s.JournalDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.JournalDir, 0o700); err != nil {
		return fmt.Errorf("sweep temp files: %w", err)
	}
	ents, err := os.ReadDir(s.JournalDir)
	if err != nil {
		return fmt.Errorf("sweep temp files: %w", err)
	}
	var errs []error
	for _, e := range ents {
		entry := filepath.Join(s.JournalDir, e.Name())
		b, err := readSmall(entry, 4096)
		if err != nil {
			errs = append(errs, fmt.Errorf("sweep temp files: %w", err))
			continue
		}
		tmp := strings.TrimSpace(string(b))
		if exec.CheckPath(tmp) == nil && strings.HasPrefix(filepath.Base(tmp), exec.PutTempPrefix) {
			st, err := os.Lstat(tmp)
			switch {
			case errors.Is(err, fs.ErrNotExist):
			case err != nil:
				errs = append(errs, fmt.Errorf("sweep temp file %s: %w", tmp, err))
				continue
			case !st.Mode().IsRegular() && st.Mode()&fs.ModeSymlink == 0:
				s.Log.Warn("journalled temp file is neither a regular file nor a symlink; left alone", "path", tmp)
			default:
				if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("sweep temp file: %w", err))
					continue
				}
				s.Log.Info("removed the temp file of an interrupted transfer", "path", tmp)
			}
		} else {
			s.Log.Warn("journal entry names no temp file; ignored", "entry", entry, "content", tmp)
		}
		if err := os.Remove(entry); err != nil {
			errs = append(errs, fmt.Errorf("sweep temp files: %w", err))
		}
	}
	return errors.Join(errs...)
}

// readSmall reads a file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// syncDir fsyncs a directory, making a rename in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// fileMode converts Unix permission bits (07777) to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// lookupOwner resolves "user:group" (either part may be empty, meaning
// unchanged; "user" alone is the user) to ids, -1 for an unchanged part.
// Names and numeric ids must both exist on the host.
func lookupOwner(owner string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" {
		return uid, gid, nil
	}
	un, gn, _ := strings.Cut(owner, ":")
	if un == "" && gn == "" {
		return -1, -1, fmt.Errorf("owner %q names neither user nor group", owner)
	}
	if un != "" {
		u, err := user.Lookup(un)
		if err != nil {
			if _, nerr := strconv.Atoi(un); nerr != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			if u, err = user.LookupId(un); err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return -1, -1, fmt.Errorf("owner %q: uid %q: %w", owner, u.Uid, err)
		}
	}
	if gn != "" {
		g, err := user.LookupGroup(gn)
		if err != nil {
			if _, nerr := strconv.Atoi(gn); nerr != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			if g, err = user.LookupGroupId(gn); err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return -1, -1, fmt.Errorf("owner %q: gid %q: %w", owner, g.Gid, err)
		}
	}
	return uid, gid, nil
}

// randomHex returns 16 random hex digits.
func randomHex() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Put places f at f.Dest on the minion. For a file the minion first
// compares what it has: when Dest already has the content, mode and owner,
// Put returns Changed false without calling f.Open. Otherwise the content
// is streamed in chunks through one reused buffer, never whole. If it
// cannot be read completely the stream is cancelled before the client
// closes its side, so the minion, which puts the file in place only after
// that close, changes nothing. A directory or symlink has no content: the
// minion answers the header at once.
func (p *Pool) Put(ctx context.Context, t exec.Target, f exec.PutFile) (exec.PutResult, error) {
	content := f.Kind == exec.KindFile
	if content && (f.Open == nil || f.Size < 0) {
		return exec.PutResult{}, fmt.Errorf("put %s on minion %s: no content or a negative size", f.Dest, t.ID)
	}
	cl, err := p.client(t)
	if err != nil {
		return exec.PutResult{}, err
	}
	op := "put " + f.Dest + " on"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// As for Exec, only a stream that could not be opened is "unreachable".
	stream, err := cl.PutFile(ctx)
	if err != nil {
		return exec.PutResult{}, rpcError(op, t, err, true)
	}
	err = stream.Send(&felixv1.PutFileRequest{Msg: &felixv1.PutFileRequest_Header{Header: &felixv1.PutFileHeader{
		Dest: f.Dest, Kind: protoKind(f.Kind), Size: f.Size, Sha256: f.SHA256, Mode: f.Mode, Owner: f.Owner,
		Mkdir: f.Mkdir, Backup: f.Backup, Link: f.Link, Root: f.Root, FollowSymlinks: f.FollowSymlinks}}})
	if err != nil && err != io.EOF { // on io.EOF the minion ended the stream; Recv says why
		return exec.PutResult{}, rpcError(op, t, err, false)
	}
	resp, err := stream.Recv()
	if err != nil {
		return exec.PutResult{}, rpcError(op, t, err, false)
	}
	switch m := resp.Msg.(type) {
	case *felixv1.PutFileResponse_Done:
		return exec.PutResult{Changed: m.Done.Changed, Backup: m.Done.Backup}, nil
	case *felixv1.PutFileResponse_Send:
		if !content {
			return exec.PutResult{}, fmt.Errorf("put %s on minion %s: the minion asked for the content of a %s", f.Dest, t.ID, f.Kind)
		}
	default:
		return exec.PutResult{}, fmt.Errorf("put %s on minion %s: unexpected answer %T", f.Dest, t.ID, resp.Msg)
	}

	r, err := f.Open()
	if err != nil {
		cancel()
		return exec.PutResult{}, fmt.Errorf("put %s on minion %s: open the content: %w (the file was not changed)", f.Dest, t.ID, err)
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
			return exec.PutResult{}, rpcError(op, t, err, false)
		}
	case errors.As(sendErr, &readErr):
		cancel() // before anything else: the minion must not put the file in place
		return exec.PutResult{}, fmt.Errorf("put %s on minion %s: %w (the file was not changed)", f.Dest, t.ID, sendErr)
	case sendErr == io.EOF:
		// The minion ended the stream early; Recv says why.
	default:
		return exec.PutResult{}, rpcError(op, t, sendErr, false)
	}
	resp, err = stream.Recv()
	if err != nil {
		return exec.PutResult{}, rpcError(op, t, err, false)
	}
	done := resp.GetDone()
	if done == nil {
		return exec.PutResult{}, fmt.Errorf("put %s on minion %s: unexpected answer %T", f.Dest, t.ID, resp.Msg)
	}
	return exec.PutResult{Changed: done.Changed, Backup: done.Backup}, nil
}

// protoKind converts a put's kind for the wire. An unknown kind keeps its
// number, which the minion refuses.
func protoKind(k exec.FileKind) felixv1.FileKind {
	switch k {
	case exec.KindFile:
		return felixv1.FileKind_FILE_KIND_FILE
	case exec.KindDir:
		return felixv1.FileKind_FILE_KIND_DIR
	case exec.KindSymlink:
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
func (p *Pool) Get(ctx context.Context, t exec.Target, path string, w io.Writer) (int64, string, error) {
	cl, err := p.client(t)
	if err != nil {
		return 0, "", err
	}
	op := "get " + path + " from"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.GetFile(ctx, &felixv1.GetFileRequest{Path: path})
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
