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
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// PutFile places a file, directory or symlink atomically; see the proto
// for the exchange. A file's content goes to a temp file in the
// destination's directory (recorded in the journal while it exists), is
// verified against the announced size and sha256, gets its mode and owner,
// and is renamed over the destination; a file that already has the
// content but not the mode or owner asked for gets them in place instead,
// its content never sent. A symlink is made at a temp name and renamed the
// same way; a directory is made or given its mode and owner. A backup is
// made only when a file's content changes. Any failure leaves the old
// destination as it was and removes the temp file.
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
	kind     model.FileKind
	op       string // "put <kind> <dest>", the prefix of error messages
	size     int64
	sha256   string
	link     string
	mode     fs.FileMode // 0: keep the old one's, or the default for a new one
	uid, gid int         // -1: keep the old one's
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

// checkPutHeader validates a header and resolves its owner.
func checkPutHeader(h *felixv1.PutFileHeader) (putSpec, error) {
	kind, ok := fileKind(h.Kind)
	if !ok {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "put %s: unknown kind %d", h.Dest, h.Kind)
	}
	op := "put " + kind.String()
	if err := model.CheckPath(h.Dest); err != nil {
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: %v", op, err)
	}
	op += " " + h.Dest
	sp := putSpec{kind: kind, op: op, size: h.Size, sha256: strings.ToLower(h.Sha256), link: h.Link, uid: -1, gid: -1}
	if kind == model.KindFile {
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
	case kind != model.KindSymlink && h.Link != "":
		return putSpec{}, status.Errorf(codes.InvalidArgument, "%s: a link target (%q) is only for a symlink", op, h.Link)
	case kind == model.KindSymlink && h.Link == "":
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

func (s *Server) putFile(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], h *felixv1.PutFileHeader, log *slog.Logger) (model.PutResult, error) {
	sp, err := checkPutHeader(h)
	if err != nil {
		return model.PutResult{}, err
	}
	d, name, old, err := s.putDest(h, sp)
	if err != nil {
		return model.PutResult{}, err
	}
	defer d.close()
	var res model.PutResult
	switch sp.kind {
	case model.KindDir:
		res, err = putDir(d, name, old, sp, log)
	case model.KindSymlink:
		res, err = s.putSymlink(d, name, old, h.Backup, sp, log)
	default:
		return s.putContent(stream, d, name, old, h.Backup, sp, log)
	}
	if err != nil {
		return model.PutResult{}, err
	}
	return res, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
		Done: &felixv1.PutFileDone{Changed: res.Changed, Backup: res.Backup}}})
}

