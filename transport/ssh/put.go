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
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/model"
)

// randomSuffix returns 16 random hex digits, making a temp name unique.
func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Put places f on the host over SFTP, mirroring the agent's PutFile.
//
// A regular file (model.KindFile) that the destination already has, with
// the mode and owner asked for, is not sent and f.Open is not called; one
// it has with another mode or owner is not sent either, but given the
// owner and then the mode in place (Changed, never a backup). Otherwise
// the content goes to a temp file in a private (0700) temp directory
// beside the destination, is verified against f.Size and
// f.SHA256 as it is sent, synced when the server has fsync@openssh.com,
// hashed again on the host, gets its owner and mode and is renamed over
// the destination. A directory (model.KindDir) is made, or an
// existing one given the mode and owner asked for. A symlink
// (model.KindSymlink) is made at a temp name and renamed over the
// destination, replacing a file or symlink there; its owner is not set
// (pkg/sftp has no lchown). With f.Backup a replaced regular file is
// first hard-linked to DEST.felix-bak-<UTC time>. Any failure leaves the
// old entry as it was and removes the temp file and directory.
//
// A destination that is a symlink is refused for a file or directory
// unless f.FollowSymlinks, which puts it where the link points; with
// f.Root, an existing component of the destination below Root that is a
// symlink is refused the same way. SFTP works on paths, not descriptors:
// these checks and the writes after them are separate requests, so they
// keep a tree from being written through its own links but cannot stop a
// host changing its paths during the put.
//
// f.Owner must be numeric ("uid" or "uid:gid"). With t.SSH.Become the
// SFTP server runs under sudo.
func (p *Pool) Put(ctx context.Context, t model.Target, f model.PutFile) (model.PutResult, error) {
	var res model.PutResult
	var putErr error
	err := p.PutBatch(ctx, t, []model.PutFile{f}, func(_ int, r model.PutResult, err error) bool {
		res, putErr = r, err
		return true
	})
	if err == nil {
		err = putErr
	}
	return res, err
}

// PutBatch places files in order over one SFTP session, each as Put
// does, and calls done after each with its result; done returning false
// stops it. It returns an error only when the batch itself failed: the
// host could not be reached (wrapping exec.ErrUnreachable, before any
// done call), or ctx ended between files.
func (p *Pool) PutBatch(ctx context.Context, t model.Target, files []model.PutFile, done func(i int, res model.PutResult, err error) bool) error {
	s, err := p.spec(t)
	if err != nil {
		return err
	}
	// Owner names are resolved on the host first, once each.
	owners := map[string][2]int{}
	for _, f := range files {
		if _, ok := owners[f.Owner]; ok {
			continue
		}
		uid, gid, err := p.resolveOwner(ctx, t, f.Owner)
		if errors.Is(err, exec.ErrUnreachable) {
			return err
		}
		if err != nil {
			done(0, model.PutResult{}, fmt.Errorf("put %s on %s: %w", f.Dest, s.id, err))
			return nil
		}
		owners[f.Owner] = [2]int{uid, gid}
	}
	var leftovers []*putOp
	err = p.withFS(ctx, s, func(c remoteFS) error {
		for i, f := range files {
			if err := ctx.Err(); err != nil {
				return err
			}
			o, err := p.newPutOp(s, f, owners[f.Owner])
			if err == nil {
				o.c = c
				err = o.run(ctx)
				if o.created || o.madeDir {
					leftovers = append(leftovers, o)
				}
			}
			if err != nil {
				if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
					err = fmt.Errorf("%w (%w)", err, ctx.Err()) // why the connection was lost
				}
				err = fmt.Errorf("put %s on %s: %w", f.Dest, s.id, err)
				o = &putOp{}
			}
			if !done(i, o.res, err) {
				return nil
			}
		}
		return nil
	})
	if len(leftovers) > 0 {
		// The client was closed (ctx ended) before the temp entries
		// could be removed: remove them on a new one.
		cctx, cancel := context.WithTimeout(context.Background(), p.conf().ConnectTimeout+10*time.Second)
		rerr := p.withFS(cctx, s, func(c remoteFS) error {
			var errs []error
			for _, o := range leftovers {
				o.c = c
				if err := o.removeTemp(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", o.tmp, err))
				}
			}
			return errors.Join(errs...)
		})
		if rerr != nil {
			p.log.Warn("ssh: remove temp files", "host", s.addr, "err", rerr)
		}
		cancel()
	}
	if err != nil && !errors.Is(err, exec.ErrUnreachable) {
		return fmt.Errorf("put on %s: %w", s.id, err)
	}
	return err
}

