package model

import (
	"time"
	"unicode/utf8"
)

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
	Files      *FileReport  // a file transfer's report
	Packages   *PkgReport   // a package job's report
	Apply      *ApplyReport // an apply job's report
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

// Bounds of what a finished job's announcements carry: at most
// AnnouncedOutput of one stream of one host (a callback's per-host cap),
// and at most AnnouncedTotal of all hosts' output together.
const (
	AnnouncedOutput = 64 << 10
	AnnouncedTotal  = 16 << 20
)

// AnnouncedTail is how much of each stream of each host a job of hosts
// hosts keeps in memory for its announcements once the host's result is
// stored: AnnouncedOutput, less in a big job — twice each stream's fair
// share of AnnouncedTotal, so the callback can still give hosts with much
// output the room others leave — but at least 1 KiB. A job's memory for
// output thus stays near 2 × AnnouncedTotal however many hosts it has.
func AnnouncedTail(hosts int) int {
	if hosts < 1 {
		return AnnouncedOutput
	}
	return min(AnnouncedOutput, max(1<<10, 2*AnnouncedTotal/(2*hosts)))
}

// RuneStart drops the bytes a cut left of a UTF-8 sequence at the start
// of b (at most three), so that the tail of cut output starts at a
// character.
func RuneStart(b []byte) []byte {
	for i := 0; i < len(b) && i < utf8.UTFMax-1; i++ {
		if utf8.RuneStart(b[i]) {
			return b[i:]
		}
	}
	if len(b) >= utf8.UTFMax-1 {
		return b[utf8.UTFMax-1:]
	}
	return b[:0]
}

// CutPackages keeps at most n entries of r's package report (a copy when
// it cuts), setting Truncated when it cuts; the counts stay those of the
// whole report.
func (r *Result) CutPackages(n int) {
	if p := r.Packages; p != nil && len(p.Packages) > n {
		short := *p
		short.Packages = p.Packages[:n:n]
		r.Packages, r.Truncated = &short, true
	}
}
