package ssh

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/felix-ops/felix/exec"
)

// numericOwner is the only owner form Put accepts over SSH: "uid" or
// "uid:gid". Names would have to be resolved on the host by a command,
// which Put does not run; the owner is data and never reaches a shell.
var numericOwner = regexp.MustCompile(`^([0-9]{1,10})(?::([0-9]{1,10}))?$`)

// hashablePath is a path that may be passed to sha256sum on a command
// line as it is; any other path is hashed by reading it over SFTP.
var hashablePath = regexp.MustCompile(`^/[A-Za-z0-9._/+@-]*$`)

// checkRemotePath accepts an absolute, clean path other than /, without NUL.
func checkRemotePath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (it has .., . or extra slashes)", p)
	case p == "/":
		return errors.New("path / is not a file")
	}
	return nil
}

// parseOwner parses a numeric owner; -1 keeps the old value.
func parseOwner(owner string) (uid, gid int, err error) {
	if owner == "" {
		return -1, -1, nil
	}
	m := numericOwner.FindStringSubmatch(owner)
	if m == nil {
		return -1, -1, fmt.Errorf("owner %q: over SSH only a numeric uid or uid:gid is supported", owner)
	}
	u, err := strconv.ParseUint(m[1], 10, 32)
	if err != nil {
		return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
	}
	uid, gid = int(u), -1
	if m[2] != "" {
		g, err := strconv.ParseUint(m[2], 10, 32)
		if err != nil {
			return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
		}
		gid = int(g)
	}
	return uid, gid, nil
}

// ownerOf returns the uid and gid of a file described over SFTP.
func ownerOf(fi os.FileInfo) (int, int, bool) {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return int(st.UID), int(st.GID), true
	}
	return -1, -1, false
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Put places f.Dest on the host over SFTP, atomically, mirroring the
// agent's PutFile: a symlink or non-regular destination is refused; when
// the destination already has the content (and the mode and owner asked
// for) nothing is sent and f.Open is not called; otherwise the content goes
// to a private temp file beside the destination, is verified against f.Size
// and f.SHA256, gets its owner and mode and is renamed over the
// destination. With f.Backup the old file is first hard-linked to
// DEST.felix-bak-<UTC time>. Any failure leaves the old file as it was
// and removes the temp file. f.Owner must be numeric ("uid" or
// "uid:gid"). With t.SSH.Become the SFTP server runs under sudo.
func (p *Pool) Put(ctx context.Context, t exec.Target, f exec.PutFile) (exec.PutResult, error) {
	s, err := p.spec(t)
	if err != nil {
		return exec.PutResult{}, err
	}
	fail := func(err error) (exec.PutResult, error) {
		if errors.Is(err, exec.ErrUnreachable) {
			return exec.PutResult{}, err
		}
		return exec.PutResult{}, fmt.Errorf("put %s on %s: %w", f.Dest, s.id, err)
	}
	if err := checkRemotePath(f.Dest); err != nil {
		return fail(err)
	}
	want := strings.ToLower(f.SHA256)
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha256.Size {
		return fail(fmt.Errorf("sha256 %q is not 64 hex digits", f.SHA256))
	}
	if f.Size < 0 {
		return fail(fmt.Errorf("negative size %d", f.Size))
	}
	if f.Mode&^0o7777 != 0 {
		return fail(fmt.Errorf("mode %#o has bits beyond 07777", f.Mode))
	}
	if f.Open == nil {
		return fail(errors.New("no content"))
	}
	uid, gid, err := parseOwner(f.Owner)
	if err != nil {
		return fail(err)
	}
	mode := fs.FileMode(0)
	if f.Mode != 0 {
		mode = fileMode(f.Mode)
	}

	dir := path.Dir(f.Dest)
	tmp := exec.PutTempName(f.Dest, randomSuffix())
	created := false
	var res exec.PutResult
	err = p.withSFTP(ctx, s, func(c *sftp.Client) error {
		switch st, err := c.Stat(dir); {
		case errors.Is(err, fs.ErrNotExist):
			if !f.Mkdir {
				return fmt.Errorf("directory %s does not exist (mkdir not asked)", dir)
			}
			if err := c.MkdirAll(dir); err != nil {
				return fmt.Errorf("mkdir %s: %w", dir, err)
			}
		case err != nil:
			return fmt.Errorf("stat %s: %w", dir, err)
		case !st.IsDir():
			return fmt.Errorf("%s is not a directory", dir)
		}

		old, err := c.Lstat(f.Dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			old = nil
		case err != nil:
			return fmt.Errorf("lstat: %w", err)
		case old.Mode()&fs.ModeSymlink != 0:
			return errors.New("the destination is a symlink; refusing to follow it")
		case !old.Mode().IsRegular():
			return fmt.Errorf("the destination is not a regular file (%s)", old.Mode().Type())
		}
		if old != nil {
			same, err := p.sameRemote(ctx, s, c, f.Dest, old, f.Size, want, mode, uid, gid)
			if err != nil {
				return fmt.Errorf("read the old file: %w", err)
			}
			if same {
				return nil
			}
		}

		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("open content: %w", err)
		}
		defer rc.Close()
		fh, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("create temp file: %w", err)
		}
		created = true
		renamed := false
		defer func() {
			fh.Close()
			if !renamed {
				if err := c.Remove(tmp); err == nil || errors.Is(err, fs.ErrNotExist) {
					created = false
				}
			}
		}()
		if err := c.Chmod(tmp, 0o600); err != nil {
			return fmt.Errorf("chmod %s: %w", tmp, err)
		}
		sum := sha256.New()
		if err := copyExact(io.MultiWriter(fh, sum), rc, f.Size); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if got := hex.EncodeToString(sum.Sum(nil)); got != want {
			return fmt.Errorf("sha256 of the content is %s, not the announced %s", got, want)
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("write %s: %w", tmp, err)
		}
		if err := setRemoteAttrs(c, tmp, old, mode, uid, gid); err != nil {
			return err
		}
		if f.Backup && old != nil {
			bak := exec.PutBackupName(f.Dest, time.Now())
			if err := c.Link(f.Dest, bak); err != nil {
				return fmt.Errorf("backup to %s: %w", bak, err)
			}
			res.Backup = bak
		}
		if err := c.PosixRename(tmp, f.Dest); err != nil {
			return fmt.Errorf("rename %s into place: %w", tmp, err)
		}
		renamed = true
		created = false
		res.Changed = true
		return nil
	})
	if err != nil {
		if created {
			// The client was closed (ctx ended) before the deferred
			// removal could run: remove the temp file on a new one.
			cctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout+10*time.Second)
			if rerr := p.withSFTP(cctx, s, func(c *sftp.Client) error { return c.Remove(tmp) }); rerr != nil {
				p.log.Warn("ssh: remove temp file", "host", s.addr, "path", tmp, "err", rerr)
			}
			cancel()
		}
		return fail(err)
	}
	return res, nil
}