// newPutOp checks f and prepares its put on the host s; owner holds the
// resolved uid and gid (-1: keep).
func (p *Pool) newPutOp(s hostSpec, f model.PutFile, owner [2]int) (*putOp, error) {
	if err := checkPut(f); err != nil {
		return nil, err
	}
	o := &putOp{p: p, s: s, f: f, dest: f.Dest, want: strings.ToLower(f.SHA256), uid: owner[0], gid: owner[1]}
	if f.Mode != 0 {
		o.mode = model.FileMode(f.Mode)
	}
	return o, nil
}

// checkPut validates f before anything is sent (model.PutFile.Check), and
// that a file has content to send.
func checkPut(f model.PutFile) error {
	if err := f.Check(); err != nil {
		return err
	}
	if f.Kind == model.KindFile && f.Open == nil {
		return errors.New("no content")
	}
	return nil
}

// putOp is one Put in progress on an SFTP client.
type putOp struct {
	p        *Pool
	s        hostSpec
	c        remoteFS
	f        model.PutFile
	dest     string      // f.Dest, or where it points once followed
	want     string      // a file's sha256, lower-case hex
	mode     fs.FileMode // asked for; 0 keeps an existing entry's
	uid, gid int         // asked for; -1 keeps an existing entry's
	tmp      string      // the temp file in tmpDir, or the temp symlink beside dest
	tmpDir   string      // a file's private temp directory beside dest
	created  bool        // tmp may exist and must be removed
	madeDir  bool        // tmpDir exists and must be removed (after tmp)
	res      model.PutResult
}

// testHookPut, when set by a test, is called with the private temp
// directory's path once it is made ("mkdir"), then with the temp file's
// once the file is created ("created") and once its content is written,
// synced and closed ("written"). It is nil in production; a test setting
// it does not run in parallel.
var testHookPut func(stage, path string)

// run checks the path below f.Root and the parent directory, then puts
// the entry of f's kind.
func (o *putOp) run(ctx context.Context) error {
	if !o.f.FollowSymlinks {
		if err := trustedPath(o.c, path.Dir(o.dest)); err != nil {
			return err
		}
	}
	if o.f.Root != "" && !o.f.FollowSymlinks {
		if err := o.checkBelowRoot(); err != nil {
			return err
		}
	}
	if err := o.parent(path.Dir(o.dest)); err != nil {
		return err
	}
	old, err := o.lstat(o.dest)
	if err != nil {
		return err
	}
	if old != nil && old.Mode()&fs.ModeSymlink != 0 && o.f.Kind != model.KindSymlink {
		if !o.f.FollowSymlinks {
			return errors.New("the destination is a symlink; refusing to follow it")
		}
		if old, err = o.follow(); err != nil {
			return err
		}
	}
	switch o.f.Kind {
	case model.KindDir:
		return o.dir(old)
	case model.KindSymlink:
		return o.symlink(old)
	}
	return o.file(ctx, old)
}

// checkBelowRoot refuses a symlink among the existing components of
// f.Dest strictly between f.Root and it: a tree is not written through a
// link out of it. Root and what is above it are the host's own (links
// such as /var/run are fine); f.Dest itself is checked by run. A missing
// component ends the walk, as nothing below it exists.
func (o *putOp) checkBelowRoot() error {
	cur := o.f.Root
	rel := strings.TrimPrefix(o.f.Dest, strings.TrimSuffix(cur, "/")+"/")
	names := strings.Split(rel, "/")
	for _, name := range names[:len(names)-1] {
		cur = path.Join(cur, name)
		st, err := o.lstat(cur)
		switch {
		case err != nil:
			return err
		case st == nil:
			return nil
		case st.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink; refusing to follow it out of the tree", cur)
		case !st.IsDir():
			return fmt.Errorf("%s is not a directory", cur)
		}
	}
	return nil
}

