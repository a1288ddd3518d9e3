package agent

import "testing"

func TestBoundedPool(t *testing.T) {
	tests := []struct {
		length, wantCap int
	}{
		{0, 256}, {1, 256}, {256, 256}, {257, 4 << 10}, {9, 256}, {16 << 10, 16 << 10}, {16<<10 + 9, 32 << 10},
		{32 << 10, 32 << 10}, {32<<10 + 1, 32<<10 + 1}, {1 << 20, 1 << 20},
	}
	p := newBoundedPool()
	for _, tt := range tests {
		b := p.Get(tt.length)
		if len(*b) != tt.length || cap(*b) != tt.wantCap {
			t.Errorf("Get(%d): len %d cap %d; want len %d cap %d", tt.length, len(*b), cap(*b), tt.length, tt.wantCap)
		}
		p.Put(b)
		again := p.Get(tt.length)
		// A buffer of a tier comes back; a larger one is left to the collector.
		if reused, want := again == b, tt.wantCap <= 32<<10; reused != want {
			t.Errorf("Get(%d) after Put: reused %v; want %v", tt.length, reused, want)
		}
	}
}

// The free buffers of a tier are bounded: Put past the bound drops, never
// blocks, and the pool never keeps more than maxFreePerTier of a tier.
func TestBoundedPoolBound(t *testing.T) {
	p := newBoundedPool()
	const size = 16 << 10
	n := 3 * maxFreePerTier / size
	bufs := make([]*[]byte, n)
	for i := range bufs {
		bufs[i] = p.Get(size)
	}
	for _, b := range bufs {
		p.Put(b)
	}
	for _, tier := range p.tiers {
		if tier.size == size && len(tier.free)*size > maxFreePerTier {
			t.Errorf("the %d-byte tier keeps %d bytes free; want at most %d", size, len(tier.free)*size, maxFreePerTier)
		}
		if tier.size == size && len(tier.free) == 0 {
			t.Errorf("the %d-byte tier keeps nothing", size)
		}
	}
	// A buffer of no tier's capacity is not kept.
	odd := make([]byte, 100, 1000)
	p.Put(&odd)
	for _, tier := range p.tiers {
		if tier.size == 256 && len(tier.free) != 0 {
			t.Errorf("a 1000-byte buffer went into the 256-byte tier")
		}
	}
}
