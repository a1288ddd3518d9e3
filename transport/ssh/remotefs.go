package ssh

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/felix-ops/felix/model"
	"github.com/pkg/sftp"
)

// remoteFS is what file transfers do on a host: an SFTP client (sftpFS)
// or, on a host without sftp-server, the same operations as fixed
// commands on exec sessions (execFS).
type remoteFS interface {
	Stat(p string) (os.FileInfo, error)
	Lstat(p string) (os.FileInfo, error)
	ReadLink(p string) (string, error)
	RealPath(p string) (string, error)
	Mkdir(p string) error
	MkdirAll(p string) error
	Chmod(p string, mode os.FileMode) error
	Chown(p string, uid, gid int) error
	Remove(p string) error
	RemoveDirectory(p string) error
	PosixRename(oldname, newname string) error
	Link(oldname, newname string) error
	Symlink(oldname, newname string) error
	// Create makes a new file (O_EXCL) for writing.
	Create(p string) (remoteFile, error)
	// Open opens a file for reading.
	Open(p string) (remoteReader, error)
}

// remoteFile is a file being written (*sftp.File or execFile).
type remoteFile interface {
	io.Writer
	Stat() (os.FileInfo, error)
	Sync() error
	Close() error
}

// remoteReader is a file being read (*sftp.File or execReader).
type remoteReader interface {
	io.Reader
	Stat() (os.FileInfo, error)
	Close() error
}

// sftpFS is remoteFS over an SFTP client.
type sftpFS struct{ *sftp.Client }

