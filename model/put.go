package model

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
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

// StatMode converts a Unix st_mode, type and permission bits, to an
// fs.FileMode.
func StatMode(m uint32) fs.FileMode {
	fm := FileMode(m & 0o7777)
	switch m & 0o170000 { // S_IFMT
	case 0o040000:
		fm |= fs.ModeDir
	case 0o120000:
		fm |= fs.ModeSymlink
	case 0o010000:
		fm |= fs.ModeNamedPipe
	case 0o140000:
		fm |= fs.ModeSocket
	case 0o060000:
		fm |= fs.ModeDevice
	case 0o020000:
		fm |= fs.ModeDevice | fs.ModeCharDevice
	}
	return fm
}

// ModeBits converts an fs.FileMode's permission, setuid, setgid and
// sticky bits to Unix bits (0o7777), FileMode's inverse.
func ModeBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

// FileMode converts permission bits as a put carries them (0o4755) to an
// fs.FileMode with the setuid, setgid and sticky bits in Go's places.
func FileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// Check reports why f is not a put any host can carry out, or nil: a known
// kind; an absolute, clean destination (CheckPath) below Root when Root is
// set; permission bits only; a file's size and sha256 (64 hex digits); no
// content for a directory or a symlink; a link target, without NUL, for a
// symlink only. Every transport checks a put with it before anything is
// sent or written.
func (f PutFile) Check() error {
	if f.Kind != KindFile && f.Kind != KindDir && f.Kind != KindSymlink {
		return fmt.Errorf("unknown kind %d", f.Kind)
	}
	if err := CheckPath(f.Dest); err != nil {
		return err
	}
	if f.Root != "" && f.Root != "/" {
		if err := CheckPath(f.Root); err != nil {
			return fmt.Errorf("root: %w", err)
		}
	}
	if f.Root != "" && !strings.HasPrefix(f.Dest, strings.TrimSuffix(f.Root, "/")+"/") {
		return fmt.Errorf("root %s is not an ancestor of the destination", f.Root)
	}
	if f.Mode&^0o7777 != 0 {
		return fmt.Errorf("mode %#o has bits beyond 07777", f.Mode)
	}
	if f.Kind == KindFile {
		if f.Size < 0 {
			return fmt.Errorf("negative size %d", f.Size)
		}
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
			return fmt.Errorf("sha256 %q is not 64 hex digits", f.SHA256)
		}
	} else if f.Size != 0 || f.SHA256 != "" {
		return fmt.Errorf("a %s has no content (size %d, sha256 %q)", f.Kind, f.Size, f.SHA256)
	}
	switch {
	case f.Kind != KindSymlink && f.Link != "":
		return fmt.Errorf("a %s has no link target (%q)", f.Kind, f.Link)
	case f.Kind == KindSymlink && f.Link == "":
		return errors.New("empty link target")
	case strings.ContainsRune(f.Link, 0):
		return fmt.Errorf("link target %q contains NUL", f.Link)
	}
	return nil
}