// putDest finds where a put goes. It checks the components below Root,
// resolves Dest's directory within the FileRoots, follows a symlink at
// Dest when allowed (not for a symlink put, which replaces it), and opens
// the resolved directory by walking it without following any symlink
// (making what is missing when Mkdir asks). Every later change goes
// through that directory's descriptor, so a component swapped for a
// symlink after these checks is refused, never followed. It returns the
// directory, the name in it and what is there (nil for nothing), checked
// to suit the kind.
func (s *Server) putDest(h *felixv1.PutFileHeader, sp putSpec) (*destDir, string, *entry, error) {
	confined := h.Root != "" && !h.FollowSymlinks
	if confined {
		if err := checkBelowRoot(h.Root, h.Dest, sp.op); err != nil {
			return nil, "", nil, err
		}
		if testHookChecked != nil {
			testHookChecked(h.Dest)
		}
	}
	dest, dirExists, err := s.resolve(h.Dest)
	if err != nil {
		return nil, "", nil, err
	}
	if !dirExists && !h.Mkdir {
		return nil, "", nil, status.Errorf(codes.FailedPrecondition, "%s: directory %s does not exist (mkdir not asked)", sp.op, filepath.Dir(h.Dest))
	}
	if confined {
		// checkBelowRoot looked by path, so a symlink made below Root since
		// was resolved like any other. Resolved, Dest must still be Root's
		// resolution and the same names; the walk then holds to them.
		root, _, err := resolvePath(h.Root)
		if err != nil {
			return nil, "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
		}
		if dest != filepath.Join(root, h.Dest[len(h.Root):]) {
			return nil, "", nil, changedError(sp.op, filepath.Dir(h.Dest))
		}
	}

	following := false
	if dirExists && sp.kind != model.KindSymlink {
		if st, err := os.Lstat(dest); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			if !h.FollowSymlinks {
				return nil, "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is a symlink; refusing to follow it (follow_symlinks not asked)", sp.op)
			}
			r, err := filepath.EvalSymlinks(dest)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				return nil, "", nil, status.Errorf(codes.FailedPrecondition, "%s: the destination is a dangling symlink; not writing through it", sp.op)
			case err != nil:
				return nil, "", nil, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
			case !s.underRoots(r):
				return nil, "", nil, status.Errorf(codes.PermissionDenied, "%s: the destination is a symlink to %s, outside this minion's file_roots", sp.op, r)
			}
			dest, following = r, true
		}
	}
	shown := filepath.Dir(h.Dest)
	if following {
		shown = filepath.Dir(dest)
	}
	d, err := openDestDir(filepath.Dir(dest), shown, !dirExists, sp.op)
	if err != nil {
		return nil, "", nil, err
	}
	name := filepath.Base(dest)
	old, err := d.lstat(name)
	if errors.Is(err, fs.ErrNotExist) && !following {
		return d, name, nil, nil
	}
	switch {
	case err != nil:
		err = status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, err)
	case old.mode&fs.ModeSymlink != 0 && sp.kind != model.KindSymlink && !h.FollowSymlinks:
		err = status.Errorf(codes.FailedPrecondition, "%s: the destination is a symlink; refusing to follow it (follow_symlinks not asked)", sp.op)
	case old.mode&fs.ModeSymlink != 0 && sp.kind != model.KindSymlink:
		// It was no symlink, or was followed to what is none, just above.
		err = changedError(sp.op, d.join(name))
	case sp.kind == model.KindFile && !old.mode.IsRegular():
		err = status.Errorf(codes.FailedPrecondition, "%s: the destination is not a regular file (%s)", sp.op, typeName(old.mode))
	case sp.kind == model.KindDir && !old.mode.IsDir():
		err = status.Errorf(codes.FailedPrecondition, "%s: the destination is not a directory (%s)", sp.op, typeName(old.mode))
	case sp.kind == model.KindSymlink && old.mode.IsDir():
		err = status.Errorf(codes.FailedPrecondition, "%s: the destination is a directory; refusing to replace it", sp.op)
	case sp.kind == model.KindSymlink && !old.mode.IsRegular() && old.mode&fs.ModeSymlink == 0:
		err = status.Errorf(codes.FailedPrecondition, "%s: the destination is neither a symlink nor a regular file (%s)", sp.op, typeName(old.mode))
	}
	if err != nil {
		d.close()
		return nil, "", nil, err
	}
	return d, name, old, nil
}

// openDestDir walks to the resolved directory dir of the put op (see
// walkDir) and turns a failure into the put's status: a symlink met is the
// race refused; a component that is no directory is named, as shown when
// it is dir itself.
func openDestDir(dir, shown string, mkdir bool, op string) (*destDir, error) {
	d, err := walkDir(dir, mkdir)
	var pe *fs.PathError
	switch {
	case err == nil:
		return d, nil
	case errors.As(err, &pe) && errors.Is(pe.Err, errSymlinkAppeared):
		return nil, changedError(op, pe.Path)
	case errors.As(err, &pe) && errors.Is(pe.Err, unix.ENOTDIR):
		if pe.Path == dir {
			pe.Path = shown
		}
		return nil, status.Errorf(codes.FailedPrecondition, "%s: %s is not a directory", op, pe.Path)
	}
	return nil, status.Errorf(codes.FailedPrecondition, "%s: %v", op, err)
}

