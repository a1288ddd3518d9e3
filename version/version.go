// Package version reports felix's version, stamped at build time with
// -ldflags "-X github.com/felix-ops/felix/version.Version=v1.2.3", falling
// back to the module version or VCS revision recorded by the Go toolchain.
package version

import "runtime/debug"

// Version is set by the linker; see the Makefile.
var Version = ""

// String returns the version, never empty.
func String() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
