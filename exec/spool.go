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
// or spilled to a file.
type hostOutput struct {
	b        *budgets
	spoolDir string
	mem      *CappedBuffer
	held     int64 // bytes of b.run this buffer holds
	file     *spilled
	lost     string // why output was dropped (the spool failed), if it was
	loaded   int64  // bytes of b.load held by Bytes until release
}

func newHostOutput(n int, b *budgets, spoolDir string) *hostOutput {
	return &hostOutput{b: b, spoolDir: spoolDir, mem: NewCappedBuffer(n)}
}

// Write never fails and never blocks on a budget.
func (o *hostOutput) Write(p []byte) {
	switch {
	case o.lost != "":
		return
	case o.file != nil:
		if err := o.file.write(p); err != nil {
			o.lose(err)
		}
		return
	}
	grow := int64(min(len(p), o.mem.n-o.mem.size()))
	if grow <= 0 || o.b.run == nil || o.b.run.TryAcquire(grow) {
		if grow > 0 && o.b.run != nil {
			o.held += grow
		}
		o.mem.Write(p)
		return
	}
	if err := o.spill(); err != nil {
		o.lose(err)
		return
	}
	if err := o.file.write(p); err != nil {
		o.lose(err)
	}
}

// spill moves the memory buffer to an unlinked file in the spool.
func (o *hostOutput) spill() error {
	f, err := os.CreateTemp(o.spoolDir, ".out-*")
	if err != nil {
		return fmt.Errorf("spool output: %w", err)
	}
	os.Remove(f.Name()) // gone with the process, whatever happens
	s := &spilled{f: f, n: o.mem.n, head: int64(len(o.mem.head)), tail: int64(len(o.mem.tail)),
		tailStart: int64(o.mem.tailStart), truncated: o.mem.truncated}
	if _, err := f.WriteAt(o.mem.head, 0); err != nil {
		f.Close()
		return fmt.Errorf("spool output: %w", err)
	}
	if _, err := f.WriteAt(o.mem.tail, int64(o.mem.n/2)); err != nil {
		f.Close()
		return fmt.Errorf("spool output: %w", err)
	}
	o.file, o.mem = s, nil
	o.releaseRun()
	return nil
}

// lose stops keeping output: the spool failed (a full disk). What was
// kept stays; the result says output was lost.
func (o *hostOutput) lose(err error) {
	o.lost = err.Error()
}

func (o *hostOutput) releaseRun() {
	if o.held > 0 {
		o.b.run.Release(o.held)
		o.held = 0
	}
}

// Bytes returns the output kept, as CappedBuffer.Bytes does; a spilled
// buffer is read back under the load budget, held until release.
func (o *hostOutput) Bytes() []byte {
	var out []byte
	if o.file == nil {
		out = o.mem.Bytes()
	} else {
		size := o.file.head + o.file.tail + 64
		o.loaded = min(size, o.b.max)
		_ = o.b.load.Acquire(context.Background(), o.loaded) // never fails: no deadline
		out = o.file.bytes()
	}
	if o.lost != "" {
		out = append(out, "\n[... output lost by felix: "+o.lost+" ...]\n"...)
	}
	return out
}

// Truncated reports whether bytes were dropped.
func (o *hostOutput) Truncated() bool {
	if o.lost != "" {
		return true
	}
	if o.file != nil {
		return o.file.truncated
	}
	return o.mem.Truncated()
}

// release gives back what the buffer held: call it once the result has
// been handed on.
func (o *hostOutput) release() {
	o.releaseRun()
	if o.loaded > 0 {
		o.b.load.Release(o.loaded)
		o.loaded = 0
	}
	if o.file != nil {
		o.file.f.Close()
	}
}

// spilled is a CappedBuffer in a file: the head at [0, n/2), the tail
// ring at [n/2, n).
type spilled struct {
	f                     *os.File
	n                     int
	head, tail, tailStart int64
	truncated             bool
}

func (s *spilled) write(p []byte) error {
	half := int64(s.n / 2)
	if room := half - s.head; room > 0 {
		k := min(room, int64(len(p)))
		if _, err := s.f.WriteAt(p[:k], s.head); err != nil {
			return err
		}
		s.head += k
		p = p[k:]
	}
	tailCap := int64(s.n) - half
	for len(p) > 0 && tailCap > 0 {
		if s.tail < tailCap {
			k := min(tailCap-s.tail, int64(len(p)))
			if _, err := s.f.WriteAt(p[:k], half+s.tail); err != nil {
				return err
			}
			s.tail += k
			p = p[k:]
			continue
		}
		s.truncated = true
		if int64(len(p)) >= tailCap {
			if _, err := s.f.WriteAt(p[int64(len(p))-tailCap:], half); err != nil {
				return err
			}
			s.tailStart = 0
			break
		}
		k := min(tailCap-s.tailStart, int64(len(p)))
		if _, err := s.f.WriteAt(p[:k], half+s.tailStart); err != nil {
			return err
		}
		if k < int64(len(p)) {
			if _, err := s.f.WriteAt(p[k:], half); err != nil {
				return err
			}
		}
		s.tailStart = (s.tailStart + int64(len(p))) % tailCap
		p = nil
	}
	if len(p) > 0 {
		s.truncated = true
	}
	return nil
}

// bytes reads head, marker and tail back, as CappedBuffer.Bytes lays
// them out. A read error keeps what was read, with a note.
func (s *spilled) bytes() []byte {
	half := int64(s.n / 2)
	out := make([]byte, 0, s.head+s.tail+40)
	read := func(off, n int64) {
		if n <= 0 {
			return
		}
		buf := make([]byte, n)
		if _, err := s.f.ReadAt(buf, off); err != nil {
			out = append(out, "\n[... output lost by felix: read the spool: "+err.Error()+" ...]\n"...)
			return
		}
		out = append(out, buf...)
	}
	read(0, s.head)
	if s.truncated {
		out = append(out, truncMarker...)
	}
	read(half+s.tailStart, s.tail-s.tailStart)
	read(half, s.tailStart)
	return out
}
