package inventory

import (
	"context"
	"fmt"
	"time"
)

// The audit log: one row per state-changing request — who (the API
// token's name), from where, what (method and path), on which targets,
// the job it made, and how it was answered. Rows are only ever added;
// Prune drops those older than the jobs' retention.

// AuditEntry is one row of the audit log.
type AuditEntry struct {
	ID      int64
	At      time.Time
	Who     string // the API token's name, "minion:ID" for a registration, "-" unauthenticated
	Role    string
	Source  string // the client's address
	Method  string
	Path    string
	Status  int
	Targets string // the request's targets, comma-separated
	JobID   string
	Detail  string // what else identifies the change: a minion or host id, a token name
}

// AddAudit appends e to the audit log.
func (s *Store) AddAudit(ctx context.Context, e AuditEntry) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit (at, who, role, source, method, path, status, targets, job_id, detail)
		VALUES (?,?,?,?,?,?,?,?,?,?)`, ms(e.At), e.Who, e.Role, e.Source, e.Method, e.Path, e.Status, e.Targets, e.JobID, e.Detail)
	if err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Method, e.Path, err)
	}
	return nil
}

// AuditLog returns at most limit entries, newest first, older than the
// entry before (0: from the newest), and the id to pass as before for the
// next page (0 when none follow).
func (s *Store) AuditLog(ctx context.Context, before int64, limit int) ([]AuditEntry, int64, error) {
	q := `SELECT id, at, who, role, source, method, path, status, targets, job_id, detail FROM audit`
	args := []any{}
	if before > 0 {
		q += ` WHERE id < ?`
		args = append(args, before)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	rows, err := s.r.QueryContext(ctx, q, append(args, limit+1)...)
	if err != nil {
		return nil, 0, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.Who, &e.Role, &e.Source, &e.Method, &e.Path, &e.Status, &e.Targets,
			&e.JobID, &e.Detail); err != nil {
			return nil, 0, fmt.Errorf("read the audit log: %w", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("read the audit log: %w", err)
	}
	var next int64
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}
