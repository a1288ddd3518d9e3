package jobs

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// maxHubOutput bounds the output a running job keeps for subscribers that
// connect late; past it, output chunks are no longer kept (state changes
// always are) and the stored results hold the capped output.
const maxHubOutput = 8 << 20

// hub keeps a running job's events and wakes subscribers.
type hub struct {
	mu      sync.Mutex
	events  []model.Event // protected by mu
	output  int           // bytes of output kept; protected by mu
	dropped bool          // output chunks were dropped; protected by mu
	closed  bool          // the job ended; protected by mu
	wake    chan struct{} // closed and replaced on every change; protected by mu
}

func newHub() *hub { return &hub{wake: make(chan struct{})} }

func (h *hub) publish(e model.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishLocked(e)
}

// publishOutput publishes a chunk of a host's output, copied only when it
// is kept: a job printing gigabytes past maxHubOutput costs no copy of them.
func (h *hub) publishOutput(host string, st model.Stream, p []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.dropped && h.output+len(p) > maxHubOutput {
		return
	}
	h.publishLocked(model.Event{Type: model.EventOutput, Host: host, Stream: st.String(), Data: string(p)})
}

func (h *hub) publishLocked(e model.Event) {
	if e.Type == model.EventOutput {
		if h.output+len(e.Data) > maxHubOutput {
			if h.dropped {
				return
			}
			// Say so once, in place of the chunks: the stored results
			// (GET the job) hold each host's capped output.
			h.dropped = true
			e = model.Event{Type: model.EventNotice, Error: fmt.Sprintf("this job's output passed %d MiB; further output is not streamed, GET the job for each host's stored output", maxHubOutput>>20)}
		} else {
			h.output += len(e.Data)
		}
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Seq = len(h.events) + 1
	h.events = append(h.events, e)
	close(h.wake)
	h.wake = make(chan struct{})
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	close(h.wake)
	h.wake = make(chan struct{})
}

// since returns the events after the first n, whether the job ended, and a
// channel closed at the next change.
func (h *hub) since(n int) ([]model.Event, bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events[n:], h.closed, h.wake
}

// Events sends a job's events to fn from its start: what already happened,
// then live events until the job ends, ctx ends or fn fails. For a job that
// is not running it sends the stored outcome: each host's output and state,
// then the job's state.
func (s *Service) Events(ctx context.Context, id string, fn func(model.Event) error) error {
	s.mu.Lock()
	r, ok := s.running[id]
	s.mu.Unlock()
	if ok {
		n := 0
		for {
			evs, closed, wake := r.hub.since(n)
			for _, e := range evs {
				if err := fn(e); err != nil {
					return err
				}
			}
			n += len(evs)
			if closed {
				return nil
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	// Read host by host, in batches: memory does not grow with the job.
	job, err := s.Store.JobSummary(ctx, id)
	if err != nil {
		return err
	}
	seq := 0
	send := func(e model.Event) error {
		seq++
		e.Seq = seq
		return fn(e)
	}
	// The same shape a live subscriber sees: running, the hosts, the end.
	if err := send(model.Event{Type: model.EventJob, State: string(model.JobRunning), Total: job.Total, At: job.CreatedAt}); err != nil {
		return err
	}
	all := inventory.ResultPage{Limit: math.MaxInt32, Tail: math.MaxInt32} // every host, its whole stored output
	_, err = s.Store.JobResults(ctx, id, all, func(r model.Result) error {
		for _, o := range []struct {
			s model.Stream
			b []byte
		}{{model.Stdout, r.Stdout}, {model.Stderr, r.Stderr}} {
			if len(o.b) > 0 {
				if err := send(model.Event{Type: model.EventOutput, Host: r.Host, Stream: o.s.String(), Data: string(o.b), At: r.FinishedAt}); err != nil {
					return err
				}
			}
		}
		return send(model.Event{Type: model.EventHost, Host: r.Host, State: string(r.State), ExitCode: r.ExitCode, Signal: r.Signal,
			Error: r.Error, Files: r.Files, Packages: r.Packages, Apply: r.Apply, At: r.FinishedAt})
	})
	if err != nil {
		return err
	}
	if job.State == model.JobRunning || job.State == model.JobQueued {
		return nil // another master's, or stored before this one started
	}
	return send(model.Event{Type: model.EventJob, State: string(job.State), Total: job.Total, At: job.FinishedAt})
}
