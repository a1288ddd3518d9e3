package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/model"
)

// jobFlags are the flags every job command (exec, cp, fetch) shares.
type jobFlags struct {
	targets   *[]string
	timeout   *string
	id        *string
	async     *bool
	dry       *bool
	batch     *string
	threshold *int
	transport *string
	sshUser   *string
	become    *bool
	// becomeUser is --become-user, whom sudo runs as; it implies --become.
	becomeUser *string
	// verbose shows every notification's state after the results.
	verbose *bool
}

func addJobFlags(fs *pflag.FlagSet) jobFlags {
	f := jobFlags{
		targets:   fs.StringArrayP("target", "t", nil, "targets: ids, globs, IPs, CIDRs, key=value labels or facts (repeatable, comma-separated)"),
		timeout:   fs.String("timeout", "", "deadline per host, e.g. 30s (default: the master's)"),
		id:        fs.String("id", "", "your own request id, echoed back"),
		async:     fs.Bool("async", false, "print the job id and return at once"),
		dry:       fs.Bool("dry-run", false, "show the hosts it would run on; run nothing"),
		batch:     fs.String("batch", "", "hosts at a time, N or N%, in a rolling window"),
		threshold: fs.Int("fail-threshold", 0, "launch no more hosts after N failures"),
		transport: fs.String("transport", "", "auto (default), agent or ssh"),
		sshUser:   fs.String("user", "", "SSH login for this run on hosts reached over SSH (minions ignore it)"),
		become:    fs.Bool("become", false, "sudo -n for this run on hosts reached over SSH (minions ignore it)"),
	}
	f.becomeUser = fs.String("become-user", "", "sudo -n -u USER for this run on hosts reached over SSH; implies --become (minions ignore it)")
	f.verbose = fs.BoolP("verbose", "v", false, "every notification's (callback, Slack) state after the results, not only failed ones")
	return f
}

// options checks the flags and returns them as a request's job options.
func (f jobFlags) options() (wire.JobOptions, error) {
	switch *f.transport {
	case "", "auto", "agent", "ssh":
	default:
		return wire.JobOptions{}, fmt.Errorf("--transport %q: want auto, agent or ssh", *f.transport)
	}
	o := wire.JobOptions{ID: *f.id, Timeout: *f.timeout, Batch: *f.batch, FailThreshold: *f.threshold,
		Transport: *f.transport, DryRun: *f.dry, SSHUser: *f.sshUser, Become: *f.become}
	if err := model.ValidUser(o.SSHUser); err != nil {
		return o, fmt.Errorf("--user: %w", err)
	}
	if err := model.ValidUser(*f.becomeUser); err != nil {
		return o, fmt.Errorf("--become-user: %w", err)
	}
	o.BecomeUser = *f.becomeUser
	o.Targets = splitTargets(*f.targets)
	if len(o.Targets) == 0 {
		return o, fmt.Errorf("no targets: give -t, e.g. -t '*' or -t web01,web02")
	}
	return o, nil
}

