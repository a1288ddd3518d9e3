package state

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aymanbagabas/go-udiff"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/packages"
)

// Runner runs one command line on the host (/bin/sh -c there) and streams
// its output to out: the host's transport.
type Runner = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error)

// Putter places one file, directory or symlink on the host through the
// transport's verified, atomic put (skipped when the host has it already).
type Putter = func(ctx context.Context, f model.PutFile) (model.PutResult, error)

// maxRead bounds a file felix reads back to compare and diff.
const maxRead = MaxRendered + 1

// Run applies a on host t: it renders the host's resources, then makes
// each so in document order, and returns the report in Exit.Apply
// (Exit.Code 0 when no resource failed). A template that does not render
// for this host fails the host alone. An error from run on the first
// command is returned as is (errors.Is(err, exec.ErrUnreachable) then
// still tells that nothing ran).
func Run(ctx context.Context, run Runner, put Putter, t model.Target, a *model.Apply, out model.OutputFunc) (model.Exit, error) {
	exit := model.Exit{Code: -1}
	rep := &model.ApplyReport{Config: a.Spec.Name(), DryRun: a.Spec.DryRun}
	resources, err := a.Render(ctx, t)
	if err != nil {
		return exit, err
	}
	exit.Apply = rep
	h := &host{run: run, put: put, content: a.Content, t: t, dry: a.Spec.DryRun, out: out}
	// A first, empty command: its error, if any, is the transport's about
	// reaching the host, returned as is; after it every failure is a
	// resource's.
	if _, _, _, err := h.exec(ctx, "true", false); err != nil {
		return model.Exit{Code: -1}, err
	}
	byID := map[string]*model.ResourceResult{}
	for _, r := range resources {
		if err := ctx.Err(); err != nil {
			rep.Count()
			return exit, fmt.Errorf("apply stopped before %s: %w", r.ID, err)
		}
		res := model.ResourceResult{ID: r.ID, Type: r.Type}
		switch dep := blocked(r, byID); {
		case dep != "":
			res.State, res.Error = model.ResSkipped, "requires "+dep+", which did not succeed"
		default:
			h.apply(ctx, r, triggered(r, byID), &res)
		}
		rep.Resources = append(rep.Resources, res)
		byID[r.ID] = &rep.Resources[len(rep.Resources)-1]
		h.say("%s %s %s%s\n", res.State, r.Type, r.ID, suffix(res))
	}
	rep.Count()
	exit.Apply = rep.CutDiffs(model.MaxReportDiffs)
	if ctx.Err() != nil {
		return exit, ctx.Err()
	}
	if rep.Failed == 0 {
		exit.Code = 0
	} else {
		exit.Code = 1
	}
	return exit, nil
}

func suffix(res model.ResourceResult) string {
	switch {
	case res.Error != "":
		return ": " + res.Error
	case res.Detail != "":
		return ": " + res.Detail
	}
	return ""
}

// blocked names the first required resource that failed or was skipped.
func blocked(r model.Resource, done map[string]*model.ResourceResult) string {
	for _, id := range r.Require {
		if d := done[id]; d == nil || d.State == model.ResFailed || d.State == model.ResSkipped {
			return id
		}
	}
	return ""
}

// triggered reports whether r watches nothing, or a watched resource
// changed (or, in a dry run, would change).
func triggered(r model.Resource, done map[string]*model.ResourceResult) bool {
	if len(r.OnChange) == 0 {
		return true
	}
	for _, id := range r.OnChange {
		if d := done[id]; d != nil && d.State == model.ResChanged {
			return true
		}
	}
	return false
}

// host applies resources on one host.
type host struct {
	run     Runner
	put     Putter
	content func(sha string) (io.ReadCloser, int64, error)
	t       model.Target
	dry     bool
	out     model.OutputFunc
}

func (h *host) say(format string, args ...any) {
	if h.out != nil {
		h.out(model.Stdout, fmt.Appendf(nil, format, args...))
	}
}