// changedError refuses a put whose path changed between its checks and
// its writes: where the resolution met no symlink at path, the walk did.
func changedError(op, path string) error {
	return status.Errorf(codes.FailedPrecondition, "%s: %s changed while being written (a symlink appeared); refusing", op, path)
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

// putContent puts a regular file at name in d, where old (nil for
// nothing) is the regular file there: Done at once when it already has the
// content (given the mode and owner in place when they differ; see
// keepOld), else Send, the content into a temp file in d and a rename
// over name, backing up the old file when backup asks and the content
// changes: a file whose content stays is never backed up.
func (s *Server) putContent(stream grpc.BidiStreamingServer[felixv1.PutFileRequest, felixv1.PutFileResponse], d *destDir, name string, old *entry, backup bool, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	fate := replaceOld
	if old != nil {
		var err error
		if fate, err = keepOld(d, name, old, sp); err != nil {
			return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
		}
		if fate == keptOld || fate == fixedOld {
			changed := fate == fixedOld
			return model.PutResult{Changed: changed}, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
				Done: &felixv1.PutFileDone{Changed: changed}}})
		}
	}
	if err := stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Send{Send: &felixv1.PutFileSend{}}}); err != nil {
		return model.PutResult{}, err
	}

	tmp := filepath.Base(exec.PutTempName(d.join(name), randomHex()))
	unjournal, err := s.journal(d.join(tmp))
	if err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	defer unjournal() // after the temp file is gone (defers run in reverse)
	f, err := d.create(tmp, 0o600)
	if err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: create temp file: %v", sp.op, err)
	}
	renamed := false
	defer func() {
		f.Close() // a no-op error after the explicit Close
		if !renamed {
			if err := d.remove(tmp, false); err != nil {
				log.Error("remove temp file", "path", d.join(tmp), "err", err)
			}
		}
	}()
	if err := receiveContent(stream, f, sp); err != nil {
		return model.PutResult{}, err
	}
	if err := setAttrs(f, old, sp); err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	if err := f.Sync(); err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: fsync: %v", sp.op, err)
	}
	if err := f.Close(); err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: write: %v", sp.op, err)
	}
	res, err := replace(d, tmp, name, backup && old != nil && fate == replaceOld, sp, log)
	if err != nil {
		return res, err
	}
	renamed = true
	unjournal() // before Done: the temp file is gone, and the client may look at once
	return res, stream.Send(&felixv1.PutFileResponse{Msg: &felixv1.PutFileResponse_Done{
		Done: &felixv1.PutFileDone{Changed: true, Backup: res.Backup}}})
}

// putDir makes the directory name in d, where nothing is (old nil), or
// gives the directory there the mode and owner asked for. A directory it
// makes but cannot give them is removed again.
func putDir(d *destDir, name string, old *entry, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	made := old == nil
	if made {
		// Private until it has its mode.
		if err := unix.Mkdirat(d.fd, name, 0o700); err != nil {
			return model.PutResult{}, status.Errorf(codes.FailedPrecondition, "%s: %v", sp.op, &fs.PathError{Op: "mkdir", Path: d.join(name), Err: err})
		}
	}
	changed, err := setDirAttrs(d, name, made, sp)
	if err != nil {
		if made {
			if rerr := d.remove(name, true); rerr != nil {
				log.Error("remove the directory just made", "path", d.join(name), "err", rerr)
			}
		}
		if errors.Is(err, errSymlinkAppeared) {
			return model.PutResult{}, changedError(sp.op, d.join(name))
		}
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	if made {
		if err := d.sync(); err != nil {
			log.Warn("fsync directory", "dir", d.path, "err", err)
		}
	}
	return model.PutResult{Changed: made || changed}, nil
}

// setDirAttrs gives the directory name in d (opened without following a
// symlink) the owner and then the mode asked for (0: the one it has, or
// 0755 when made is true); chown may clear set-id bits, so it comes first.
// It reports whether anything changed.
func setDirAttrs(d *destDir, name string, made bool, sp putSpec) (bool, error) {
	f, err := d.openDir(name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
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
		if err := f.Chown(sp.uid, sp.gid); err != nil {
			return false, err
		}
		changed = true
	}
	if changed || have != mode {
		if err := f.Chmod(mode); err != nil {
			return false, err
		}
		changed = changed || have != mode
	}
	return changed, nil
}

// putSymlink makes name in d a symlink to sp.link, where old (nil for
// nothing) is the symlink or regular file there: unchanged when it is a
// symlink to that target already (its owner set if asked), else a symlink
// made at a temp name (journalled) and renamed over name. A replaced
// regular file is backed up when backup asks.
func (s *Server) putSymlink(d *destDir, name string, old *entry, backup bool, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	chown := sp.uid >= 0 || sp.gid >= 0
	if old != nil && old.mode&fs.ModeSymlink != 0 {
		cur, err := d.readlink(name)
		if err != nil {
			return model.PutResult{}, status.Errorf(codes.Internal, "%s: read the old link: %v", sp.op, err)
		}
		if cur == sp.link {
			if !chown || sameOwner(old, sp) {
				return model.PutResult{}, nil
			}
			if err := d.lchown(name, sp.uid, sp.gid); err != nil {
				return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
			}
			return model.PutResult{Changed: true}, nil
		}
	}

	tmp := filepath.Base(exec.PutTempName(d.join(name), randomHex()))
	unjournal, err := s.journal(d.join(tmp))
	if err != nil {
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
	}
	defer unjournal() // after the temp symlink is gone (defers run in reverse)
	if err := unix.Symlinkat(sp.link, d.fd, tmp); err != nil {
		err = &os.LinkError{Op: "symlink", Old: sp.link, New: d.join(tmp), Err: err}
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: create temp symlink: %v", sp.op, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			if err := d.remove(tmp, false); err != nil {
				log.Error("remove temp symlink", "path", d.join(tmp), "err", err)
			}
		}
	}()
	if chown {
		if err := d.lchown(tmp, sp.uid, sp.gid); err != nil {
			return model.PutResult{}, status.Errorf(codes.Internal, "%s: %v", sp.op, err)
		}
	}
	res, err := replace(d, tmp, name, backup && old != nil && old.mode.IsRegular(), sp, log)
	if err == nil {
		renamed = true
	}
	return res, err
}

