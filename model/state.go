package model

// State is the state of one host of a job. Every host ends in exactly one
// final state.
type State string

// Host states.
const (
	StateOK          State = "ok"           // ran and exited 0
	StateFailed      State = "failed"       // ran and exited non-zero, or could not start
	StateTimeout     State = "timeout"      // killed at its deadline
	StateUnreachable State = "unreachable"  // the transport could not reach the host; nothing ran
	StateCancelled   State = "cancelled"    // the job was cancelled (or stopped at its fail threshold) before the host finished
	StateLost        State = "lost"         // the master stopped while the host ran; its outcome is unknown
	StateNotAccepted State = "not_accepted" // known but not accepted (pending or rejected); nothing ran
	StateUnknown     State = "unknown"      // named by the request but not in the inventory; nothing ran

	// Not final: a host waiting for its turn, and one running.
	StatePending State = "pending"
	StateRunning State = "running"
)

// FinalStates are the final host states in the order summaries show them:
// the good news first.
var FinalStates = []State{StateOK, StateFailed, StateTimeout, StateUnreachable, StateCancelled, StateLost,
	StateNotAccepted, StateUnknown}

// Final reports whether s is a final state.
func (s State) Final() bool { return s.Rank() < len(FinalStates) }

// Rank is s's position in FinalStates; len(FinalStates) for any other
// state, so sorting by Rank puts unknown words last.
func (s State) Rank() int {
	for i, f := range FinalStates {
		if s == f {
			return i
		}
	}
	return len(FinalStates)
}

// JobState is the state of a job as a whole.
type JobState string

// Job states. A job is running from its creation until every host has a
// final state; queued is reserved (jobs start at once).
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobDone      JobState = "done"
	JobCancelled JobState = "cancelled"
)

// Final reports whether a job in state s has ended.
func (s JobState) Final() bool { return s == JobDone || s == JobCancelled }

// Stream names an output stream of a remote command.
type Stream uint8

// The output streams of a command.
const (
	Stdout Stream = 1
	Stderr Stream = 2
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	switch s {
	case Stdout:
		return "stdout"
	case Stderr:
		return "stderr"
	}
	return "unknown"
}

// KeyState is where a minion's key (its pinned certificate) stands.
type KeyState string

// Key states: a registered minion waits pending until an operator accepts
// (or rejects) it; only accepted minions run jobs.
const (
	KeyPending  KeyState = "pending"
	KeyAccepted KeyState = "accepted"
	KeyRejected KeyState = "rejected"
)

// KeyStates are the key states in the order listings show them.
var KeyStates = []KeyState{KeyPending, KeyAccepted, KeyRejected}

// Health is what the master's last ping of a minion found.
type Health string

// Health values.
const (
	HealthUnknown     Health = "unknown"
	HealthOK          Health = "ok"
	HealthUnreachable Health = "unreachable"
)

// DeliveryState is where a job's announcement (a callback, a Slack
// message) stands in the master's outbox.
type DeliveryState string

// Delivery states.
const (
	DeliveryPending   DeliveryState = "pending"   // not delivered yet; retried
	DeliveryDelivered DeliveryState = "delivered" // the receiver answered 2xx
	DeliveryDead      DeliveryState = "dead"      // given up (410, or too old)
)
