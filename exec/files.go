package exec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// PutFile is one file, directory or symlink to place at Dest on a host.
type PutFile struct {
	// Dest is the absolute, clean path of the file on the host.
	Dest string
	// Kind is what to place; the zero value is a regular file. A directory
	// is created (or given Mode and Owner when it exists); Size, SHA256 and
	// Open are only for files.
	Kind FileKind
	// Link is a symlink's target, stored as is (never resolved on the
	// host). An existing symlink at Dest is replaced atomically; a
	// directory there is an error.
	Link string
	// Root, when set, is an ancestor directory of Dest (a tree's top): no
	// existing component of Dest below Root may be a symlink, so a tree is
	// never written through a link out of it. Dest itself is checked in
	// any case (see FollowSymlinks).
	Root string
	// FollowSymlinks allows a Dest (and components below Root) that is an
	// existing symlink: the put goes where it points (on a minion still
	// inside its file_roots). Without it such a destination is refused.
	// A KindSymlink put replaces a symlink at Dest rather than following it.
	FollowSymlinks bool
	// Size is the content's length in bytes.
	Size int64
	// SHA256 is the content's sha256 in lower-case hex; the host verifies it
	// before the file is put in place, and skips the transfer when Dest
	// already has it.
	SHA256 string
	// Mode holds the permission bits; 0 keeps an existing file's and means
	// 0644 for a new file, 0755 for a new directory. Symlinks have none.
	Mode uint32
	// Owner is "user:group", resolved on the host; "" leaves it unchanged.
	Owner string
	// Mkdir creates missing parent directories (0755).
	Mkdir bool
	// Backup keeps the old file beside the new one when the content
	// changes (not for a change of mode or owner alone, made in place).
	Backup bool
	// Open returns a new reader of the content; it is called only when the
	// host needs the content.
	Open func() (io.ReadCloser, error)
}

// PutResult says what a put did.
type PutResult struct {
	// Changed is false when the host already had the content (a
	// directory, the same link target), mode and owner.
	Changed bool
	// Backup is the path of the backup of the old file, if one was made.
	Backup string
}

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

// CheckPath reports why p cannot name a file on a host, or nil: it must
// be absolute and clean (no "..", "." or doubled and trailing slashes),
// without NUL, and not the root. Every transport and the API check paths
// with it.
func CheckPath(p string) error {
	switch {
	case p == "":
		return errors.New("empty path")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains NUL", p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (it has .., . or extra slashes)", p)
	case p == "/":
		return errors.New("path / names no file")
	}
	return nil
}

// PutBackupName is the name of the backup of dest made at now.
func PutBackupName(dest string, now time.Time) string {
	return dest + putBackupInfix + now.UTC().Format(putBackupFormat)
}
