package agent

import "google.golang.org/grpc/mem"

// boundedPool is the minion channel's gRPC buffer pool: like gRPC's
// default, it reuses the buffers frames are read into, by size tier, but
// keeps at most maxFreePerTier bytes of free buffers in each tier. gRPC's
// default (a sync.Pool per tier) keeps every buffer put back until two
// garbage collections have passed: with 2,000 hosts printing at once,
// ~125 MiB of free 16 KiB frame buffers that the collector counts as live.
// What does not fit is left to the collector.
type boundedPool struct {
	tiers []poolTier
}

type poolTier struct {
	size int
	free chan *[]byte
}

// maxFreePerTier bounds the free buffers kept in one tier of the pool.
const maxFreePerTier = 4 << 20

// newBoundedPool returns a pool with tiers of 256 B, 4 KiB, 16 KiB (an
// HTTP/2 data frame's largest default payload) and 32 KiB.
func newBoundedPool() *boundedPool {
	p := &boundedPool{}
	for _, size := range []int{256, 4 << 10, 16 << 10, 32 << 10} {
		p.tiers = append(p.tiers, poolTier{size: size, free: make(chan *[]byte, maxFreePerTier/size)})
	}
	return p
}

var _ mem.BufferPool = (*boundedPool)(nil)

// Get returns a buffer of length bytes: a free one of its tier when there
// is one, else a new one with the tier's capacity (a length over every
// tier: a new one of just that length).
func (p *boundedPool) Get(length int) *[]byte {
	for _, t := range p.tiers {
		if length > t.size {
			continue
		}
		select {
		case b := <-t.free:
			*b = (*b)[:length]
			return b
		default:
			b := make([]byte, length, t.size)
			return &b
		}
	}
	b := make([]byte, length)
	return &b
}

// Put keeps b for reuse when its tier has room; otherwise b is dropped.
func (p *boundedPool) Put(b *[]byte) {
	c := cap(*b)
	for _, t := range p.tiers {
		if c != t.size {
			continue
		}
		*b = (*b)[:0]
		select {
		case t.free <- b:
		default:
		}
		return
	}
}
