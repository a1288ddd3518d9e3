package ssh

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// copyBuffer is the chunk size of uploads; pkg/sftp writes each chunk as
// concurrent packets, so memory stays at one chunk per upload.
const copyBuffer = 256 << 10

// maxReadFile bounds what ReadFile returns.
const maxReadFile = 64 << 20

// sftpServerScript starts sftp-server under sudo, for Become: the paths
// where distributions keep it.
const sftpServerScript = `for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/sftp-server; do if [ -x "$p" ]; then exec "$p"; fi; done; echo "felix: no sftp-server found" >&2; exit 127`

// validFileName checks the base name of a script or file command's content.
func validFileName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("file name %q: want a plain file name", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q: want a plain file name, without / or NUL", name)
	case len(name) > 255:
		return fmt.Errorf("file name %.20q...: longer than 255 bytes", name)
	}
	return nil
}

// execFile runs a script or file command: it makes a private directory
// in a staging directory that can execute (makeJobDir), uploads the
// content there over SFTP (mode 0700), runs the command line in it and
// removes it afterwards, whatever happened. Where nothing can execute, the
// line runs the file through its interpreter (interpretedLine).
func (p *Pool) execFile(ctx context.Context, s hostSpec, r runSpec, f *model.File, out model.OutputFunc) (model.Exit, error) {
	if err := validFileName(f.Name); err != nil {
		return model.Exit{}, fmt.Errorf("exec on %s: %w", s.id, err)
	}
	if f.Open == nil || f.Size < 0 {
		return model.Exit{}, fmt.Errorf("exec on %s: file %s has no content or a negative size", s.id, f.Name)
	}
	st, err := p.makeJobDir(ctx, s, out)
	if err != nil {
		return model.Exit{}, err
	}
	defer p.removeJobDir(s, st)
	if st.noexec {
		if r.line, err = interpretedLine(s, st, stageCandidates(s), f, r.line); err != nil {
			return model.Exit{}, err
		}
	}
	if err := p.putJobFile(ctx, s, st.dir, f); err != nil {
		return model.Exit{}, err
	}
	r.dir = st.dir
	ex, err := p.run(ctx, s, r, out)
	p.checkExit(st, ex)
	return ex, err
}

// putJobFile uploads f into dir as an executable only its owner can use.
func (p *Pool) putJobFile(ctx context.Context, s hostSpec, dir string, f *model.File) error {
	rc, err := f.Open()
	if err != nil {
		return fmt.Errorf("exec on %s: open file %s: %w (the command did not run)", s.id, f.Name, err)
	}
	defer rc.Close()
	path := dir + "/" + f.Name
	err = p.withFS(ctx, s, func(c remoteFS) error {
		if err := c.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", dir, err)
		}
		fh, err := c.Create(path)
		if err != nil {
			return fmt.Errorf("create %s: %w", path, err)
		}
		if err := copyExact(fh, rc, f.Size); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		// Made executable once written (no second session while the
		// file is open: a host may allow one); the directory is private.
		if err := c.Chmod(path, 0o700); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, exec.ErrUnreachable) {
		return err
	}
	return fmt.Errorf("exec on %s: upload %s: %w (the command did not run)", s.id, f.Name, err)
}

// copyExact copies r, which must hold exactly size bytes, to w.
func copyExact(w io.Writer, r io.Reader, size int64) error {
	// One byte more than announced is read to notice a longer content.
	n, err := io.CopyBuffer(onlyWriter{w}, io.LimitReader(r, size+1), make([]byte, copyBuffer))
	switch {
	case err != nil:
		return fmt.Errorf("copy after %d bytes: %w", n, err)
	case n > size:
		return fmt.Errorf("content is longer than its size %d", size)
	case n < size:
		return fmt.Errorf("content has %d bytes, not its size %d", n, size)
	}
	return nil
}

// onlyWriter hides a writer's ReadFrom, so io.CopyBuffer writes chunks of
// our buffer (pkg/sftp's ReadFrom would buffer on its own terms).
type onlyWriter struct{ io.Writer }

// removeJobDir removes a command's private directory; failures are logged.
// Only a path of the form makeJobDir makes in st.base is removed.
func (p *Pool) removeJobDir(s hostSpec, st stage) {
	if !jobDirPattern(st.base).MatchString(st.dir) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.conf().ConnectTimeout+30*time.Second)
	defer cancel()
	_, stderr, code, err := p.runPlain(ctx, s, plainCommand("rm -rf -- "+st.dir, s.sudo()), false)
	if err == nil && code != 0 {
		err = fmt.Errorf("rm exited %d: %s", code, firstLine(stderr))
	}
	if err != nil {
		p.log.Warn("ssh: remove job directory", "host", s.addr, "dir", st.dir, "err", err)
	}
}

