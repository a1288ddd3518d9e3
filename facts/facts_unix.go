//go:build !windows

package facts

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// osFacts reads the OS release, kernel, architecture, memory and uptime
// from /etc/os-release, uname, and /proc or sysctl (sys_*.go), handing each source's error to
// try.
func osFacts(f *Facts, try func(error)) {
	try(func() error {
		rel, err := readOSRelease()
		if err != nil {
			return err
		}
		f.OSName, f.OSVersion, f.OSPretty = rel["ID"], rel["VERSION_ID"], rel["PRETTY_NAME"]
		return nil
	}())
	try(func() error {
		var uts unix.Utsname
		if err := unix.Uname(&uts); err != nil {
			return fmt.Errorf("uname: %w", err)
		}
		f.Kernel = unix.ByteSliceToString(uts.Release[:])
		f.Arch = unix.ByteSliceToString(uts.Machine[:])
		return nil
	}())
	try(func() (err error) {
		f.MemoryBytes, err = memTotal()
		return err
	}())
	try(func() (err error) {
		f.UptimeSeconds, err = uptime()
		return err
	}())
}