// exec runs a command line, capturing its output (and streaming it to the
// job's output when stream).
func (h *host) exec(ctx context.Context, line string, stream bool) (stdout, stderr []byte, code int, err error) {
	var ob, eb limited
	out := func(s model.Stream, p []byte) {
		if s == model.Stderr {
			eb.write(p)
		} else {
			ob.write(p)
		}
		if stream && h.out != nil {
			h.out(s, p)
		}
	}
	timeout := time.Hour
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d)-time.Second, time.Second)
	}
	x, err := h.run(ctx, model.Command{Line: line, Timeout: timeout}, out)
	switch {
	case err != nil:
		return nil, nil, -1, err
	case x.TimedOut:
		return ob.b, eb.b, -1, errors.New("killed at the job's deadline")
	case x.Signal != "":
		return ob.b, eb.b, -1, fmt.Errorf("killed by %s", x.Signal)
	}
	return ob.b, eb.b, x.Code, nil
}

// limited keeps at most maxRead bytes.
type limited struct {
	b    []byte
	over bool
}

func (l *limited) write(p []byte) {
	if room := maxRead - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(len(p), room)]...)
	}
	if len(l.b) >= maxRead {
		l.over = true
	}
}

func (h *host) apply(ctx context.Context, r model.Resource, fire bool, res *model.ResourceResult) {
	var err error
	switch r.Type {
	case model.ResFile:
		err = h.file(ctx, r, res)
	case model.ResDir:
		err = h.dir(ctx, r, res)
	case model.ResSymlink:
		err = h.symlink(ctx, r, res)
	case model.ResPkg:
		err = h.pkg(ctx, r, res)
	case model.ResService:
		err = h.service(ctx, r, fire, res)
	case model.ResCmd:
		err = h.cmd(ctx, r, fire, res)
	default:
		err = fmt.Errorf("unknown resource type %q", r.Type)
	}
	if err != nil {
		res.State, res.Error = model.ResFailed, err.Error()
	}
}

// what is on the host at a path.
type stat struct {
	kind         string // absent, file, dir, link, other
	mode         uint32
	owner, group string // names
	uid, gid     string // numbers
	size         int64
	link         string
	text         *string // a small file's content, when asked for
}

// statScript prints what is at $1: "absent", "link TARGET", "other", or
// "file|dir MODE OWNER GROUP UID GID SIZE"; for a file of at most $2 bytes
// ($2 -1: none) the content follows that line, so that comparing a small
// file costs one command.
const statScript = `p=$1
if [ -L "$p" ]; then printf 'link %s\n' "$(readlink -- "$p")"
elif [ -d "$p" ]; then printf 'dir '; stat -c '%a %U %G %u %g %s' -- "$p"
elif [ -f "$p" ]; then s=$(stat -c '%a %U %G %u %g %s' -- "$p") || exit 1; printf 'file %s\n' "$s"
  if [ "${s##* }" -le "$2" ]; then cat -- "$p" || exit 1; fi
elif [ -e "$p" ]; then echo other
else echo absent; fi`

// stat says what is at path, with the content of a file of at most
// readMax bytes (-1: never) in st.text.
func (h *host) stat(ctx context.Context, path string, readMax int64) (stat, error) {
	stdout, stderr, code, err := h.exec(ctx, script(statScript, path, strconv.FormatInt(readMax, 10)), false)
	if err != nil {
		return stat{}, fmt.Errorf("look at %s: %w", path, err)
	}
	line, rest, _ := strings.Cut(string(stdout), "\n")
	if code != 0 || line == "" {
		return stat{}, fmt.Errorf("look at %s: exit %d: %s", path, code, lastLine(stderr))
	}
	kind, fields, _ := strings.Cut(line, " ")
	st := stat{kind: kind}
	switch kind {
	case "link":
		st.link = fields
	case "file", "dir":
		f := strings.Fields(fields)
		if len(f) != 6 {
			return stat{}, fmt.Errorf("look at %s: unexpected answer %q", path, line)
		}
		m, _ := strconv.ParseUint(f[0], 8, 32)
		st.mode, st.owner, st.group, st.uid, st.gid = uint32(m), f[1], f[2], f[3], f[4]
		st.size, _ = strconv.ParseInt(f[5], 10, 64)
		if kind == "file" && st.size <= readMax {
			st.text = &rest
		}
	}
	return st, nil
}

