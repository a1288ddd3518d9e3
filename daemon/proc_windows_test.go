package daemon

import (
	"os"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
	"unsafe"

	"golang.org/x/sys/windows"
)

// underWine reports whether this runs under Wine, which accepts a DACL
// without keeping it.
func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func TestRestrictDir(t *testing.T) {
	if underWine() {
		t.Skip("Wine does not keep NTFS ACLs; this runs on Windows")
	}
	dir := testenv.RemovableTempDir(t)
	if err := restrictDir(dir); err != nil {
		t.Fatal(err)
	}
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.DACL_SECURITY_INFORMATION)
	if err != nil {
		t.Fatal(err)
	}
	ctl, _, err := sd.Control()
	if err != nil || ctl&windows.SE_DACL_PROTECTED == 0 {
		t.Errorf("DACL control %#x, %v; want protected", ctl, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		t.Fatal(err)
	}
	if dacl.AceCount != 2 {
		t.Fatalf("DACL has %d entries; want SYSTEM and Administrators", dacl.AceCount)
	}
	for i := range uint32(dacl.AceCount) {
		var ace *windows.ACCESS_ALLOWED_ACE
		if err := windows.GetAce(dacl, i, &ace); err != nil {
			t.Fatal(err)
		}
		sid := (*windows.SID)(unsafe.Pointer(&ace.SidStart))
		if !sid.IsWellKnown(windows.WinLocalSystemSid) && !sid.IsWellKnown(windows.WinBuiltinAdministratorsSid) {
			t.Errorf("entry %d grants %s; want SYSTEM or Administrators only", i, sid)
		}
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the directory after restrictDir: %v", err)
	}
}

func TestWindowsLock(t *testing.T) {
	dir := testenv.RemovableTempDir(t)
	unlock, err := LockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	f, err := openLockFile(dir + `\` + LockFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lockFile(f); err != errLocked {
		t.Errorf("a second lock: %v; want errLocked", err)
	}
}
