package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// A job is read in pages of hosts and written as it is read: a job of
// ten thousand hosts with megabytes of output each must never be built in
// memory. GET /api/v1/jobs/{id} takes
//
//	hosts_limit  hosts per page, 1 to MaxHostsLimit (default DefaultHostsLimit)
//	hosts_after  only hosts sorting after this one: next_host of the previous page
//	output       tail (default): each stream's last PageTail bytes, truncated
//	             set when cut; none: no output (stdout and stderr empty)
//
// and answers the job with its summary over all hosts, a page of results
// ordered by host, its deliveries, and next_host when hosts follow. A job
// that fits one page looks as it always did. A host's whole stored output
// is at GET /api/v1/jobs/{id}/hosts/{host} (its result) and .../output
// (one stream, raw).
const (
	DefaultHostsLimit = 1000
	MaxHostsLimit     = 10000
	JobOutputTail     = 64 << 10
)

// firstPage is the page a job answer holds when the request names none
// (the ?wait answer of a job request).
var firstPage = inventory.ResultPage{Limit: DefaultHostsLimit, Tail: JobOutputTail}

// PageTail is how many bytes of each stream a page of hosts hosts gives
// each host: model.AnnouncedTotal shared among them, at least
// JobOutputTail — so a small job's answer holds its output whole (the
// output cap is far below it) while a page of a thousand hosts stays near
// 128 MiB at most.
func PageTail(hosts int) int {
	return max(JobOutputTail, model.AnnouncedTotal/(2*max(hosts, 1)))
}

func (s *Server) getJob(c *gin.Context) {
	page, err := jobPage(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.writeJob(c, c.Param("id"), http.StatusOK, page)
}

// jobPage reads the paging parameters of GET /api/v1/jobs/{id}. A
// parameter given empty is refused like any other bad value, but
// hosts_after, where "" (before every host) is the first page.
func jobPage(c *gin.Context) (inventory.ResultPage, error) {
	p := firstPage
	if v, given := c.GetQuery("hosts_limit"); given {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxHostsLimit {
			return p, badRequestf("hosts_limit %q: want 1 to %d", v, MaxHostsLimit)
		}
		p.Limit = n
	}
	p.After = c.Query("hosts_after")
	if v, given := c.GetQuery("output"); given {
		switch v {
		case "tail":
		case "none":
			p.Tail = 0
		default:
			return p, badRequestf("output %q: want tail or none (a host's whole output: /api/v1/jobs/{id}/hosts/{host})", v)
		}
	}
	return p, nil
}

// writeJob answers a page of job id with status. The job and its counts
// are read first, together (a 404 or 500 is still possible then); the
// results are then written one by one as they are read, in short batches
// (inventory.JobResults), and the deliveries after them — so while a job
// runs, a host may be further along in its page than in the summary.
// A failure past that point can only cut the answer short: its JSON stays
// incomplete, so no client takes it for the whole job, and it is logged.
func (s *Server) writeJob(c *gin.Context, id string, status int, page inventory.ResultPage) {
	ctx := c.Request.Context()
	job, err := s.Store.JobSummary(ctx, id)
	if err != nil {
		s.abort(c, err)
		return
	}
	if page.Tail > 0 {
		page.Tail = PageTail(min(page.Limit, job.Total))
	}
	head := jobView(job, nil)
	head.Summary = job.Summary
	b, err := json.Marshal(head)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Content-Type", "application/json; charset=utf-8")
	c.Status(status)
	// The fields after summary follow as json.Marshal(wire.Job) writes
	// them: results, deliveries, next_host, each left out when empty.
	js := &jsonStream{w: c.Writer}
	js.raw(b[:len(b)-1]) // all but the closing brace
	n := 0
	next, err := s.Store.JobResults(ctx, id, page, func(r model.Result) error {
		if n++; n == 1 {
			js.raw([]byte(`,"results":[`))
		} else {
			js.raw([]byte{','})
		}
		js.value(resultView(r))
		return js.err
	})
	if err == nil && n > 0 {
		js.raw([]byte{']'})
	}
	if err == nil {
		err = s.writeDeliveries(c, js, id)
	}
	if err == nil && next != "" {
		js.raw([]byte(`,"next_host":`))
		js.value(next)
	}
	if err == nil {
		js.raw([]byte{'}'})
		err = js.err
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, errClientGone) {
		s.Log.Error("write job: answer cut short", "job", id, "err", err)
	}
}

// writeDeliveries writes the job's deliveries field, when it has any.
func (s *Server) writeDeliveries(c *gin.Context, js *jsonStream, id string) error {
	items, err := s.Store.Outbox(c.Request.Context(), inventory.OutboxFilter{JobID: id})
	if err != nil || len(items) == 0 {
		return err
	}
	ds := make([]wire.Delivery, 0, len(items))
	for _, it := range items {
		ds = append(ds, deliveryView(it))
	}
	js.raw([]byte(`,"deliveries":`))
	js.value(ds)
	return js.err
}

// errClientGone is a write to a client that hung up.
var errClientGone = errors.New("client gone")

// jsonStream writes a JSON document in parts; the first error sticks.
type jsonStream struct {
	w   io.Writer
	err error
}

func (js *jsonStream) raw(b []byte) {
	if js.err != nil {
		return
	}
	if _, err := js.w.Write(b); err != nil {
		js.err = errors.Join(errClientGone, err)
	}
}

// value writes v as json.Marshal does (compact, HTML escaped).
func (js *jsonStream) value(v any) {
	if js.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		js.err = err
		return
	}
	js.raw(b)
}

// resultView converts one host's stored result to the API's shape.
func resultView(r model.Result) wire.HostResult {
	hr := wire.HostResult{Host: r.Host, Address: r.Addr, State: r.State,
		ExitCode: r.ExitCode, Signal: r.Signal, Stdout: string(r.Stdout), Stderr: string(r.Stderr),
		Truncated: r.Truncated, Error: r.Error, Transport: r.Transport, Files: r.Files, Packages: r.Packages, Apply: r.Apply,
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
		hr.DurationMS = r.FinishedAt.Sub(r.StartedAt).Milliseconds()
	}
	return hr
}

// getJobHost answers one host's result in a job with all its stored output.
func (s *Server) getJobHost(c *gin.Context) {
	r, err := s.Store.JobResult(c.Request.Context(), c.Param("id"), c.Param("host"))
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, resultView(r))
}

// getJobHostOutput answers one stream of a host's stored output as raw
// bytes; X-Felix-Truncated says whether it was cut (head and tail kept)
// when it was stored.
func (s *Server) getJobHostOutput(c *gin.Context) {
	stream := model.Stdout
	if v, given := c.GetQuery("stream"); given {
		switch v {
		case "stdout":
		case "stderr":
			stream = model.Stderr
		default:
			s.abort(c, badRequestf("stream %q: want stdout or stderr", v))
			return
		}
	}
	b, truncated, err := s.Store.JobOutput(c.Request.Context(), c.Param("id"), c.Param("host"), stream)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.Header("X-Felix-Truncated", strconv.FormatBool(truncated))
	c.Data(http.StatusOK, "application/octet-stream", b)
}
