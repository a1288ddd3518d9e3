package wire

// PushRequest is the body of POST /api/v1/files (as JSON, or as the
// "request" part of a multipart body whose "file" part is the content).
// A single file is the "file" part or SHA256, content the master already
// stores (POST /api/v1/content). A tree is Entries, each file by SHA256.
type PushRequest struct {
	JobOptions
	// Dest is the absolute path on the hosts: the file, or the directory
	// a tree is copied to.
	Dest   string `json:"dest"`
	SHA256 string `json:"sha256,omitempty"`
	// Mode is a single file's permission bits in octal ("0644"); a tree
	// keeps each entry's mode.
	Mode           string      `json:"mode,omitempty"`
	Owner          string      `json:"owner,omitempty"` // "user:group", names or numeric ids, resolved on each host
	Mkdir          bool        `json:"mkdir,omitempty"`
	Backup         bool        `json:"backup,omitempty"`
	FollowSymlinks bool        `json:"follow_symlinks,omitempty"`
	Entries        []PushEntry `json:"entries,omitempty"`
}

// PushEntry is one entry of a pushed tree.
type PushEntry struct {
	Path   string `json:"path"` // slash-separated below dest; "." is dest itself
	Kind   string `json:"kind"` // file, dir or symlink
	Mode   string `json:"mode,omitempty"`
	SHA256 string `json:"sha256,omitempty"` // file
	Link   string `json:"link,omitempty"`   // symlink target, kept as is
}

// FetchRequest is the body of POST /api/v1/fetch: read Path from every
// target into the master's content store; each host's result names the
// copy's sha256 (GET /api/v1/content/{sha256}).
type FetchRequest struct {
	JobOptions
	Path string `json:"path"`
	// FollowSymlinks reads the file a symlink at Path points to; without
	// it a symlink is refused.
	FollowSymlinks bool `json:"follow_symlinks,omitempty"`
}

// Blob is content the master stores, by sha256.
type Blob struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}
