package inventory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
)

// Token prefixes tell an operator which kind of secret they hold.
const (
	joinPrefix = "fjt_"
	apiPrefix  = "fat_"
)

// RoleAdmin is the role of the first token (model.RoleAdmin).
const RoleAdmin = model.RoleAdmin

// HashToken is how tokens are stored: only their SHA-256 is kept.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// JoinTokenSpec says what a new join token allows.
type JoinTokenSpec struct {
	AutoAccept bool
	TTL        time.Duration // 0: never expires
	// Uses is how many registrations the token allows: N > 0, or -1 for no
	// limit. 0 means the default: one use for an auto-accept token (it lets
	// anyone holding it claim a free id), DefaultJoinUses otherwise (each
	// use adds a pending key someone must decide on: a leaked token must
	// not flood the list).
	Uses int
}

// DefaultJoinUses is how many registrations a join token that does not
// accept at once allows when its issuer named no number.
const DefaultJoinUses = 1000

// CreateJoinToken issues a join token and returns it; only its hash is kept.
func (s *Store) CreateJoinToken(ctx context.Context, spec JoinTokenSpec, now time.Time) (string, time.Time, error) {
	tok, err := newToken(joinPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	var exp time.Time
	if spec.TTL > 0 {
		exp = now.Add(spec.TTL)
	}
	uses := spec.Uses
	switch {
	case uses < -1:
		return "", time.Time{}, fmt.Errorf("join token uses %d: want -1 (no limit), 0 (default) or more", uses)
	case uses == 0 && spec.AutoAccept:
		uses = 1
	case uses == 0:
		uses = DefaultJoinUses
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO join_tokens (hash, auto_accept, uses_left, expires_at, created_at) VALUES (?,?,?,?,?)`,
		HashToken(tok), spec.AutoAccept, uses, ms(exp), ms(now))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("store join token: %w", err)
	}
	return tok, exp, nil
}

// checkJoinToken reports whether a join token is valid now, inside tx.
func checkJoinToken(ctx context.Context, tx *sql.Tx, hash string, now time.Time) (autoAccept bool, err error) {
	var uses, exp int64
	err = tx.QueryRowContext(ctx, `SELECT auto_accept, uses_left, expires_at FROM join_tokens WHERE hash = ?`, hash).
		Scan(&autoAccept, &uses, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrInvalidToken
	}
	if err != nil {
		return false, fmt.Errorf("look up join token: %w", err)
	}
	if uses == 0 || (exp != 0 && now.UnixMilli() >= exp) {
		return false, ErrInvalidToken
	}
	return autoAccept, nil
}

// consumeJoinToken checks a join token inside tx and uses it up once.
func consumeJoinToken(ctx context.Context, tx *sql.Tx, hash string, now time.Time) (autoAccept bool, err error) {
	autoAccept, err = checkJoinToken(ctx, tx, hash, now)
	if err != nil {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE join_tokens SET uses_left = uses_left - 1 WHERE hash = ? AND uses_left > 0`, hash); err != nil {
		return false, fmt.Errorf("use join token: %w", err)
	}
	return autoAccept, nil
}

// APIToken is a bearer token for the REST API.
type APIToken struct {
	Name string
	Role string
	// Scope, when set, are the target patterns (as -t takes them) of the
	// only hosts the token may see and run jobs on.
	Scope     []string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// CreateAPIToken issues an API token named name and returns it; only its
// hash is kept. A second token with the same name is ErrConflict.
func (s *Store) CreateAPIToken(ctx context.Context, name, role string, ttl time.Duration, now time.Time) (string, error) {
	return s.CreateScopedAPIToken(ctx, name, role, nil, ttl, now)
}

// CreateScopedAPIToken is CreateAPIToken for a token that sees and runs
// on the hosts scope selects only (none: all hosts).
func (s *Store) CreateScopedAPIToken(ctx context.Context, name, role string, scope []string, ttl time.Duration, now time.Time) (string, error) {
	if err := model.ValidRole(role); err != nil {
		return "", fmt.Errorf("api token %q: %w", name, err)
	}
	tok, err := newToken(apiPrefix)
	if err != nil {
		return "", err
	}
	var exp time.Time
	if ttl > 0 {
		exp = now.Add(ttl)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO api_tokens (hash, name, role, expires_at, created_at, scope) VALUES (?,?,?,?,?,?)`,
		HashToken(tok), name, role, ms(exp), ms(now), strings.Join(scope, "\n"))
	if isUniqueViolation(err) {
		return "", fmt.Errorf("api token %q: %w", name, ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("store api token: %w", err)
	}
	return tok, nil
}

// APIToken returns the unexpired API token whose hash is hash.
func (s *Store) APIToken(ctx context.Context, hash string, now time.Time) (APIToken, error) {
	var t APIToken
	var exp, created int64
	var scope string
	err := s.r.QueryRowContext(ctx, `SELECT name, role, expires_at, created_at, scope FROM api_tokens WHERE hash = ?`, hash).
		Scan(&t.Name, &t.Role, &exp, &created, &scope)
	t.Scope = splitScope(scope)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrInvalidToken
	}
	if err != nil {
		return t, fmt.Errorf("look up api token: %w", err)
	}
	t.ExpiresAt, t.CreatedAt = fromMS(exp), fromMS(created)
	if exp != 0 && now.UnixMilli() >= exp {
		return t, ErrInvalidToken
	}
	return t, nil
}

// APITokens lists the API tokens (never the tokens themselves), by name.
func (s *Store) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, expires_at, created_at, scope FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list api tokens: %w", err)
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var t APIToken
		var exp, created int64
		var scope string
		if err := rows.Scan(&t.Name, &t.Role, &exp, &created, &scope); err != nil {
			return nil, fmt.Errorf("list api tokens: %w", err)
		}
		t.Scope = splitScope(scope)
		t.ExpiresAt, t.CreatedAt = fromMS(exp), fromMS(created)
		out = append(out, t)
	}
	return out, rows.Err()
}

// ErrLastAdmin refuses to revoke the last admin token that has not
// expired: nobody could issue tokens or decide on keys any more.
var ErrLastAdmin = errors.New("the last admin token that has not expired")

// RevokeAPIToken deletes the API token named name: it stops working at
// once. An unknown name is ErrNotFound; the last unexpired admin token is
// ErrLastAdmin (create another first).
func (s *Store) RevokeAPIToken(ctx context.Context, name string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var role string
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT role, expires_at FROM api_tokens WHERE name = ?`, name).Scan(&role, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("api token %q: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("revoke api token %q: %w", name, err)
		}
		if role == model.RoleAdmin && (exp == 0 || exp > now.UnixMilli()) {
			var others int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_tokens WHERE role = ? AND name != ?
				AND (expires_at = 0 OR expires_at > ?)`, model.RoleAdmin, name, now.UnixMilli()).Scan(&others); err != nil {
				return fmt.Errorf("revoke api token %q: %w", name, err)
			}
			if others == 0 {
				return fmt.Errorf("api token %q is %w (create another admin token first): %w", name, ErrLastAdmin, ErrConflict)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE name = ?`, name); err != nil {
			return fmt.Errorf("revoke api token %q: %w", name, err)
		}
		return nil
	})
}

// splitScope reads the scope column: target patterns, one a line.
func splitScope(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
