package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
)

// Outbox kinds.
const (
	KindCallback = "callback"
	KindSlack    = "slack"
)

// OutboxItem is one delivery to make at least once: a callback to a
// requester or a Slack message. It survives restarts of the master.
type OutboxItem struct {
	ID          int64
	EventID     string // stable across retries: receivers deduplicate on it
	Kind        string
	JobID       string
	URL         string
	Receiver    string // who receives it (scheme://host:port); DueOutbox can leave busy ones out
	Body        []byte
	State       model.DeliveryState
	Attempts    int
	NextAt      time.Time
	LastError   string
	CreatedAt   time.Time
	DeliveredAt time.Time
}

func enqueue(ctx context.Context, tx *sql.Tx, it OutboxItem) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (event_id, kind, job_id, url, receiver, body, state, next_at, created_at)
		VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO NOTHING`, it.EventID, it.Kind, it.JobID, it.URL, it.Receiver,
		it.Body, model.DeliveryPending, ms(it.NextAt), ms(it.CreatedAt))
	if err != nil {
		return fmt.Errorf("enqueue %s %s: %w", it.Kind, it.EventID, err)
	}
	return nil
}

const outboxCols = `id, event_id, kind, job_id, url, receiver, body, state, attempts, next_at, last_error, created_at, delivered_at`

func scanOutbox(rows *sql.Rows) ([]OutboxItem, error) {
	defer rows.Close()
	var out []OutboxItem
	for rows.Next() {
		var it OutboxItem
		var next, created, delivered int64
		if err := rows.Scan(&it.ID, &it.EventID, &it.Kind, &it.JobID, &it.URL, &it.Receiver, &it.Body, &it.State, &it.Attempts,
			&next, &it.LastError, &created, &delivered); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		it.NextAt, it.CreatedAt, it.DeliveredAt = fromMS(next), fromMS(created), fromMS(delivered)
		out = append(out, it)
	}
	return out, rows.Err()
}

// DueOutbox returns up to limit pending deliveries due at now, oldest
// first, leaving out those for the receivers in skip (busy ones), so a
// slow receiver's backlog cannot fill the window.
func (s *Store) DueOutbox(ctx context.Context, now time.Time, limit int, skip ...string) ([]OutboxItem, error) {
	// Without bodies: a callback's body may reach 16 MiB, and a round reads
	// many rows; the one delivering loads it (OutboxBody).
	q := `SELECT ` + strings.Replace(outboxCols, "body,", "x'' AS body,", 1) + ` FROM outbox WHERE state = ? AND next_at <= ?`
	args := []any{model.DeliveryPending, ms(now)}
	if len(skip) > 0 {
		q += ` AND receiver NOT IN (?` + strings.Repeat(`,?`, len(skip)-1) + `)`
		for _, r := range skip {
			args = append(args, r)
		}
	}
	args = append(args, limit)
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY next_at LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("read due outbox: %w", err)
	}
	return scanOutbox(rows)
}

// OutboxFilter selects outbox rows.
type OutboxFilter struct {
	JobID string
	State model.DeliveryState
	Limit int
	// WithBody reads each delivery's body too (up to a callback's bound,
	// 16 MiB); listings leave it out.
	WithBody bool
}

// Outbox lists deliveries, newest first.
func (s *Store) Outbox(ctx context.Context, f OutboxFilter) ([]OutboxItem, error) {
	cols := outboxCols
	if !f.WithBody {
		cols = strings.Replace(outboxCols, "body,", "x'' AS body,", 1)
	}
	q := `SELECT ` + cols + ` FROM outbox WHERE 1=1`
	var args []any
	if f.JobID != "" {
		q += ` AND job_id = ?`
		args = append(args, f.JobID)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return scanOutbox(rows)
}

// OutboxDone records a delivery's outcome: delivered, or state pending with
// the next try at next, or dead.
func (s *Store) OutboxDone(ctx context.Context, id int64, state model.DeliveryState, attempts int, next time.Time, lastErr string, now time.Time) error {
	var delivered int64
	if state == model.DeliveryDelivered {
		delivered = ms(now)
	}
	_, err := s.w.ExecContext(ctx, `UPDATE outbox SET state = ?, attempts = ?, next_at = ?, last_error = ?, delivered_at = ?
		WHERE id = ?`, state, attempts, ms(next), lastErr, delivered, id)
	if err != nil {
		return fmt.Errorf("update outbox %d: %w", id, err)
	}
	return nil
}

// OutboxBody reads the body of the delivery id (ErrNotFound when it is
// gone: pruned, or its job deleted).
func (s *Store) OutboxBody(ctx context.Context, id int64) ([]byte, error) {
	var body []byte
	err := s.r.QueryRowContext(ctx, `SELECT body FROM outbox WHERE id = ?`, id).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("delivery %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read delivery %d: %w", id, err)
	}
	return body, nil
}