// ownerDiff says how the owner and group differ from r's, "" when they
// do not (or r sets none).
func ownerDiff(r model.Resource, st stat) string {
	var d []string
	if r.Owner != "" && r.Owner != st.owner && r.Owner != st.uid {
		d = append(d, "owner "+st.owner+" → "+r.Owner)
	}
	if r.Group != "" && r.Group != st.group && r.Group != st.gid {
		d = append(d, "group "+st.group+" → "+r.Group)
	}
	return strings.Join(d, ", ")
}

func modeDiff(want uint32, st stat) string {
	if want != 0 && want != st.mode {
		return fmt.Sprintf("mode %04o → %04o", st.mode, want)
	}
	return ""
}

// idScript prints the number of user $1 (when set) and of group $2 (when
// set), each on its line: puts take numbers on every transport.
const idScript = `if [ -n "$1" ]; then id -u -- "$1" || exit 1; else echo; fi
if [ -n "$2" ]; then g=$(getent group "$2" | cut -d: -f3); [ -n "$g" ] || { echo "no group $2" >&2; exit 1; }; echo "$g"; else echo; fi`

// owner is r's owner and group as a put takes them, "uid:gid" (either may
// be empty), names resolved to numbers on the host.
func (h *host) owner(ctx context.Context, r model.Resource) (string, error) {
	if r.Owner == "" && r.Group == "" {
		return "", nil
	}
	numeric := func(s string) bool { return s == "" || strings.Trim(s, "0123456789") == "" }
	if numeric(r.Owner) && numeric(r.Group) {
		return r.Owner + ":" + r.Group, nil
	}
	stdout, stderr, code, err := h.exec(ctx, script(idScript, r.Owner, r.Group), false)
	if err != nil {
		return "", fmt.Errorf("look up owner %s:%s: %w", r.Owner, r.Group, err)
	}
	lines := strings.Split(string(stdout), "\n")
	if code != 0 || len(lines) < 2 {
		return "", fmt.Errorf("look up owner %s:%s: %s", r.Owner, r.Group, cmp.Or(lastLine(stderr), fmt.Sprintf("exit %d", code)))
	}
	return strings.TrimSpace(lines[0]) + ":" + strings.TrimSpace(lines[1]), nil
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ", ")
}

// maxDiffed bounds the files felix reads back to compare byte for byte
// and diff; larger ones are compared by sha256 on the host.
const maxDiffed = 256 << 10

// desired is what a file resource should hold.
type desired struct {
	sha  string
	size int64
	text *string // the content, when it is small enough to diff
	open func() (io.ReadCloser, error)
}

func (h *host) desired(r model.Resource) (desired, error) {
	if r.Content != nil {
		want := *r.Content
		sum := sha256.Sum256([]byte(want))
		return desired{sha: hex.EncodeToString(sum[:]), size: int64(len(want)), text: &want,
			open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(want)), nil }}, nil
	}
	if h.content == nil {
		return desired{}, errors.New("this master gives no stored content")
	}
	open := func() (io.ReadCloser, error) {
		rc, _, err := h.content(r.Source)
		return rc, err
	}
	rc, size, err := h.content(r.Source)
	if err != nil {
		return desired{}, fmt.Errorf("source sha256:%s: %w", r.Source, err)
	}
	defer rc.Close()
	d := desired{sha: r.Source, size: size, open: open}
	if size <= maxDiffed {
		b, err := io.ReadAll(io.LimitReader(rc, maxDiffed+1))
		if err != nil {
			return desired{}, fmt.Errorf("read source sha256:%s: %w", r.Source, err)
		}
		text := string(b)
		d.text = &text
	}
	return d, nil
}

