package model

import "time"

// Result is how one host's run of a job ended.
type Result struct {
	Host       string
	Addr       string
	State      State
	ExitCode   int
	Signal     string
	Stdout     []byte
	Stderr     []byte
	Truncated  bool
	Error      string
	Transport  string
	Files      *FileReport // a file transfer's report
	StartedAt  time.Time
	FinishedAt time.Time
}

// FileReport is what a transfer did on one host.
type FileReport struct {
	// Changed and Unchanged count the entries a push placed and the ones
	// the host already had; a fetch leaves them zero.
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	// Size is the bytes of content pushed (all file entries, sent or not)
	// or fetched.
	Size int64 `json:"size"`
	// SHA256 is the content's sha256 for a single file pushed or fetched.
	SHA256 string `json:"sha256,omitempty"`
}

// AnnouncedOutput is the most of one stream of one host that a finished
// job's announcements carry (a callback's per-host cap). The job service
// keeps only this tail of each finished host in memory; the stored results
// have the rest.
const AnnouncedOutput = 64 << 10