// withFS runs fn with an SFTP client on a session of s's connection (as
// root through sudo when s.become), or, on a host found to have no
// sftp-server (see noSFTPError), with execFS. Ending ctx closes the client.
func (p *Pool) withFS(ctx context.Context, s hostSpec, fn func(remoteFS) error) error {
	if p.noSFTP.has(s) {
		return fn(&execFS{p: p, ctx: ctx, s: s})
	}
	c, err := p.openSFTP(ctx, s)
	var ns *noSFTPError
	if errors.As(err, &ns) {
		if p.noSFTP.add(s) {
			p.log.Warn(fmt.Sprintf("no sftp-server on %s: %s; transferring through the exec channel", s, ns.reason), "host", s.addr, "user", s.user)
		}
		return fn(&execFS{p: p, ctx: ctx, s: s})
	}
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	err = fn(sftpFS{c})
	stop()
	c.Close()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// openSFTP starts an SFTP client on a new session. A host without a
// usable sftp-server gets a *noSFTPError: the subsystem refused (OpenSSH
// with no Subsystem line), or the session ended with exit status 126 or
// 127 before the SFTP version packet (Dropbear, or OpenSSH naming a
// missing sftp-server, run by the shell: "not found"; felix's own search
// under sudo).
func (p *Pool) openSFTP(ctx context.Context, s hostSpec) (*sftp.Client, error) {
	var ss *session
	var err error
	if s.become {
		ss, err = p.startSession(ctx, s, false, "exec", shellCommand(sftpServerScript, s.sudo()))
	} else {
		ss, err = p.startSession(ctx, s, false, "subsystem", "sftp")
	}
	if err != nil {
		if !s.become && errors.Is(err, errRefused) {
			return nil, &noSFTPError{reason: "the server refused the sftp subsystem"}
		}
		return nil, fmt.Errorf("start sftp on %s: %w", s, err)
	}
	var stderr bytes.Buffer
	stderrDone := make(chan struct{})
	go func() {
		defer close(stderrDone)
		_, _ = io.Copy(&capWriter{&stderr, 4 << 10}, ss.ch.Stderr())
	}()
	c, err := sftp.NewClientPipe(ss.ch, ss.ch, sftp.UseConcurrentWrites(true))
	if err == nil {
		return c, nil
	}
	ss.ch.Close()
	select {
	case <-ss.done:
	case <-time.After(p.conf().ConnectTimeout):
	}
	select {
	case <-stderrDone:
	case <-time.After(p.conf().ConnectTimeout):
		return nil, fmt.Errorf("start sftp on %s: %w", s, err)
	}
	if ss.hasExited() && (ss.code == 126 || ss.code == 127) {
		what := map[int]string{126: "cannot execute", 127: "command not found"}[ss.code]
		why := fmt.Sprintf("the sftp session exited %d (%s) before its version packet", ss.code, what)
		if msg := lastLine(stderr.Bytes()); msg != "" {
			why += ": " + msg
		}
		return nil, &noSFTPError{reason: why}
	}
	switch msg := lastLine(stderr.Bytes()); {
	case ss.hasExited():
		return nil, fmt.Errorf("start sftp on %s: the sftp session exited %d before its version packet: %q (%w)", s, ss.code, msg, err)
	case msg != "":
		return nil, fmt.Errorf("start sftp on %s: %q (%w)", s, msg, err)
	}
	return nil, fmt.Errorf("start sftp on %s: %w", s, err)
}

// Upload writes r to path on the host with mode, atomically (a temporary
// name renamed into place).
//
// path must be absolute. The content goes to PATH.tmp-RANDOM, private
// (0600) while written, gets mode (permission, setuid, setgid and sticky
// bits) and is renamed over path (posix-rename). With t.SSH.Become the
// SFTP server runs under sudo.
func (p *Pool) Upload(ctx context.Context, t model.Target, path string, r io.Reader, mode uint32) error {
	s, err := p.spec(t)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/") || strings.ContainsRune(path, 0) {
		return fmt.Errorf("upload to %s: path %q: want an absolute file path", s.id, path)
	}
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	tmp := path + ".tmp-" + hex.EncodeToString(rnd)
	err = p.withFS(ctx, s, func(c remoteFS) error {
		fh, err := c.Create(tmp)
		if err != nil {
			return fmt.Errorf("create %s: %w", tmp, err)
		}
		done := false
		defer func() {
			if !done {
				fh.Close()
				_ = c.Remove(tmp)
			}
		}()
		if err := c.Chmod(tmp, 0o600); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		if _, err := io.CopyBuffer(onlyWriter{fh}, r, make([]byte, copyBuffer)); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := c.Chmod(tmp, model.FileMode(mode)); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		if err := c.PosixRename(tmp, path); err != nil {
			return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
		}
		done = true
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled: the client was closed before the deferred
			// removal could run. Remove the partial file on a new one.
			cctx, cancel := context.WithTimeout(context.Background(), p.conf().ConnectTimeout+10*time.Second)
			_ = p.withFS(cctx, s, func(c remoteFS) error { return c.Remove(tmp) })
			cancel()
		}
		return fmt.Errorf("upload %s to %s: %w", path, s.id, err)
	}
	return nil
}

// ReadFile reads a file from the host over SFTP.
//
// Files larger than 64 MiB are refused. With t.SSH.Become the SFTP server
// runs under sudo.
func (p *Pool) ReadFile(ctx context.Context, t model.Target, path string) ([]byte, error) {
	s, err := p.spec(t)
	if err != nil {
		return nil, err
	}
	if path == "" || strings.ContainsRune(path, 0) {
		return nil, fmt.Errorf("read %q on %s: bad path", path, s.id)
	}
	var data []byte
	err = p.withFS(ctx, s, func(c remoteFS) error {
		fh, err := c.Open(path)
		if err != nil {
			return err
		}
		defer fh.Close()
		data, err = io.ReadAll(io.LimitReader(bufio.NewReaderSize(fh, copyBuffer), maxReadFile+1))
		if err != nil {
			return err
		}
		if len(data) > maxReadFile {
			return fmt.Errorf("larger than %d bytes", maxReadFile)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s on %s: %w", path, s.id, err)
	}
	return data, nil
}
