package model

import "time"

// EventType names a kind of job event.
type EventType string

// Job event types.
const (
	EventJob    EventType = "job"    // the job started (running, with Total) or ended (done, cancelled)
	EventHost   EventType = "host"   // a host started running or reached its final state
	EventOutput EventType = "output" // a chunk of a host's stdout or stderr
	EventNotice EventType = "notice" // something a follower should know, in Error (output no longer streamed)
)

// Event is one step of a job, as the master streams it to subscribers
// (GET /api/v1/jobs/{id}/events, one Server-Sent Event each, named by Type).
// State is a JobState for job events and a host State for host events.
type Event struct {
	Seq      int       `json:"seq"`
	Type     EventType `json:"type"`
	Host     string    `json:"host,omitempty"`
	State    string    `json:"state,omitempty"`
	Total    int       `json:"total,omitempty"` // job: hosts in the job
	ExitCode int       `json:"exit_code,omitempty"`
	Signal   string    `json:"signal,omitempty"`
	Error    string    `json:"error,omitempty"`
	Stream   string    `json:"stream,omitempty"` // output: stdout or stderr
	Data     string    `json:"data,omitempty"`   // output: the chunk
	// Files is a file job's report of a finished host.
	Files *FileReport `json:"files,omitempty"`
	// Packages is a package job's report of a finished host.
	Packages *PkgReport `json:"packages,omitempty"`
	// Apply is an apply job's report of a finished host.
	Apply *ApplyReport `json:"apply,omitempty"`
	At    time.Time    `json:"at"`
}
