package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/felix-ops/felix/internal/backoff"
	"github.com/felix-ops/felix/model"
	"golang.org/x/sync/semaphore"
)

// Job is one request run on many hosts.
type Job struct {
	ID       string
	ClientID string // the requester's own id (the seed's "id"), echoed back
	CmdLine  string
	CmdType  string
	Targets  []string
	State    model.JobState
	Spec     string // the validated request as JSON, for reruns; opaque here
	// RequestedBy is who asked for the job: the API token's name.
	RequestedBy string
	Total       int // hosts in the job
	CreatedAt   time.Time
	FinishedAt  time.Time
	Summary     map[string]int // hosts by state; filled by Jobs
}

// CreateJob stores a new job and one pending row per host, in one transaction.
func (s *Store) CreateJob(ctx context.Context, j Job, hosts []model.Result) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO jobs (id, client_id, cmd_line, cmd_type, targets, state, spec,
			hosts_total, created_at, finished_at, requested_by) VALUES (?,?,?,?,?,?,?,?,?,?,?)`, j.ID, j.ClientID, j.CmdLine, j.CmdType,
			strings.Join(j.Targets, "\n"), j.State, j.Spec, len(hosts), ms(j.CreatedAt), ms(j.FinishedAt), j.RequestedBy)
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO job_hosts (job_id, host, addr, state, error) VALUES (?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, h := range hosts {
			if _, err := ins.ExecContext(ctx, j.ID, h.Host, h.Addr, string(h.State), h.Error); err != nil {
				return fmt.Errorf("host %s: %w", h.Host, err)
			}
		}
		return nil
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("job %s: %w", j.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// UnfinishedJobs returns the ids of jobs that are queued or running: at the
// master's start, jobs a previous master left behind.
func (s *Store) UnfinishedJobs(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM jobs WHERE state IN (?, ?) ORDER BY created_at`, model.JobQueued, model.JobRunning)
	if err != nil {
		return nil, fmt.Errorf("list unfinished jobs: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list unfinished jobs: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// MarkLost gives every host of a job that has no final state the state
// lost, with reason.
func (s *Store) MarkLost(ctx context.Context, jobID, reason string, now time.Time) error {
	_, err := s.w.ExecContext(ctx, `UPDATE job_hosts SET state = ?, error = ?, exit_code = -1, finished_at = ?
		WHERE job_id = ? AND state IN (?, ?)`, string(model.StateLost), reason, ms(now), jobID,
		string(model.StatePending), string(model.StateRunning))
	if err != nil {
		return fmt.Errorf("mark hosts of job %s lost: %w", jobID, err)
	}
	return nil
}

// JobFilter selects jobs for Jobs.
type JobFilter struct {
	State       model.JobState
	ClientID    string
	RequestedBy string // only jobs this token asked for; "" any
	Before      string // a job id: only older jobs (paging)
	Limit       int
}

// Jobs lists jobs newest first, with per-state host counts.
func (s *Store) Jobs(ctx context.Context, f JobFilter) ([]Job, error) {
	q := `SELECT ` + jobColumns + ` FROM jobs WHERE 1=1`
	var args []any
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.RequestedBy != "" {
		q += ` AND requested_by = ?`
		args = append(args, f.RequestedBy)
	}
	if f.ClientID != "" {
		q += ` AND client_id = ?`
		args = append(args, f.ClientID)
	}
	if f.Before != "" {
		q += ` AND rowid < (SELECT rowid FROM jobs WHERE id = ?)`
		args = append(args, f.Before)
	}
	if f.Limit <= 0 {
		f.Limit = 50
	}
	q += ` ORDER BY rowid DESC LIMIT ?` // insertion order: ids made in the same millisecond sort at random
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		out = append(out, j)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	// One query for every listed job's per-state counts.
	ids := make([]any, len(out))
	byID := make(map[string]*Job, len(out))
	for i := range out {
		ids[i] = out[i].ID
		out[i].Summary = map[string]int{}
		byID[out[i].ID] = &out[i]
	}
	srows, err := s.r.QueryContext(ctx, `SELECT job_id, state, COUNT(*) FROM job_hosts WHERE job_id IN (?`+
		strings.Repeat(",?", len(ids)-1)+`) GROUP BY job_id, state`, ids...)
	if err != nil {
		return nil, fmt.Errorf("summarise jobs: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var id, st string
		var n int
		if err := srows.Scan(&id, &st, &n); err != nil {
			return nil, fmt.Errorf("summarise jobs: %w", err)
		}
		byID[id].Summary[st] = n
	}
	return out, srows.Err()
}

// jobColumns are the columns scanJob reads, in its order.
const jobColumns = `id, client_id, cmd_line, cmd_type, targets, state, spec, hosts_total, created_at, finished_at, requested_by`

func scanJob(row interface{ Scan(...any) error }) (Job, error) {
	var j Job
	var targets string
	var created, finished int64
	err := row.Scan(&j.ID, &j.ClientID, &j.CmdLine, &j.CmdType, &targets, &j.State, &j.Spec, &j.Total, &created, &finished,
		&j.RequestedBy)
	j.Targets = strings.Split(targets, "\n")
	j.CreatedAt, j.FinishedAt = fromMS(created), fromMS(finished)
	return j, err
}

// Prune deletes finished jobs created before before, and the oldest finished
// jobs beyond keep (0: no count limit), with their results and delivered or
// dead outbox rows.
func (s *Store) Prune(ctx context.Context, before time.Time, keep int) (int64, error) {
	if keep <= 0 {
		keep = math.MaxInt32
	}
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM jobs WHERE state IN (?, ?) AND (created_at < ? OR id IN
			(SELECT id FROM jobs ORDER BY rowid DESC LIMIT -1 OFFSET ?))`, model.JobDone, model.JobCancelled, ms(before), keep)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		_, err = tx.ExecContext(ctx, `DELETE FROM outbox WHERE state != ? AND job_id NOT IN (SELECT id FROM jobs)`, model.DeliveryPending)
		if err != nil {
			return err
		}
		// The audit log is kept as long as the jobs it speaks of.
		_, err = tx.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, ms(before))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("prune jobs: %w", err)
	}
	return n, nil
}

// JobState returns a job's state without reading its results.
func (s *Store) JobState(ctx context.Context, id string) (model.JobState, error) {
	var st model.JobState
	err := s.r.QueryRowContext(ctx, `SELECT state FROM jobs WHERE id = ?`, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get job %s: %w", id, err)
	}
	return st, nil
}

// Job returns a job and its per-host results ordered by host.
func (s *Store) Job(ctx context.Context, id string) (Job, []model.Result, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return j, nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return j, nil, fmt.Errorf("get job %s: %w", id, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT host, addr, state, exit_code, signal, stdout, stderr, truncated, error,
		transport, started_at, finished_at, files, packages, apply FROM job_hosts WHERE job_id = ? ORDER BY host`, id)
	if err != nil {
		return j, nil, fmt.Errorf("get results of job %s: %w", id, err)
	}
	defer rows.Close()
	var out []model.Result
	for rows.Next() {
		var r model.Result
		var st, fin int64
		var files, pkgs, apply string
		if err := rows.Scan(&r.Host, &r.Addr, &r.State, &r.ExitCode, &r.Signal, &r.Stdout, &r.Stderr, &r.Truncated,
			&r.Error, &r.Transport, &st, &fin, &files, &pkgs, &apply); err != nil {
			return j, nil, fmt.Errorf("get results of job %s: %w", id, err)
		}
		if err := decodeResult(&r, st, fin, files, pkgs, apply); err != nil {
			return j, nil, fmt.Errorf("get results of job %s: %w", id, err)
		}
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

	stop       chan struct{}   // closed by Abandon (and Close): stop waiting for storage to come back
	stopCtx    context.Context // done once stop is closed
	cancelStop context.CancelFunc
	stopOnce   sync.Once

	// queued bounds the bytes of the results waiting in ops (maxQueuedBytes):
	// Add waits beyond it, so the queue never holds output × hosts.
	queued *semaphore.Weighted
}

// maxQueuedBytes bounds the output held by results queued for the writer.
const maxQueuedBytes = 16 << 20

// storageRetry spaces the writer's tries while storage is unavailable (a
// full disk, a busy database): 0.5 s doubling to 30 s.
var storageRetry = backoff.Policy{Base: 500 * time.Millisecond, Cap: 30 * time.Second, Jitter: backoff.None}

// ErrWriterClosed is returned by Finish after Close.
var ErrWriterClosed = errors.New("result writer closed")

type writeOp struct {
	jobID    string
	result   *model.Result
	size     int64          // a result's bytes held in the queue (see ResultWriter.queued)
	finish   model.JobState // job state to set when non-empty
	finished time.Time      // with finish
	outbox   []OutboxItem   // with finish: deliveries enqueued in the same transaction
	lost     []lostResult   // with finish: hosts whose results could not be stored, marked lost with it
	done     chan error     // with finish: told when committed
}

const maxBatch = 2048

// NewResultWriter starts the writer goroutine; Close stops it. Failed
// commits are logged to log.
func NewResultWriter(s *Store, log *slog.Logger) *ResultWriter {
	w := &ResultWriter{store: s, log: log, ops: make(chan writeOp, maxBatch), stop: make(chan struct{}),
		queued: semaphore.NewWeighted(maxQueuedBytes)}
	w.stopCtx, w.cancelStop = context.WithCancel(context.Background())
	w.wg.Add(1)
	go w.loop()
	return w
}

// Add queues one host result of a job. After Close or Abandon it only
// logs: the host stays as stored before (running), and the next start
// marks it lost (Recover).
func (w *ResultWriter) Add(jobID string, r model.Result) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.log.Error("result dropped: writer closed", "job", jobID, "host", r.Host, "state", r.State)
		return
	}
	size := min(int64(len(r.Stdout)+len(r.Stderr)+len(r.Error))+512, maxQueuedBytes)
	if err := w.queued.Acquire(w.stopCtx, size); err != nil {
		w.log.Error("result dropped: writer abandoned", "job", jobID, "host", r.Host, "state", r.State)
		return
	}
	select {
	case w.ops <- writeOp{jobID: jobID, result: &r, size: size}:
	case <-w.stop:
		w.queued.Release(size)
		w.log.Error("result dropped: writer abandoned", "job", jobID, "host", r.Host, "state", r.State)
	}
}

// Finish queues the end of a job, with the deliveries (callbacks, Slack)
// that announce it, and waits until they and every result queued before
// them are committed together: a finished job always has its deliveries.
// A host whose result could not be stored (a row SQLite refused) is marked
// lost, with the reason, in the same transaction. A job that is not stored
// is ErrNotFound.
func (w *ResultWriter) Finish(ctx context.Context, jobID string, state model.JobState, at time.Time, outbox ...OutboxItem) error {
	done := make(chan error, 1)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrWriterClosed
	}
	select {
	case w.ops <- writeOp{jobID: jobID, finish: state, finished: at, outbox: outbox, done: done}:
	case <-w.stop:
		w.mu.RUnlock()
		return ErrWriterClosed
	}
	w.mu.RUnlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Abandon stops waiting for storage: a batch waiting out a full disk is
// given up (logged), and Add and Finish no longer wait for room in the
// queue — what cannot be queued is dropped and logged. Results not stored
// leave their hosts as they were (running), and the next start marks them
// lost. A master stopping past its deadline calls it, so that no host
// goroutine stays blocked on a writer that cannot write.
func (w *ResultWriter) Abandon() {
	w.stopOnce.Do(func() { close(w.stop); w.cancelStop() })
}

// Close commits what is queued and stops the writer. Later calls of Add
// and Finish store nothing.
func (w *ResultWriter) Close() {
	w.Abandon()
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
	// Results that could not be stored, by job: the job's end, committed
	// later, marks those hosts lost in its own transaction.
	lost := make(map[string][]lostResult)
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
		for i := range batch {
			if batch[i].done != nil {
				batch[i].lost = lost[batch[i].jobID]
			}
		}
		err := w.commitPatiently(batch)
		if err != nil {
			// One bad row must not sink the others: store them one by one.
			w.log.Warn("store job results in a batch; retrying one by one", "ops", len(batch), "err", err)
			for i := range batch {
				op := &batch[i]
				if op.done != nil {
					op.lost = lost[op.jobID]
				}
				err := w.commitPatiently(batch[i : i+1])
				switch {
				case err == nil && op.done != nil:
					delete(lost, op.jobID)
					op.done <- nil
					op.done = nil
				case err == nil:
				case op.done != nil:
					w.log.Error("store the end of a job", "job", op.jobID, "err", err)
					op.done <- err
					op.done = nil
				default:
					w.log.Error("store job result: the host will show lost", "job", op.jobID, "host", op.result.Host, "err", err)
					lost[op.jobID] = append(lost[op.jobID], lostResult{host: op.result.Host, err: err})
				}
			}
		}
		for _, op := range batch {
			if op.size > 0 {
				w.queued.Release(op.size)
			}
			if op.done != nil { // the batch committed
				delete(lost, op.jobID)
				op.done <- nil
			}
		}
		clear(batch)
	}
}

