package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Host is an agentless host: a machine reached over SSH. Its id may also
// be a minion's: then it is the same machine, and the host gives the SSH
// settings of that minion. The fields are validated by the API; the store
// keeps them as given.
type Host struct {
	ID        string
	Address   string // DNS name or IP address
	Port      int    // 22 when stored as 0
	User      string // "" means the SSH transport's default
	KeyPath   string // "" means the SSH transport's configured keys
	Become    bool   // run commands with sudo -n
	RemoteTmp string // where script and file commands are staged; "" means the SSH transport's default
	ProxyJump string // jump hosts, model.ParseProxyJump's syntax; "" for none given
	CreatedAt time.Time
	UpdatedAt time.Time
	// Labels are set by operators (role=db, group=web); filled by Hosts and Host.
	Labels map[string]string
	// Groups are the inventory groups an import put the host in, ancestors
	// included (the selector group=G matches any); filled by Hosts and
	// Host, stored by ImportHosts only.
	Groups []string
	// Facts are what was last gathered over SSH (HostFacts); filled by
	// Hosts and Host.
	Facts HostFacts
	// BecomeUser is whom become runs as (sudo -n -u); "" is root.
	BecomeUser string
}

const hostCols = `id, address, port, user, key_path, become, created_at, updated_at, remote_tmp, proxy_jump, become_user`

func scanHost(row interface{ Scan(...any) error }) (Host, error) {
	var h Host
	var created, updated int64
	err := row.Scan(&h.ID, &h.Address, &h.Port, &h.User, &h.KeyPath, &h.Become, &created, &updated, &h.RemoteTmp, &h.ProxyJump, &h.BecomeUser)
	h.CreatedAt, h.UpdatedAt = fromMS(created), fromMS(updated)
	return h, err
}

// AddHost stores a host with its labels. A host with the same id is
// ErrConflict, unless replace: then its settings and labels are replaced
// (its creation time is kept). created reports whether the host is new.
func (s *Store) AddHost(ctx context.Context, h Host, replace bool, now time.Time) (created bool, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		var existed bool
		existed, err = putHost(ctx, tx, h, replace, now)
		if err != nil {
			return err
		}
		created = !existed
		if existed {
			if _, err := tx.ExecContext(ctx, `DELETE FROM host_labels WHERE host_id = ?`, h.ID); err != nil {
				return err
			}
		}
		return setHostLabels(ctx, tx, h.ID, h.Labels, nil)
	})
	if err != nil && !errors.Is(err, ErrConflict) {
		err = fmt.Errorf("add host %s: %w", h.ID, err)
	}
	return created, err
}