// parent makes sure dir is a directory, creating it (and its parents)
// when it is missing and f.Mkdir asks for that.
func (o *putOp) parent(dir string) error {
	switch st, err := o.c.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if !o.f.Mkdir {
			return fmt.Errorf("directory %s does not exist (mkdir not asked)", dir)
		}
		if err := o.c.MkdirAll(dir); err != nil {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("stat %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// lstat describes the entry at p without following it; nil when there is
// none.
func (o *putOp) lstat(p string) (os.FileInfo, error) {
	st, err := o.c.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("lstat %s: %w", p, err)
	}
	return st, nil
}

// follow resolves the symlink at o.dest on the host (OpenSSH's realpath
// also resolves a link to a missing last component), makes the result the
// destination and describes what is there, nil when nothing is yet.
func (o *putOp) follow() (os.FileInfo, error) {
	real, err := o.c.RealPath(o.dest)
	if err != nil {
		return nil, fmt.Errorf("resolve the symlink at the destination: %w", err)
	}
	if err := model.CheckPath(real); err != nil {
		return nil, fmt.Errorf("the destination is a symlink to %q: %w", real, err)
	}
	old, err := o.lstat(real)
	if err != nil {
		return nil, err
	}
	if old != nil && old.Mode()&fs.ModeSymlink != 0 {
		return nil, fmt.Errorf("the destination resolved to %s, still a symlink", real)
	}
	o.dest = real
	return old, nil
}

// dir makes the directory at o.dest, or gives the existing one the mode
// and owner asked for.
func (o *putOp) dir(old os.FileInfo) error {
	if old == nil {
		if err := o.c.Mkdir(o.dest); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
		o.res.Changed = true
		mode := o.mode
		if mode == 0 {
			mode = 0o755
		}
		return setRemoteAttrs(o.c, o.dest, nil, mode, o.uid, o.gid)
	}
	if !old.IsDir() {
		return fmt.Errorf("the destination is not a directory (%s)", describeMode(old.Mode()))
	}
	if sameAttrs(old, o.mode, o.uid, o.gid) {
		return nil
	}
	o.res.Changed = true
	return setRemoteAttrs(o.c, o.dest, old, o.mode, o.uid, o.gid)
}

// symlink makes a symlink to f.Link at a temp name beside o.dest and
// renames it over the file or symlink there; a symlink already pointing
// to f.Link is left alone.
func (o *putOp) symlink(old os.FileInfo) error {
	if old != nil {
		switch {
		case old.Mode()&fs.ModeSymlink != 0:
			target, err := o.c.ReadLink(o.dest)
			if err != nil {
				return fmt.Errorf("readlink: %w", err)
			}
			if target == o.f.Link {
				return nil
			}
		case !old.Mode().IsRegular():
			return fmt.Errorf("the destination is %s, not a file or symlink to replace", describeMode(old.Mode()))
		}
	}
	o.tmp = model.PutTempName(o.dest, randomSuffix())
	if err := o.c.Symlink(o.f.Link, o.tmp); err != nil {
		return fmt.Errorf("create temp symlink %s: %w", o.tmp, err)
	}
	o.created = true
	// The owner is not set: pkg/sftp has no lchown (OpenSSH's
	// lsetstat@openssh.com) and SETSTAT follows the link, so a chown
	// would change its target. The link belongs to the SFTP server's
	// user, and a link's owner grants nothing on Linux.
	if err := o.replace(old); err != nil {
		_ = o.removeTemp()
		return err
	}
	return nil
}

// file sends the content to a temp file in a private directory beside
// o.dest, verifies and syncs it, gives it its owner and mode and renames
// it over the old file (backed up when f.Backup asks), unless the old file
// already has the content: then it only gets the owner and mode asked for
// where it has others, in place, and is never backed up, as its content
// does not change.
func (o *putOp) file(ctx context.Context, old os.FileInfo) error {
	if old != nil {
		if !old.Mode().IsRegular() {
			return fmt.Errorf("the destination is not a regular file (%s)", describeMode(old.Mode()))
		}
		same, err := o.p.sameRemote(ctx, o.s, o.c, o.dest, old, o.f.Size, o.want)
		if err != nil {
			return fmt.Errorf("read the old file: %w", err)
		}
		if same {
			if sameAttrs(old, o.mode, o.uid, o.gid) {
				return nil
			}
			// Chown (the ids are resolved) then chmod. SFTP goes by path,
			// not descriptor: o.dest was Lstat'ed as a regular file and
			// hashed just before and is changed by path now (see Put on
			// what that cannot stop). SFTP does not tell a file's link
			// count, so unlike the minion this cannot spare other hard
			// links of it.
			o.res.Changed = true
			return setRemoteAttrs(o.c, o.dest, old, o.mode, o.uid, o.gid)
		}
	}
	rc, err := o.f.Open()
	if err != nil {
		return fmt.Errorf("open content: %w", err)
	}
	defer rc.Close()
	err = o.send(ctx, rc, old)
	// The temp file after a failure, the private directory in any case;
	// what is left is removed on a new client by Put.
	_ = o.removeTemp()
	return err
}

// send makes the private directory, writes the content to a temp file in
// it, verifies it on the host, gives it its attributes and renames it
// over o.dest.
func (o *putOp) send(ctx context.Context, r io.Reader, old os.FileInfo) error {
	dir, err := o.privateDir()
	if err != nil {
		return err
	}
	o.tmp = path.Join(o.tmpDir, "data")
	fh, err := o.c.Create(o.tmp)
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	o.created = true
	if testHookPut != nil {
		testHookPut("created", o.tmp)
	}
	err = o.fill(fh, dir, r)
	if cerr := fh.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", o.tmp, cerr)
	}
	if err != nil {
		return err
	}
	if testHookPut != nil {
		testHookPut("written", o.tmp)
	}
	// Before the attributes: a mode such as 0200 would keep a login
	// that is not root from reading the file back.
	got, err := o.p.remoteSHA256(ctx, o.s, o.c, o.tmp, o.f.Size)
	if err != nil {
		return fmt.Errorf("hash %s on the host: %w", o.tmp, err)
	}
	if got != o.want {
		return fmt.Errorf("sha256 of the content on the host is %s, not the announced %s", got, o.want)
	}
	if err := setRemoteAttrs(o.c, o.tmp, old, o.mode, o.uid, o.gid); err != nil {
		return err
	}
	return o.replace(old)
}

// privateDir makes the temp directory beside o.dest and makes it private
// (0700) before anything is created in it, so no other user of the host
// can open the temp file while it is written or keep it open to read it
// later. It returns the directory as checked: a directory with mode 0700
// (its owner is compared with the temp file's by fill).
func (o *putOp) privateDir() (os.FileInfo, error) {
	dir := model.PutTempName(o.dest, randomSuffix())
	if err := o.c.Mkdir(dir); err != nil {
		return nil, fmt.Errorf("create temp directory: %w", err)
	}
	o.tmpDir, o.madeDir = dir, true
	if testHookPut != nil {
		testHookPut("mkdir", dir)
	}
	if err := o.c.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod %s: %w", dir, err)
	}
	st, err := o.c.Lstat(dir)
	switch {
	case err != nil:
		return nil, fmt.Errorf("lstat %s: %w", dir, err)
	case !st.IsDir():
		return nil, fmt.Errorf("temp directory %s is %s", dir, describeMode(st.Mode()))
	case st.Mode().Perm() != 0o700:
		return nil, fmt.Errorf("temp directory %s has mode %#o, not 0700", dir, st.Mode().Perm())
	}
	return st, nil
}