// lostResult is a host whose result could not be stored, and why.
type lostResult struct {
	host string
	err  error
}

// commitPatiently commits batch, and while it fails for want of storage (a
// full disk, a busy database: Transient) tries again until storage comes
// back or Close is called: nothing is dropped for a passing condition, and
// callers wait (Add blocks once the queue is full) until it passes.
func (w *ResultWriter) commitPatiently(batch []writeOp) error {
	err := w.commit(batch)
	for attempt := 1; err != nil && Transient(err); attempt++ {
		wait := storageRetry.Duration(attempt)
		w.log.Warn("store job results: storage unavailable; retrying", "ops", len(batch), "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-w.stop:
			return err
		}
		err = w.commit(batch)
	}
	return err
}

func (w *ResultWriter) commit(batch []writeOp) error {
	ctx := context.Background()
	return w.store.tx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO job_hosts (job_id, host, addr, state, exit_code, signal,
			stdout, stderr, truncated, error, transport, started_at, finished_at, files, packages, apply) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, op := range batch {
			if r := op.result; r != nil {
				files := ""
				if r.Files != nil {
					b, err := json.Marshal(r.Files)
					if err != nil {
						return fmt.Errorf("store result of %s for job %s: %w", r.Host, op.jobID, err)
					}
					files = string(b)
				}
				pkgs, err := reportJSON(r.Packages)
				if err != nil {
					return fmt.Errorf("store result of %s for job %s: %w", r.Host, op.jobID, err)
				}
				apply, err := reportJSON(r.Apply)
				if err != nil {
					return fmt.Errorf("store result of %s for job %s: %w", r.Host, op.jobID, err)
				}
				if _, err := ins.ExecContext(ctx, op.jobID, r.Host, r.Addr, string(r.State), r.ExitCode, r.Signal,
					r.Stdout, r.Stderr, r.Truncated, r.Error, r.Transport, ms(r.StartedAt), ms(r.FinishedAt), files, pkgs, apply); err != nil {
					return fmt.Errorf("store result of %s for job %s: %w", r.Host, op.jobID, err)
				}
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE jobs SET state = ?, finished_at = ? WHERE id = ?`,
				op.finish, ms(op.finished), op.jobID)
			if err != nil {
				return fmt.Errorf("finish job %s: %w", op.jobID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("finish job %s: %w", op.jobID, ErrNotFound)
			}
			for _, l := range op.lost {
				reason := "the result could not be stored: " + l.err.Error()
				if len(reason) > 1024 {
					reason = reason[:1024]
				}
				if _, err := tx.ExecContext(ctx, `UPDATE job_hosts SET state = ?, exit_code = -1, error = ? WHERE job_id = ? AND host = ?`,
					string(model.StateLost), reason, op.jobID, l.host); err != nil {
					return fmt.Errorf("finish job %s: mark %s lost: %w", op.jobID, l.host, err)
				}
			}
			for _, it := range op.outbox {
				if err := enqueue(ctx, tx, it); err != nil {
					return fmt.Errorf("finish job %s: %w", op.jobID, err)
				}
			}
		}
		return nil
	})
}

// JobRequester returns who asked for job id (ErrNotFound for no job).
func (s *Store) JobRequester(ctx context.Context, id string) (string, error) {
	var who string
	err := s.r.QueryRowContext(ctx, `SELECT requested_by FROM jobs WHERE id = ?`, id).Scan(&who)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get job %s: %w", id, err)
	}
	return who, nil
}
