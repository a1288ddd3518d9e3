package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/felix-ops/felix/exec"
)

// Job states.
const (
	JobRunning     = "running"
	JobDone        = "done"
	JobInterrupted = "interrupted" // the master stopped while it ran
)

// Job is one request run on many hosts.
type Job struct {
	ID         string
	ClientID   string // the requester's own id (the seed's "id"), echoed back
	CmdLine    string
	CmdType    string
	Targets    []string
	State      string
	CreatedAt  time.Time
	FinishedAt time.Time
}

// CreateJob stores a new job.
func (s *Store) CreateJob(ctx context.Context, j Job) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO jobs (id, client_id, cmd_line, cmd_type, targets, state, created_at, finished_at)
		VALUES (?,?,?,?,?,?,?,?)`, j.ID, j.ClientID, j.CmdLine, j.CmdType, strings.Join(j.Targets, "\n"), j.State,
		ms(j.CreatedAt), ms(j.FinishedAt))
	if isUniqueViolation(err) {
		return fmt.Errorf("job %s: %w", j.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// InterruptJobs marks every job still running as interrupted. The master
// calls it at start: no job survives a master restart (yet), and none may
// look as if it were still running.
func (s *Store) InterruptJobs(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE jobs SET state = ?, finished_at = ? WHERE state = ?`,
		JobInterrupted, ms(now), JobRunning)
	if err != nil {
		return 0, fmt.Errorf("interrupt running jobs: %w", err)
	}
	return res.RowsAffected()
}

// Job returns a job and its per-host results ordered by host.
func (s *Store) Job(ctx context.Context, id string) (Job, []exec.Result, error) {
	var j Job
	var targets string
	var created, finished int64
	err := s.r.QueryRowContext(ctx, `SELECT id, client_id, cmd_line, cmd_type, targets, state, created_at, finished_at
		FROM jobs WHERE id = ?`, id).Scan(&j.ID, &j.ClientID, &j.CmdLine, &j.CmdType, &targets, &j.State, &created, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		return j, nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return j, nil, fmt.Errorf("get job %s: %w", id, err)
	}
	j.Targets = strings.Split(targets, "\n")
	j.CreatedAt, j.FinishedAt = fromMS(created), fromMS(finished)
	rows, err := s.r.QueryContext(ctx, `SELECT host, addr, state, exit_code, signal, stdout, stderr, truncated, error,
		transport, started_at, finished_at FROM job_hosts WHERE job_id = ? ORDER BY host`, id)
	if err != nil {
		return j, nil, fmt.Errorf("get results of job %s: %w", id, err)
	}
	defer rows.Close()
	var out []exec.Result
	for rows.Next() {
		var r exec.Result
		var st, fin int64
		if err := rows.Scan(&r.Host, &r.Addr, &r.State, &r.ExitCode, &r.Signal, &r.Stdout, &r.Stderr, &r.Truncated,
			&r.Error, &r.Transport, &st, &fin); err != nil {
			return j, nil, fmt.Errorf("get results of job %s: %w", id, err)
		}
		r.StartedAt, r.FinishedAt = fromMS(st), fromMS(fin)
		out = append(out, r)
	}
	return j, out, rows.Err()
}

// ResultWriter is the single writer of job results. Results from every
// running job are queued and committed in batches, one transaction per batch,
// so a fan-out to thousands of hosts costs a handful of commits.
type ResultWriter struct {
	store *Store
	log   *slog.Logger
	ops   chan writeOp
	wg    sync.WaitGroup

	mu     sync.RWMutex // held for reading while sending on ops, for writing to close it
	closed bool         // protected by mu
}

// ErrWriterClosed is returned by Finish after Close.
var ErrWriterClosed = errors.New("result writer closed")

type writeOp struct {
	jobID    string
	result   *exec.Result
	finish   string     // job state to set when non-empty
	finished time.Time  // with finish
	done     chan error // with finish: told when committed
}

const maxBatch = 2048

// NewResultWriter starts the writer goroutine; Close stops it. Failed
// commits are logged to log.
func NewResultWriter(s *Store, log *slog.Logger) *ResultWriter {
	w := &ResultWriter{store: s, log: log, ops: make(chan writeOp, maxBatch)}
	w.wg.Add(1)
	go w.loop()
	return w
}

// Add queues one host result of a job. After Close it only logs.
func (w *ResultWriter) Add(jobID string, r exec.Result) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.log.Error("result dropped: writer closed", "job", jobID, "host", r.Host, "state", r.State)
		return
	}
	w.ops <- writeOp{jobID: jobID, result: &r}
}

// Finish queues the end of a job and waits until it and every result queued
// before it are committed.
func (w *ResultWriter) Finish(ctx context.Context, jobID, state string, at time.Time) error {
	done := make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrWriterClosed
	}
	w.ops <- writeOp{jobID: jobID, finish: state, finished: at, done: done}
	w.mu.RUnlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits what is queued and stops the writer. Later calls of Add
// and Finish store nothing.
func (w *ResultWriter) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ops)
	}
	w.mu.Unlock()
	w.wg.Wait()
}

func (w *ResultWriter) loop() {
	defer w.wg.Done()
	batch := make([]writeOp, 0, maxBatch)
	lost := make(map[string]int) // results that could not be stored, by job; told to Finish
	for op := range w.ops {
		batch = append(batch[:0], op)
	drain:
		for len(batch) < maxBatch {
			select {
			case op, ok := <-w.ops:
				if !ok {
					break drain
				}
				batch = append(batch, op)
			default:
				break drain
			}
		}
		if err := w.commit(batch); err != nil {
			// One bad row must not sink the others: store them one by one.
			w.log.Warn("store job results in a batch; retrying one by one", "ops", len(batch), "err", err)
			for i := range batch {
				op := &batch[i]
				if err := w.commit(batch[i : i+1]); err != nil {
					w.log.Error("store job result", "job", op.jobID, "err", err)
					if op.done != nil {
						op.done <- err
						op.done = nil
					} else {
						lost[op.jobID]++
					}
				}
			}
		}
		for _, op := range batch {
			if op.done == nil {
				continue
			}
			var err error
			if n := lost[op.jobID]; n > 0 {
				err = fmt.Errorf("%d results of job %s could not be stored", n, op.jobID)
			}
			delete(lost, op.jobID)
			op.done <- err
		}
	}
}

func (w *ResultWriter) commit(batch []writeOp) error {
	ctx := context.Background()
	return w.store.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO job_hosts (job_id, host, addr, state, exit_code, signal,
			stdout, stderr, truncated, error, transport, started_at, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, op := range batch {
			if r := op.result; r != nil {
				if _, err := ins.ExecContext(ctx, op.jobID, r.Host, r.Addr, string(r.State), r.ExitCode, r.Signal,
					r.Stdout, r.Stderr, r.Truncated, r.Error, r.Transport, ms(r.StartedAt), ms(r.FinishedAt)); err != nil {
					return fmt.Errorf("store result of %s for job %s: %w", r.Host, op.jobID, err)
				}
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?`,
				op.finish, ms(op.finished), op.jobID); err != nil {
				return fmt.Errorf("finish job %s: %w", op.jobID, err)
			}
		}
		return nil
	})
}