// replace renames the finished temp file (or symlink) tmp over name, both
// in d, first keeping the old file as a backup when backup is set, and
// fsyncs d.
func replace(d *destDir, tmp, name string, backup bool, sp putSpec, log *slog.Logger) (model.PutResult, error) {
	res := model.PutResult{Changed: true}
	if backup {
		var err error
		if res.Backup, err = backupFile(d, name); err != nil {
			return model.PutResult{}, status.Errorf(codes.Internal, "%s: backup: %v", sp.op, err)
		}
	}
	if err := unix.Renameat(d.fd, tmp, d.fd, name); err != nil {
		err = &os.LinkError{Op: "rename", Old: d.join(tmp), New: d.join(name), Err: err}
		return model.PutResult{}, status.Errorf(codes.Internal, "%s: rename into place: %v", sp.op, err)
	}
	if err := d.sync(); err != nil {
		// The file is in place; only its durability across a power loss
		// is in doubt.
		log.Warn("fsync directory", "dir", d.path, "err", err)
	}
	return res, nil
}

// sameOwner reports whether old has the owner asked for.
func sameOwner(old *entry, sp putSpec) bool {
	return (sp.uid < 0 || uint32(sp.uid) == old.uid) && (sp.gid < 0 || uint32(sp.gid) == old.gid)
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
func setAttrs(f *os.File, old *entry, sp putSpec) error {
	uid, gid := sp.uid, sp.gid
	mode := sp.mode
	if old != nil {
		if uid < 0 {
			uid = int(old.uid)
		}
		if gid < 0 {
			gid = int(old.gid)
		}
		if mode == 0 {
			mode = old.mode & exec.PutModeBits
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

// oldFate is what keepOld makes of the regular file at a put's
// destination.
type oldFate int

const (
	replaceOld oldFate = iota // another content, or another file by now: replace it
	keptOld                   // the content, mode and owner asked for: unchanged
	fixedOld                  // the content asked for, given the mode and owner in place
	relinkOld                 // the content asked for, but hard-linked: replace it, no backup
)

// keepOld compares the regular file name in d (described by old) with the
// size and sha256 asked for. A file with that content is kept: when it
// lacks the owner or mode asked for it gets them in place, the owner
// first (chown clears set-id bits) and then the mode (asked, or the one it
// had), through the descriptor its content was hashed by: opened relative
// to d without following a symlink and checked to be old (device and
// inode), so what changes is the file compared, whatever became of its
// name since. A file with another hard link is replaced rather than
// changed in place, so that no other name of it changes too.
func keepOld(d *destDir, name string, old *entry, sp putSpec) (oldFate, error) {
	if old.size != sp.size {
		return replaceOld, nil
	}
	if testHookKeep != nil {
		testHookKeep(d.join(name))
	}
	f, cur, err := d.openRegular(name)
	if err != nil {
		return replaceOld, fmt.Errorf("read the old file: %w", err)
	}
	defer f.Close()
	if cur.dev != old.dev || cur.ino != old.ino {
		return replaceOld, nil // replaced since it was looked at: put it anew
	}
	sum := sha256.New()
	if _, err := io.CopyBuffer(sum, f, make([]byte, chunkSize)); err != nil {
		return replaceOld, fmt.Errorf("read the old file: %w", err)
	}
	if hex.EncodeToString(sum.Sum(nil)) != sp.sha256 {
		return replaceOld, nil
	}
	have := cur.mode & exec.PutModeBits
	mode := sp.mode
	if mode == 0 {
		mode = have
	}
	chown := !sameOwner(cur, sp)
	switch {
	case !chown && have == mode:
		return keptOld, nil
	case cur.nlink != 1:
		return relinkOld, nil
	}
	if chown {
		if err := f.Chown(sp.uid, sp.gid); err != nil {
			return replaceOld, err
		}
	}
	// After a chown even the same mode, for the set-id bits it cleared.
	if err := f.Chmod(mode); err != nil {
		if chown { // back as it was, as far as it goes
			f.Chown(int(cur.uid), int(cur.gid))
			f.Chmod(have)
		}
		return replaceOld, err
	}
	return fixedOld, nil
}

// backupFile keeps the file name in d as name.felix-bak-<UTC time> in d: a
// hard link where the file system allows one, else a copy with its mode
// and owner. It returns the backup's path.
func backupFile(d *destDir, name string) (string, error) {
	bak := filepath.Base(exec.PutBackupName(d.join(name), time.Now()))
	if err := unix.Linkat(d.fd, name, d.fd, bak, 0); err == nil {
		return d.join(bak), nil
	}
	src, st, err := d.openRegular(name)
	if err != nil {
		return "", err
	}
	defer src.Close()
	dst, err := d.create(bak, 0o600)
	if err != nil {
		return "", err
	}
	err = func() error {
		if _, err := io.CopyBuffer(dst, src, make([]byte, chunkSize)); err != nil {
			return err
		}
		if err := dst.Chown(int(st.uid), int(st.gid)); err != nil {
			return err
		}
		if err := dst.Chmod(st.mode & exec.PutModeBits); err != nil {
			return err
		}
		return dst.Sync()
	}()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.remove(bak, false)
		return "", err
	}
	return d.join(bak), nil
}

// GetFile streams a regular file in chunks, then its size and sha256.
// A symlink at the path is refused unless follow_symlinks, which reads its
// resolved target (checked against the FileRoots like any path); the file
// is opened in its resolved directory, walked to without following any.
func (s *Server) GetFile(req *felixv1.GetFileRequest, stream grpc.ServerStreamingServer[felixv1.GetFileChunk]) error {
	if err := model.CheckPath(req.Path); err != nil {
		return status.Errorf(codes.InvalidArgument, "get file: %v", err)
	}
	target := req.Path
	if req.FollowSymlinks {
		r, err := filepath.EvalSymlinks(req.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
			return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
		case err != nil:
			return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
		}
		target = r
	}
	path, dirExists, err := s.resolve(target)
	if err != nil {
		return err
	}
	if !dirExists {
		return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
	}
	d, err := walkDir(filepath.Dir(path), false)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe) && errors.Is(pe.Err, errSymlinkAppeared):
		return status.Errorf(codes.FailedPrecondition, "get file %s: %s changed while being read (a symlink appeared); refusing", req.Path, pe.Path)
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
	case err != nil:
		return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
	}
	defer d.close()
	name := filepath.Base(path)
	st, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR):
		return status.Errorf(codes.NotFound, "get file %s: no such file", req.Path)
	case err != nil:
		return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
	case st.mode&fs.ModeSymlink != 0:
		return status.Errorf(codes.FailedPrecondition, "get file %s: a symlink; refusing to follow it (follow_symlinks not asked)", req.Path)
	case !st.mode.IsRegular():
		return status.Errorf(codes.FailedPrecondition, "get file %s: not a regular file (%s)", req.Path, st.mode.Type())
	}
	f, _, err := d.openRegular(name)
	switch {
	case errors.Is(err, errNotRegular):
		return status.Errorf(codes.FailedPrecondition, "get file %s: not a regular file", req.Path)
	case err != nil:
		return status.Errorf(codes.FailedPrecondition, "get file %s: %v", req.Path, err)
	}
	defer f.Close()
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
	d, missing, err := resolvePath(filepath.Dir(p))
	if err != nil {
		return "", false, status.Errorf(codes.FailedPrecondition, "%s: %v", p, err)
	}
	resolved := filepath.Join(d, filepath.Base(p))
	if !s.underRoots(resolved) {
		return "", false, status.Errorf(codes.PermissionDenied, "%s is outside this minion's file_roots", p)
	}
	return resolved, missing == 0, nil
}

