package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// pollInterval is how often follow asks for the job when it has no events.
var pollInterval = 500 * time.Millisecond

// isTerminal reports whether w is a terminal, where a redrawn progress line
// makes sense. Tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// follow waits for a job to end, drawing its progress on ew when ew is a
// terminal, and returns the job with its results. It reads the job's event
// stream and falls back to polling when the stream breaks. When ctx ends or
// the user presses Ctrl-C, it says how to find and cancel the job, which
// runs on, and returns errFailed.
func follow(ctx context.Context, c *client, jobID string, ew io.Writer) (wire.Job, error) {
	return followEach(ctx, c, jobID, ew, nil)
}

// followEach is follow that also hands each event of the stream, output
// included, to each when each is set.
func followEach(ctx context.Context, c *client, jobID string, ew io.Writer, each func(model.Event) error) (wire.Job, error) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	p := &progress{w: ew, job: jobID, tty: isTerminal(ew), done: map[string]model.State{}, each: each}
	defer p.clear()
	err := p.events(ctx, c)
	if err == nil || ctx.Err() == nil {
		// The stream ended (the job is done) or broke: ask for the job
		// until its results are stored.
		var job wire.Job
		job, err = p.poll(ctx, c)
		if err == nil {
			return job, nil
		}
	}
	if ctx.Err() == nil {
		return wire.Job{}, err
	}
	p.clear()
	fmt.Fprintf(ew, "stopped following job %s, which runs on: see it with `felix job %s`, cancel it with `felix job cancel %s`\n",
		jobID, jobID, jobID)
	return wire.Job{}, errFailed
}

// progress is the state of a followed job and its line on a terminal.
type progress struct {
	w     io.Writer
	job   string
	tty   bool                    // draw the progress line
	total int                     // hosts in the job; 0 until known
	done  map[string]model.State  // final state by host
	line  string                  // the line drawn last, "" when none is shown
	each  func(model.Event) error // when set, sees every event
}

// events reads the job's event stream until its end event (nil), or until
// it breaks or ctx ends (an error).
func (p *progress) events(ctx context.Context, c *client) error {
	body, err := c.stream(ctx, "/api/v1/jobs/"+url.PathEscape(p.job)+"/events")
	if err != nil {
		return err
	}
	defer body.Close()
	return readSSE(body, func(typ string, data []byte) error {
		if p.each == nil && typ != string(model.EventJob) && typ != string(model.EventHost) {
			return nil // output chunks: the final table shows them
		}
		var e model.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return fmt.Errorf("job events: bad %s event: %w", typ, err)
		}
		e.Type = model.EventType(typ)
		if p.each != nil {
			if err := p.each(e); err != nil {
				return err
			}
		}
		switch {
		case e.Type == model.EventJob && p.total == 0 && e.Total > 0:
			p.total = e.Total
		case e.Type == model.EventHost && model.State(e.State).Final():
			p.done[e.Host] = model.State(e.State)
		}
		p.draw(len(p.done), p.failed())
		return nil
	})
}

func (p *progress) failed() int {
	n := 0
	for _, s := range p.done {
		if s != model.StateOK {
			n++
		}
	}
	return n
}

// poll GETs the job until it has ended, every pollInterval, and returns
// its first page. While the job runs it asks for its counts alone (one
// host, no output): a page of a large job's output every half second
// would be wasted. It gives up on an error answer at once, and on a
// broken connection after a while.
func (p *progress) poll(ctx context.Context, c *client) (wire.Job, error) {
	const maxErrors = 20
	var errs int
	page := jobPath(p.job)
	ask := page // usually the job has ended when the events do
	for {
		var job wire.Job
		err := c.do(ctx, "GET", ask, nil, &job)
		var ae *apiError
		switch {
		case err == nil && job.State.Final() && ask == page:
			return job, nil
		case err == nil && job.State.Final():
			ask = page
			continue
		case err == nil:
			errs = 0
			ask = page + "?hosts_limit=1&output=none"
			if job.Total > 0 {
				p.total = job.Total
			}
			done, failed := 0, 0
			for s, n := range job.Summary {
				if st := model.State(s); st.Final() {
					done += n
					if st != model.StateOK {
						failed += n
					}
				}
			}
			p.draw(done, failed)
		case ctx.Err() != nil, errors.As(err, &ae):
			return wire.Job{}, err
		default:
			if errs++; errs >= maxErrors {
				return wire.Job{}, fmt.Errorf("follow job %s: %w", p.job, err)
			}
		}
		t := time.NewTimer(pollInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return wire.Job{}, ctx.Err()
		}
	}
}

// draw shows "[job ID] done/total done, N failed" on the terminal,
// replacing the line drawn before.
func (p *progress) draw(done, failed int) {
	if !p.tty {
		return
	}
	total := "?"
	if p.total > 0 {
		total = fmt.Sprint(p.total)
	}
	line := fmt.Sprintf("[job %s] %d/%s done, %d failed", p.job, done, total, failed)
	if line == p.line {
		return
	}
	p.line = line
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
}

// clear erases the progress line, if one is shown.
func (p *progress) clear() {
	if p.line != "" {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.line = ""
	}
}

// errStreamBroken is a Server-Sent Events stream that ended without its end
// event.
var errStreamBroken = errors.New("job events: stream ended early")

// readSSE reads Server-Sent Events from r and calls fn with each event's
// type and data, until an event of type "end" (nil), the end of r
// (errStreamBroken), a read error, or an error from fn.
func readSSE(r io.Reader, fn func(typ string, data []byte) error) error {
	br := bufio.NewReader(r)
	var typ string
	var data []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errStreamBroken
			}
			return fmt.Errorf("job events: %w", err)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if typ == "" && data == nil {
				continue
			}
			if typ == "" {
				typ = "message"
			}
			if typ == "end" {
				return nil
			}
			if err := fn(typ, data); err != nil {
				return err
			}
			typ, data = "", nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = value
		case "data":
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, value...)
		}
	}
}