func (c sftpFS) Create(p string) (remoteFile, error) {
	f, err := c.Client.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (c sftpFS) Open(p string) (remoteReader, error) {
	f, err := c.Client.Open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// execFS does remoteFS's operations as fixed shell scripts on exec
// sessions, one session each: paths and other values reach a script as
// data on its standard input (fsPrelude's rd reads them), never as part of
// a command line, and a file's content follows them on the same stream.
// Errors are classified from the tools' messages (LC_ALL=C): "No such file
// or directory" wraps fs.ErrNotExist, "File exists" fs.ErrExist,
// "Permission denied" fs.ErrPermission.
type execFS struct {
	p   *Pool
	ctx context.Context
	s   hostSpec
}

var _ remoteFS = (*execFS)(nil)

// fsPrelude starts every execFS script: rd reads the next value (encoded
// as the run wrapper's fields, see writeField) into v. No single quotes:
// the script is single-quoted for the login shell (shellCommand).
const fsPrelude = `set -f; export LC_ALL=C; ` +
	`dec() { case $1 in e*) v=$(printf "%bx" "${1#?}"); v=${v%x};; *) v=${1#?};; esac; }; ` +
	`rd() { IFS= read -r l || exit 126; dec "$l"; }; `

// statFormat is what stat prints for a file: raw mode (hex), size, uid,
// gid and mtime; GNU and busybox stat both know it.
const statFormat = `"%f %s %u %g %Y"`

// The scripts of execFS's operations (after fsPrelude).
const (
	fsLstat    = `rd; exec stat -c ` + statFormat + ` -- "$v"`
	fsStat     = `rd; exec stat -L -c ` + statFormat + ` -- "$v"`
	fsReadLink = `rd; exec readlink -- "$v"`
	fsRealPath = `rd; exec readlink -f -- "$v"`
	fsMkdir    = `rd; exec mkdir -- "$v"`
	fsMkdirAll = `rd; exec mkdir -p -- "$v"`
	fsChmod    = `rd; m=$v; rd; exec chmod -- "$m" "$v"`
	fsChown    = `rd; o=$v; rd; exec chown -- "$o" "$v"`
	fsRemove   = `rd; if [ -d "$v" ] && [ ! -L "$v" ]; then exec rmdir -- "$v"; fi; exec rm -- "$v"`
	fsRmdir    = `rd; exec rmdir -- "$v"`
	// -T: a destination that is a directory (or a link to one) is
	// replaced or refused, never moved into.
	fsRename  = `rd; a=$v; rd; exec mv -f -T -- "$a" "$v"`
	fsLink    = `rd; a=$v; rd; exec ln -- "$a" "$v"`
	fsSymlink = `rd; a=$v; rd; if [ -e "$v" ] || [ -L "$v" ]; then echo "ln: $v: File exists" >&2; exit 1; fi; exec ln -s -- "$a" "$v"`
	fsSHA256  = `rd; command -v sha256sum >/dev/null 2>&1 || { echo "sha256sum: command not found" >&2; exit 127; }; exec sha256sum -- "$v"`
	// fsCreate makes the file with O_EXCL (set -C), private (umask),
	// prints its stat line, then copies the rest of standard input into
	// it and syncs it where sync takes a file (coreutils 8.24 on).
	fsCreate = `rd; umask 077; set -C; exec 3>"$v" || exit 1; stat -L -c ` + statFormat + ` /dev/fd/3 || exit 1; ` +
		`cat >&3 || exit 1; exec 3>&-; sync -- "$v" 2>/dev/null; exit 0`
	// fsOpen prints the stat line of the file, then its content when it
	// is a regular file (a FIFO is never opened: that could block).
	fsOpen = `rd; if [ ! -f "$v" ]; then exec stat -L -c ` + statFormat + ` -- "$v"; fi; ` +
		`exec 3<"$v" || exit 1; stat -L -c ` + statFormat + ` /dev/fd/3 || exit 1; exec cat <&3`
)

// errNoSHA256Sum is the error of sha256 on a host without sha256sum.
var errNoSHA256Sum = errors.New("sha256sum is not installed on the host")

// start starts script with args sent as values on its standard input.
func (f *execFS) start(script string, args ...string) (*session, error) {
	ss, err := f.p.startSession(f.ctx, f.s, false, "exec", shellCommand(fsPrelude+script, f.s.sudo()))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	for _, a := range args {
		writeField(&b, a)
	}
	if _, err := ss.ch.Write(b.Bytes()); err != nil {
		ss.ch.Close()
		return nil, fmt.Errorf("send to %s: %w", f.s, err)
	}
	return ss, nil
}

// run runs script with args and returns its standard output.
func (f *execFS) run(op, path, script string, args ...string) ([]byte, error) {
	ss, err := f.start(script, args...)
	if err != nil {
		return nil, err
	}
	defer ss.ch.Close()
	stdout, stderr, err := ss.collect(f.ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, path, err)
	}
	return stdout, f.result(ss, op, path, stderr)
}

// result is the error of a finished script: nil for exit status 0.
func (f *execFS) result(ss *session, op, path string, stderr []byte) error {
	switch {
	case !ss.hasExited():
		return fmt.Errorf("%s %s: the session ended without an exit status", op, path)
	case ss.code == 0:
		return nil
	}
	return &execError{op: op, path: path, code: ss.code, msg: lastLine(stderr)}
}

// execError is an execFS operation that failed on the host.
type execError struct {
	op, path string
	code     int
	msg      string // the tool's message
}

func (e *execError) Error() string {
	msg := e.msg
	if msg == "" {
		msg = "exit status " + strconv.Itoa(e.code)
	}
	return e.op + " " + e.path + ": " + msg
}

// Unwrap classifies the tool's message (the scripts run with LC_ALL=C).
func (e *execError) Unwrap() error {
	for _, c := range []struct {
		text string
		err  error
	}{
		{"No such file or directory", fs.ErrNotExist},
		{"File exists", fs.ErrExist},
		{"Permission denied", fs.ErrPermission},
		{"Operation not permitted", fs.ErrPermission},
		{"Not a directory", syscall.ENOTDIR},
	} {
		if strings.Contains(e.msg, c.text) {
			return c.err
		}
	}
	if e.code == 127 && strings.Contains(e.msg, "sha256sum") {
		return errNoSHA256Sum
	}
	return nil
}

// lastLine is the last non-empty line of b.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (f *execFS) stat(op, p, script string) (os.FileInfo, error) {
	out, err := f.run(op, p, script, p)
	if err != nil {
		return nil, err
	}
	return parseStat(p, string(out))
}

func (f *execFS) Lstat(p string) (os.FileInfo, error) { return f.stat("lstat", p, fsLstat) }
func (f *execFS) Stat(p string) (os.FileInfo, error)  { return f.stat("stat", p, fsStat) }

