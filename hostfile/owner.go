//go:build !windows

package hostfile

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// lookupOwner resolves "user:group" (either part may be empty, meaning
// unchanged; "user" alone is the user) to ids, -1 for an unchanged part.
// Names and numeric ids must both exist on the host.
func lookupOwner(owner string) (uid, gid int, err error) {
	uid, gid = -1, -1
	if owner == "" {
		return uid, gid, nil
	}
	un, gn, _ := strings.Cut(owner, ":")
	if un == "" && gn == "" {
		return -1, -1, fmt.Errorf("owner %q names neither user nor group", owner)
	}
	if un != "" {
		u, err := user.Lookup(un)
		if err != nil {
			if _, nerr := strconv.Atoi(un); nerr != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			if u, err = user.LookupId(un); err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
		}
		if uid, err = strconv.Atoi(u.Uid); err != nil {
			return -1, -1, fmt.Errorf("owner %q: uid %q: %w", owner, u.Uid, err)
		}
	}
	if gn != "" {
		g, err := user.LookupGroup(gn)
		if err != nil {
			if _, nerr := strconv.Atoi(gn); nerr != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
			if g, err = user.LookupGroupId(gn); err != nil {
				return -1, -1, fmt.Errorf("owner %q: %w", owner, err)
			}
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return -1, -1, fmt.Errorf("owner %q: gid %q: %w", owner, g.Gid, err)
		}
	}
	return uid, gid, nil
}
