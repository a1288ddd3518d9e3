//go:build !windows

package hostfile

import (
	"fmt"
	"io/fs"
	"slices"
	"syscall"
)

// OwnedBy returns a trusted func for ResolveTrusted, for the local file
// system, that takes links owned by one of uids.
func OwnedBy(uids ...uint32) func(fs.FileInfo) (bool, string) {
	return func(fi fs.FileInfo) (bool, string) {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false, "owner unknown"
		}
		return slices.Contains(uids, st.Uid), fmt.Sprintf("owned by uid %d", st.Uid)
	}
}
