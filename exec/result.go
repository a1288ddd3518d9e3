package exec

import "time"

// State is the one final state every host of a job ends in.
type State string

// Host states.
const (
	StateOK          State = "ok"           // ran and exited 0
	StateFailed      State = "failed"       // ran and exited non-zero, or could not start
	StateTimeout     State = "timeout"      // killed at its deadline
	StateUnreachable State = "unreachable"  // the transport could not reach the host; nothing ran
	StateNotAccepted State = "not_accepted" // known but not accepted (pending or rejected); nothing ran
	StateUnknown     State = "unknown"      // named by the request but not in the inventory; nothing ran
	StateCancelled   State = "cancelled"    // the job was cancelled (or stopped at its fail threshold) before the host finished
	StateLost        State = "lost"         // the master stopped while the host ran; its outcome is unknown

	// Not final: a host waiting for its turn, and one running.
	StatePending State = "pending"
	StateRunning State = "running"
)

// Final reports whether s is a final state.
func (s State) Final() bool { return s != StatePending && s != StateRunning }

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
