package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jedib0t/go-pretty/v6/table"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

func cmdExec(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("exec")
	jf := addJobFlags(fs)
	v := addViewFlags(fs)
	script := fs.String("script", "", "run this local script on the targets; args after -- are its arguments")
	file := fs.String("file", "", "upload this local file and run COMMAND in its directory")
	shell := fs.String("shell", "", "Windows minions: run COMMAND with cmd (the default) or powershell")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	if err := v.check(); err != nil {
		return err
	}
	opts, err := jf.options()
	if err != nil {
		return err
	}
	req := wire.ExecRequest{JobOptions: opts, Shell: *shell}
	switch {
	case *script != "" && *file != "":
		return fmt.Errorf("give --script or --file, not both")
	case *script != "":
		if err := attach(&req, *script); err != nil {
			return err
		}
		req.CmdType = model.CmdScript
		words := []string{shellWord("./" + req.FileName)}
		for _, a := range rest {
			words = append(words, shellQuote(a))
		}
		req.CmdLine = strings.Join(words, " ")
	case *file != "":
		if len(rest) == 0 {
			return fmt.Errorf("no command: felix exec -t TARGETS --file FILE -- COMMAND")
		}
		if err := attach(&req, *file); err != nil {
			return err
		}
		req.CmdType, req.CmdLine = model.CmdFile, strings.Join(rest, " ")
	default:
		if len(rest) == 0 {
			return fmt.Errorf("no command: felix exec -t TARGETS -- COMMAND")
		}
		req.CmdType, req.CmdLine = model.CmdLine, strings.Join(rest, " ")
	}
	id, err := startJob(ctx, c, "/api/v1/exec", req, *jf.dry, *jf.async, w, o.Output)
	if err != nil || id == "" {
		return err
	}
	v.verbose = *jf.verbose
	return followJob(ctx, c, id, w, ew, o.Output, *v)
}

// attach puts the local file at path into req: as text when it is UTF-8
// without NUL, else as base64, under its base name.
func attach(req *wire.ExecRequest, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err // names the operation and the path
	}
	if len(b) == 0 {
		return fmt.Errorf("%s is empty", path)
	}
	req.FileName = filepath.Base(path)
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		req.File = string(b)
	} else {
		req.File, req.FileEncoding = base64.StdEncoding.EncodeToString(b), "base64"
	}
	return nil
}

// shellQuote quotes s for /bin/sh in single quotes.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellWord returns s as is when /bin/sh reads it as one plain word, else
// quoted.
func shellWord(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("./_-+,:@%", r)) {
			return shellQuote(s)
		}
	}
	return s
}

// printAccepted prints a job started in the background: its id alone, for
// scripts, or the answer as JSON.
func printAccepted(w io.Writer, format string, acc wire.ExecAccepted) error {
	if structured(format) {
		return printAs(w, format, acc, nil)
	}
	fmt.Fprintln(w, acc.JobID)
	return nil
}

// followJob waits for a job, showing its progress, and prints its results.
func followJob(ctx context.Context, c *client, jobID string, w, ew io.Writer, format string, v view) error {
	if format == formatJSONL {
		return streamJob(ctx, c, jobID, w, ew, nil)
	}
	job, err := follow(ctx, c, jobID, ew)
	if err != nil {
		return err
	}
	v.followed = true
	return showJob(ctx, c, job, w, format, v)
}

func printDryRun(w io.Writer, format string, dr wire.DryRun) error {
	if structured(format) {
		return printAs(w, format, dr, dr.Hosts)
	}
	t := newTable(w, "HOST", "ADDRESS", "WOULD", "TRANSPORT", "NOTE")
	n := 0
	for _, h := range dr.Hosts {
		if h.State == "would run" {
			n++
		}
		tr := h.Transport
		if h.Fallback != "" {
			tr += ", else " + h.Fallback
		}
		t.AppendRow(table.Row{h.Host, h.Address, h.State, tr, h.Error})
	}
	t.Render()
	fmt.Fprintf(w, "dry run: %d of %s would run; nothing ran\n", n, plural(len(dr.Hosts), "host"))
	return nil
}