// current is what the file at path holds: the text stat read when both
// it and the wanted content are small enough to diff, else its sha256.
func (h *host) current(ctx context.Context, path string, st stat) (text *string, sha string, err error) {
	if st.text != nil {
		return st.text, "", nil
	}
	stdout, stderr, code, err := h.exec(ctx, script(`sha256sum -- "$1"`, path), false)
	if err != nil {
		return nil, "", fmt.Errorf("hash %s: %w", path, err)
	}
	f := strings.Fields(string(stdout))
	if code != 0 || len(f) == 0 || len(f[0]) != 64 {
		return nil, "", fmt.Errorf("hash %s: exit %d: %s", path, code, lastLine(stderr))
	}
	return nil, f[0], nil
}

func (h *host) file(ctx context.Context, r model.Resource, res *model.ResourceResult) error {
	if r.Absent {
		st, err := h.stat(ctx, r.Path, -1)
		if err != nil {
			return err
		}
		return h.remove(ctx, r, st, res)
	}
	want, err := h.desired(r)
	if err != nil {
		return err
	}
	readMax := int64(-1)
	if want.text != nil {
		readMax = maxDiffed // compared byte for byte and diffed
	}
	st, err := h.stat(ctx, r.Path, readMax)
	if err != nil {
		return err
	}
	if st.kind != "absent" && st.kind != "file" {
		return fmt.Errorf("%s is a %s, not a file", r.Path, kindName(st.kind))
	}
	contentChanged, diffText := true, ""
	if st.kind == "file" {
		old, sha, err := h.current(ctx, r.Path, st)
		if err != nil {
			return err
		}
		switch {
		case old != nil:
			contentChanged = *old != *want.text
			if contentChanged {
				diffText = diff(r.Path, *old, *want.text, false)
			}
		default:
			contentChanged = sha != want.sha
			if contentChanged {
				diffText = fmt.Sprintf("content sha256 %s (%d bytes) → %s (%d bytes): too large to diff\n", sha, st.size, want.sha, want.size)
			}
		}
	} else if want.text != nil {
		diffText = diff(r.Path, "", *want.text, true)
	}
	mode := r.Mode
	if st.kind == "absent" && mode == 0 {
		mode = 0o644
	}
	meta := ""
	if st.kind == "file" {
		meta = join(modeDiff(r.Mode, st), ownerDiff(r, st))
	}
	if !contentChanged && meta == "" {
		res.State = model.ResUnchanged
		return nil
	}
	res.State, res.Detail, res.Diff = model.ResChanged, meta, diffText
	if contentChanged {
		res.Detail = join("content", meta)
	}
	if st.kind == "absent" {
		res.Detail = fmt.Sprintf("created, mode %04o, %d bytes", mode, want.size)
	}
	if h.dry {
		return nil
	}
	own, err := h.owner(ctx, r)
	if err != nil {
		return err
	}
	pr, err := h.put(ctx, model.PutFile{Dest: r.Path, Kind: model.KindFile, Size: want.size, SHA256: want.sha,
		Mode: r.Mode, Owner: own, Mkdir: true, Backup: r.Backup, Open: want.open})
	if err != nil {
		return fmt.Errorf("write %s: %w", r.Path, err)
	}
	if pr.Backup != "" {
		res.Detail = join(res.Detail, "backup "+pr.Backup)
	}
	return nil
}

func kindName(k string) string {
	switch k {
	case "dir":
		return "directory"
	case "link":
		return "symlink"
	case "file":
		return "file"
	}
	return "special file"
}

// diff is old → new as a unified diff, at most model.MaxConfigDiff bytes;
// content with NUL bytes is binary and only said to differ.
func diff(path, old, new string, created bool) string {
	from := path
	if created {
		from = "/dev/null"
	}
	if strings.ContainsRune(old, 0) || strings.ContainsRune(new, 0) {
		return "Binary files " + from + " and " + path + " differ\n"
	}
	d := udiff.Unified(from, path, old, new)
	if len(d) > model.MaxConfigDiff {
		d = d[:model.MaxConfigDiff] + "\n[... diff cut by felix ...]\n"
	}
	return d
}

