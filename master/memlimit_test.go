package master

import (
	"math"
	"testing"
)

func TestMemoryLimitBase(t *testing.T) {
	tests := []struct {
		name                     string
		configured, outputMemory int64
		gomemlimit               string
		want                     int64
		wantSet                  bool
	}{
		{"automatic from the default output budget", 0, 64 << 20, "", 320 << 20, true},
		{"automatic from a larger output budget", 0, 256 << 20, "", 1088 << 20, true},
		{"automatic without an output budget", 0, 0, "", 64 << 20, true},
		{"GOMEMLIMIT set: the runtime's", 0, 64 << 20, "1GiB", 0, false},
		{"configured", 512 << 20, 64 << 20, "", 512 << 20, true},
		{"configured wins over GOMEMLIMIT", 512 << 20, 64 << 20, "1GiB", 512 << 20, true},
		{"off", -1, 64 << 20, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, set := memoryLimitBase(tt.configured, tt.outputMemory, tt.gomemlimit)
			if got != tt.want || set != tt.wantSet {
				t.Errorf("memoryLimitBase(%d, %d, %q) = %d, %v; want %d, %v",
					tt.configured, tt.outputMemory, tt.gomemlimit, got, set, tt.want, tt.wantSet)
			}
		})
	}
}

// The limit in force is never under what is in use plus room, so the
// collector cannot run without end.
func TestEffectiveLimit(t *testing.T) {
	tests := []struct {
		name         string
		base         int64
		live, stacks uint64
		want         int64
	}{
		{"little in use: the base", 320 << 20, 100 << 20, 10 << 20, 320 << 20},
		{"at the floor", 310 << 20, 200 << 20, 10 << 20, 310 << 20},
		{"more in use: raised", 320 << 20, 400 << 20, 50 << 20, 650 << 20},
		{"huge: capped", 1, math.MaxUint64, 0, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := effectiveLimit(tt.base, tt.live, tt.stacks); got != tt.want {
				t.Errorf("effectiveLimit(%d, %d, %d) = %d; want %d", tt.base, tt.live, tt.stacks, got, tt.want)
			}
		})
	}
}
