package exec

import (
	"io/fs"
	"path"
	"time"
)

// What a put leaves beside a destination, the same on every transport (a
// minion's start-up sweep and operators recognise them by name): a temp file
// while the content arrives and, when asked, a backup of the old file.
const (
	PutTempPrefix   = ".felix-tmp-"
	putBackupInfix  = ".felix-bak-"
	putBackupFormat = "20060102T150405.000000000Z"
	// putMaxTempBase bounds the part of the destination's name copied into
	// the temp file's name, which must stay under NAME_MAX (255).
	putMaxTempBase = 200
)

// PutModeBits are the bits of a file mode a put sets and compares.
const PutModeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// PutTempName is the name of the temp file for dest, in dest's directory;
// random makes it unique.
func PutTempName(dest, random string) string {
	base := path.Base(dest)
	if len(base) > putMaxTempBase {
		base = base[:putMaxTempBase]
	}
	return path.Join(path.Dir(dest), PutTempPrefix+base+"-"+random)
}

// PutBackupName is the name of the backup of dest made at now.
func PutBackupName(dest string, now time.Time) string {
	return dest + putBackupInfix + now.UTC().Format(putBackupFormat)
}