// resolvePath resolves the symlinks of the absolute, clean path p as far
// as it exists and appends the missing rest as it is. It returns the
// result and how many components are missing.
func resolvePath(p string) (string, int, error) {
	d := p
	var missing []string
	for {
		r, err := filepath.EvalSymlinks(d)
		if err == nil {
			d = r
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || d == "/" {
			return "", 0, err
		}
		missing = append(missing, filepath.Base(d))
		d = filepath.Dir(d)
	}
	slices.Reverse(missing)
	return filepath.Join(append([]string{d}, missing...)...), len(missing), nil
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

// errSymlinkAppeared is met by a walk through a path resolved free of
// symlinks that finds one: the file system changed since the checks.
var errSymlinkAppeared = errors.New("a symlink appeared")

// errNotRegular is what openRegular says of anything but a regular file.
var errNotRegular = errors.New("not a regular file")

// destDir is a directory opened by walkDir. A put or get names files only
// relative to its descriptor, so a component of its path swapped for a
// symlink after the checks cannot redirect a write or a read.
type destDir struct {
	fd   int
	path string // resolved and absolute, for messages and the journal
}

// dirFlags open a directory on a walk, never through a symlink. O_RDONLY
// rather than O_PATH, which is Linux's only and cannot be fsynced; the
// minion runs as root, which may read any directory.
const dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW

// walkDir opens the directory at the resolved absolute path p by walking
// it from "/" one component at a time, never following a symlink, and
// makes a missing component (0755 less the umask) when mkdir is set. A
// component that is a symlink by now fails with a *fs.PathError wrapping
// errSymlinkAppeared, one that is no directory with one wrapping ENOTDIR.
func walkDir(p string, mkdir bool) (*destDir, error) {
	if testHookResolved != nil {
		testHookResolved(p)
	}
	fd, err := openat(unix.AT_FDCWD, "/", dirFlags, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "/", Err: err}
	}
	cur := "/"
	for name := range strings.SplitSeq(strings.TrimPrefix(p, "/"), "/") {
		if name == "" {
			continue // p is "/"
		}
		cur = filepath.Join(cur, name)
		op := "open"
		next, err := openDirAt(fd, name)
		if errors.Is(err, unix.ENOENT) && mkdir {
			if err = unix.Mkdirat(fd, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(fd, name)
			} else {
				op = "mkdir"
			}
		}
		unix.Close(fd)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: cur, Err: err}
		}
		fd = next
	}
	return &destDir{fd: fd, path: p}, nil
}

