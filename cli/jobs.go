package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// cmdJobs lists jobs, newest first, a page at a time.
func cmdJobs(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("jobs")
	state := fs.String("state", "", "only jobs in this state: queued, running, done, cancelled")
	id := fs.String("id", "", "only jobs with this request id (exec --id)")
	limit := fs.Int("limit", 0, "jobs per page, 1 to 1000 (default: the master's, 50)")
	before := fs.String("before", "", "the page after this job id (from \"more:\")")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	q := url.Values{}
	for k, v := range map[string]string{"state": *state, "id": *id, "before": *before} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if *limit != 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	path := "/api/v1/jobs"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var list wire.JobList
	if err := c.do(ctx, "GET", path, nil, &list); err != nil {
		return err
	}
	if structured(o.Output) {
		return printAs(w, o.Output, list, list.Jobs)
	}
	t := newTable(w, "JOB", "STATE", "HOSTS", "OK", "FAILED", "COMMAND", "CREATED")
	if o.Output == formatWide {
		t = newTable(w, jobsWideHead...)
	}
	for _, j := range list.Jobs {
		failed := 0
		for s, n := range j.Summary {
			if st := model.State(s); st != model.StateOK && st.Final() {
				failed += n
			}
		}
		if o.Output == formatWide {
			t.AppendRow(jobsWideRow(j, failed))
			continue
		}
		t.AppendRow(table.Row{j.JobID, j.State, j.Total, j.Summary[string(model.StateOK)], failed, truncate(j.CmdLine, 40), ago(j.CreatedAt)})
	}
	t.Render()
	if list.Next != "" {
		more := "felix jobs --before " + shellWord(list.Next)
		for _, f := range []struct{ name, v string }{{"state", *state}, {"id", *id}} {
			if f.v != "" {
				more += " --" + f.name + " " + shellWord(f.v)
			}
		}
		if *limit != 0 {
			more += " --limit " + strconv.Itoa(*limit)
		}
		fmt.Fprintf(w, "more: %s\n", more)
	}
	return nil
}

// truncate shortens s to at most n runes on one line, marking a cut with "…".
func truncate(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c == '\n' || c == '\r' {
			r = append(r[:i:i], '…')
			break
		}
	}
	if len(r) > n {
		r = append(r[:n-1:n-1], '…')
	}
	return string(r)
}