// ImportHosts stores many hosts in one transaction: all or none. Known ids
// get the new settings and the given labels on top of theirs (an import
// names groups, not every label); their groups are replaced by the
// import's. It reports how many hosts were added and
// how many updated.
func (s *Store) ImportHosts(ctx context.Context, hs []Host, now time.Time) (added, updated int, err error) {
	err = s.tx(ctx, func(tx *sql.Tx) error {
		added, updated = 0, 0
		for _, h := range hs {
			existed, err := putHost(ctx, tx, h, true, now)
			if err != nil {
				return fmt.Errorf("host %s: %w", h.ID, err)
			}
			if existed {
				updated++
			} else {
				added++
			}
			if err := setHostLabels(ctx, tx, h.ID, h.Labels, nil); err != nil {
				return fmt.Errorf("host %s: %w", h.ID, err)
			}
			if err := setHostGroups(ctx, tx, h.ID, h.Groups); err != nil {
				return fmt.Errorf("host %s: %w", h.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("import hosts: %w", err)
	}
	return added, updated, nil
}

// putHost inserts h, or with replace updates a known id; it reports whether
// the id was known.
func putHost(ctx context.Context, tx *sql.Tx, h Host, replace bool, now time.Time) (existed bool, err error) {
	if h.Port == 0 {
		h.Port = 22
	}
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM hosts WHERE id = ?`, h.ID).Scan(&one); {
	case err == nil:
		existed = true
	case !errors.Is(err, sql.ErrNoRows):
		return false, err
	}
	if existed && !replace {
		return true, fmt.Errorf("host %s already exists: %w", h.ID, ErrConflict)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO hosts (`+hostCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET address=excluded.address, port=excluded.port, user=excluded.user,
		key_path=excluded.key_path, become=excluded.become, updated_at=excluded.updated_at,
		remote_tmp=excluded.remote_tmp, proxy_jump=excluded.proxy_jump, become_user=excluded.become_user`,
		h.ID, h.Address, h.Port, h.User, h.KeyPath, h.Become, ms(now), ms(now), h.RemoteTmp, h.ProxyJump, h.BecomeUser)
	return existed, err
}

// Hosts lists all agentless hosts ordered by id.
func (s *Store) Hosts(ctx context.Context) ([]Host, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+hostCols+` FROM hosts ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		h, err := scanHost(rows)
		if err != nil {
			return nil, fmt.Errorf("list hosts: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list hosts: %w", err)
	}
	labels, err := s.hostLabels(ctx, "")
	if err != nil {
		return nil, err
	}
	groups, hfacts, err := s.hostGroupsFacts(ctx, "")
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Labels = labels[out[i].ID]
		out[i].Groups, out[i].Facts = groups[out[i].ID], hfacts[out[i].ID]
	}
	return out, nil
}

// Host returns one agentless host by id.
func (s *Store) Host(ctx context.Context, id string) (Host, error) {
	h, err := scanHost(s.r.QueryRowContext(ctx, `SELECT `+hostCols+` FROM hosts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return h, fmt.Errorf("host %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return h, fmt.Errorf("get host %s: %w", id, err)
	}
	labels, err := s.hostLabels(ctx, id)
	if err != nil {
		return h, err
	}
	h.Labels = labels[id]
	groups, hfacts, err := s.hostGroupsFacts(ctx, id)
	h.Groups, h.Facts = groups[id], hfacts[id]
	return h, err
}

// DeleteHost forgets an agentless host and its labels. A minion of the same
// id stays.
func (s *Store) DeleteHost(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM hosts WHERE id = ?`, id)
	return affected(res, err, "host "+id)
}

// SetHostLabels sets and removes labels of a host in one transaction.
func (s *Store) SetHostLabels(ctx context.Context, id string, set map[string]string, remove []string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM hosts WHERE id = ?`, id).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		return setHostLabels(ctx, tx, id, set, remove)
	})
	if err != nil {
		return fmt.Errorf("set labels of host %s: %w", id, err)
	}
	return nil
}

func setHostLabels(ctx context.Context, tx *sql.Tx, id string, set map[string]string, remove []string) error {
	for k, v := range set {
		if _, err := tx.ExecContext(ctx, `INSERT INTO host_labels (host_id, key, value) VALUES (?,?,?)
			ON CONFLICT(host_id, key) DO UPDATE SET value = excluded.value`, id, k, v); err != nil {
			return err
		}
	}
	for _, k := range remove {
		if _, err := tx.ExecContext(ctx, `DELETE FROM host_labels WHERE host_id = ? AND key = ?`, id, k); err != nil {
			return err
		}
	}
	return nil
}

// hostLabels returns the labels of one host, or of all when id is "".
func (s *Store) hostLabels(ctx context.Context, id string) (map[string]map[string]string, error) {
	q, args := `SELECT host_id, key, value FROM host_labels`, []any{}
	if id != "" {
		q, args = q+` WHERE host_id = ?`, append(args, id)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read host labels: %w", err)
	}
	defer rows.Close()
	out := map[string]map[string]string{}
	for rows.Next() {
		var hid, k, v string
		if err := rows.Scan(&hid, &k, &v); err != nil {
			return nil, fmt.Errorf("read host labels: %w", err)
		}
		if out[hid] == nil {
			out[hid] = map[string]string{}
		}
		out[hid][k] = v
	}
	return out, rows.Err()
}
