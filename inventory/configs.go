package inventory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Config is one revision of a stored state document (managed
// configuration). Every revision is kept.
type Config struct {
	Name      string
	Rev       int
	SHA256    string // of Body
	CreatedBy string
	CreatedAt time.Time
	Body      []byte // empty in lists and histories
	Revisions int    // Configs only: how many revisions the name has
}

// PutConfig stores body as the next revision of config name, unless it is
// the latest revision's body already: then that revision is returned and
// created is false (a put is idempotent).
func (s *Store) PutConfig(ctx context.Context, name string, body []byte, by string, now time.Time) (c Config, created bool, err error) {
	sum := sha256.Sum256(body)
	c = Config{Name: name, SHA256: hex.EncodeToString(sum[:]), CreatedBy: by, CreatedAt: now}
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var rev int
		var last []byte
		var lastBy string
		var lastAt int64
		err := tx.QueryRowContext(ctx, `SELECT rev, body, created_by, created_at FROM configs WHERE name = ? ORDER BY rev DESC LIMIT 1`,
			name).Scan(&rev, &last, &lastBy, &lastAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil && bytes.Equal(last, body) {
			c.Rev, c.CreatedBy, c.CreatedAt = rev, lastBy, fromMS(lastAt)
			return nil
		}
		c.Rev, created = rev+1, true
		_, err = tx.ExecContext(ctx, `INSERT INTO configs (name, rev, body, sha256, created_by, created_at) VALUES (?,?,?,?,?,?)`,
			name, c.Rev, body, c.SHA256, by, ms(now))
		return err
	})
	if err != nil {
		return Config{}, false, fmt.Errorf("store config %s: %w", name, err)
	}
	return c, created, nil
}

// GetConfig returns revision rev of config name (0: the latest) with its
// body; ErrNotFound when there is none.
func (s *Store) GetConfig(ctx context.Context, name string, rev int) (Config, error) {
	q := `SELECT rev, body, sha256, created_by, created_at FROM configs WHERE name = ? ORDER BY rev DESC LIMIT 1`
	args := []any{name}
	if rev > 0 {
		q = `SELECT rev, body, sha256, created_by, created_at FROM configs WHERE name = ? AND rev = ?`
		args = append(args, rev)
	}
	c := Config{Name: name}
	var at int64
	err := s.r.QueryRowContext(ctx, q, args...).Scan(&c.Rev, &c.Body, &c.SHA256, &c.CreatedBy, &at)
	if errors.Is(err, sql.ErrNoRows) {
		if rev > 0 {
			return c, fmt.Errorf("config %s revision %d: %w", name, rev, ErrNotFound)
		}
		return c, fmt.Errorf("config %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("get config %s: %w", name, err)
	}
	c.CreatedAt = fromMS(at)
	return c, nil
}

// Configs lists every config's latest revision (without body), by name.
func (s *Store) Configs(ctx context.Context) ([]Config, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT c.name, c.rev, c.sha256, c.created_by, c.created_at, n.revs
		FROM configs c JOIN (SELECT name, MAX(rev) AS rev, COUNT(*) AS revs FROM configs GROUP BY name) n
		ON c.name = n.name AND c.rev = n.rev ORDER BY c.name`)
	if err != nil {
		return nil, fmt.Errorf("list configs: %w", err)
	}
	defer rows.Close()
	var out []Config
	for rows.Next() {
		var c Config
		var at int64
		if err := rows.Scan(&c.Name, &c.Rev, &c.SHA256, &c.CreatedBy, &at, &c.Revisions); err != nil {
			return nil, fmt.Errorf("list configs: %w", err)
		}
		c.CreatedAt = fromMS(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ConfigHistory lists every revision of config name, newest first, without
// bodies; ErrNotFound when it has none.
func (s *Store) ConfigHistory(ctx context.Context, name string) ([]Config, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rev, sha256, created_by, created_at FROM configs WHERE name = ? ORDER BY rev DESC`, name)
	if err != nil {
		return nil, fmt.Errorf("config %s history: %w", name, err)
	}
	defer rows.Close()
	var out []Config
	for rows.Next() {
		c := Config{Name: name}
		var at int64
		if err := rows.Scan(&c.Rev, &c.SHA256, &c.CreatedBy, &at); err != nil {
			return nil, fmt.Errorf("config %s history: %w", name, err)
		}
		c.CreatedAt = fromMS(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config %s: %w", name, ErrNotFound)
	}
	return out, nil
}

// DeleteConfig removes config name with every revision; ErrNotFound when
// there is none.
func (s *Store) DeleteConfig(ctx context.Context, name string) error {
	var n int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM configs WHERE name = ?`, name)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("delete config %s: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("config %s: %w", name, ErrNotFound)
	}
	return nil
}

var sourceRef = regexp.MustCompile(`sha256:([0-9a-f]{64})`)

// ConfigSources returns the sha256 of every stored content any revision of
// any config names (sha256:HEX), so that the content store keeps it.
func (s *Store) ConfigSources(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT body FROM configs WHERE instr(body, 'sha256:') > 0`)
	if err != nil {
		return nil, fmt.Errorf("config sources: %w", err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	var out []string
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			return nil, fmt.Errorf("config sources: %w", err)
		}
		for _, m := range sourceRef.FindAllSubmatch(body, -1) {
			if sha := string(m[1]); !seen[sha] {
				seen[sha] = true
				out = append(out, sha)
			}
		}
	}
	return out, rows.Err()
}