// splitTargets returns the patterns of -t flags (repeatable,
// comma-separated), without empty ones.
func splitTargets(flags []string) []string {
	var out []string
	for _, t := range flags {
		for _, p := range strings.Split(t, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// startJob POSTs a job request: a dry run prints the hosts, --async the
// job id; otherwise it returns the started job's id to follow.
func startJob(ctx context.Context, c *client, apiPath string, req any, dry, async bool, w io.Writer, format string) (string, error) {
	if dry {
		var dr wire.DryRun
		if err := c.do(ctx, "POST", apiPath+"?dry_run=true", req, &dr); err != nil {
			return "", err
		}
		return "", printDryRun(w, format, dr)
	}
	var acc wire.ExecAccepted
	if err := c.do(ctx, "POST", apiPath, req, &acc); err != nil {
		return "", err
	}
	if async {
		return "", printAccepted(w, format, acc)
	}
	return acc.JobID, nil
}

func cmdCp(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("cp")
	jf := addJobFlags(fs)
	v := addViewFlags(fs)
	recursive := fs.BoolP("recursive", "r", false, "copy a directory tree (modes kept, symlinks copied as links)")
	mode := fs.String("mode", "", "permission bits of the file in octal, e.g. 0644 (default: keep, 0644 for a new file)")
	owner := fs.String("owner", "", "owner as user:group, names or numeric ids")
	mkdir := fs.Bool("mkdir", false, "create missing parent directories of DEST")
	backup := fs.Bool("backup", false, "keep each replaced file as FILE.felix-bak-<time>")
	follow := fs.Bool("follow-symlinks", false, "allow a DEST (or a directory in it) that is a symlink")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if err := v.check(); err != nil {
		return err
	}
	if len(rest) != 2 {
		return fmt.Errorf("want SRC and DEST: felix cp SRC -t TARGETS DEST")
	}
	src, dest := rest[0], rest[1]
	opts, err := jf.options()
	if err != nil {
		return err
	}
	if _, err := model.ParseMode(*mode); err != nil {
		return err
	}
	req := wire.PushRequest{JobOptions: opts, Dest: dest, Mode: *mode, Owner: *owner, Mkdir: *mkdir,
		Backup: *backup, FollowSymlinks: *follow}
	st, err := os.Stat(src)
	if err != nil {
		return err // "stat SRC: no such file or directory"
	}
	switch {
	case st.IsDir() && !*recursive:
		return fmt.Errorf("%s is a directory (copy a tree with -r)", src)
	case st.IsDir():
		if *mode != "" {
			return fmt.Errorf("--mode is for a single file; a tree keeps each entry's mode")
		}
		if req.Entries, err = treeEntries(ctx, c, src, ew); err != nil {
			return err
		}
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", src)
	default:
		if req.SHA256, err = upload(ctx, c, src); err != nil {
			return err
		}
	}
	id, err := startJob(ctx, c, "/api/v1/files", req, *jf.dry, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	v.verbose = *jf.verbose
	return followJob(ctx, c, id, w, ew, o.Output, *v)
}

// upload makes sure the master stores the content of the local file at
// p and returns its sha256: content the master already has is not sent
// again.
func upload(ctx context.Context, c *client, p string) (string, error) {
	sum, _, err := content.SumFile(p)
	if err != nil {
		return "", err
	}
	resp, err := c.sendBody(ctx, "HEAD", "/api/v1/content/"+sum, "", nil)
	if err == nil {
		resp.Body.Close()
		return sum, nil
	}
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b wire.Blob
	if err := c.doBody(ctx, "POST", "/api/v1/content?sha256="+sum, "application/octet-stream", f, &b); err != nil {
		return "", fmt.Errorf("upload %s: %w", p, err)
	}
	return sum, nil
}

// treeEntries walks the local tree at root without following symlinks
// below it, uploads its files' content and returns its entries, each
// directory before what it holds. Entries that are neither files,
// directories nor symlinks (sockets, devices) are skipped with a warning.
func treeEntries(ctx context.Context, c *client, root string, ew io.Writer) ([]wire.PushEntry, error) {
	// A root that is a symlink to a directory is the tree it points to, as
	// cmdCp decided with os.Stat: WalkDir would report the link itself and
	// push one symlink to a path of this machine instead of the tree.
	root, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	var entries []wire.PushEntry
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := wire.PushEntry{Path: rel, Mode: model.FormatMode(modeBits(info.Mode()))}
		switch {
		case d.IsDir():
			e.Kind = model.KindDir.String()
		case d.Type()&fs.ModeSymlink != 0:
			e.Kind, e.Mode = model.KindSymlink.String(), ""
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			e.Kind = model.KindFile.String()
			if e.SHA256, err = upload(ctx, c, p); err != nil {
				return err
			}
		default:
			fmt.Fprintf(ew, "felix cp: skipping %s: not a file, directory or symlink (%s)\n", visible(p), d.Type())
			return nil
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// modeBits converts an fs.FileMode to Unix permission bits (07777).
func modeBits(m fs.FileMode) uint32 { return model.ModeBits(m) }

func cmdFetch(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("fetch")
	jf := addJobFlags(fs)
	followLinks := fs.Bool("follow-symlinks", false, "read the file a symlink at PATH points to (refused otherwise)")
	v := addNoFold(fs)
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return fmt.Errorf("want PATH and OUTDIR: felix fetch -t TARGETS PATH OUTDIR")
	}
	opts, err := jf.options()
	if err != nil {
		return err
	}
	remote, outDir := rest[0], rest[1]
	name := path.Base(remote)
	if model.LooksWindowsPath(remote) {
		// A Windows minion's drive path: C:\dir\file.
		if err := model.CheckWindowsPath(remote); err != nil {
			return fmt.Errorf("PATH: %w", err)
		}
		name = remote[strings.LastIndexByte(remote, '\\')+1:]
	} else if !strings.HasPrefix(remote, "/") || name == "/" || name == "." || name == ".." {
		return fmt.Errorf("PATH %q: want the absolute path of a file on the hosts", remote)
	}
	if !*jf.dry && !*jf.async {
		// Before the job: a bad OUTDIR must not cost a fetch from every host.
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
	}
	id, err := startJob(ctx, c, "/api/v1/fetch", wire.FetchRequest{JobOptions: opts, Path: remote, FollowSymlinks: *followLinks}, *jf.dry, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	if o.Output == formatJSONL {
		// A host's copy is in the master's store when its result is: save
		// it as the host finishes.
		saveFailed := false
		err := streamJob(ctx, c, id, w, ew, func(l *jsonlResult) {
			if l.State != model.StateOK || l.Files == nil {
				return
			}
			p, err := download(ctx, c, l.Host, l.Files.SHA256, outDir, name)
			if err != nil {
				saveFailed, l.SaveError = true, err.Error()
				return
			}
			l.Saved = p
		})
		if err == nil && saveFailed {
			err = errFailed
		}
		return err
	}
	job, err := follow(ctx, c, id, ew)
	if err != nil {
		return err
	}
	// Page by page: download the page's copies, then print the page (one
	// row per host) or fold its rows (saved paths left out).
	saved := map[string]string{} // host → local path, or "error: ..."
	failed, hosts := false, 0
	var unreachable []string
	noFold := v.noFold || o.Output == formatWide
	rows := &rowFolder{head: fileHead(true)}
	js := newJobDoc(w, o.Output)
	if js != nil {
		if err := js.head(job); err != nil {
			return err
		}
	}
	last, err := eachPage(ctx, c, job, func(page wire.Job) error {
		hosts += len(page.Results)
		for _, r := range page.Results {
			if r.State != model.StateOK {
				failed = true
			}
			if r.State == model.StateUnreachable {
				unreachable = append(unreachable, r.Host)
			}
			if r.State != model.StateOK || r.Files == nil {
				continue
			}
			p, err := download(ctx, c, r.Host, r.Files.SHA256, outDir, name)
			if err != nil {
				failed = true
				saved[r.Host] = "error: " + err.Error()
				continue
			}
			saved[r.Host] = p
		}
		if js != nil {
			for _, r := range page.Results {
				if err := js.result(r); err != nil {
					return err
				}
			}
			return nil
		}
		if noFold {
			printFetched(w, page.Results, saved)
			return nil
		}
		for _, r := range page.Results {
			note := r.Error
			if s, ok := strings.CutPrefix(saved[r.Host], "error: "); ok {
				note = "not saved: " + s
			}
			rows.add(r.Host, append(fileCells(r, true), note)...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if js != nil {
		if err := js.end(last.Deliveries, jsonField{"saved", saved}); err != nil {
			return err
		}
	} else {
		rows.render(w)
		fmt.Fprintln(w, jobSummaryLine(job, hosts, unreachable))
	}
	if failed {
		return errFailed
	}
	return nil
}

// printFetched prints a table of fetch results with where each copy was
// saved (saved: host → local path or "error: ...").
func printFetched(w io.Writer, results []wire.HostResult, saved map[string]string) {
	t := newTable(w, "HOST", "STATE", "SIZE", "SHA256", "TRANSPORT", "TIME", "SAVED")
	for _, r := range results {
		size, sum, note := "-", "-", saved[r.Host]
		if r.Files != nil && r.State == model.StateOK {
			size, sum = byteSize(r.Files.Size), r.Files.SHA256
		}
		if r.State != model.StateOK {
			note = r.Error
		}
		t.AppendRow(table.Row{r.Host, r.State, size, sum, r.Transport, (time.Duration(r.DurationMS) * time.Millisecond).String(), note})
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "SAVED", WidthMax: 80}})
	t.Render()
}

// download saves the master's copy of a host's file as OUTDIR/HOST/NAME,
// verifying its sha256 on the way; the file appears complete or not at
// all.
func download(ctx context.Context, c *client, host, sum, outDir, name string) (string, error) {
	if err := model.ValidID(host); err != nil {
		return "", fmt.Errorf("host %q cannot name a directory: %w", host, err)
	}
	dir := filepath.Join(outDir, host)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	resp, err := c.sendBody(ctx, "GET", "/api/v1/content/"+url.PathEscape(sum), "", nil)
	if err != nil {
		os.Remove(dir) // only when empty: nothing else of this host's is lost
		return "", err
	}
	defer resp.Body.Close()
	tmp, err := os.CreateTemp(dir, "."+name+".felix-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download the copy of %s: %w", host, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", fmt.Errorf("the copy of %s has sha256 %s, not %s", host, got, sum)
	}
	dst := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return dst, nil
}

// byteSize prints n bytes for a person: 512 B, 1.5 KiB, 100.0 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printFileJob prints a file job's results: per host, for a push the
// changed and unchanged entries and the bytes of content, for a fetch the
// size and sha256 of the copy.
func printFileJob(w io.Writer, job wire.Job) {
	fetch := job.CmdType == "fetch"
	t := newTable(w, "HOST", "STATE", "CHANGED", "UNCHANGED", "SIZE", "TRANSPORT", "TIME", "ERROR")
	if fetch {
		t = newTable(w, "HOST", "STATE", "SIZE", "SHA256", "TRANSPORT", "TIME", "ERROR")
	}
	for _, r := range job.Results {
		row := table.Row{r.Host}
		for _, c := range fileCells(r, fetch) {
			row = append(row, c)
		}
		took := (time.Duration(r.DurationMS) * time.Millisecond).String()
		t.AppendRow(append(row, r.Transport, took, r.Error))
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "ERROR", WidthMax: 80}})
	t.Render()
}

// fileHead and fileCells are a file job's columns that hosts can share
// (all but host, transport, time and error): for a push STATE CHANGED
// UNCHANGED SIZE, for a fetch STATE SIZE SHA256.
func fileHead(fetch bool) []string {
	if fetch {
		return []string{"STATE", "SIZE", "SHA256", "ERROR"}
	}
	return []string{"STATE", "CHANGED", "UNCHANGED", "SIZE", "ERROR"}
}

func fileCells(r wire.HostResult, fetch bool) []string {
	changed, unchanged, size, sum := "-", "-", "-", "-"
	if f := r.Files; f != nil && (r.State == model.StateOK || !fetch) {
		changed, unchanged, size, sum = fmt.Sprint(f.Changed), fmt.Sprint(f.Unchanged), byteSize(f.Size), f.SHA256
	}
	if fetch {
		return []string{string(r.State), size, sum}
	}
	return []string{string(r.State), changed, unchanged, size}
}
