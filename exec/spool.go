package exec

import (
	"context"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sync/semaphore"
)

// A running host's output is kept in memory (CappedBuffer) while the
// engine's OutputMemory allows; past it, the host's buffer moves to an
// unlinked file in SpoolDir with the same head-and-tail layout, so the
// master's memory does not grow with hosts × output however many hosts
// print at once. When a spilled host ends, its output is read back under
// a second, separate budget (so hosts that still run cannot hold up
// storing those that ended) and released once the Result hook has it.

// budgets are an engine's two output budgets, made on first use.
type budgets struct {
	once sync.Once
	run  *semaphore.Weighted // bytes running hosts hold in memory
	load *semaphore.Weighted // bytes of spilled output being read back
	max  int64               // of load
}

func (e *Engine) budgets() *budgets {
	e.budget.once.Do(func() {
		if e.OutputMemory > 0 {
			e.budget.run = semaphore.NewWeighted(e.OutputMemory)
			e.budget.max = max(e.OutputMemory/4, 1<<20)
			e.budget.load = semaphore.NewWeighted(e.budget.max)
		}
	})
	return &e.budget
}

// hostOutput is one stream of a running host: a CappedBuffer in memory,
// or in a spool file once the engine's budget is spent.
type hostOutput struct {
	b        *budgets
	spoolDir string
	buf      *CappedBuffer
	held     int64    // bytes of b.run this buffer holds
	file     *os.File // the spool file, once spilled
	lost     string   // why output was dropped (the spool failed), if it was
	loaded   int64    // bytes of b.load held by Bytes until release
	finished bool     // Bytes was called: nothing more is written
}

func newHostOutput(n int, b *budgets, spoolDir string) *hostOutput {
	return &hostOutput{b: b, spoolDir: spoolDir, buf: NewCappedBuffer(n)}
}

// Write never fails and never blocks on a budget.
func (o *hostOutput) Write(p []byte) {
	if o.lost != "" || o.finished {
		return
	}
	o.buf.Write(p)
	if o.buf.err != nil {
		o.lost = "spool output: " + o.buf.err.Error()
		return
	}
	// The budget counts the memory the buffer's pages take (allocated by
	// this write), not the bytes written: a partly filled page costs a
	// page. Past the budget, the buffer moves to the spool.
	if o.file == nil && o.b.run != nil {
		if alloc := o.buf.st.(*memRegion).alloc; alloc > o.held {
			if o.b.run.TryAcquire(alloc - o.held) {
				o.held = alloc
			} else if err := o.spill(); err != nil {
				o.lost = err.Error()
			}
		}
	}
}

// spill moves the buffer's bytes to an unlinked file in the spool, where
// the buffer goes on.
func (o *hostOutput) spill() error {
	f, err := os.CreateTemp(o.spoolDir, ".out-*")
	if err != nil {
		return fmt.Errorf("spool output: %w", err)
	}
	os.Remove(f.Name()) // gone with the process, whatever happens
	if err := o.buf.st.(*memRegion).writeTo(f); err != nil {
		f.Close()
		return fmt.Errorf("spool output: %w", err)
	}
	o.buf.st, o.file = f, f
	o.releaseRun()
	return nil
}

func (o *hostOutput) releaseRun() {
	if o.held > 0 {
		o.b.run.Release(o.held)
		o.held = 0
	}
}

// Bytes returns the output kept, as CappedBuffer.Bytes does, once: the
// buffer is done with (written no more). A spilled buffer is read back
// under the load budget, held until release; a buffer in memory lets its
// region go at once, so its bytes are in memory once (the copy returned),
// under the run budget it holds until release.
func (o *hostOutput) Bytes() []byte {
	if o.file != nil {
		o.loaded = min(int64(o.buf.size()+len(truncMarker)), o.b.max)
		_ = o.b.load.Acquire(context.Background(), o.loaded) // never fails: no deadline
	}
	out := o.buf.Bytes()
	if o.file == nil {
		o.buf.st = &memRegion{}
	}
	o.finished = true
	if o.lost != "" {
		out = append(out, "\n[... output lost by felix: "+o.lost+" ...]\n"...)
	}
	return out
}

// Truncated reports whether bytes were dropped.
func (o *hostOutput) Truncated() bool { return o.lost != "" || o.buf.Truncated() }

// release gives back what the buffer held: call it once the result has
// been handed on.
func (o *hostOutput) release() {
	o.releaseRun()
	if o.loaded > 0 {
		o.b.load.Release(o.loaded)
		o.loaded = 0
	}
	if o.file != nil {
		o.file.Close()
	}
}
