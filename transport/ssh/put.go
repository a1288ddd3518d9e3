package ssh

import (
	"bytes"
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
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
)

// numericID is a uid or gid given as a number.
var numericID = regexp.MustCompile(`^[0-9]{1,10}$`)

// ownerName is a user or group name Put resolves on the host.
var ownerName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// ownerScript prints the uid of the user named in FELIX_OWNER_USER and
// the gid of the group named in FELIX_OWNER_GROUP as "uid:gid" (either
// empty when not asked). The names reach it as environment data, never as
// part of the command line.
const ownerScript = `u= g=
if [ -n "$FELIX_OWNER_USER" ]; then u=$(id -u -- "$FELIX_OWNER_USER") || exit 3; fi
if [ -n "$FELIX_OWNER_GROUP" ]; then
	g=$(getent group -- "$FELIX_OWNER_GROUP" 2>/dev/null | cut -d: -f3)
	[ -n "$g" ] || g=$(awk -F: -v n="$FELIX_OWNER_GROUP" '$1 == n { print $3; exit }' /etc/group)
	[ -n "$g" ] || { echo "no such group: $FELIX_OWNER_GROUP" >&2; exit 4; }
fi
echo "$u:$g"`

// resolveOwner turns "user:group" (either part a name or a number, or
// empty) into ids, -1 for a part not asked. Numbers are taken as they
// are; names are looked up on the host with ownerScript, in one command.
func (p *Pool) resolveOwner(ctx context.Context, t model.Target, owner string) (uid, gid int, err error) {
	if owner == "" {
		return -1, -1, nil
	}
	un, gn, _ := strings.Cut(owner, ":")
	ids := [2]int{-1, -1}
	var env []string
	for i, part := range []string{un, gn} {
		switch {
		case part == "":
		case numericID.MatchString(part):
			n, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			ids[i] = int(n)
		case ownerName.MatchString(part):
			env = append(env, []string{"FELIX_OWNER_USER=", "FELIX_OWNER_GROUP="}[i]+part)
		default:
			return -1, -1, fmt.Errorf("owner %q: want user:group names or numeric ids", owner)
		}
	}
	if un == "" && gn == "" {
		return -1, -1, fmt.Errorf("owner %q names neither user nor group", owner)
	}
	if len(env) == 0 {
		return ids[0], ids[1], nil
	}
	stdout, stderr, code, err := p.runCollect(ctx, t, runSpec{line: ownerScript, env: env, timeout: 30 * time.Second})
	if err != nil {
		return -1, -1, fmt.Errorf("owner %q: look up on the host: %w", owner, err)
	}
	if code != 0 {
		return -1, -1, fmt.Errorf("owner %q: %s", owner, bytes.TrimSpace(stderr))
	}
	u, g, ok := strings.Cut(string(bytes.TrimSpace(stdout)), ":")
	for i, v := range []string{u, g} {
		if v == "" || ids[i] >= 0 {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || !ok {
			return -1, -1, fmt.Errorf("owner %q: the host answered %q", owner, stdout)
		}
		ids[i] = int(n)
	}
	return ids[0], ids[1], nil
}

// hashablePath is a path that may be passed to sha256sum on a command
// line as it is; any other path is hashed by reading it over SFTP.
var hashablePath = regexp.MustCompile(`^/[A-Za-z0-9._/+@-]*$`)

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
	err = p.withSFTP(ctx, s, func(c *sftp.Client) error {
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
		cctx, cancel := context.WithTimeout(context.Background(), p.cfg.ConnectTimeout+10*time.Second)
		rerr := p.withSFTP(cctx, s, func(c *sftp.Client) error {
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
		o.mode = fileMode(f.Mode)
	}
	return o, nil
}

// checkPut validates f before anything is sent: its paths, and the
// fields its kind has (content for a file, a target for a symlink).
func checkPut(f model.PutFile) error {
	if err := model.CheckPath(f.Dest); err != nil {
		return err
	}
	if f.Root != "" {
		if f.Root != "/" {
			if err := model.CheckPath(f.Root); err != nil {
				return fmt.Errorf("root: %w", err)
			}
		}
		if !strings.HasPrefix(f.Dest, strings.TrimSuffix(f.Root, "/")+"/") {
			return fmt.Errorf("root %s is not an ancestor of the destination", f.Root)
		}
	}
	if f.Mode&^0o7777 != 0 {
		return fmt.Errorf("mode %#o has bits beyond 07777", f.Mode)
	}
	switch f.Kind {
	case model.KindFile:
		if b, err := hex.DecodeString(strings.ToLower(f.SHA256)); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("sha256 %q is not 64 hex digits", f.SHA256)
		}
		if f.Size < 0 {
			return fmt.Errorf("negative size %d", f.Size)
		}
		if f.Open == nil {
			return errors.New("no content")
		}
	case model.KindDir, model.KindSymlink:
		if f.Size != 0 || f.SHA256 != "" {
			return fmt.Errorf("a %s has no content (size %d, sha256 %q)", f.Kind, f.Size, f.SHA256)
		}
	default:
		return fmt.Errorf("unknown kind %d", f.Kind)
	}
	switch {
	case f.Kind != model.KindSymlink && f.Link != "":
		return fmt.Errorf("a %s has no link target (%q)", f.Kind, f.Link)
	case f.Kind == model.KindSymlink && f.Link == "":
		return errors.New("empty link target")
	case strings.ContainsRune(f.Link, 0):
		return fmt.Errorf("link target %q contains NUL", f.Link)
	}
	return nil
}

// putOp is one Put in progress on an SFTP client.
type putOp struct {
	p        *Pool
	s        hostSpec
	c        *sftp.Client
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
	o.tmp = exec.PutTempName(o.dest, randomSuffix())
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
	fh, err := o.c.OpenFile(o.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
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
	dir := exec.PutTempName(o.dest, randomSuffix())
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
func (o *putOp) fill(fh *sftp.File, dir os.FileInfo, r io.Reader) error {
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
		bak := exec.PutBackupName(o.dest, time.Now())
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
// already has the size and sha256 asked for; its mode and owner are
// sameAttrs's.
func (p *Pool) sameRemote(ctx context.Context, s hostSpec, c *sftp.Client, dest string, old os.FileInfo, size int64, want string) (bool, error) {
	if old.Size() != size {
		return false, nil
	}
	got, err := p.remoteSHA256(ctx, s, c, dest, size)
	if err != nil {
		return false, err
	}
	return got == want, nil
}

// sameAttrs reports whether an existing entry has the mode (0: any) and
// owner (-1: any) asked for.
func sameAttrs(old os.FileInfo, mode fs.FileMode, uid, gid int) bool {
	if mode != 0 && old.Mode()&exec.PutModeBits != mode {
		return false
	}
	ou, og, ok := ownerOf(old)
	return !ok || (uid < 0 || uid == ou) && (gid < 0 || gid == og)
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
func (p *Pool) remoteSHA256(ctx context.Context, s hostSpec, c *sftp.Client, file string, size int64) (string, error) {
	if size > readBackMax && hashablePath.MatchString(file) && model.CheckPath(file) == nil && p.startNested() {
		stdout, _, code, err := p.runPlain(ctx, s, plainCommand("sha256sum -- "+file, s.become), true)
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
	err = p.withSFTP(ctx, s, func(c *sftp.Client) error {
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
