package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/felix-ops/felix/model"
)

// Reading a job's results in pages: a job of ten thousand hosts holds up to
// 2 × exec.output_cap of stored output per host, so its results are never
// read all at once. JobSummary counts the hosts in SQL, and JobResults reads
// one page in host order in short batches, handing each result on before it
// reads the next batch.

// ResultPage selects a page of a job's results for JobResults.
type ResultPage struct {
	After string // only hosts that sort after this one (bytewise, as ORDER BY host); "" from the first
	Limit int    // at most this many hosts (at least 1)
	// Tail keeps at most each stream's last Tail bytes, cut at the start
	// of a UTF-8 sequence, and sets Truncated when it cuts; 0 reads no
	// output at all.
	Tail int
}

// Batch bounds of JobResults: it stops a batch after resultBatchRows rows
// or once the batch's output reaches resultBatchBytes, whichever comes
// first, so one page costs a few short queries and no reader connection is
// held while the caller writes a batch to a slow client.
const (
	resultBatchRows  = 256
	resultBatchBytes = 1 << 20
)

// JobSummary returns a job with Summary, its hosts counted by state,
// without reading their results.
func (s *Store) JobSummary(ctx context.Context, id string) (Job, error) {
	tx, err := s.r.BeginTx(ctx, nil) // one snapshot: the job's state and its counts agree
	if err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	defer tx.Rollback()
	j, err := scanJob(tx.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Job{}, fmt.Errorf("get job %s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT state, COUNT(*) FROM job_hosts WHERE job_id = ? GROUP BY state`, id)
	if err != nil {
		return Job{}, fmt.Errorf("count hosts of job %s: %w", id, err)
	}
	defer rows.Close()
	j.Summary = map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return Job{}, fmt.Errorf("count hosts of job %s: %w", id, err)
		}
		j.Summary[st] = n
	}
	if err := rows.Err(); err != nil {
		return Job{}, fmt.Errorf("count hosts of job %s: %w", id, err)
	}
	return j, nil
}

// JobResults calls fn with at most p.Limit results of job id, in host
// order, after p.After, each read with its output bounded by p.Tail. It
// reads them in batches (resultBatchRows, resultBatchBytes) and calls fn
// between reads, so memory stays within one batch whatever the page holds.
// It returns the last host of the page when more hosts follow it (the
// After of the next page), else "". A job that is not stored has no
// results; JobSummary tells it apart.
func (s *Store) JobResults(ctx context.Context, id string, p ResultPage, fn func(model.Result) error) (next string, err error) {
	if p.Limit < 1 {
		return "", fmt.Errorf("results of job %s: page limit %d: want at least 1", id, p.Limit)
	}
	after, left := p.After, p.Limit
	for {
		// One row beyond the page, on its last batch, says whether
		// another page follows.
		batch, more, err := s.resultBatch(ctx, id, after, min(left+1, resultBatchRows), p.Tail)
		if err != nil {
			return "", err
		}
		for _, r := range batch {
			if left == 0 {
				return after, nil
			}
			if err := fn(r); err != nil {
				return "", err
			}
			after, left = r.Host, left-1
		}
		if !more {
			return "", nil
		}
		clear(batch) // let the batch's output go before the next is read
	}
}

