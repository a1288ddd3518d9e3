package cli

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// With -o jsonl a job command (exec, cp, fetch, pkg, apply, minions
// upgrade, job rerun) prints a line per host as the host finishes — read
// from the job's event stream — and, once the job has ended, a summary
// line; `felix job ID -o jsonl` prints the stored results the same way.
// The field names below are part of the command line's interface: new
// fields may come, none is renamed or removed.

// jsonlResult is the line of a host that finished: {"type":"result",...}.
type jsonlResult struct {
	Type      string      `json:"type"` // "result"
	JobID     string      `json:"job_id"`
	Host      string      `json:"host"`
	State     model.State `json:"state"`
	ExitCode  int         `json:"exit_code"` // -1 when the command did not run or was killed
	Signal    string      `json:"signal,omitempty"`
	Stdout    string      `json:"stdout"`
	Stderr    string      `json:"stderr"`
	Truncated bool        `json:"truncated"` // stdout or stderr lost its beginning
	Error     string      `json:"error,omitempty"`
	// Transport and DurationMS are known from the stored result, not from
	// the event stream: absent on lines printed while the job ran.
	Transport  string             `json:"transport,omitempty"`
	DurationMS int64              `json:"duration_ms,omitempty"`
	Files      *model.FileReport  `json:"files,omitempty"`
	Packages   *model.PkgReport   `json:"packages,omitempty"`
	Apply      *model.ApplyReport `json:"apply,omitempty"`
	// Saved is where felix fetch saved the host's copy; SaveError why it
	// could not.
	Saved      string     `json:"saved,omitempty"`
	SaveError  string     `json:"save_error,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// jsonlSummary is the last line: {"type":"summary",...}.
type jsonlSummary struct {
	Type        string          `json:"type"` // "summary"
	JobID       string          `json:"job_id"`
	State       model.JobState  `json:"state"`
	Total       int             `json:"total"`   // hosts in the job
	Hosts       int             `json:"hosts"`   // result lines printed
	Summary     map[string]int  `json:"summary"` // hosts by final state
	Failed      int             `json:"failed"`  // hosts that did not end ok
	Unreachable []string        `json:"unreachable"`
	Deliveries  []wire.Delivery `json:"deliveries,omitempty"`
}

func resultLine(jobID string, r wire.HostResult) jsonlResult {
	l := jsonlResult{Type: "result", JobID: jobID, Host: r.Host, State: r.State, ExitCode: r.ExitCode, Signal: r.Signal,
		Stdout: r.Stdout, Stderr: r.Stderr, Truncated: r.Truncated, Error: r.Error, Transport: r.Transport,
		DurationMS: r.DurationMS, Files: r.Files, Packages: r.Packages, Apply: r.Apply}
	if !r.FinishedAt.IsZero() {
		l.FinishedAt = &r.FinishedAt
	}
	return l
}

// jobDoc prints a job from its pages in a structured format: its fields,
// each result, then what follows the results.
type jobDoc interface {
	head(job wire.Job) error
	result(r wire.HostResult) error
	end(deliveries []wire.Delivery, after ...jsonField) error
}

var _, _, _ jobDoc = (*jobJSON)(nil), (*jobYAML)(nil), (*jobLines)(nil)

// newJobDoc returns the writer of a structured format, nil for a table.
func newJobDoc(w io.Writer, format string) jobDoc {
	switch format {
	case formatJSON:
		return &jobJSON{w: w}
	case formatYAML:
		return &jobYAML{w: w}
	case formatJSONL:
		return &jobLines{w: w}
	}
	return nil
}

// jobLines prints a job as jsonl: a line per result, then the summary.
type jobLines struct {
	w           io.Writer
	job         wire.Job
	hosts       int
	failed      int
	unreachable []string
	fix         func(*jsonlResult) // completes a line before it prints (fetch: the saved copy)
}

func (j *jobLines) head(job wire.Job) error {
	j.job = job
	return nil
}

func (j *jobLines) result(r wire.HostResult) error {
	return j.line(resultLine(j.job.JobID, r))
}

func (j *jobLines) line(l jsonlResult) error {
	if j.fix != nil {
		j.fix(&l)
	}
	j.hosts++
	if l.State != model.StateOK {
		j.failed++
	}
	if l.State == model.StateUnreachable {
		j.unreachable = append(j.unreachable, l.Host)
	}
	return printLine(j.w, l)
}

func (j *jobLines) end(deliveries []wire.Delivery, _ ...jsonField) error {
	s := jsonlSummary{Type: "summary", JobID: j.job.JobID, State: j.job.State, Total: j.job.Total, Hosts: j.hosts,
		Summary: j.job.Summary, Failed: j.failed, Unreachable: j.unreachable, Deliveries: deliveries}
	if s.Summary == nil {
		s.Summary = map[string]int{}
	}
	if s.Unreachable == nil {
		s.Unreachable = []string{}
	}
	return printLine(j.w, s)
}

// jobYAML prints a job as YAML from its pages, in the order jobJSON does.
type jobYAML struct {
	w       io.Writer
	results int
}

func (j *jobYAML) head(job wire.Job) error {
	job.Results, job.Deliveries, job.NextHost = nil, nil, ""
	return printYAML(j.w, job)
}

func (j *jobYAML) result(r wire.HostResult) error {
	n, err := yamlNode(r)
	if err != nil {
		return err
	}
	var b strings.Builder
	if j.results == 0 {
		b.WriteString("results:\n")
	}
	j.results++
	writeSeq(&b, &node{kind: '[', vals: []*node{n}}, 0)
	_, err = io.WriteString(j.w, b.String())
	return err
}

func (j *jobYAML) end(deliveries []wire.Delivery, after ...jsonField) error {
	if len(deliveries) > 0 {
		after = append([]jsonField{{"deliveries", deliveries}}, after...)
	}
	var b strings.Builder
	for _, f := range after {
		n, err := yamlNode(f.value)
		if err != nil {
			return err
		}
		writeMapping(&b, &node{kind: '{', keys: []string{f.name}, vals: []*node{n}}, 0, false)
	}
	_, err := io.WriteString(j.w, b.String())
	return err
}

// yamlNode is v as JSON, read into a node.
func yamlNode(v any) (*node, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	return readNode(dec)
}

// streamJob follows job jobID, printing a jsonl line for each host as it
// finishes (with the output the event stream carried, at most the tail
// the master keeps per host), then a line for every host the stream did
// not show (from the stored results: a broken stream, a reconnect), then
// the summary line. fix, when set, completes each line before it prints.
// It returns errFailed when a host did not end ok.
func streamJob(ctx context.Context, c *client, jobID string, w, ew io.Writer, fix func(*jsonlResult)) error {
	lines := &jobLines{w: w, job: wire.Job{JobID: jobID}, fix: fix}
	seen := map[string]bool{}
	out := map[string]*[2]tailBuffer{} // running hosts' stdout and stderr
	total := 0
	each := func(e model.Event) error {
		switch {
		case e.Type == model.EventJob && e.Total > 0:
			total = e.Total
		case e.Type == model.EventOutput && e.Host != "" && !seen[e.Host]:
			o := out[e.Host]
			if o == nil {
				o = &[2]tailBuffer{}
				out[e.Host] = o
			}
			i := 0
			if e.Stream == model.Stderr.String() {
				i = 1
			}
			o[i].write(e.Data, model.AnnouncedTail(total))
		case e.Type == model.EventHost && model.State(e.State).Final() && !seen[e.Host]:
			seen[e.Host] = true
			l := jsonlResult{Type: "result", JobID: jobID, Host: e.Host, State: model.State(e.State), ExitCode: e.ExitCode,
				Signal: e.Signal, Error: e.Error, Files: e.Files, Packages: e.Packages, Apply: e.Apply}
			if o := out[e.Host]; o != nil {
				l.Stdout, l.Stderr, l.Truncated = o[0].String(), o[1].String(), o[0].cut || o[1].cut
				delete(out, e.Host)
			}
			if !e.At.IsZero() {
				at := e.At
				l.FinishedAt = &at
			}
			if l.State != model.StateOK && l.ExitCode == 0 && l.Signal == "" && e.Error != "" {
				l.ExitCode = -1 // an event leaves out the -1 of a command that did not run
			}
			return lines.line(l)
		}
		return nil
	}
	job, err := followEach(ctx, c, jobID, ew, each)
	if err != nil {
		return err
	}
	lines.job = job
	last, err := eachPage(ctx, c, job, func(page wire.Job) error {
		for _, r := range page.Results {
			if !seen[r.Host] {
				seen[r.Host] = true
				if err := lines.result(r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := lines.end(last.Deliveries); err != nil {
		return err
	}
	if lines.failed > 0 {
		return errFailed
	}
	return nil
}

// tailBuffer keeps the last bytes written to it, at most a limit.
type tailBuffer struct {
	b   []byte
	cut bool // bytes were dropped from the front
}

func (t *tailBuffer) write(s string, limit int) {
	t.b = append(t.b, s...)
	if limit > 0 && len(t.b) > limit {
		t.b = append(t.b[:0], model.RuneStart(t.b[len(t.b)-limit:])...)
		t.cut = true
	}
}

func (t *tailBuffer) String() string { return string(t.b) }

// jobSummaryLine is the line under a job's table: how many hosts were
// shown, how many ended in each state, and which were unreachable.
func jobSummaryLine(job wire.Job, hosts int, unreachable []string) string {
	line := summary(job, hosts)
	if len(unreachable) > 0 {
		line += "; unreachable: " + hostSet(unreachable)
	}
	return "job " + visible(job.JobID) + ": " + visible(line)
}
