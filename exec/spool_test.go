package exec

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/felix-ops/felix/model"
)

// TestSpilledMatchesMemory: a buffer spilled to the spool at any point
// keeps exactly what a CappedBuffer keeps, for any n and chunking.
func TestSpilledMatchesMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 3*regionPage+5000) // pages of the buffer in memory: several
	for i := range data {
		data[i] = byte('a' + rng.IntN(26))
	}
	for _, n := range []int{0, 1, 5, 64, 1000, 4999, 5000, 8192, 2*regionPage + 3, 4 * regionPage} {
		for _, spillAt := range []int{0, 1, 100, 2000, 4000, regionPage + 9, 3 * regionPage} {
			t.Run(fmt.Sprint(n, "/", spillAt), func(t *testing.T) {
				// A budget of spillAt bytes: the buffer spills once it
				// would hold more.
				e := &Engine{OutputMemory: int64(max(spillAt, 1)), SpoolDir: t.TempDir()}
				o := newHostOutput(n, e.budgets(), e.SpoolDir)
				for rest := data; len(rest) > 0; {
					k := min(len(rest), 1+rng.IntN(300))
					o.Write(rest[:k])
					rest = rest[k:]
				}
				want, wantTrunc := capReference(data, n)
				if got := o.Bytes(); !bytes.Equal(got, want) || o.Truncated() != wantTrunc {
					t.Errorf("n %d, spilled %v: %d bytes (truncated %v); want %d (truncated %v)",
						n, o.file != nil, len(got), o.Truncated(), len(want), wantTrunc)
				}
				// Its bytes are handed on: a buffer in memory lets them go
				// (the copy returned is all there is), and takes no more.
				if m, ok := o.buf.st.(*memRegion); ok && len(m.pages) != 0 {
					t.Errorf("n %d: the region still holds %d pages after Bytes", n, len(m.pages))
				}
				o.Write([]byte("late"))
				if m, ok := o.buf.st.(*memRegion); ok && len(m.pages) != 0 {
					t.Errorf("n %d: a write after Bytes was kept", n)
				}
				o.release()
				if !e.budget.run.TryAcquire(e.OutputMemory) || !e.budget.load.TryAcquire(e.budget.max) {
					t.Errorf("the budgets are not whole again after release")
				}
			})
		}
	}
}

// TestBudgetCountsPages: many hosts each a little past a page boundary
// hold whole pages; the memory of all buffers left in memory stays within
// the run budget (counting bytes written let it reach twice that).
func TestBudgetCountsPages(t *testing.T) {
	const budget = 16 * regionPage
	e := &Engine{OutputMemory: budget, SpoolDir: t.TempDir()}
	chunk := bytes.Repeat([]byte("x"), 1000)
	var outs []*hostOutput
	for range 40 {
		o := newHostOutput(4*regionPage, e.budgets(), e.SpoolDir)
		for written := 0; written < regionPage+1000; written += len(chunk) {
			o.Write(chunk)
		}
		outs = append(outs, o)
	}
	var inMemory, spilled int64
	for _, o := range outs {
		if m, ok := o.buf.st.(*memRegion); ok {
			inMemory += m.alloc
		} else {
			spilled++
		}
	}
	if inMemory > budget || spilled == 0 {
		t.Errorf("buffers in memory take %d bytes (%d spilled); want at most the budget %d, the rest spilled", inMemory, spilled, budget)
	}
	for _, o := range outs {
		o.Bytes()
		o.release()
	}
	if !e.budget.run.TryAcquire(budget) {
		t.Errorf("the run budget is not whole again after release")
	}
}

// TestEngineOutputBudget: 40 hosts printing 96 KiB each at once within a
// 256 KiB budget: every result is whole and right, the budgets are whole
// again after the run, and nothing is left in the spool.
func TestEngineOutputBudget(t *testing.T) {
	spool := t.TempDir()
	out := func(host string) []byte {
		return bytes.Repeat([]byte(host+" says hello\n"), 96<<10/len(host+" says hello\n"))
	}
	tr := &fakeTransport{def: func(ctx context.Context, tg model.Target, cmd model.Command, o model.OutputFunc) (model.Exit, error) {
		b := out(tg.ID)
		for len(b) > 0 {
			k := min(len(b), 4096)
			o(model.Stdout, b[:k])
			b = b[k:]
		}
		return model.Exit{}, nil
	}}
	e := &Engine{Transport: tr, OutputCap: 128 << 10, OutputMemory: 256 << 10, SpoolDir: spool}
	var targets []model.Target
	for i := range 40 {
		targets = append(targets, model.Target{ID: fmt.Sprintf("host%02d", i)})
	}
	rs := e.Run(context.Background(), model.Command{Line: "x"}, targets, Options{}, Hooks{})
	for _, r := range rs {
		if r.State != model.StateOK || !bytes.Equal(r.Stdout, out(r.Host)) || r.Truncated {
			t.Errorf("%s: %s, %d bytes, truncated %v; want ok and its %d bytes", r.Host, r.State, len(r.Stdout), r.Truncated, len(out(r.Host)))
		}
	}
	if !e.budget.run.TryAcquire(e.OutputMemory) || !e.budget.load.TryAcquire(e.budget.max) {
		t.Errorf("the budgets are not whole again after the run")
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("the spool holds %d files after the run", len(left))
	}
}

// TestSpoolFailure: when the spool cannot take the output (here: no spool
// directory), what was kept stays, the result says output was lost, and
// the host still ends as its command did.
func TestSpoolFailure(t *testing.T) {
	tr := &fakeTransport{def: func(ctx context.Context, tg model.Target, cmd model.Command, o model.OutputFunc) (model.Exit, error) {
		o(model.Stdout, []byte("first\n"))
		o(model.Stdout, bytes.Repeat([]byte("x"), 4096))
		return model.Exit{}, nil
	}}
	e := &Engine{Transport: tr, OutputMemory: 16, SpoolDir: filepath.Join(t.TempDir(), "missing")}
	rs := e.Run(context.Background(), model.Command{Line: "x"}, []model.Target{{ID: "h"}}, Options{}, Hooks{})
	r := rs[0]
	if r.State != model.StateOK || !r.Truncated || !bytes.HasPrefix(r.Stdout, []byte("first\n")) ||
		!bytes.Contains(r.Stdout, []byte("output lost by felix: spool output")) {
		t.Errorf("result = %s, truncated %v, %q; want ok, truncated, the first line and a note", r.State, r.Truncated, r.Stdout)
	}
}
