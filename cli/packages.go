package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// cmdPkg runs a package job: felix pkg install|remove|upgrade|list|info
// -t TARGETS [NAME[=VERSION]...]. Names and versions are checked by the
// master, before any host is contacted.
func cmdPkg(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("pkg")
	jf := addJobFlags(fs)
	v := addNoFold(fs)
	fs.Lookup("dry-run").Usage = "ask each host's package manager what it would change; change nothing"
	refresh := fs.Bool("refresh", false, "update each host's package index first")
	manager := fs.String("manager", "", "use this manager on every host: apt, dnf, yum, zypper, apk or pacman (default: its pkg_manager label, else detected)")
	root := fs.String("installroot", "", "work on the system under this directory (dnf/yum --installroot, zypper/apk/pacman --root)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("want an action: felix pkg install|remove|upgrade|list|info -t TARGETS [NAME[=VERSION]...]")
	}
	opts, err := jf.options()
	if err != nil {
		return err
	}
	dry := opts.DryRun
	opts.DryRun = false // a package job's dry run is the managers' simulation, not a targets-only one
	req := wire.PkgRequest{JobOptions: opts, Action: rest[0], DryRun: dry, Refresh: *refresh, Manager: *manager,
		InstallRoot: *root}
	switch names := rest[1:]; req.Action {
	case model.PkgList:
		if len(names) > 1 {
			return fmt.Errorf("list takes one glob, e.g. felix pkg list -t web1 'nginx*'")
		}
		if len(names) == 1 {
			req.Glob = names[0]
		}
	case model.PkgInstall, model.PkgRemove, model.PkgUpgrade, model.PkgInfo:
		req.Packages = names
	default:
		return fmt.Errorf("action %q: want install, remove, upgrade, list or info", req.Action)
	}
	id, err := startJob(ctx, c, "/api/v1/packages", req, false, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	v.verbose = *jf.verbose
	return followJob(ctx, c, id, w, ew, o.Output, *v)
}

// pkgAction is the action of a package job, from its command line
// ("pkg install nginx").
func pkgAction(job wire.Job) string {
	f := strings.Fields(job.CmdLine)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// pkgGroup is hosts whose package jobs ended alike: the same state, error
// and report.
type pkgGroup struct {
	hosts []string
	r     wire.HostResult // the first host's
}

// groupResults folds results with identical outcomes — state, error and
// the report that report picks — in the order of each group's first host;
// with noFold each host is a group of its own.
func groupResults(results []wire.HostResult, report func(wire.HostResult) any, noFold bool) []*pkgGroup {
	var groups []*pkgGroup
	byKey := map[string]*pkgGroup{}
	for _, r := range results {
		rep, _ := json.Marshal(report(r))
		key := string(r.State) + "\x00" + r.Error + "\x00" + string(rep)
		if noFold {
			key = r.Host + "\x00" + key // a group per host
		}
		g := byKey[key]
		if g == nil {
			g = &pkgGroup{r: r}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.hosts = append(g.hosts, r.Host)
	}
	return groups
}

// hostsCell names a group's hosts: "web1", or their host set in compact
// form and how many, "web[1-3],db1 (4 hosts)".
func (g *pkgGroup) hostsCell() string {
	if len(g.hosts) == 1 {
		return g.hosts[0]
	}
	return hostSet(g.hosts) + " (" + plural(len(g.hosts), "host") + ")"
}

// label is hostsCell with the group's state when it is not ok.
func (g *pkgGroup) label() string {
	if g.r.State != model.StateOK {
		return g.hostsCell() + " (" + string(g.r.State) + ")"
	}
	return g.hostsCell()
}

// printPkgJob prints a page of a package job: a row per package per group
// of hosts with identical reports. install, remove and upgrade show
// PACKAGE BEFORE AFTER STATE; list shows each package's VERSION; info the
// INSTALLED and CANDIDATE versions. A host without a report shows its
// state and error.
func printPkgJob(w io.Writer, job wire.Job, noFold bool) {
	action := pkgAction(job)
	header := []any{"HOSTS", "PACKAGE", "BEFORE", "AFTER", "STATE"}
	switch action {
	case model.PkgList:
		header = []any{"HOSTS", "PACKAGE", "VERSION", "STATE"}
	case model.PkgInfo:
		header = []any{"HOSTS", "PACKAGE", "INSTALLED", "CANDIDATE", "STATE"}
	}
	t := newTable(w, header...)
	dry := false
	for i, g := range groupResults(job.Results, func(r wire.HostResult) any { return r.Packages }, noFold) {
		if i > 0 {
			t.AppendSeparator()
		}
		hosts := g.label()
		rep := g.r.Packages
		if rep == nil || len(rep.Packages) == 0 {
			note := g.r.Error
			if note == "" && rep != nil {
				note = "no packages"
			}
			t.AppendRow(noteRow(hosts, len(header), cmp.Or(note, string(g.r.State))))
			continue
		}
		dry = dry || rep.DryRun
		for i, p := range rep.Packages {
			cell := ""
			if i == 0 {
				cell = hosts
			}
			state := p.State
			if p.Error != "" {
				state += ": " + p.Error
			}
			switch action {
			case model.PkgList:
				t.AppendRow(table.Row{cell, p.Name, cmp.Or(p.After, p.Before, "-"), state})
			case model.PkgInfo:
				t.AppendRow(table.Row{cell, p.Name, cmp.Or(p.After, p.Before, "-"), cmp.Or(p.Candidate, "-"), state})
			default:
				t.AppendRow(table.Row{cell, p.Name, cmp.Or(p.Before, "-"), cmp.Or(p.After, "-"), state})
			}
		}
		if g.r.Error != "" && !slices.ContainsFunc(rep.Packages, func(p model.PkgChange) bool { return p.Error == g.r.Error }) {
			t.AppendRow(noteRow("", len(header), g.r.Error))
		}
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "HOSTS", WidthMax: 60}, {Name: "STATE", WidthMax: 80}})
	t.Render()
	if dry {
		fmt.Fprintln(w, "dry run: the package managers' simulation; nothing was changed")
	}
}

// noteRow is a row of cols cells without a package: hosts, dashes, and
// note in the last (STATE) column.
func noteRow(hosts string, cols int, note string) table.Row {
	row := table.Row{hosts}
	for len(row) < cols-1 {
		row = append(row, "-")
	}
	return append(row, note)
}
