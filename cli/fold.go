package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aymanbagabas/go-udiff"
	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// A command's results print folded by default: hosts whose results are the
// same (state, exit, stdout, stderr, error) print once, headed by their
// host set in compact form, the largest group first. stdout lines are
// marked "|", stderr lines "!"; each stream is cut to --lines lines with a
// note naming the command that shows it all. --no-fold prints the table
// of one row per host.

// view is how a job's results print in a table.
type view struct {
	noFold bool
	diff   bool // the largest group, then the others as unified diffs against it
	lines  int  // lines of each stream per group; 0: all
	// followed: shown after waiting for a run, when only failed
	// notifications are worth a line unless verbose.
	followed, verbose bool
}

// addViewFlags adds --no-fold and --lines to fs.
func addViewFlags(fs *pflag.FlagSet) *view {
	v := &view{}
	fs.BoolVar(&v.noFold, "no-fold", false, "one row per host instead of hosts with the same result folded into one")
	fs.BoolVar(&v.diff, "diff", false, "the largest group's output once, then each other group as a unified diff against it")
	fs.IntVar(&v.lines, "lines", 10, "lines of stdout and of stderr shown per folded group; 0 for all")
	return v
}

// check refuses flags that do not go together.
func (v *view) check() error {
	if v.diff && v.noFold {
		return fmt.Errorf("--diff compares folded groups: not with --no-fold")
	}
	if v.lines < 0 {
		return fmt.Errorf("--lines %d: want 0 (all) or more", v.lines)
	}
	return nil
}

// foldKey is what hosts of one group have in common.
type foldKey struct {
	state                     model.State
	exit, stdout, stderr, err string
	truncated, signal         bool
}

type foldGroup struct {
	key   foldKey
	hosts []string
}

// folder gathers a job's results, page by page, into groups.
type folder struct {
	groups map[foldKey]*foldGroup
	order  []*foldGroup
}

func (f *folder) add(r wire.HostResult) {
	if f.groups == nil {
		f.groups = map[foldKey]*foldGroup{}
	}
	k := foldKey{state: r.State, exit: exitText(r), stdout: r.Stdout, stderr: r.Stderr, err: r.Error, truncated: r.Truncated, signal: r.Signal != ""}
	g := f.groups[k]
	if g == nil {
		g = &foldGroup{key: k}
		f.groups[k] = g
		f.order = append(f.order, g)
	}
	g.hosts = append(g.hosts, r.Host)
}

// sorted returns the groups, the largest first (in the order they came
// when as large).
func (f *folder) sorted() []*foldGroup {
	groups := append([]*foldGroup(nil), f.order...)
	sort.SliceStable(groups, func(i, j int) bool { return len(groups[i].hosts) > len(groups[j].hosts) })
	return groups
}

// render prints the groups of job jobID, the largest first, each stream
// cut to lines lines unless 0.
func (f *folder) render(w io.Writer, jobID string, lines int) error {
	for _, g := range f.sorted() {
		if _, err := io.WriteString(w, g.head()+g.body(jobID, lines)); err != nil {
			return err
		}
	}
	return nil
}

