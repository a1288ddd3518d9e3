package hostfile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
)

// copyHashed copies f to w for Get, returning the bytes copied and the
// sha256 (lower-case hex) of what was read; path names f in errors.
func copyHashed(ctx context.Context, f *os.File, w io.Writer, path string) (int64, string, error) {
	r := &hashReader{ctx: ctx, f: f, sum: sha256.New()}
	n, err := io.Copy(w, r)
	switch {
	case r.ctxErr != nil:
		return n, "", fmt.Errorf("get file %s: %w", path, r.ctxErr)
	case r.err != nil:
		return n, "", fmt.Errorf("get file %s: read after %d bytes: %w", path, r.n, r.err)
	case err != nil:
		return n, "", fmt.Errorf("get file %s: write: %w", path, err)
	}
	return n, hex.EncodeToString(r.sum.Sum(nil)), nil
}

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