// remove makes sure nothing is at r.Path (an empty directory for a dir).
func (h *host) remove(ctx context.Context, r model.Resource, st stat, res *model.ResourceResult) error {
	want := map[string]string{model.ResFile: "file", model.ResDir: "dir", model.ResSymlink: "link"}[r.Type]
	switch {
	case st.kind == "absent":
		res.State = model.ResUnchanged
		return nil
	case st.kind != want:
		return fmt.Errorf("%s is a %s, not a %s: felix leaves it", r.Path, kindName(st.kind), kindName(want))
	}
	res.State, res.Detail = model.ResChanged, "removed"
	if h.dry {
		return nil
	}
	line := script(`rm -f -- "$1"`, r.Path)
	if r.Type == model.ResDir {
		line = script(`rmdir -- "$1"`, r.Path)
	}
	_, stderr, code, err := h.exec(ctx, line, false)
	if err != nil {
		return fmt.Errorf("remove %s: %w", r.Path, err)
	}
	if code != 0 {
		return fmt.Errorf("remove %s: exit %d: %s", r.Path, code, lastLine(stderr))
	}
	return nil
}

func (h *host) dir(ctx context.Context, r model.Resource, res *model.ResourceResult) error {
	st, err := h.stat(ctx, r.Path, -1)
	if err != nil {
		return err
	}
	if r.Absent {
		return h.remove(ctx, r, st, res)
	}
	switch st.kind {
	case "absent":
		res.State, res.Detail = model.ResChanged, "created"
	case "dir":
		meta := join(modeDiff(r.Mode, st), ownerDiff(r, st))
		if meta == "" {
			res.State = model.ResUnchanged
			return nil
		}
		res.State, res.Detail = model.ResChanged, meta
	default:
		return fmt.Errorf("%s is a %s, not a directory", r.Path, kindName(st.kind))
	}
	if h.dry {
		return nil
	}
	own, err := h.owner(ctx, r)
	if err != nil {
		return err
	}
	if _, err := h.put(ctx, model.PutFile{Dest: r.Path, Kind: model.KindDir, Mode: r.Mode, Owner: own, Mkdir: true}); err != nil {
		return fmt.Errorf("make directory %s: %w", r.Path, err)
	}
	return nil
}

func (h *host) symlink(ctx context.Context, r model.Resource, res *model.ResourceResult) error {
	st, err := h.stat(ctx, r.Path, -1)
	if err != nil {
		return err
	}
	if r.Absent {
		return h.remove(ctx, r, st, res)
	}
	switch st.kind {
	case "link":
		if st.link == r.Target {
			res.State = model.ResUnchanged
			return nil
		}
		res.State, res.Detail = model.ResChanged, "target "+st.link+" → "+r.Target
	case "absent":
		res.State, res.Detail = model.ResChanged, "created → "+r.Target
	default:
		return fmt.Errorf("%s is a %s, not a symlink: felix leaves it", r.Path, kindName(st.kind))
	}
	if h.dry {
		return nil
	}
	if _, err := h.put(ctx, model.PutFile{Dest: r.Path, Kind: model.KindSymlink, Link: r.Target, Mkdir: true}); err != nil {
		return fmt.Errorf("make symlink %s: %w", r.Path, err)
	}
	return nil
}

