package inventory

import (
	"context"
	"fmt"
)

// GroupCount is one row of a grouped count: the group's values in the
// order the query names them, and how many rows it has.
type GroupCount struct {
	Values []string
	N      int
}

// MinionCounts counts the minions by key state and health (the master's
// felix_minions gauge).
func (s *Store) MinionCounts(ctx context.Context) ([]GroupCount, error) {
	return s.groupCount(ctx, "count minions", `SELECT state, health, COUNT(*) FROM minions GROUP BY state, health ORDER BY state, health`)
}

// OutboxCounts counts the stored deliveries by kind and state; pending
// is the outbox's depth (the master's felix_outbox_deliveries gauge).
func (s *Store) OutboxCounts(ctx context.Context) ([]GroupCount, error) {
	return s.groupCount(ctx, "count outbox", `SELECT kind, state, COUNT(*) FROM outbox GROUP BY kind, state ORDER BY kind, state`)
}

// groupCount runs a query of two grouping columns and a count.
func (s *Store) groupCount(ctx context.Context, op, q string) ([]GroupCount, error) {
	rows, err := s.r.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []GroupCount
	for rows.Next() {
		var a, b string
		var n int
		if err := rows.Scan(&a, &b, &n); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, GroupCount{Values: []string{a, b}, N: n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}
