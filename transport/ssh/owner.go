package ssh

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
	"github.com/pkg/sftp"
)

// numericID is a uid or gid given as a number.
var numericID = regexp.MustCompile(`^[0-9]{1,10}$`)

// ownerName is a user or group name Put resolves on the host.
var ownerName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// ownerScript prints the uid of the user named in FELIX_OWNER_USER and
// the gid of the group named in FELIX_OWNER_GROUP as "uid:gid" (either
// empty when not asked). The names reach it as environment data, never as
// part of the command line.
const ownerScript = `u= g=
if [ -n "$FELIX_OWNER_USER" ]; then u=$(id -u -- "$FELIX_OWNER_USER") || exit 3; fi
if [ -n "$FELIX_OWNER_GROUP" ]; then
	g=$(getent group -- "$FELIX_OWNER_GROUP" 2>/dev/null | cut -d: -f3)
	[ -n "$g" ] || g=$(awk -F: -v n="$FELIX_OWNER_GROUP" '$1 == n { print $3; exit }' /etc/group)
	[ -n "$g" ] || { echo "no such group: $FELIX_OWNER_GROUP" >&2; exit 4; }
fi
echo "$u:$g"`

// resolveOwner turns "user:group" (either part a name or a number, or
// empty) into ids, -1 for a part not asked. Numbers are taken as they
// are; names are looked up on the host with ownerScript, in one command.
func (p *Pool) resolveOwner(ctx context.Context, t model.Target, owner string) (uid, gid int, err error) {
	if owner == "" {
		return -1, -1, nil
	}
	un, gn, _ := strings.Cut(owner, ":")
	ids := [2]int{-1, -1}
	var env []string
	for i, part := range []string{un, gn} {
		switch {
		case part == "":
		case numericID.MatchString(part):
			n, err := strconv.ParseUint(part, 10, 32)
			if err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			ids[i] = int(n)
		case ownerName.MatchString(part):
			env = append(env, []string{"FELIX_OWNER_USER=", "FELIX_OWNER_GROUP="}[i]+part)
		default:
			return -1, -1, fmt.Errorf("owner %q: want user:group names or numeric ids", owner)
		}
	}
	if un == "" && gn == "" {
		return -1, -1, fmt.Errorf("owner %q names neither user nor group", owner)
	}
	if len(env) == 0 {
		return ids[0], ids[1], nil
	}
	stdout, stderr, code, err := p.runCollect(ctx, t, runSpec{line: ownerScript, env: env, timeout: 30 * time.Second})
	if err != nil {
		return -1, -1, fmt.Errorf("owner %q: look up on the host: %w", owner, err)
	}
	if code != 0 {
		return -1, -1, fmt.Errorf("owner %q: %s", owner, bytes.TrimSpace(stderr))
	}
	u, g, ok := strings.Cut(string(bytes.TrimSpace(stdout)), ":")
	for i, v := range []string{u, g} {
		if v == "" || ids[i] >= 0 {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || !ok {
			return -1, -1, fmt.Errorf("owner %q: the host answered %q", owner, stdout)
		}
		ids[i] = int(n)
	}
	return ids[0], ids[1], nil
}

// ownerOf returns the uid and gid of a file described over SFTP.
func ownerOf(fi os.FileInfo) (int, int, bool) {
	if st, ok := fi.Sys().(*sftp.FileStat); ok {
		return int(st.UID), int(st.GID), true
	}
	return -1, -1, false
}