// pkg drives the package layer: install (and, for latest, upgrade) or
// remove r's packages, its dry run the manager's own simulation.
func (h *host) pkg(ctx context.Context, r model.Resource, res *model.ResourceResult) error {
	actions := []string{model.PkgInstall}
	switch {
	case r.Absent:
		actions = []string{model.PkgRemove}
	case r.Latest:
		actions = []string{model.PkgInstall, model.PkgUpgrade}
	}
	var changes []model.PkgChange
	for _, action := range actions {
		pkgs := r.Packages
		if action == model.PkgUpgrade {
			pkgs = nil
			for _, c := range changes { // what the install did not just put in
				if c.State == model.PkgUnchanged {
					pkgs = append(pkgs, model.Pkg{Name: c.Name})
				}
			}
			if len(pkgs) == 0 {
				break
			}
		}
		spec := &model.PkgSpec{Action: action, Packages: pkgs, DryRun: h.dry}
		x, err := packages.Run(ctx, h.run, h.t, spec, h.out)
		if x.Packages == nil {
			if err == nil {
				err = errors.New("the package driver gave no report")
			}
			return err
		}
		changes = merge(changes, x.Packages.Packages)
		if err != nil {
			res.Detail = pkgDetail(changes)
			return err
		}
	}
	res.Detail = pkgDetail(changes)
	res.State = model.ResUnchanged
	for _, c := range changes {
		switch c.State {
		case model.PkgFailed:
			return fmt.Errorf("%s: %s", c.Name, c.Error)
		case model.PkgChanged:
			res.State = model.ResChanged
		}
	}
	return nil
}

// merge puts later reports of a package over earlier ones, keeping the
// first Before.
func merge(into, more []model.PkgChange) []model.PkgChange {
	for _, m := range more {
		i := slices.IndexFunc(into, func(c model.PkgChange) bool { return c.Name == m.Name })
		if i < 0 {
			into = append(into, m)
			continue
		}
		before := into[i].Before
		if m.State == model.PkgUnchanged && into[i].State == model.PkgChanged {
			continue
		}
		into[i] = m
		into[i].Before = before
	}
	return into
}

func pkgDetail(cs []model.PkgChange) string {
	var parts []string
	for _, c := range cs {
		v := func(s string) string {
			if s == "" {
				return "-"
			}
			return s
		}
		if c.State == model.PkgChanged {
			parts = append(parts, c.Name+" "+v(c.Before)+" → "+v(c.After))
		} else {
			parts = append(parts, c.Name+" "+v(c.After))
		}
	}
	return strings.Join(parts, ", ")
}

// serviceScript drives a service by what the host runs: systemd
// (systemctl), OpenRC (rc-service, rc-update) or SysV init scripts
// (/etc/init.d, update-rc.d or chkconfig). $1 is the action, $2 the
// service; "probe" prints "MANAGER running|stopped enabled|disabled".
const serviceScript = `a=$1 s=$2
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  case $a in
  probe) r=stopped; systemctl is-active --quiet -- "$s" && r=running
    e=disabled; systemctl is-enabled --quiet -- "$s" 2>/dev/null && e=enabled
    echo "systemd $r $e";;
  *) exec systemctl "$a" -- "$s";;
  esac
elif command -v rc-service >/dev/null 2>&1; then
  case $a in
  probe) r=stopped; rc-service "$s" status >/dev/null 2>&1 && r=running
    e=disabled; rc-update show default 2>/dev/null | grep -qw -- "$s" && e=enabled
    echo "openrc $r $e";;
  enable) exec rc-update add "$s" default;;
  disable) exec rc-update del "$s" default;;
  *) exec rc-service "$s" "$a";;
  esac
else
  [ -x "/etc/init.d/$s" ] || { echo "no service $s: /etc/init.d/$s is not there" >&2; exit 3; }
  case $a in
  probe) r=stopped; "/etc/init.d/$s" status >/dev/null 2>&1 && r=running
    e=disabled; ls /etc/rc[2345].d/S[0-9][0-9]"$s" >/dev/null 2>&1 && e=enabled
    echo "sysv $r $e";;
  enable) if command -v update-rc.d >/dev/null 2>&1; then exec update-rc.d "$s" defaults; else exec chkconfig "$s" on; fi;;
  disable) if command -v update-rc.d >/dev/null 2>&1; then exec update-rc.d -f "$s" remove; else exec chkconfig "$s" off; fi;;
  *) exec "/etc/init.d/$s" "$a";;
  esac
fi`

