package hostfile

import (
	"context"
	"hash"
	"io"
	"os"
)

// hashReader reads a file for Get, hashing and counting what it reads,
// and ends early when ctx does. It keeps its own failures apart from w's.
type hashReader struct {
	ctx    context.Context
	f      *os.File
	sum    hash.Hash
	n      int64 // bytes read
	err    error // a failure to read f
	ctxErr error // ctx ended
}

// Read reads f into p, unless ctx has ended.
func (r *hashReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		r.ctxErr = err
		return 0, err
	}
	k, err := r.f.Read(p)
	r.sum.Write(p[:k])
	r.n += int64(k)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return k, err
}
