package exec

import "io"

// PutFile is content to place at Dest on a host.
type PutFile struct {
	// Dest is the absolute, clean path of the file on the host.
	Dest string
	// Size is the content's length in bytes.
	Size int64
	// SHA256 is the content's sha256 in lower-case hex; the host verifies it
	// before the file is put in place, and skips the transfer when Dest
	// already has it.
	SHA256 string
	// Mode holds the permission bits; 0 keeps an existing file's and means
	// 0644 for a new one.
	Mode uint32
	// Owner is "user:group", resolved on the host; "" leaves it unchanged.
	Owner string
	// Mkdir creates missing parent directories.
	Mkdir bool
	// Backup keeps the old file beside the new one.
	Backup bool
	// Open returns a new reader of the content; it is called only when the
	// host needs the content.
	Open func() (io.ReadCloser, error)
}

// PutResult says what a put did.
type PutResult struct {
	// Changed is false when the host already had the content, mode and owner.
	Changed bool
	// Backup is the path of the backup of the old file, if one was made.
	Backup string
}