// fill checks that the private directory dir belongs to the user the new
// temp file does (the SFTP server's: the login, or root with become),
// then writes the content to the file, verifies it and syncs it to disk
// when the server can. SFTP does not tell its user, so the owner is
// checked once the empty file exists, before any content is written.
func (o *putOp) fill(fh remoteFile, dir os.FileInfo, r io.Reader) error {
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", o.tmp, err)
	}
	fu, _, fok := ownerOf(st)
	du, _, dok := ownerOf(dir)
	if fok && dok && fu != du {
		return fmt.Errorf("temp directory %s is owned by uid %d, not the login's %d", o.tmpDir, du, fu)
	}
	sum := sha256.New()
	if err := copyExact(io.MultiWriter(fh, sum), r, o.f.Size); err != nil {
		return fmt.Errorf("write %s: %w", o.tmp, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != o.want {
		return fmt.Errorf("sha256 of the content is %s, not the announced %s", got, o.want)
	}
	// Without fsync@openssh.com the rename may reach the disk before the
	// content does; that server cannot do better.
	if err := fh.Sync(); err != nil && !isUnsupported(err) {
		return fmt.Errorf("fsync %s: %w", o.tmp, err)
	}
	return nil
}

// replace backs up the old regular file when asked and renames the temp
// entry over o.dest.
func (o *putOp) replace(old os.FileInfo) error {
	if o.f.Backup && old != nil && old.Mode().IsRegular() {
		bak := model.PutBackupName(o.dest, time.Now())
		if err := o.c.Link(o.dest, bak); err != nil {
			return fmt.Errorf("backup to %s: %w", bak, err)
		}
		o.res.Backup = bak
	}
	if err := o.c.PosixRename(o.tmp, o.dest); err != nil {
		return fmt.Errorf("rename %s into place: %w", o.tmp, err)
	}
	o.created = false
	o.res.Changed = true
	return nil
}

// removeTemp removes the temp entry, then the private directory when
// there is one; what it cannot remove (the client was closed) Put tries
// again on a new client.
func (o *putOp) removeTemp() error {
	if o.created {
		if err := o.c.Remove(o.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", o.tmp, err)
		}
		o.created = false
	}
	if o.madeDir {
		if err := o.c.RemoveDirectory(o.tmpDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", o.tmpDir, err)
		}
		o.madeDir = false
	}
	return nil
}

// isUnsupported reports whether err is SFTP's "operation unsupported",
// which pkg/sftp's File.Sync returns when the server lacks
// fsync@openssh.com.
func isUnsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported
}

