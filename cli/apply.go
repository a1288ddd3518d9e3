package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/state"
)

// errChanged makes Main exit 2: a --check found something to change.
var errChanged = errors.New("changes pending")

// cmdApply applies a state document: felix apply NAME|FILE -t TARGETS
// [--dry-run] [--check]. A FILE (a path that exists) is sent as the
// document; anything else names a stored config.
func cmdApply(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("apply")
	jf := addJobFlags(fs)
	v := addNoFold(fs)
	fs.Lookup("dry-run").Usage = "compute every change exactly (file diffs, package versions, service states); change nothing"
	check := fs.Bool("check", false, "a dry run that exits 2 when anything would change (drift detection)")
	rev := fs.Int("rev", 0, "the stored config's revision (default: the latest)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("want one state document: felix apply NAME|FILE -t TARGETS [--dry-run] [--check]")
	}
	opts, err := jf.options()
	if err != nil {
		return err
	}
	if *check && *jf.async {
		return fmt.Errorf("--check waits for the job: drop --async")
	}
	req := wire.ApplyRequest{JobOptions: opts, DryRun: opts.DryRun || *check, Rev: *rev}
	req.JobOptions.DryRun = false // an apply's dry run computes the changes, not just the hosts
	if doc, ok, err := readDocument(rest[0]); err != nil {
		return err
	} else if ok {
		if *rev != 0 {
			return fmt.Errorf("--rev is for a stored config, not the file %s", rest[0])
		}
		if req.Document, err = uploadSources(ctx, c, rest[0], doc); err != nil {
			return err
		}
	} else {
		req.Config = rest[0]
	}
	id, err := startJob(ctx, c, "/api/v1/apply", req, false, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	v.verbose = *jf.verbose
	err = followJob(ctx, c, id, w, ew, o.Output, *v)
	if err != nil || !*check {
		return err
	}
	changed, err := applyChanged(ctx, c, id)
	if err != nil {
		return err
	}
	if changed > 0 {
		if !structured(o.Output) {
			fmt.Fprintf(w, "check: %s would change\n", plural(changed, "host"))
		}
		return errChanged
	}
	return nil
}

// readDocument reads path when it names a file here: at most
// model.MaxConfigSize bytes. ok is false when nothing is there (a
// stored config's name).
func readDocument(path string) (doc string, ok bool, err error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if !st.Mode().IsRegular() {
		return "", false, fmt.Errorf("%s is not a file", path)
	}
	if st.Size() > model.MaxConfigSize {
		return "", false, fmt.Errorf("%s is %d bytes; a state document is at most %d", path, st.Size(), model.MaxConfigSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// uploadSources uploads the local files the document at path names as
// sources (relative to its directory) to the master's content store and
// returns the document naming their sha256 instead.
func uploadSources(ctx context.Context, c *client, path, doc string) (string, error) {
	out, err := state.ResolveSources([]byte(doc), func(p string) (string, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		return upload(ctx, c, p)
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return string(out), nil
}

// applyChanged counts the hosts of an apply job where something changed
// (or, in a dry run, would), page by page.
func applyChanged(ctx context.Context, c *client, id string) (int, error) {
	var first wire.Job
	if err := c.do(ctx, "GET", jobPath(id), nil, &first); err != nil {
		return 0, err
	}
	n := 0
	_, err := eachPage(ctx, c, first, func(page wire.Job) error {
		for _, r := range page.Results {
			if r.Apply != nil && r.Apply.Changed > 0 {
				n++
			}
		}
		return nil
	})
	return n, err
}

// printApplyJob prints a page of an apply job: hosts whose reports are
// identical fold into one group — all unchanged is one row, "48 hosts: 20
// unchanged" — otherwise a row per resource that changed, failed or was
// skipped; then each distinct diff once, with the hosts it applies to.
func printApplyJob(w io.Writer, job wire.Job, noFold bool) {
	t := newTable(w, "HOSTS", "RESOURCE", "STATE", "DETAIL")
	type diffKey struct{ id, diff string }
	var diffs []diffKey
	diffHosts := map[diffKey][]string{}
	dry := false
	for i, g := range groupResults(job.Results, func(r wire.HostResult) any { return r.Apply }, noFold) {
		if i > 0 {
			t.AppendSeparator()
		}
		hosts := g.label()
		rep := g.r.Apply
		if rep == nil {
			t.AppendRow(table.Row{hosts, "-", string(g.r.State), g.r.Error})
			continue
		}
		dry = dry || rep.DryRun
		cell := hosts
		for _, x := range rep.Resources {
			if x.Diff != "" {
				k := diffKey{x.ID, x.Diff}
				if _, seen := diffHosts[k]; !seen {
					diffs = append(diffs, k)
				}
				diffHosts[k] = append(diffHosts[k], g.hosts...)
			}
			if x.State == model.ResUnchanged {
				continue
			}
			detail := x.Detail
			if x.Error != "" {
				detail = x.Error
			}
			t.AppendRow(table.Row{cell, x.Type + " " + x.ID, x.State, detail})
			cell = ""
		}
		t.AppendRow(table.Row{cell, "", summaryCell(rep), ""})
		if g.r.Error != "" {
			t.AppendRow(table.Row{"", "", string(g.r.State), g.r.Error})
		}
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "HOSTS", WidthMax: 60}, {Name: "DETAIL", WidthMax: 80}})
	t.Render()
	for _, k := range diffs {
		g := &pkgGroup{hosts: diffHosts[k]}
		fmt.Fprintf(w, "%s on %s:\n%s", k.id, g.hostsCell(), visibleDiff(k.diff))
	}
	if dry {
		fmt.Fprintln(w, "dry run: every change computed; nothing was changed")
	}
}

// visibleDiff is a diff made safe for a terminal, ending in a newline.
func visibleDiff(d string) string {
	d = visible(d)
	if !strings.HasSuffix(d, "\n") {
		d += "\n"
	}
	return d
}

// summaryCell counts a report's resources by state: "3 changed, 17 unchanged".
func summaryCell(rep *model.ApplyReport) string {
	var parts []string
	for _, c := range []struct {
		n    int
		word string
	}{{rep.Changed, "changed"}, {rep.Unchanged, "unchanged"}, {rep.Failed, "failed"}, {rep.Skipped, "skipped"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.word))
		}
	}
	if len(parts) == 0 {
		return "no resources"
	}
	return strings.Join(parts, ", ")
}