// openDirAt opens the directory name in the directory dirfd without
// following a symlink. A symlink there fails with errSymlinkAppeared
// (O_NOFOLLOW with O_DIRECTORY gives ELOOP or ENOTDIR for one), anything
// else that is no directory with ENOTDIR.
func openDirAt(dirfd int, name string) (int, error) {
	fd, err := openat(dirfd, name, dirFlags, 0)
	if errors.Is(err, unix.ELOOP) {
		return -1, errSymlinkAppeared
	}
	if errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, errSymlinkAppeared
		}
	}
	return fd, err
}

// openat is unix.Openat with O_CLOEXEC (the minion runs commands), retried
// on EINTR as os.OpenFile is.
func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// close closes d; a nil d is nothing to close.
func (d *destDir) close() {
	if d != nil {
		unix.Close(d.fd)
	}
}

// join returns the absolute path of name in d.
func (d *destDir) join(name string) string {
	return filepath.Join(d.path, name)
}

// lstat describes what is at name in d, not following a symlink.
func (d *destDir) lstat(name string) (*entry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: d.join(name), Err: err}
	}
	return entryOf(&st), nil
}

// create makes the file name in d, where nothing may be, for writing with
// the permissions perm.
func (d *destDir) create(name string, perm uint32) (*os.File, error) {
	fd, err := openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// openDir opens the directory name in d (see openDirAt).
func (d *destDir) openDir(name string) (*os.File, error) {
	fd, err := openDirAt(d.fd, name)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.join(name), Err: err}
	}
	return os.NewFile(uintptr(fd), d.join(name)), nil
}

