package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/felix-ops/felix/model"
)

// Minion is a registered minion with its pinned certificate.
type Minion struct {
	ID           string
	Hostname     string
	IPs          []string
	Addr         string // host:port the master dials for gRPC
	Version      string
	OS           string
	Facts        string // JSON object as reported
	CertPEM      string
	Fingerprint  string
	State        model.KeyState
	Health       model.Health
	LastSeen     time.Time
	RegisteredAt time.Time
	UpdatedAt    time.Time
	// Labels are set by operators (role=web); filled by Minions and Minion.
	Labels map[string]string
	// LastUpgrade is the minion's last self-upgrade (model.LastUpgrade as
	// JSON), "" if none; a registration without one keeps the stored one.
	LastUpgrade string
}

const minionCols = `id, hostname, ips, addr, version, os, facts, cert_pem, fingerprint, state, health, last_seen, registered_at, updated_at, last_upgrade`

func scanMinion(row interface{ Scan(...any) error }) (Minion, error) {
	var m Minion
	var ips string
	var seen, reg, upd int64
	err := row.Scan(&m.ID, &m.Hostname, &ips, &m.Addr, &m.Version, &m.OS, &m.Facts, &m.CertPEM,
		&m.Fingerprint, &m.State, &m.Health, &seen, &reg, &upd, &m.LastUpgrade)
	m.IPs = splitList(ips)
	m.LastSeen, m.RegisteredAt, m.UpdatedAt = fromMS(seen), fromMS(reg), fromMS(upd)
	return m, err
}

// Registration is what a minion sends to register, already validated.
type Registration struct {
	Minion
	// JoinTokenHash authenticates a new minion. A known minion needs none:
	// the caller must already have proven it holds the key of the
	// certificate (TLS client authentication), which must be the pinned one.
	JoinTokenHash string
}

// Register stores a minion or refreshes a known one, in one transaction.
// A new minion needs a valid join token, which is used up once; it becomes
// accepted if the token says so, else pending. A known id must present the
// pinned fingerprint (else ErrConflict, nothing changed); its state is kept.
// created reports whether the minion is new.
func (s *Store) Register(ctx context.Context, reg Registration, now time.Time) (m Minion, created bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanMinion(tx.QueryRowContext(ctx, `SELECT `+minionCols+` FROM minions WHERE id = ?`, reg.ID))
		known := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if known && old.Fingerprint != reg.Fingerprint {
			// Only a caller with a valid join token learns that the id is
			// taken (and by which certificate); the token is not used up.
			if reg.JoinTokenHash == "" {
				return ErrInvalidToken
			}
			if _, err := checkJoinToken(ctx, tx, reg.JoinTokenHash, now); err != nil {
				return err
			}
			return fmt.Errorf("minion %s is registered with certificate %s: %w", reg.ID, old.Fingerprint, ErrConflict)
		}
		state := model.KeyPending
		if known {
			// The caller proved it holds the pinned key: no token needed.
			state = old.State
		} else {
			if reg.JoinTokenHash == "" {
				return ErrInvalidToken
			}
			auto, err := consumeJoinToken(ctx, tx, reg.JoinTokenHash, now)
			if err != nil {
				return err
			}
			if auto {
				state = model.KeyAccepted
			}
		}
		m = reg.Minion
		created = !known
		m.State = state
		m.Health = model.HealthUnknown
		m.RegisteredAt = now
		if known {
			m.Health, m.LastSeen, m.RegisteredAt = old.Health, old.LastSeen, old.RegisteredAt
		}
		m.UpdatedAt = now
		if m.LastUpgrade == "" && known {
			m.LastUpgrade = old.LastUpgrade
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO minions (`+minionCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET hostname=excluded.hostname, ips=excluded.ips, addr=excluded.addr,
			version=excluded.version, os=excluded.os, facts=excluded.facts, updated_at=excluded.updated_at,
			last_upgrade=excluded.last_upgrade`,
			m.ID, m.Hostname, joinList(m.IPs), m.Addr, m.Version, m.OS, m.Facts, m.CertPEM, m.Fingerprint,
			m.State, m.Health, ms(m.LastSeen), ms(m.RegisteredAt), ms(m.UpdatedAt), m.LastUpgrade)
		return err
	})
	if err != nil && !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrConflict) {
		err = fmt.Errorf("register minion %s: %w", reg.ID, err)
	}
	return m, created, err
}

// Minions lists all minions ordered by id.
func (s *Store) Minions(ctx context.Context) ([]Minion, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+minionCols+` FROM minions ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list minions: %w", err)
	}
	defer rows.Close()
	var out []Minion
	for rows.Next() {
		m, err := scanMinion(rows)
		if err != nil {
			return nil, fmt.Errorf("list minions: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list minions: %w", err)
	}
	labels, err := s.labels(ctx, "")
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Labels = labels[out[i].ID]
	}
	return out, nil
}

// labels returns the labels of one minion, or of all when id is "".
func (s *Store) labels(ctx context.Context, id string) (map[string]map[string]string, error) {
	q, args := `SELECT minion_id, key, value FROM labels`, []any{}
	if id != "" {
		q, args = q+` WHERE minion_id = ?`, append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read labels: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var mid, k, v string
		if err := rows.Scan(&mid, &k, &v); err != nil {
			return nil, fmt.Errorf("read labels: %w", err)
		}
		if out[mid] == nil {
			out[mid] = map[string]string{}
		}
		out[mid][k] = v
	}
	return out, rows.Err()
}

// SetLabels sets and removes labels of a minion in one transaction.
func (s *Store) SetLabels(ctx context.Context, id string, set map[string]string, remove []string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM minions WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		for k, v := range set {
			if _, err := tx.ExecContext(ctx, `INSERT INTO labels (minion_id, key, value) VALUES (?,?,?)
				ON CONFLICT(minion_id, key) DO UPDATE SET value = excluded.value`, id, k, v); err != nil {
				return err
			}
		}
		for _, k := range remove {
			if _, err := tx.ExecContext(ctx, `DELETE FROM labels WHERE minion_id = ? AND key = ?`, id, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set labels of minion %s: %w", id, err)
	}
	return nil
}

// Minion returns one minion by id.
func (s *Store) Minion(ctx context.Context, id string) (Minion, error) {
	m, err := scanMinion(s.r.QueryRowContext(ctx, `SELECT `+minionCols+` FROM minions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("minion %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("get minion %s: %w", id, err)
	}
	labels, err := s.labels(ctx, id)
	m.Labels = labels[id]
	return m, err
}

// SetMinionState sets a minion's state (accepted, rejected or pending).
func (s *Store) SetMinionState(ctx context.Context, id string, state model.KeyState, now time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE minions SET state = ?, updated_at = ? WHERE id = ?`, state, ms(now), id)
	return affected(res, err, "minion "+id)
}

// DeleteMinion forgets a minion and its pinned certificate.
func (s *Store) DeleteMinion(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM minions WHERE id = ?`, id)
	return affected(res, err, "minion "+id)
}

// HealthUpdate is one minion's health as seen by a ping.
type HealthUpdate struct {
	ID     string
	Health model.Health
	Seen   time.Time // zero when the ping failed: last_seen is kept
}

// UpdateHealth records many health results in one transaction.
func (s *Store) UpdateHealth(ctx context.Context, ups []HealthUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE minions SET health = ?, last_seen = MAX(last_seen, ?) WHERE id = ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, u := range ups {
			if _, err := st.ExecContext(ctx, u.Health, ms(u.Seen), u.ID); err != nil {
				return fmt.Errorf("update health of %s: %w", u.ID, err)
			}
		}
		return nil
	})
}

func affected(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}