// renderDiff prints the largest group as render does, then each other
// group's body as a unified diff against it, cut to lines lines unless 0.
func (f *folder) renderDiff(w io.Writer, jobID string, lines int) error {
	groups := f.sorted()
	if len(groups) == 0 {
		return nil
	}
	major := groups[0]
	if _, err := io.WriteString(w, major.head()+major.body(jobID, lines)); err != nil {
		return err
	}
	from := visible(hostSet(major.hosts))
	whole := major.body(jobID, 0)
	for _, g := range groups[1:] {
		var b strings.Builder
		b.WriteString(g.head())
		d := udiff.Unified(from, visible(hostSet(g.hosts)), whole, g.body(jobID, 0))
		if d == "" {
			b.WriteString("  (the same output)\n")
		}
		all := strings.Split(strings.TrimSuffix(d, "\n"), "\n")
		if d == "" {
			all = nil
		}
		shown := all
		if lines > 0 && len(all) > lines+2 { // the ---/+++ lines do not count
			shown = all[:lines+2]
		}
		for _, l := range shown {
			b.WriteString("  " + l + "\n")
		}
		if n := len(all) - len(shown); n > 0 {
			fmt.Fprintf(&b, "  … %d more diff %s (all: --lines 0, or felix job output %s %s)\n",
				n, lineWord(n), visible(shellWord(jobID)), visible(shellWord(g.hosts[0])))
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// head is a group's first line: its host set, how many, how they ended.
func (g *foldGroup) head() string {
	k := g.key
	s := visible(hostSet(g.hosts)) + " (" + plural(len(g.hosts), "host") + "): " + visible(string(k.state))
	switch {
	case k.signal:
		s += ", signal " + visible(k.exit)
	case k.exit != "-":
		s += ", exit " + k.exit
	}
	return s + "\n"
}

// body is a group's output, indented: stdout lines marked "|", stderr
// lines "!", each stream cut to lines lines unless 0, then the error.
func (g *foldGroup) body(jobID string, lines int) string {
	var b strings.Builder
	k := g.key
	empty := true
	for _, s := range []struct {
		text, mark, flag string
	}{{k.stdout, "|", ""}, {k.stderr, "!", " --stderr"}} {
		text := strings.TrimRight(s.text, "\n")
		if text == "" {
			continue
		}
		empty = false
		all := strings.Split(text, "\n")
		shown := all
		if lines > 0 && len(all) > lines {
			shown = all[:lines]
		}
		for _, l := range shown {
			b.WriteString("  " + s.mark + " " + visible(l) + "\n")
		}
		if n := len(all) - len(shown); n > 0 {
			fmt.Fprintf(&b, "  … %d more %s (all: felix job output %s %s%s)\n",
				n, lineWord(n), visible(shellWord(jobID)), visible(shellWord(g.hosts[0])), s.flag)
		}
	}
	if k.err != "" {
		empty = false
		b.WriteString("  error: " + visible(k.err) + "\n")
	}
	if k.truncated {
		b.WriteString("  (output truncated)\n")
	} else if empty {
		b.WriteString("  (no output)\n")
	}
	return b.String()
}

func lineWord(n int) string {
	if n == 1 {
		return "line"
	}
	return "lines"
}

// exitText is a result's exit as shown: its code, its signal, or "-" when
// it did not run.
func exitText(r wire.HostResult) string { return model.ExitText(r.ExitCode, r.Signal) }

// plural is "1 host", "2 hosts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// rowFolder gathers the rows of a table whose cells other than the host
// are the same into one row headed by their host set (HOSTS): for the
// results of a job that has no output of its own, such as a push.
type rowFolder struct {
	head   []string
	groups map[string]*rowGroup
	order  []*rowGroup
}

type rowGroup struct {
	cells []string
	hosts []string
}

// add adds host's row, cells without the host.
func (f *rowFolder) add(host string, cells ...string) {
	if f.groups == nil {
		f.groups = map[string]*rowGroup{}
	}
	k := strings.Join(cells, "\x00")
	g := f.groups[k]
	if g == nil {
		g = &rowGroup{cells: cells}
		f.groups[k] = g
		f.order = append(f.order, g)
	}
	g.hosts = append(g.hosts, host)
}

// render prints the folded table, the largest group first; nothing when
// no row was added.
func (f *rowFolder) render(w io.Writer) {
	if len(f.order) == 0 {
		return
	}
	groups := append([]*rowGroup(nil), f.order...)
	sort.SliceStable(groups, func(i, j int) bool { return len(groups[i].hosts) > len(groups[j].hosts) })
	head := table.Row{"HOSTS"}
	for _, h := range f.head {
		head = append(head, h)
	}
	t := newTable(w, head...)
	for _, g := range groups {
		row := table.Row{hostSet(g.hosts) + " (" + plural(len(g.hosts), "host") + ")"}
		for _, c := range g.cells {
			row = append(row, c)
		}
		t.AppendRow(row)
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "HOSTS", WidthMax: 60}, {Name: "ERROR", WidthMax: 80}})
	t.Render()
}