// describeMode names the type of an entry for an error message.
func describeMode(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	}
	return "a special file (" + m.Type().String() + ")"
}

// setRemoteAttrs gives tmp (a new temp file, a directory, or a file kept
// in place) its owner (asked, or old's) and then its mode (asked, old's,
// or 0644); chown clears set-id bits, so it comes first.
func setRemoteAttrs(c remoteFS, tmp string, old os.FileInfo, mode fs.FileMode, uid, gid int) error {
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
			mode = old.Mode() & model.PutModeBits
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

// sameAttrs reports whether an existing entry has the mode (0: any) and
// owner (-1: any) asked for.
func sameAttrs(old os.FileInfo, mode fs.FileMode, uid, gid int) bool {
	if mode != 0 && old.Mode()&model.PutModeBits != mode {
		return false
	}
	ou, og, ok := ownerOf(old)
	return !ok || (uid < 0 || uid == ou) && (gid < 0 || gid == og)
}

// trustedPath refuses a directory path whose existing part goes through a
// symlink root does not own (see hostfile.ResolveTrusted): a user who owns
// a directory on it cannot turn it into a link and redirect a write made
// with sudo. Over SFTP the login's own uid is not known, so only root's
// links are followed; follow_symlinks follows any. A missing part is
// fine: what mkdir makes there is no link.
func trustedPath(c remoteFS, dir string) error {
	_, err := hostfile.ResolveTrusted(c, dir, func(fi fs.FileInfo) (bool, string) {
		uid, _, ok := ownerOf(fi)
		if !ok {
			return false, "owner unknown"
		}
		return uid == 0, fmt.Sprintf("owned by uid %d", uid)
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