// openRegular opens the regular file name in d for reading, never through
// a symlink and without blocking on a FIFO swapped in after a check. It
// returns the file and what it is; anything but a regular file fails with
// errNotRegular.
func (d *destDir) openRegular(name string) (*os.File, *entry, error) {
	path := d.join(name)
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	e := entryOf(&st)
	if !e.mode.IsRegular() {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: errNotRegular}
	}
	// Blocking again, as os.File expects of a regular file.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), e, nil
}

// readlink returns the target of the symlink name in d.
func (d *destDir) readlink(name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		k, err := unix.Readlinkat(d.fd, name, b)
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: d.join(name), Err: err}
		}
		if k < n {
			return string(b[:k]), nil
		}
	}
}

// lchown gives name in d the owner uid:gid (-1 keeps a part), not
// following a symlink.
func (d *destDir) lchown(name string, uid, gid int) error {
	if err := unix.Fchownat(d.fd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lchown", Path: d.join(name), Err: err}
	}
	return nil
}

// remove removes name from d: the directory when dir is set, else the file
// or symlink (never what it points to).
func (d *destDir) remove(name string, dir bool) error {
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	if err := unix.Unlinkat(d.fd, name, flags); err != nil {
		return &fs.PathError{Op: "remove", Path: d.join(name), Err: err}
	}
	return nil
}

// sync fsyncs d, making a rename or a new entry in it durable.
func (d *destDir) sync() error {
	if err := unix.Fsync(d.fd); err != nil {
		return &fs.PathError{Op: "fsync", Path: d.path, Err: err}
	}
	return nil
}

// entry is what is at a name in a destDir: its type, mode bits, size,
// owner and identity, as fstat says.
type entry struct {
	mode     fs.FileMode // type and PutModeBits
	size     int64
	uid, gid uint32
	dev, ino uint64
	nlink    uint64 // hard links
}

// entryOf converts a stat result.
func entryOf(st *unix.Stat_t) *entry {
	m := fileMode(uint32(st.Mode) & 0o7777)
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	}
	return &entry{mode: m, size: st.Size, uid: st.Uid, gid: st.Gid, dev: uint64(st.Dev), ino: uint64(st.Ino), nlink: uint64(st.Nlink)}
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
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := os.Remove(name); err != nil {
				s.Log.Error("remove journal entry", "path", name, "err", err)
			}
		})
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
		if model.CheckPath(tmp) == nil && strings.HasPrefix(filepath.Base(tmp), exec.PutTempPrefix) {
			if err := s.sweepTemp(tmp); err != nil {
				errs = append(errs, err)
				continue
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

// sweepTemp removes the journalled temp file or symlink tmp (a symlink
// itself, never what it points to) through its directory, walked to
// without following a symlink as it was when tmp was made; anything else
// is left alone.
func (s *Server) sweepTemp(tmp string) error {
	d, err := walkDir(filepath.Dir(tmp), false)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case errors.Is(err, errSymlinkAppeared):
		s.Log.Warn("the directory of a journalled temp file is reached through a symlink now; left alone", "path", tmp)
		return nil
	case err != nil:
		return fmt.Errorf("sweep temp file %s: %w", tmp, err)
	}
	defer d.close()
	name := filepath.Base(tmp)
	st, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("sweep temp file %s: %w", tmp, err)
	case !st.mode.IsRegular() && st.mode&fs.ModeSymlink == 0:
		s.Log.Warn("journalled temp file is neither a regular file nor a symlink; left alone", "path", tmp)
	default:
		if err := d.remove(name, false); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sweep temp file: %w", err)
		}
		s.Log.Info("removed the temp file of an interrupted transfer", "path", tmp)
	}
	return nil
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
	cl, err := p.client(t)
	if err != nil {
		return model.PutResult{}, err
	}
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
	cl, err := p.client(t)
	if err != nil {
		return 0, "", err
	}
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
