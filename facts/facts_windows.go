package facts

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

// osFacts reads Windows's version and build (RtlGetVersion, which no
// compatibility shim lies to), its product name from the registry,
// memory (GlobalMemoryStatusEx) and uptime (GetTickCount64), handing each
// source's error to try. OSName is "windows", OSVersion major.minor (10.0
// for Windows 10 and 11), Kernel major.minor.build; Arch uses the names
// uname gives on Linux (x86_64, aarch64) so targets read alike.
func osFacts(f *Facts, try func(error)) {
	v := windows.RtlGetVersion()
	f.OSName = "windows"
	f.OSVersion = fmt.Sprintf("%d.%d", v.MajorVersion, v.MinorVersion)
	f.Kernel = fmt.Sprintf("%d.%d.%d", v.MajorVersion, v.MinorVersion, v.BuildNumber)
	f.Arch = unameArch(runtime.GOARCH)
	try(func() error {
		k, err := registry.OpenKey(registry.LOCAL_MACHINE, `SOFTWARE\Microsoft\Windows NT\CurrentVersion`, registry.QUERY_VALUE)
		if err != nil {
			return fmt.Errorf("read the Windows product name: %w", err)
		}
		defer k.Close()
		name, _, err := k.GetStringValue("ProductName")
		if err != nil {
			return fmt.Errorf("read the Windows product name: %w", err)
		}
		if dv, _, err := k.GetStringValue("DisplayVersion"); err == nil && dv != "" {
			name += " " + dv
		}
		f.OSPretty = strings.TrimSpace(fmt.Sprintf("%s (build %d)", name, v.BuildNumber))
		return nil
	}())
	try(func() (err error) {
		f.MemoryBytes, err = totalMemory()
		return err
	}())
	f.UptimeSeconds = int64(windows.DurationSinceBoot().Seconds())
}

// memoryStatusEx is MEMORYSTATUSEX.
type memoryStatusEx struct {
	Length               uint32
	MemoryLoad           uint32
	TotalPhys            uint64
	AvailPhys            uint64
	TotalPageFile        uint64
	AvailPageFile        uint64
	TotalVirtual         uint64
	AvailVirtual         uint64
	AvailExtendedVirtual uint64
}

var procGlobalMemoryStatusEx = windows.NewLazySystemDLL("kernel32.dll").NewProc("GlobalMemoryStatusEx")

// totalMemory returns the physical memory in bytes.
func totalMemory() (uint64, error) {
	ms := memoryStatusEx{}
	ms.Length = uint32(unsafe.Sizeof(ms))
	if r, _, err := procGlobalMemoryStatusEx.Call(uintptr(unsafe.Pointer(&ms))); r == 0 {
		return 0, fmt.Errorf("GlobalMemoryStatusEx: %w", err)
	}
	return ms.TotalPhys, nil
}