func (f *execFS) ReadLink(p string) (string, error) {
	out, err := f.run("readlink", p, fsReadLink, p)
	return strings.TrimSuffix(string(out), "\n"), err
}

func (f *execFS) RealPath(p string) (string, error) {
	out, err := f.run("realpath", p, fsRealPath, p)
	return strings.TrimSuffix(string(out), "\n"), err
}

func (f *execFS) Mkdir(p string) error {
	_, err := f.run("mkdir", p, fsMkdir, p)
	return err
}

func (f *execFS) MkdirAll(p string) error {
	_, err := f.run("mkdir -p", p, fsMkdirAll, p)
	return err
}

func (f *execFS) Chmod(p string, mode os.FileMode) error {
	// Five digits: GNU chmod clears a directory's set-id bits only so.
	_, err := f.run("chmod", p, fsChmod, fmt.Sprintf("%05o", model.ModeBits(mode)), p)
	return err
}

func (f *execFS) Chown(p string, uid, gid int) error {
	_, err := f.run("chown", p, fsChown, strconv.Itoa(uid)+":"+strconv.Itoa(gid), p)
	return err
}

func (f *execFS) Remove(p string) error {
	_, err := f.run("remove", p, fsRemove, p)
	return err
}

func (f *execFS) RemoveDirectory(p string) error {
	_, err := f.run("rmdir", p, fsRmdir, p)
	return err
}

func (f *execFS) PosixRename(oldname, newname string) error {
	_, err := f.run("rename", oldname, fsRename, oldname, newname)
	return err
}

func (f *execFS) Link(oldname, newname string) error {
	_, err := f.run("link", newname, fsLink, oldname, newname)
	return err
}

func (f *execFS) Symlink(oldname, newname string) error {
	_, err := f.run("symlink", newname, fsSymlink, oldname, newname)
	return err
}

// sha256 hashes p on the host with sha256sum; errNoSHA256Sum without it.
func (f *execFS) sha256(p string) (string, error) {
	out, err := f.run("sha256sum", p, fsSHA256, p)
	if err != nil {
		return "", err
	}
	if len(out) < 64 {
		return "", fmt.Errorf("sha256sum %s printed %q", p, firstLine(out))
	}
	return string(out[:64]), nil
}

// Create makes p (O_EXCL, mode 0600) and returns it for writing; the
// content goes to the script's standard input.
func (f *execFS) Create(p string) (remoteFile, error) {
	ss, err := f.start(fsCreate, p)
	if err != nil {
		return nil, err
	}
	h := &execFile{f: f, ss: ss, path: p, stderr: &bytes.Buffer{}}
	h.readers.Add(1)
	go func() {
		defer h.readers.Done()
		_, _ = io.Copy(&capWriter{h.stderr, maxPlainOutput}, ss.ch.Stderr())
	}()
	h.st, err = readStatLine(ss, p)
	if err != nil {
		ss.ch.Close()
		h.readers.Wait()
		if rerr := f.finished(ss, "create", p, h.stderr.Bytes()); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("create %s: %w", p, err)
	}
	return h, nil
}

// finished waits (bounded) for a script to end and returns its result.
func (f *execFS) finished(ss *session, op, p string, stderr []byte) error {
	select {
	case <-ss.done:
	case <-time.After(f.s.set.ConnectTimeout):
	}
	return f.result(ss, op, p, stderr)
}

// readStatLine reads the stat line a script prints first on standard
// output, byte by byte (what follows is the content, read by others).
func readStatLine(ss *session, p string) (os.FileInfo, error) {
	var line []byte
	var b [1]byte
	for len(line) < 256 {
		if _, err := io.ReadFull(ss.ch, b[:]); err != nil {
			return nil, fmt.Errorf("read its attributes: %w", err)
		}
		if b[0] == '\n' {
			return parseStat(p, string(line))
		}
		line = append(line, b[0])
	}
	return nil, fmt.Errorf("read its attributes: line too long: %q", line)
}

// execFile is a file written through an fsCreate script.
type execFile struct {
	f       *execFS
	ss      *session
	path    string
	st      os.FileInfo
	stderr  *bytes.Buffer
	readers sync.WaitGroup
	once    sync.Once
	err     error
}

