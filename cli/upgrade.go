package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// cmdUpgrade runs a fleet upgrade: felix minions upgrade -t TARGETS
// [--canary N] [--batch N|N%] [--fail-threshold N] [--binary FILE]. A
// binary given is checked here from its header (never run), uploaded to
// the content store and sent to the hosts of its os/arch; without one
// each host gets the master's dist binary for its os/arch.
func cmdUpgrade(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("minions upgrade")
	jf := addJobFlags(fs)
	v := addNoFold(fs)
	fs.Lookup("timeout").Usage = "deadline per host for the transfer, the swap and its return (default 3m)"
	canary := fs.Int("canary", 0, "upgrade N hosts first, as one batch; stop unless they all end ok")
	binary := fs.String("binary", "", "minion binary to send (default: the master's dist/minion-<os>-<arch>)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q: want felix minions upgrade -t TARGETS [--canary N] [--batch N|N%%] [--binary FILE]", rest[0])
	}
	opts, err := jf.options()
	if err != nil {
		return err
	}
	req := wire.UpgradeRequest{JobOptions: opts, Canary: *canary}
	if *binary != "" {
		f, err := os.Open(*binary)
		if err != nil {
			return fmt.Errorf("--binary: %w", err)
		}
		req.OS, req.Arch, err = model.BinaryPlatform(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--binary %s: %w", *binary, err)
		}
		if req.Binary, err = upload(ctx, c, *binary); err != nil {
			return err
		}
	}
	id, err := startJob(ctx, c, "/api/v1/minions/upgrade", req, opts.DryRun, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	v.verbose = *jf.verbose
	return followJob(ctx, c, id, w, ew, o.Output, *v)
}

// upgradeOutcome is a host's outcome in an upgrade job: the first word of
// its stdout (upgraded, unchanged, rolled_back), else its state.
func upgradeOutcome(r wire.HostResult) string {
	if f := strings.Fields(r.Stdout); len(f) > 0 {
		switch f[0] {
		case model.OutcomeUpgraded, model.OutcomeUnchanged, model.OutcomeRolledBack:
			return f[0]
		}
	}
	return string(r.State)
}

// printUpgradeJob prints a page of an upgrade job folded: a row per group
// of hosts with the same outcome and detail.
func printUpgradeJob(w io.Writer, job wire.Job, noFold bool) {
	t := newTable(w, "HOSTS", "OUTCOME", "DETAIL")
	detail := func(r wire.HostResult) string {
		line := strings.TrimSpace(r.Stdout)
		if f := strings.Fields(line); len(f) > 0 && f[0] == upgradeOutcome(r) {
			line = strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		}
		// A rollback's error repeats its reason, on the line already.
		if r.Error != "" && !strings.Contains(line, r.Error) && upgradeOutcome(r) != model.OutcomeRolledBack {
			if line != "" {
				line += "; "
			}
			line += r.Error
		}
		return line
	}
	for _, g := range groupResults(job.Results, func(r wire.HostResult) any { return upgradeOutcome(r) + "\x00" + detail(r) }, noFold) {
		t.AppendRow(table.Row{g.hostsCell(), upgradeOutcome(g.r), detail(g.r)})
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "HOSTS", WidthMax: 60}, {Name: "DETAIL", WidthMax: 90}})
	t.Render()
}
