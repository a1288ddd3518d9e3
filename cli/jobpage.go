package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// A job's results come in pages of hosts (GET /api/v1/jobs/ID answers the
// first; next_host names where the next one starts). The CLI prints each
// page as it arrives — a table per page, or one JSON document written a
// result at a time — so it holds one page of a job at most, however many
// hosts the job has. A job that fits one page prints as it always did.

// jobPath is the API path of job id.
func jobPath(id string) string { return "/api/v1/jobs/" + url.PathEscape(id) }

// eachPage calls fn with first, the job's first page, then with each
// following page, fetched as next_host names it, and returns the last
// page (its deliveries are the newest).
func eachPage(ctx context.Context, c *client, first wire.Job, fn func(wire.Job) error) (wire.Job, error) {
	page := first
	for {
		if err := fn(page); err != nil {
			return page, err
		}
		after := page.NextHost
		if after == "" {
			return page, nil
		}
		page = wire.Job{}
		if err := c.do(ctx, "GET", jobPath(first.JobID)+"?hosts_after="+url.QueryEscape(after), nil, &page); err != nil {
			return page, err
		}
		if page.NextHost != "" && page.NextHost <= after {
			return page, fmt.Errorf("job %s: the page after host %s names next host %s, which does not come after it", first.JobID, after, page.NextHost)
		}
	}
}

// showJob prints a job from its first page on, page by page, as format
// says, and returns errFailed when a host did not end ok.
func showJob(ctx context.Context, c *client, first wire.Job, w io.Writer, format string, v view) error {
	failed, hosts := false, 0
	var unreachable []string
	var fold *folder
	var rows *rowFolder
	if format == formatWide {
		v.noFold = true // every column, a row per host
	}
	if !v.noFold {
		fold = &folder{}
		rows = &rowFolder{head: fileHead(first.CmdType == "fetch")}
	}
	js := newJobDoc(w, format)
	if js != nil {
		if err := js.head(first); err != nil {
			return err
		}
	}
	last, err := eachPage(ctx, c, first, func(page wire.Job) error {
		hosts += len(page.Results)
		for _, r := range page.Results {
			failed = failed || r.State != model.StateOK
			if r.State == model.StateUnreachable {
				unreachable = append(unreachable, r.Host)
			}
		}
		switch {
		case js != nil:
			for _, r := range page.Results {
				if err := js.result(r); err != nil {
					return err
				}
			}
		case (page.CmdType == "push" || page.CmdType == "fetch") && rows != nil:
			for _, r := range page.Results {
				rows.add(r.Host, append(fileCells(r, page.CmdType == "fetch"), r.Error)...)
			}
		case page.CmdType == "push" || page.CmdType == "fetch":
			printFileJob(w, page)
		case page.CmdType == model.CmdPkg:
			printPkgJob(w, page, v.noFold)
		case page.CmdType == model.CmdApply:
			printApplyJob(w, page, v.noFold)
		case page.CmdType == model.CmdUpgrade:
			printUpgradeJob(w, page, v.noFold)
		case fold != nil:
			for _, r := range page.Results {
				fold.add(r)
			}
		default:
			printResults(w, page.Results)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if fold != nil && js == nil {
		rows.render(w)
		render := fold.render
		if v.diff {
			render = fold.renderDiff
		}
		if err := render(w, first.JobID, v.lines); err != nil {
			return err
		}
	}
	if js != nil {
		if err := js.end(last.Deliveries); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(w, jobSummaryLine(first, hosts, unreachable))
		for _, d := range last.Deliveries {
			if v.followed && !v.verbose && !deliveryFailed(d) {
				continue
			}
			fmt.Fprintln(w, visible(delivery(d)))
		}
	}
	if failed {
		return errFailed
	}
	return nil
}

// printResults prints a table of command results.
func printResults(w io.Writer, results []wire.HostResult) {
	t := newTable(w, "HOST", "STATE", "EXIT", "TRANSPORT", "TIME", "OUTPUT")
	for _, r := range results {
		t.AppendRow(table.Row{r.Host, r.State, exitText(r), r.Transport, (time.Duration(r.DurationMS) * time.Millisecond).String(), output(r)})
	}
	t.SetColumnConfigs([]table.ColumnConfig{{Name: "OUTPUT", WidthMax: 100}})
	t.Render()
}

// jobJSON prints a job as printJSON prints it whole, from its pages: the
// first page's fields, then the results one at a time as they come, then
// the fields after them (deliveries, and any a command adds).
type jobJSON struct {
	w       io.Writer
	results int // results printed
}

func (j *jobJSON) head(job wire.Job) error {
	job.Results, job.Deliveries, job.NextHost = nil, nil, ""
	b, err := json.MarshalIndent(job, "", "  ")
	if err != nil {
		return err
	}
	_, err = j.w.Write(escapeJSON(b[:len(b)-len("\n}")]))
	return err
}

// result prints the next element of results.
func (j *jobJSON) result(r wire.HostResult) error {
	b, err := json.MarshalIndent(r, "    ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n    "
	if j.results == 0 {
		sep = ",\n  \"results\": [\n    "
	}
	j.results++
	_, err = fmt.Fprintf(j.w, "%s%s", sep, escapeJSON(b))
	return err
}

// end closes the results, prints the deliveries, when there are any, and
// the fields of after, in order, and ends the document.
func (j *jobJSON) end(deliveries []wire.Delivery, after ...jsonField) error {
	if j.results > 0 {
		if _, err := io.WriteString(j.w, "\n  ]"); err != nil {
			return err
		}
	}
	if len(deliveries) > 0 {
		after = append([]jsonField{{"deliveries", deliveries}}, after...)
	}
	for _, f := range after {
		b, err := json.MarshalIndent(f.value, "  ", "  ")
		if err != nil {
			return err
		}
		key, _ := json.Marshal(f.name)
		if _, err := fmt.Fprintf(j.w, ",\n  %s: %s", key, escapeJSON(b)); err != nil {
			return err
		}
	}
	_, err := io.WriteString(j.w, "\n}\n")
	return err
}

// jsonField is a field of a JSON object, in order.
type jsonField struct {
	name  string
	value any
}
