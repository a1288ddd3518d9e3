package master

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"
)

// The master's soft memory limit (memory_limit): the garbage collector of
// a master with little in use but much garbage — output of thousands of
// hosts passing through — would otherwise let the heap grow to twice its
// peak and keep the freed pages, several times what it holds. Near the
// limit it collects sooner and returns freed memory to the system.
//
// A limit under what is in use would make it collect without end (a big
// fleet's connections alone can be more than the default), so the limit in
// force is never below limitHeadroom × the live heap plus the goroutine
// stacks: there the collector runs like GOGC=50, not continuously.

// limitHeadroom is the least limit as a multiple of the live heap.
const limitHeadroom = 1.5

// autoMemoryLimit is memory_limit's default for exec.output_memory bytes
// of output held by running hosts: about four times that (the running
// hosts, output read back, results queued for the writer, the job's tails
// and the collector's room) plus the master itself.
func autoMemoryLimit(outputMemory int64) int64 {
	return 4*max(outputMemory, 0) + 64<<20
}

// memoryLimitBase returns the limit memory_limit asks for (before the
// floor of what is in use), and false when the master must not set one:
// -1 (no limit), or 0 with GOMEMLIMIT in the environment (the Go runtime
// applied it at start).
func memoryLimitBase(configured, outputMemory int64, gomemlimit string) (int64, bool) {
	switch {
	case configured > 0:
		return configured, true
	case configured < 0:
		return 0, false
	case gomemlimit != "":
		return 0, false
	default:
		return autoMemoryLimit(outputMemory), true
	}
}

// effectiveLimit is base raised to the floor of what is in use: live heap
// bytes and stack bytes.
func effectiveLimit(base int64, live, stacks uint64) int64 {
	floor := float64(live)*limitHeadroom + float64(stacks)
	if floor >= math.MaxInt64 {
		return math.MaxInt64
	}
	return max(base, int64(floor))
}

// memoryLimiter keeps the runtime's memory limit at memoryLimitBase,
// raised to the floor of what is in use, checked every second.
type memoryLimiter struct {
	base atomic.Int64 // 0: the master sets none
	log  *slog.Logger
}

// set applies a configuration's memory_limit; the next tick (and this
// call) set the runtime's limit.
func (l *memoryLimiter) set(configured, outputMemory int64) {
	base, ok := memoryLimitBase(configured, outputMemory, os.Getenv("GOMEMLIMIT"))
	if !ok {
		base = 0
	}
	prev := l.base.Swap(base)
	if prev != 0 && base == 0 {
		debug.SetMemoryLimit(math.MaxInt64) // off now
	}
	l.apply()
	if prev != base {
		l.log.Info("memory limit", "base_bytes", base, "off", base == 0)
	}
}

var limitSamples = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/stacks:bytes"}}

func (l *memoryLimiter) apply() {
	base := l.base.Load()
	if base == 0 {
		return
	}
	s := make([]metrics.Sample, len(limitSamples))
	copy(s, limitSamples)
	metrics.Read(s)
	var live, stacks uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		live = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		stacks = s[1].Value.Uint64()
	}
	debug.SetMemoryLimit(effectiveLimit(base, live, stacks))
}

// run re-applies the limit every second until ctx ends.
func (l *memoryLimiter) run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.apply()
		}
	}
}
