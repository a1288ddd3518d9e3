package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// HostFacts are the facts last gathered from an agentless host over SSH.
type HostFacts struct {
	JSON       string    // facts.Facts as JSON; "" before the first success
	GatheredAt time.Time // when JSON was gathered; zero for never
	Error      string    // why the last attempt failed; "" when it succeeded
	ErrorAt    time.Time // when it failed
}

// Fresh reports whether the facts were gathered within ttl of now and the
// last attempt did not fail since.
func (f HostFacts) Fresh(now time.Time, ttl time.Duration) bool {
	return f.JSON != "" && f.Error == "" && now.Sub(f.GatheredAt) < ttl
}

// SetHostFacts records an attempt to gather a host's facts: with err nil,
// factsJSON replaces the facts; else the error is recorded and the facts
// gathered before are kept (shown, never used to select the host). One row
// a host. A host that is gone is ErrNotFound.
func (s *Store) SetHostFacts(ctx context.Context, id, factsJSON string, gatherErr error, at time.Time) error {
	var res sql.Result
	var err error
	if gatherErr == nil {
		res, err = s.w.ExecContext(ctx, `INSERT INTO host_facts (host_id, facts, gathered_at, error, error_at)
			SELECT id, ?, ?, '', 0 FROM hosts WHERE id = ?
			ON CONFLICT(host_id) DO UPDATE SET facts = excluded.facts, gathered_at = excluded.gathered_at, error = '', error_at = 0`,
			factsJSON, ms(at), id)
	} else {
		res, err = s.w.ExecContext(ctx, `INSERT INTO host_facts (host_id, error, error_at)
			SELECT id, ?, ? FROM hosts WHERE id = ?
			ON CONFLICT(host_id) DO UPDATE SET error = excluded.error, error_at = excluded.error_at`,
			gatherErr.Error(), ms(at), id)
	}
	if err != nil {
		return fmt.Errorf("set facts of host %s: %w", id, err)
	}
	return affected(res, nil, "host "+id)
}

// setHostGroups replaces the groups of a host.
func setHostGroups(ctx context.Context, tx *sql.Tx, id string, groups []string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM host_groups WHERE host_id = ?`, id); err != nil {
		return err
	}
	for i, g := range groups {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO host_groups (host_id, grp, pos) VALUES (?,?,?)`, id, g, i); err != nil {
			return err
		}
	}
	return nil
}

// hostGroupsFacts returns the groups and facts of one host, or of all
// when id is "".
func (s *Store) hostGroupsFacts(ctx context.Context, id string) (map[string][]string, map[string]HostFacts, error) {
	where, args := "", []any{}
	if id != "" {
		where, args = ` WHERE host_id = ?`, append(args, id)
	}
	groups := map[string][]string{}
	rows, err := s.r.QueryContext(ctx, `SELECT host_id, grp FROM host_groups`+where+` ORDER BY host_id, pos`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read host groups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var hid, g string
		if err := rows.Scan(&hid, &g); err != nil {
			return nil, nil, fmt.Errorf("read host groups: %w", err)
		}
		groups[hid] = append(groups[hid], g)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read host groups: %w", err)
	}
	facts := map[string]HostFacts{}
	frows, err := s.r.QueryContext(ctx, `SELECT host_id, facts, gathered_at, error, error_at FROM host_facts`+where, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read host facts: %w", err)
	}
	defer frows.Close()
	for frows.Next() {
		var hid string
		var f HostFacts
		var gathered, failed int64
		if err := frows.Scan(&hid, &f.JSON, &gathered, &f.Error, &failed); err != nil {
			return nil, nil, fmt.Errorf("read host facts: %w", err)
		}
		f.GatheredAt, f.ErrorAt = fromMS(gathered), fromMS(failed)
		facts[hid] = f
	}
	if err := frows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read host facts: %w", err)
	}
	return groups, facts, nil
}
