package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
)

func cmdExec(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("exec")
	targets := fs.StringArrayP("target", "t", nil, "targets: ids, globs, IPs (repeatable, comma-separated)")
	timeout := fs.String("timeout", "", "deadline per host, e.g. 30s (default: the master's)")
	id := fs.String("id", "", "your own request id, echoed back")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		return fmt.Errorf("no command: felix exec -t TARGETS -- COMMAND")
	}
	var ts []string
	for _, t := range *targets {
		for _, p := range strings.Split(t, ",") {
			if p = strings.TrimSpace(p); p != "" {
				ts = append(ts, p)
			}
		}
	}
	if len(ts) == 0 {
		return fmt.Errorf("no targets: give -t, e.g. -t '*' or -t web01,web02")
	}
	req := wire.ExecRequest{ID: *id, CmdLine: strings.Join(rest, " "), CmdType: "line", Targets: ts, Timeout: *timeout}
	var job wire.Job
	if err := c.do(ctx, "POST", "/api/v1/exec", req, &job); err != nil {
		return err
	}
	return printJob(w, o.Output, job)
}

func cmdJob(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("job")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return fmt.Errorf("want exactly one job id")
	}
	var job wire.Job
	if err := c.do(ctx, "GET", "/api/v1/jobs/"+url.PathEscape(rest[0]), nil, &job); err != nil {
		return err
	}
	return printJob(w, o.Output, job)
}

// printJob prints a job's results and returns errFailed when a host did not
// end ok.
func printJob(w io.Writer, format string, job wire.Job) error {
	if format == "json" {
		if err := printJSON(w, job); err != nil {
			return err
		}
	} else {
		t := newTable(w, "HOST", "STATE", "EXIT", "TRANSPORT", "TIME", "OUTPUT")
		for _, r := range job.Results {
			exit := fmt.Sprint(r.ExitCode)
			if r.Signal != "" {
				exit = r.Signal
			} else if r.ExitCode < 0 {
				exit = "-"
			}
			t.AppendRow(table.Row{r.Host, r.State, exit, r.Transport, (time.Duration(r.DurationMS) * time.Millisecond).String(), output(r)})
		}
		t.SetColumnConfigs([]table.ColumnConfig{{Name: "OUTPUT", WidthMax: 100}})
		t.Render()
		fmt.Fprintf(w, "job %s: %s\n", job.JobID, summary(job))
	}
	for _, r := range job.Results {
		if r.State != "ok" {
			return errFailed
		}
	}
	return nil
}

// output is what the OUTPUT column shows: stdout, then stderr, then any error.
func output(r wire.HostResult) string {
	var parts []string
	if s := strings.TrimRight(r.Stdout, "\n"); s != "" {
		parts = append(parts, s)
	}
	if s := strings.TrimRight(r.Stderr, "\n"); s != "" {
		parts = append(parts, s)
	}
	if r.Error != "" {
		parts = append(parts, r.Error)
	}
	if r.Truncated {
		parts = append(parts, "(output truncated)")
	}
	return strings.Join(parts, "\n")
}

func summary(job wire.Job) string {
	states := make([]string, 0, len(job.Summary))
	for s := range job.Summary {
		states = append(states, s)
	}
	sort.Strings(states)
	parts := make([]string, 0, len(states))
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%d %s", job.Summary[s], s))
	}
	return fmt.Sprintf("%d hosts: %s", len(job.Results), strings.Join(parts, ", "))
}