func (h *host) service(ctx context.Context, r model.Resource, fire bool, res *model.ResourceResult) error {
	stdout, stderr, code, err := h.exec(ctx, script(serviceScript, "probe", r.Name), false)
	if err != nil {
		return fmt.Errorf("look at service %s: %w", r.Name, err)
	}
	f := strings.Fields(string(stdout))
	if code != 0 || len(f) != 3 {
		return fmt.Errorf("look at service %s: exit %d: %s", r.Name, code, lastLine(stderr))
	}
	running, enabled := f[1] == "running", f[2] == "enabled"
	var steps, detail []string
	if r.Running != nil && *r.Running != running {
		steps = append(steps, map[bool]string{true: "start", false: "stop"}[*r.Running])
		detail = append(detail, map[bool]string{true: "stopped → running", false: "running → stopped"}[*r.Running])
	}
	if r.Enabled != nil && *r.Enabled != enabled {
		steps = append(steps, map[bool]string{true: "enable", false: "disable"}[*r.Enabled])
		detail = append(detail, map[bool]string{true: "disabled → enabled", false: "enabled → disabled"}[*r.Enabled])
	}
	// A change it watches reloads (or restarts) a service that stays
	// running and was not just started.
	if len(r.OnChange) > 0 && fire && running && (r.Running == nil || *r.Running) {
		act := map[bool]string{true: "reload", false: "restart"}[r.Reload]
		steps = append(steps, act)
		detail = append(detail, act+"ed: "+strings.Join(r.OnChange, ", ")+" changed")
	}
	if len(steps) == 0 {
		res.State = model.ResUnchanged
		return nil
	}
	res.State, res.Detail = model.ResChanged, strings.Join(detail, ", ")
	if h.dry {
		return nil
	}
	for _, s := range steps {
		_, stderr, code, err := h.exec(ctx, script(serviceScript, s, r.Name), true)
		if err != nil {
			return fmt.Errorf("%s service %s: %w", s, r.Name, err)
		}
		if code != 0 {
			return fmt.Errorf("%s service %s (%s): exit %d: %s", s, r.Name, f[0], code, lastLine(stderr))
		}
	}
	return nil
}

// cmd runs r.Run unless its guards say it is done: creates names a path
// that exists, or unless exits 0. With onchange, it runs only when a
// watched resource changed.
func (h *host) cmd(ctx context.Context, r model.Resource, fire bool, res *model.ResourceResult) error {
	if !fire {
		res.State, res.Detail = model.ResUnchanged, "not run: nothing it watches changed"
		return nil
	}
	if r.Creates != "" {
		_, _, code, err := h.exec(ctx, script(`test -e "$1" || test -L "$1"`, r.Creates), false)
		if err != nil {
			return fmt.Errorf("look at %s: %w", r.Creates, err)
		}
		if code == 0 {
			res.State, res.Detail = model.ResUnchanged, "not run: "+r.Creates+" exists"
			return nil
		}
	}
	if r.Unless != "" {
		_, _, code, err := h.exec(ctx, r.Unless, false)
		if err != nil {
			return fmt.Errorf("run unless: %w", err)
		}
		if code == 0 {
			res.State, res.Detail = model.ResUnchanged, "not run: unless succeeded"
			return nil
		}
	}
	res.State = model.ResChanged
	if h.dry {
		res.Detail = "would run"
		return nil
	}
	_, stderr, code, err := h.exec(ctx, r.Run, true)
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("exit %d: %s", code, lastLine(stderr))
	}
	res.Detail = "ran"
	return nil
}

// script is a fixed shell script run with args as its positional
// parameters: every word quoted, none spliced into the script.
func script(body string, args ...string) string {
	words := append([]string{"sh", "-c", body, "sh"}, args...)
	for i, w := range words {
		words[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	s := strings.TrimSpace(lines[len(lines)-1])
	if len(s) > 512 {
		s = s[:512]
	}
	return s
}
