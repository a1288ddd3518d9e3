// Package inventory is felix's SQLite store: minions and their pinned
// certificates, agentless (SSH) hosts, labels, join and API tokens
// (hashed), jobs and per-host results, and the callback outbox.
//
// The database runs in WAL mode with a busy timeout. All writes of one
// process go through a single connection (one writer); reads use a separate
// pool and never wait for writers. The schema is versioned by PRAGMA
// user_version and migrated forward in code when the store opens.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Sentinel errors; the API maps them to HTTP statuses in one place.
var (
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	ErrInvalidToken = errors.New("invalid or expired token")
)

// Store is the inventory database.
type Store struct {
	w *sql.DB // one connection: the only writer
	r *sql.DB // readers
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string) (*Store, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "10000")
	q.Set("_synchronous", "NORMAL") // WAL + NORMAL: durable across crashes of the process, no fsync per commit
	q.Set("_foreign_keys", "on")
	dsn := "file:" + path + "?"
	w, err := sql.Open("sqlite3", dsn+q.Encode()+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	r, err := sql.Open("sqlite3", dsn+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.SetMaxOpenConns(max(4, runtime.NumCPU()))
	s.r = r
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// migrations are applied in order; migrations[i] brings the schema from
// version i to i+1. Never edit a released one: append.
var migrations = []string{
	`CREATE TABLE minions (
		id            TEXT PRIMARY KEY,
		hostname      TEXT NOT NULL,
		ips           TEXT NOT NULL DEFAULT '',
		addr          TEXT NOT NULL,
		version       TEXT NOT NULL DEFAULT '',
		os            TEXT NOT NULL DEFAULT '',
		facts         TEXT NOT NULL DEFAULT '{}',
		cert_pem      TEXT NOT NULL,
		fingerprint   TEXT NOT NULL,
		state         TEXT NOT NULL,
		health        TEXT NOT NULL DEFAULT 'unknown',
		last_seen     INTEGER NOT NULL DEFAULT 0,
		registered_at INTEGER NOT NULL,
		updated_at    INTEGER NOT NULL
	);
	CREATE TABLE join_tokens (
		hash        TEXT PRIMARY KEY,
		auto_accept INTEGER NOT NULL,
		uses_left   INTEGER NOT NULL, -- -1: unlimited
		expires_at  INTEGER NOT NULL, -- unix ms; 0: never
		created_at  INTEGER NOT NULL
	);
	CREATE TABLE api_tokens (
		hash       TEXT PRIMARY KEY,
		name       TEXT NOT NULL UNIQUE,
		role       TEXT NOT NULL,
		expires_at INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE jobs (
		id          TEXT PRIMARY KEY,
		client_id   TEXT NOT NULL DEFAULT '',
		cmd_line    TEXT NOT NULL,
		cmd_type    TEXT NOT NULL,
		targets     TEXT NOT NULL,
		state       TEXT NOT NULL,
		created_at  INTEGER NOT NULL,
		finished_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE job_hosts (
		job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
		host        TEXT NOT NULL,
		addr        TEXT NOT NULL DEFAULT '',
		state       TEXT NOT NULL,
		exit_code   INTEGER NOT NULL DEFAULT 0,
		signal      TEXT NOT NULL DEFAULT '',
		stdout      BLOB,
		stderr      BLOB,
		truncated   INTEGER NOT NULL DEFAULT 0,
		error       TEXT NOT NULL DEFAULT '',
		transport   TEXT NOT NULL DEFAULT '',
		started_at  INTEGER NOT NULL DEFAULT 0,
		finished_at INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (job_id, host)
	);
	CREATE INDEX jobs_created ON jobs(created_at);`,

	// 2: the job model of async jobs, labels, and the callback outbox.
	`ALTER TABLE jobs ADD COLUMN spec TEXT NOT NULL DEFAULT '{}';
	ALTER TABLE jobs ADD COLUMN hosts_total INTEGER NOT NULL DEFAULT 0;
	CREATE INDEX jobs_state ON jobs(state);
	CREATE INDEX jobs_client ON jobs(client_id);
	CREATE TABLE labels (
		minion_id TEXT NOT NULL REFERENCES minions(id) ON DELETE CASCADE,
		key       TEXT NOT NULL,
		value     TEXT NOT NULL,
		PRIMARY KEY (minion_id, key)
	);
	CREATE TABLE outbox (
		id           INTEGER PRIMARY KEY AUTOINCREMENT,
		event_id     TEXT NOT NULL UNIQUE,
		kind         TEXT NOT NULL,     -- callback | slack
		job_id       TEXT NOT NULL,
		url          TEXT NOT NULL,
		receiver     TEXT NOT NULL DEFAULT '', -- scheme://host:port, to skip a busy receiver's backlog
		body         BLOB NOT NULL,
		state        TEXT NOT NULL,     -- pending | delivered | dead
		attempts     INTEGER NOT NULL DEFAULT 0,
		next_at      INTEGER NOT NULL,
		last_error   TEXT NOT NULL DEFAULT '',
		created_at   INTEGER NOT NULL,
		delivered_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX outbox_due ON outbox(state, next_at);
	CREATE INDEX outbox_job ON outbox(job_id);`,

	// 3: agentless hosts (reached over SSH) and their labels. A host whose
	// id is also a minion's is the same machine: the row gives its SSH
	// settings.
	`CREATE TABLE hosts (
		id         TEXT PRIMARY KEY,
		address    TEXT NOT NULL,
		port       INTEGER NOT NULL DEFAULT 22,
		user       TEXT NOT NULL DEFAULT '',
		key_path   TEXT NOT NULL DEFAULT '',
		become     INTEGER NOT NULL DEFAULT 0,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE INDEX hosts_address ON hosts(address);
	CREATE TABLE host_labels (
		host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
		key     TEXT NOT NULL,
		value   TEXT NOT NULL,
		PRIMARY KEY (host_id, key)
	);`,

	// 4: file transfers: each host's report (model.FileReport as JSON,
	// '' for commands).
	`ALTER TABLE job_hosts ADD COLUMN files TEXT NOT NULL DEFAULT '';`,
	// 5: who asked for each job, and the audit log of state-changing requests.
	`ALTER TABLE jobs ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
	ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT ''; -- target patterns, one a line
	CREATE TABLE audit (
		id      INTEGER PRIMARY KEY AUTOINCREMENT,
		at      INTEGER NOT NULL,
		who     TEXT NOT NULL,            -- the API token's name, "minion:ID", or "-" when unauthenticated
		role    TEXT NOT NULL DEFAULT '',
		source  TEXT NOT NULL DEFAULT '', -- the client's address
		method  TEXT NOT NULL,
		path    TEXT NOT NULL,
		status  INTEGER NOT NULL,
		targets TEXT NOT NULL DEFAULT '',
		job_id  TEXT NOT NULL DEFAULT '',
		detail  TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX audit_at ON audit(at);`,

	// 6: package jobs: each host's report (model.PkgReport as JSON, ''
	// for other jobs).
	`ALTER TABLE job_hosts ADD COLUMN packages TEXT NOT NULL DEFAULT '';`,

	// 7: managed configuration: every revision of every stored state
	// document, and each host's apply report (model.ApplyReport as JSON,
	// '' for other jobs).
	`CREATE TABLE configs (
		name       TEXT NOT NULL,
		rev        INTEGER NOT NULL,
		body       BLOB NOT NULL,
		sha256     TEXT NOT NULL,
		created_by TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		PRIMARY KEY (name, rev)
	);
	ALTER TABLE job_hosts ADD COLUMN apply TEXT NOT NULL DEFAULT '';`,

	// 8: a minion's last self-upgrade as it reports it (model.LastUpgrade
	// as JSON, '' when it never upgraded itself).
	`ALTER TABLE minions ADD COLUMN last_upgrade TEXT NOT NULL DEFAULT '';`,

	// 9: an agentless host's remote_tmp, where script and file commands
	// are staged ('' means the SSH transport's default).
	`ALTER TABLE hosts ADD COLUMN remote_tmp TEXT NOT NULL DEFAULT '';`,

	// 10: every inventory group of an agentless host, ancestors included
	// (pos: the order the inventory gives them), and the facts last
	// gathered from it over SSH: one row a host, replaced at each gathering.
	`CREATE TABLE host_groups (
		host_id TEXT NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
		grp     TEXT NOT NULL,
		pos     INTEGER NOT NULL,
		PRIMARY KEY (host_id, grp)
	);
	CREATE TABLE host_facts (
		host_id     TEXT PRIMARY KEY REFERENCES hosts(id) ON DELETE CASCADE,
		facts       TEXT NOT NULL DEFAULT '',  -- facts.Facts as JSON; '' before the first success
		gathered_at INTEGER NOT NULL DEFAULT 0, -- when facts were gathered
		error       TEXT NOT NULL DEFAULT '',  -- why the last attempt failed; '' when it succeeded
		error_at    INTEGER NOT NULL DEFAULT 0
	);`,

	// 11: an agentless host's jump hosts, OpenSSH's ProxyJump syntax ('' for
	// none: its group's, if any; "none" for a direct connection).
	`ALTER TABLE hosts ADD COLUMN proxy_jump TEXT NOT NULL DEFAULT '';`,

	// 12: whom an agentless host's become runs as (sudo -n -u), '' for root.
	`ALTER TABLE hosts ADD COLUMN become_user TEXT NOT NULL DEFAULT '';`,
}

func (s *Store) migrate(ctx context.Context) error {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d)", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
				return fmt.Errorf("schema version %d: %w", v+1, err)
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SchemaVersion reports the database's schema version.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

// tx runs fn in a write transaction and commits it when fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// IsFull reports whether err is a write refused for want of space: SQLite's
// "database or disk is full", or ENOSPC from a file write (payloads, the
// content store). The API answers it 507 and the job service retries it
// until space returns.
func IsFull(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrFull || errors.Is(err, syscall.ENOSPC)
}

// Transient reports whether err may go away by itself — a full disk that
// is freed, a busy or locked database, an I/O error — so that the write is
// worth trying again later rather than given up.
func Transient(err error) bool {
	if IsFull(err) {
		return true
	}
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrIoErr, sqlite3.ErrCantOpen, sqlite3.ErrProtocol:
		return true
	}
	return false
}

// isUniqueViolation reports a UNIQUE or PRIMARY KEY constraint failure;
// SQLite gives them different extended codes.
func isUniqueViolation(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) &&
		(se.ExtendedCode == sqlite3.ErrConstraintUnique || se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey)
}

func joinList(v []string) string { return strings.Join(v, ",") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