func cmdJob(ctx context.Context, args []string, w, ew io.Writer) error {
	fs, o := flags("job")
	failed := fs.Bool("failed", false, "rerun: only the hosts that did not end ok")
	async := fs.Bool("async", false, "rerun: print the new job id and return at once")
	stderr := fs.Bool("stderr", false, "output: the host's stderr instead of its stdout")
	v := addViewFlags(fs)
	fs.BoolVarP(&v.verbose, "verbose", "v", false, "rerun: every notification's state after the results, not only failed ones")
	raw := fs.Bool("raw", false, "output: the bytes as stored even on a terminal (else escapes are shown, not acted on)")
	c, rest, err := parse(fs, o, args)
	if err != nil {
		return err
	}
	sub := "show"
	if len(rest) > 0 && (rest[0] == "cancel" || rest[0] == "rerun" || rest[0] == "output") {
		sub, rest = rest[0], rest[1:]
	}
	if sub != "rerun" && (fs.Changed("failed") || fs.Changed("async")) {
		return fmt.Errorf("--failed and --async are for felix job rerun")
	}
	if err := v.check(); err != nil {
		return err
	}
	if sub != "output" && fs.Changed("stderr") {
		return fmt.Errorf("--stderr is for felix job output")
	}
	if sub == "output" {
		if len(rest) != 2 {
			return fmt.Errorf("want a job id and a host: felix job output JOB_ID HOST")
		}
		return jobOutput(ctx, c, rest[0], rest[1], *stderr, *raw, w, o.Output)
	}
	if len(rest) != 1 {
		return fmt.Errorf("want exactly one job id")
	}
	path := jobPath(rest[0])
	switch sub {
	case "cancel":
		var ans map[string]any
		if err := c.do(ctx, "POST", path+"/cancel", nil, &ans); err != nil {
			return err
		}
		if structured(o.Output) {
			return printAs(w, o.Output, ans, nil)
		}
		fmt.Fprintf(w, "job %s: cancelling\n", rest[0])
		return nil
	case "rerun":
		if *failed {
			path += "/rerun?only=failed"
		} else {
			path += "/rerun"
		}
		var acc wire.ExecAccepted
		if err := c.do(ctx, "POST", path, nil, &acc); err != nil {
			return err
		}
		if *async {
			return printAccepted(w, o.Output, acc)
		}
		return followJob(ctx, c, acc.JobID, w, ew, o.Output, *v)
	}
	var job wire.Job
	if err := c.do(ctx, "GET", path, nil, &job); err != nil {
		return err
	}
	// A display command: a job whose hosts failed is shown, not a failure.
	if err := showJob(ctx, c, job, w, o.Output, *v); !errors.Is(err, errFailed) {
		return err
	}
	return nil
}

// jobOutput prints a host's whole stored output in a job as it arrives:
// its stdout (or stderr) as stored — through visible on a terminal unless
// raw — or with -o json its result.
func jobOutput(ctx context.Context, c *client, jobID, host string, stderr, raw bool, w io.Writer, format string) error {
	path := jobPath(jobID) + "/hosts/" + url.PathEscape(host)
	if structured(format) {
		var r wire.HostResult
		if err := c.do(ctx, "GET", path, nil, &r); err != nil {
			return err
		}
		return printAs(w, format, r, nil)
	}
	path += "/output"
	if stderr {
		path += "?stream=stderr"
	}
	body, err := c.stream(ctx, path)
	if err != nil {
		return err
	}
	defer body.Close()
	if !isTerminal(w) || raw {
		if _, err := io.Copy(w, body); err != nil {
			return fmt.Errorf("output of %s in job %s: %w", host, jobID, err)
		}
		return nil
	}
	vw := &visibleWriter{w: w} // a terminal acts on escapes: show them instead
	if _, err := io.Copy(vw, body); err != nil {
		return fmt.Errorf("output of %s in job %s: %w", host, jobID, err)
	}
	return vw.Flush()
}

// output is what the OUTPUT column shows: stdout, then stderr, then any error.
func output(r wire.HostResult) string {
	var parts []string
	if s := strings.TrimRight(r.Stdout, "\n"); s != "" {
		parts = append(parts, s)
	}
	if s := strings.TrimRight(r.Stderr, "\n"); s != "" {
		parts = append(parts, "! "+strings.ReplaceAll(s, "\n", "\n! ")) // stderr, marked as in the folded view
	}
	if r.Error != "" {
		parts = append(parts, r.Error)
	}
	if r.Truncated {
		parts = append(parts, "(output truncated)")
	}
	return strings.Join(parts, "\n")
}

// deliveryFailed is a callback or Slack message that failed: dead, or
// pending after a failed attempt.
func deliveryFailed(d wire.Delivery) bool {
	return d.State == "dead" || (d.State == "pending" && d.LastError != "")
}

// delivery describes a callback or Slack message of a job in one line.
func delivery(d wire.Delivery) string {
	attempts := fmt.Sprintf("%d attempts", d.Attempts)
	if d.Attempts == 1 {
		attempts = "1 attempt"
	}
	switch d.State {
	case "dead":
		return fmt.Sprintf("%s: dead: %s (%s)", d.Kind, d.LastError, attempts)
	case "pending":
		s := fmt.Sprintf("%s: pending (%s", d.Kind, attempts)
		if d.LastError != "" {
			s += "; last error: " + d.LastError
		}
		if d.NextAt != nil {
			s += "; next try " + until(*d.NextAt)
		}
		return s + ")"
	}
	return fmt.Sprintf("%s: %s (%s)", d.Kind, d.State, attempts)
}

// until says how far in the future t is.
func until(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return "in " + d.String()
}

// summary says how many hosts were shown and how the job's hosts ended.
func summary(job wire.Job, hosts int) string {
	states := make([]string, 0, len(job.Summary))
	for s := range job.Summary {
		states = append(states, s)
	}
	sort.Strings(states)
	parts := make([]string, 0, len(states))
	for _, s := range states {
		parts = append(parts, fmt.Sprintf("%d %s", job.Summary[s], s))
	}
	noun := "hosts"
	if hosts == 1 {
		noun = "host"
	}
	return fmt.Sprintf("%d %s: %s", hosts, noun, strings.Join(parts, ", "))
}