// resultBatch reads up to n results of job id after host after, stopping
// early once their output reaches resultBatchBytes; more says whether
// rows may follow the batch.
func (s *Store) resultBatch(ctx context.Context, id, after string, n, tail int) (batch []model.Result, more bool, err error) {
	out := `x'', x'', 0, 0`
	args := []any{}
	if tail > 0 {
		// A blob's substr counts bytes; SQLite reads length() from the
		// record header.
		out = `substr(stdout, -?), substr(stderr, -?), coalesce(length(stdout), 0), coalesce(length(stderr), 0)`
		args = append(args, tail, tail)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT host, addr, state, exit_code, signal, `+out+`, truncated, error,
		transport, started_at, finished_at, files, packages, apply FROM job_hosts WHERE job_id = ? AND host > ? ORDER BY host LIMIT ?`,
		append(args, id, after, n)...)
	if err != nil {
		return nil, false, fmt.Errorf("get results of job %s: %w", id, err)
	}
	defer rows.Close()
	size := 0
	for rows.Next() {
		var r model.Result
		var outLen, errLen int
		var st, fin int64
		var files, pkgs, apply string
		if err := rows.Scan(&r.Host, &r.Addr, &r.State, &r.ExitCode, &r.Signal, &r.Stdout, &r.Stderr, &outLen, &errLen,
			&r.Truncated, &r.Error, &r.Transport, &st, &fin, &files, &pkgs, &apply); err != nil {
			return nil, false, fmt.Errorf("get results of job %s: %w", id, err)
		}
		if outLen > len(r.Stdout) {
			r.Stdout, r.Truncated = model.RuneStart(r.Stdout), true
		}
		if errLen > len(r.Stderr) {
			r.Stderr, r.Truncated = model.RuneStart(r.Stderr), true
		}
		if err := decodeResult(&r, st, fin, files, pkgs, apply); err != nil {
			return nil, false, fmt.Errorf("get results of job %s: %w", id, err)
		}
		batch = append(batch, r)
		if size += len(r.Stdout) + len(r.Stderr); size >= resultBatchBytes {
			return batch, true, nil
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("get results of job %s: %w", id, err)
	}
	return batch, len(batch) == n, nil
}

// decodeResult fills a result's times, file report and package report
// from their columns.
func decodeResult(r *model.Result, started, finished int64, files, pkgs, apply string) error {
	if apply != "" {
		r.Apply = new(model.ApplyReport)
		if err := json.Unmarshal([]byte(apply), r.Apply); err != nil {
			return fmt.Errorf("apply report of %s: %w", r.Host, err)
		}
	}
	if files != "" {
		r.Files = new(model.FileReport)
		if err := json.Unmarshal([]byte(files), r.Files); err != nil {
			return fmt.Errorf("file report of %s: %w", r.Host, err)
		}
	}
	if pkgs != "" {
		r.Packages = new(model.PkgReport)
		if err := json.Unmarshal([]byte(pkgs), r.Packages); err != nil {
			return fmt.Errorf("package report of %s: %w", r.Host, err)
		}
	}
	r.StartedAt, r.FinishedAt = fromMS(started), fromMS(finished)
	return nil
}

// JobResult returns one host's result in a job with all its stored output.
func (s *Store) JobResult(ctx context.Context, jobID, host string) (model.Result, error) {
	var r model.Result
	var st, fin int64
	var files, pkgs, apply string
	err := s.r.QueryRowContext(ctx, `SELECT host, addr, state, exit_code, signal, stdout, stderr, truncated, error,
		transport, started_at, finished_at, files, packages, apply FROM job_hosts WHERE job_id = ? AND host = ?`, jobID, host).Scan(
		&r.Host, &r.Addr, &r.State, &r.ExitCode, &r.Signal, &r.Stdout, &r.Stderr, &r.Truncated, &r.Error,
		&r.Transport, &st, &fin, &files, &pkgs, &apply)
	if errors.Is(err, sql.ErrNoRows) {
		return r, s.noHost(ctx, jobID, host)
	}
	if err != nil {
		return r, fmt.Errorf("get result of %s in job %s: %w", host, jobID, err)
	}
	if err := decodeResult(&r, st, fin, files, pkgs, apply); err != nil {
		return r, fmt.Errorf("get result of %s in job %s: %w", host, jobID, err)
	}
	return r, nil
}

// JobOutput returns one stream of one host's stored output in a job, and
// whether the output was truncated when it was stored. It reads that
// stream alone: at most exec.output_cap bytes (mattn/go-sqlite3 has no
// incremental blob reader, and a blob read in chunks with substr costs a
// read of the whole blob per chunk).
func (s *Store) JobOutput(ctx context.Context, jobID, host string, stream model.Stream) ([]byte, bool, error) {
	col := "stdout"
	switch stream {
	case model.Stdout:
	case model.Stderr:
		col = "stderr"
	default:
		return nil, false, fmt.Errorf("output of %s in job %s: unknown stream %d", host, jobID, stream)
	}
	var b []byte
	var truncated bool
	err := s.r.QueryRowContext(ctx, `SELECT `+col+`, truncated FROM job_hosts WHERE job_id = ? AND host = ?`,
		jobID, host).Scan(&b, &truncated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, s.noHost(ctx, jobID, host)
	}
	if err != nil {
		return nil, false, fmt.Errorf("get %s of %s in job %s: %w", col, host, jobID, err)
	}
	return b, truncated, nil
}

// noHost says why a job has no row for host: the job is unknown, or the
// host is not one of its hosts.
func (s *Store) noHost(ctx context.Context, jobID, host string) error {
	if _, err := s.JobState(ctx, jobID); err != nil {
		return err
	}
	return fmt.Errorf("host %s in job %s: %w", host, jobID, ErrNotFound)
}

// JobHostsNot returns the hosts of job id whose state is not st, in host
// order, without reading their results (a rerun of the failed hosts).
func (s *Store) JobHostsNot(ctx context.Context, id string, st model.State) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT host FROM job_hosts WHERE job_id = ? AND state != ? ORDER BY host`, id, string(st))
	if err != nil {
		return nil, fmt.Errorf("list hosts of job %s: %w", id, err)
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("list hosts of job %s: %w", id, err)
		}
		hosts = append(hosts, h)
	}
	return hosts, rows.Err()
}

// reportJSON is a report (a package or apply job's) as its column stores
// it: JSON, or "" for a job of another kind (rep nil).
func reportJSON[T any](rep *T) (string, error) {
	if rep == nil {
		return "", nil
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return "", fmt.Errorf("encode report: %w", err)
	}
	return string(b), nil
}