// setRemoteAttrs gives tmp its owner (asked, or the old file's) and then
// its mode (asked, the old file's, or 0644); chown clears set-id bits, so
// it comes first.
func setRemoteAttrs(c *sftp.Client, tmp string, old os.FileInfo, mode fs.FileMode, uid, gid int) error {
	if old != nil {
		if ou, og, ok := ownerOf(old); ok {
			if uid < 0 {
				uid = ou
			}
			if gid < 0 {
				gid = og
			}
		}
		if mode == 0 {
			mode = old.Mode() & exec.PutModeBits
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	if uid >= 0 || gid >= 0 {
		cur, err := c.Stat(tmp)
		if err != nil {
			return fmt.Errorf("stat %s: %w", tmp, err)
		}
		cu, cg, ok := ownerOf(cur)
		if !ok {
			return fmt.Errorf("stat %s: no owner", tmp)
		}
		if uid < 0 {
			uid = cu
		}
		if gid < 0 {
			gid = cg
		}
		if uid != cu || gid != cg {
			if err := c.Chown(tmp, uid, gid); err != nil {
				return fmt.Errorf("chown %s to %d:%d: %w", tmp, uid, gid, err)
			}
		}
	}
	if err := c.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	return nil
}

// sameRemote reports whether the regular file at dest (described by old)
// already has the size, sha256, mode and owner asked for.
func (p *Pool) sameRemote(ctx context.Context, s hostSpec, c *sftp.Client, dest string, old os.FileInfo, size int64, want string, mode fs.FileMode, uid, gid int) (bool, error) {
	if old.Size() != size || mode != 0 && old.Mode()&exec.PutModeBits != mode {
		return false, nil
	}
	if ou, og, ok := ownerOf(old); ok && (uid >= 0 && uid != ou || gid >= 0 && gid != og) {
		return false, nil
	}
	got, err := p.remoteSHA256(ctx, s, c, dest)
	if err != nil {
		return false, err
	}
	return got == want, nil
}

// remoteSHA256 hashes a file on the host: with sha256sum when the path
// is plain enough for a fixed command line, else by reading it over SFTP.
func (p *Pool) remoteSHA256(ctx context.Context, s hostSpec, c *sftp.Client, file string) (string, error) {
	if hashablePath.MatchString(file) && checkRemotePath(file) == nil {
		stdout, _, code, err := p.runPlain(ctx, s, plainCommand("sha256sum -- "+file, s.become), false)
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

// readRemote streams a regular file into w while hashing it.
func readRemote(c *sftp.Client, file string, w io.Writer) (int64, string, error) {
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

// Get streams the regular file at path on the host into w over SFTP and
// returns its size and sha256 (lower-case hex). Symlinks and other
// non-regular files are refused. With t.SSH.Become the SFTP server runs
// under sudo.
func (p *Pool) Get(ctx context.Context, t exec.Target, path string, w io.Writer) (int64, string, error) {
	s, err := p.spec(t)
	if err != nil {
		return 0, "", err
	}
	if err := checkRemotePath(path); err != nil {
		return 0, "", fmt.Errorf("get %q on %s: %w", path, s.id, err)
	}
	var n int64
	var sum string
	err = p.withSFTP(ctx, s, func(c *sftp.Client) error {
		st, err := c.Lstat(path)
		switch {
		case err != nil:
			return err
		case st.Mode()&fs.ModeSymlink != 0:
			return errors.New("a symlink; refusing to follow it")
		case !st.Mode().IsRegular():
			return fmt.Errorf("not a regular file (%s)", st.Mode().Type())
		}
		n, sum, err = readRemote(c, path, w)
		return err
	})
	if err != nil {
		if errors.Is(err, exec.ErrUnreachable) {
			return n, "", err
		}
		return n, "", fmt.Errorf("get %s on %s: %w", path, s.id, err)
	}
	return n, sum, nil
}