func (h *execFile) Write(b []byte) (int, error) { return h.ss.ch.Write(b) }

func (h *execFile) Stat() (os.FileInfo, error) { return h.st, nil }

// Sync ends the content and waits for the script to write and sync it.
func (h *execFile) Sync() error { return h.Close() }

// Close ends the content and waits for the script's result.
func (h *execFile) Close() error {
	h.once.Do(func() {
		_ = h.ss.ch.CloseWrite()
		_, _ = io.Copy(io.Discard, h.ss.ch)
		select {
		case <-h.ss.done:
		case <-h.f.ctx.Done():
		}
		h.ss.ch.Close()
		h.readers.Wait()
		if err := h.f.ctx.Err(); err != nil && !h.ss.hasExited() {
			h.err = fmt.Errorf("write %s: %w", h.path, err)
			return
		}
		h.err = h.f.result(h.ss, "write", h.path, h.stderr.Bytes())
	})
	return h.err
}

// Open opens p for reading; a file that is not regular is described but
// not opened (Stat tells, Read returns io.EOF).
func (f *execFS) Open(p string) (remoteReader, error) {
	ss, err := f.start(fsOpen, p)
	if err != nil {
		return nil, err
	}
	_ = ss.ch.CloseWrite()
	r := &execReader{f: f, ss: ss, path: p, stderr: &bytes.Buffer{}}
	r.readers.Add(1)
	go func() {
		defer r.readers.Done()
		_, _ = io.Copy(&capWriter{r.stderr, maxPlainOutput}, ss.ch.Stderr())
	}()
	r.st, err = readStatLine(ss, p)
	if err != nil {
		ss.ch.Close()
		r.readers.Wait()
		if rerr := f.finished(ss, "open", p, r.stderr.Bytes()); rerr != nil {
			return nil, rerr
		}
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	r.body = bufio.NewReaderSize(ss.ch, copyBuffer)
	return r, nil
}

// execReader is a file read through an fsOpen script.
type execReader struct {
	f       *execFS
	ss      *session
	path    string
	st      os.FileInfo
	body    io.Reader
	stderr  *bytes.Buffer
	readers sync.WaitGroup
}

func (r *execReader) Stat() (os.FileInfo, error) { return r.st, nil }

// Read reads the content; at its end, the script's failure (cat could
// not read the whole file) is the error instead of io.EOF.
func (r *execReader) Read(b []byte) (int, error) {
	n, err := r.body.Read(b)
	if err == io.EOF {
		r.readers.Wait()
		if ferr := r.f.finished(r.ss, "read", r.path, r.stderr.Bytes()); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

func (r *execReader) Close() error {
	r.ss.ch.Close()
	return nil
}

// parseStat parses a statFormat line.
func parseStat(p, line string) (os.FileInfo, error) {
	f := strings.Fields(line)
	if len(f) != 5 {
		return nil, fmt.Errorf("stat %s: unexpected output %q", p, line)
	}
	mode, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	uid, err3 := strconv.ParseUint(f[2], 10, 32)
	gid, err4 := strconv.ParseUint(f[3], 10, 32)
	mtime, err5 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, fmt.Errorf("stat %s: unexpected output %q: %w", p, line, err)
	}
	name := p[strings.LastIndexByte(p, '/')+1:]
	return &execFileInfo{name: name, st: sftp.FileStat{
		Size: uint64(size), Mode: uint32(mode), Mtime: uint32(mtime), UID: uint32(uid), GID: uint32(gid),
	}}, nil
}

// execFileInfo describes a file from its stat line; Sys is an
// *sftp.FileStat, as SFTP's, so ownerOf reads both alike.
type execFileInfo struct {
	name string
	st   sftp.FileStat
}

func (fi *execFileInfo) Name() string       { return fi.name }
func (fi *execFileInfo) Size() int64        { return int64(fi.st.Size) }
func (fi *execFileInfo) Mode() os.FileMode  { return model.StatMode(fi.st.Mode) }
func (fi *execFileInfo) ModTime() time.Time { return time.Unix(int64(fi.st.Mtime), 0) }
func (fi *execFileInfo) IsDir() bool        { return fi.Mode().IsDir() }
func (fi *execFileInfo) Sys() any           { return &fi.st }
