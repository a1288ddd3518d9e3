package ssh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	pathpkg "path"
	"regexp"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// Get streams the regular file at g.Path on the host into w over SFTP and
// returns its size and sha256 (lower-case hex). A symlink is refused
// unless g.FollowSymlinks (then its target, resolved on the host, is
// read); other non-regular files are refused. With t.SSH.Become the SFTP
// server runs under sudo.
func (p *Pool) Get(ctx context.Context, t model.Target, g model.GetFile, w io.Writer) (int64, string, error) {
	path := g.Path
	s, err := p.spec(t)
	if err != nil {
		return 0, "", err
	}
	if err := model.CheckPath(path); err != nil {
		return 0, "", fmt.Errorf("get %q on %s: %w", path, s.id, err)
	}
	var n int64
	var sum string
	err = p.withFS(ctx, s, func(c remoteFS) error {
		if !g.FollowSymlinks {
			if err := trustedPath(c, pathpkg.Dir(path)); err != nil {
				return err
			}
		}
		src := path
		st, err := c.Lstat(src)
		if err == nil && st.Mode()&fs.ModeSymlink != 0 && g.FollowSymlinks {
			if src, err = c.RealPath(path); err == nil {
				st, err = c.Lstat(src)
			}
		}
		switch {
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			return errors.New("a symlink; refusing to follow it (follow_symlinks not asked)")
		case !st.Mode().IsRegular():
			return fmt.Errorf("not a regular file (%s)", st.Mode().Type())
		}
		n, sum, err = readRemote(c, src, w)
		if err != nil {
			return err
		}
		if x, ok := c.(*execFS); ok {
			// Read by cat: the host's sha256sum checks it.
			remote, err := x.sha256(src)
			switch {
			case errors.Is(err, errNoSHA256Sum):
				p.log.Info("ssh: fetched without a sha256 check by the host", "host", s.addr, "path", src, "err", err)
			case err != nil:
				return fmt.Errorf("hash on the host: %w", err)
			case remote != sum:
				return fmt.Errorf("sha256 on the host is %s, of what was read %s (the file changed while read?)", remote, sum)
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, exec.ErrUnreachable) {
			return n, "", err
		}
		return n, "", fmt.Errorf("get %s on %s: %w", path, s.id, err)
	}
	return n, sum, nil
}

// readRemote streams a regular file into w while hashing it.
func readRemote(c remoteFS, file string, w io.Writer) (int64, string, error) {
	fh, err := c.Open(file)
	if err != nil {
		return 0, "", err
	}
	defer fh.Close()
	if st, err := fh.Stat(); err != nil {
		return 0, "", err
	} else if !st.Mode().IsRegular() {
		return 0, "", fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	sum := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, sum), struct{ io.Reader }{fh}, make([]byte, copyBuffer))
	if err != nil {
		return n, "", fmt.Errorf("read after %d bytes: %w", n, err)
	}
	return n, hex.EncodeToString(sum.Sum(nil)), nil
}

// sameRemote reports whether the regular file at dest (described by old)
// already has the size and sha256 asked for; its mode and owner are
// sameAttrs's.
func (p *Pool) sameRemote(ctx context.Context, s hostSpec, c remoteFS, dest string, old os.FileInfo, size int64, want string) (bool, error) {
	if old.Size() != size {
		return false, nil
	}
	got, err := p.remoteSHA256(ctx, s, c, dest, size)
	if err != nil {
		return false, err
	}
	return got == want, nil
}

// remoteSHA256 hashes a file of size bytes on the host: a small one by
// reading it back over SFTP (cheaper than starting a command; trees are
// mostly small files), a larger one with sha256sum when the path is plain
// enough for a fixed command line, else by reading it over SFTP.
//
// The caller holds a session, c's, so the sha256sum session is taken
// beyond the connection's limit: waiting for a free one could wait for
// ever (a host with MaxSessions 1, or every session held by a put doing
// the same). A host refusing it gets the file read back over SFTP.
func (p *Pool) remoteSHA256(ctx context.Context, s hostSpec, c remoteFS, file string, size int64) (string, error) {
	if x, ok := c.(*execFS); ok {
		// Any path: it is data on sha256sum's script's standard input.
		sum, err := x.sha256(file)
		if !errors.Is(err, errNoSHA256Sum) {
			return sum, err
		}
		p.log.Info("ssh: no sha256sum on the host; verifying by reading the file back", "host", s.addr)
		_, sum, err = readRemote(c, file, io.Discard)
		return sum, err
	}
	if size > readBackMax && hashablePath.MatchString(file) && model.CheckPath(file) == nil && p.startNested() {
		stdout, _, code, err := p.runPlain(ctx, s, plainCommand("sha256sum -- "+file, s.sudo()), true)
		p.endKill()
		if err == nil && code == 0 && len(stdout) >= 64 {
			if b, err := hex.DecodeString(string(stdout[:64])); err == nil && len(b) == sha256.Size {
				return string(stdout[:64]), nil
			}
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
	}
	_, sum, err := readRemote(c, file, io.Discard)
	return sum, err
}

// hashablePath is a path that may be passed to sha256sum on a command
// line as it is; any other path is hashed by reading it over SFTP.
var hashablePath = regexp.MustCompile(`^/[A-Za-z0-9._/+@-]*$`)

// readBackMax is the largest file remoteSHA256 hashes by reading it back.
const readBackMax = 256 << 10

// startNested counts a session taken beyond the limit by an operation
// holding one as Close counts kills, so Close waits for it and it never
// dials after Close; false once the pool is closed. endKill ends it.
func (p *Pool) startNested() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.killing++
	return true
}
