//go:build darwin || freebsd

package facts

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// memTotal is the physical memory from sysctl: hw.memsize on macOS,
// hw.physmem on FreeBSD.
func memTotal() (uint64, error) {
	name := "hw.physmem"
	if runtime.GOOS == "darwin" {
		name = "hw.memsize"
	}
	n, err := unix.SysctlUint64(name)
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %w", name, err)
	}
	return n, nil
}

// uptime is the whole seconds since sysctl's kern.boottime.
func uptime() (int64, error) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return 0, fmt.Errorf("sysctl kern.boottime: %w", err)
	}
	return int64(time.Since(time.Unix(tv.Unix())).Seconds()), nil
}
