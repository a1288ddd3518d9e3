// Package wire holds the JSON bodies of felix's REST API: the request and
// response envelopes, built from package model's types where a thing has a
// shape of its own (a result's file report, a job event, a registration).
// It imports only the standard library and model, so the felix CLI can
// speak the API without linking Gin or SQLite.
package wire

import (
	"encoding/json"
	"time"

	"github.com/felix-ops/felix/model"
)

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// Minion is a minion as the API shows it.
type Minion struct {
	ID           string            `json:"id"`
	Hostname     string            `json:"hostname"`
	IPs          []string          `json:"ips"`
	Address      string            `json:"address"`
	Version      string            `json:"version"`
	OS           string            `json:"os"`
	Fingerprint  string            `json:"fingerprint"`
	State        model.KeyState    `json:"state"`
	Health       model.Health      `json:"health"`
	LastSeen     time.Time         `json:"last_seen"`
	RegisteredAt time.Time         `json:"registered_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	Labels       map[string]string `json:"labels,omitempty"`
	Facts        json.RawMessage   `json:"facts,omitempty"`
	// LastUpgrade is the minion's last self-upgrade, absent if none.
	LastUpgrade *model.LastUpgrade `json:"last_upgrade,omitempty"`
}

// MinionList is the body of GET /api/v1/minions.
type MinionList struct {
	Minions []Minion `json:"minions"`
}

// JoinTokenRequest asks for a join token.
type JoinTokenRequest struct {
	AutoAccept bool   `json:"auto_accept"`
	TTL        string `json:"ttl"`  // Go duration; empty: 24h; "0": never expires
	Uses       int    `json:"uses"` // 0: 1 for auto-accept, else unlimited; -1: unlimited
}

// JoinTokenResponse carries a new join token.
type JoinTokenResponse struct {
	Token      string     `json:"token"`
	AutoAccept bool       `json:"auto_accept"`
	Uses       int        `json:"uses"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// JobOptions are the fields every job request (exec, push, fetch,
// packages) has:
// who runs it, how, and who hears about its end.
type JobOptions struct {
	ID            string   `json:"id,omitempty"`             // the caller's own id, echoed back unchanged
	CallbackURL   string   `json:"callback_url,omitempty"`   // POSTed the results when the job ends
	Targets       []string `json:"targets,omitempty"`        // ids, globs, IPs, CIDRs, key=value filters
	Timeout       string   `json:"timeout,omitempty"`        // per host, Go duration ("30s"); default: the master's
	Batch         string   `json:"batch,omitempty"`          // hosts at a time: "10" or "10%"
	FailThreshold int      `json:"fail_threshold,omitempty"` // stop launching after this many failures
	DryRun        bool     `json:"dry_run,omitempty"`        // resolve targets only
	// Transport is "auto" (default: the minion when accepted, else SSH,
	// and SSH when the minion cannot be reached), "agent" or "ssh".
	Transport string `json:"transport,omitempty"`
	// SSHUser and Become override, for this run, the login and sudo of
	// hosts reached over SSH; minions ignore them.
	SSHUser string `json:"ssh_user,omitempty"`
	Become  bool   `json:"become,omitempty"`
	// BecomeUser makes become run as this user (sudo -n -u) for this run;
	// it implies become.
	BecomeUser string `json:"become_user,omitempty"`
}

// ExecRequest is the body of POST /api/v1/exec. It keeps the seed's fields
// (id, callback_url, cmd_line, cmd_type, file, minion_ip) and adds felix's.
type ExecRequest struct {
	JobOptions
	CmdLine string `json:"cmd_line"`
	CmdType string `json:"cmd_type,omitempty"` // "line" (default), "script" or "file"
	// File is the content for script and file types: text, or base64 when
	// FileEncoding is "base64".
	File         string            `json:"file,omitempty"`
	FileEncoding string            `json:"file_encoding,omitempty"` // "text" (default) or "base64"
	FileName     string            `json:"file_name,omitempty"`     // default: the first word of cmd_line
	MinionIP     string            `json:"minion_ip,omitempty"`     // the seed's target: one IP address, added to targets
	Env          map[string]string `json:"env,omitempty"`
	Cwd          string            `json:"cwd,omitempty"`
	// Shell is the interpreter of a Windows minion: "" or "cmd" (cmd.exe
	// /C), "powershell". Other hosts run /bin/sh and refuse the others.
	Shell string `json:"shell,omitempty"`
}

// ExecAccepted answers an exec that runs on in the background (202).
type ExecAccepted struct {
	JobID string         `json:"job_id"`
	ID    string         `json:"id,omitempty"`
	State model.JobState `json:"state"`
	Total int            `json:"total"`
}

// DryRunHost is one host a request would run on, or why it would not.
type DryRunHost struct {
	Host    string `json:"host"`
	Address string `json:"address,omitempty"`
	State   string `json:"state"` // "would run", not_accepted, unknown or unreachable
	Error   string `json:"error,omitempty"`
	// Transport is the transport the host would run on ("agent", "ssh");
	// Fallback the one auto mode tries when the minion is unreachable.
	Transport string `json:"transport,omitempty"`
	Fallback  string `json:"fallback,omitempty"`
}

// DryRun answers an exec with dry_run set.
type DryRun struct {
	Targets []string     `json:"targets"`
	Hosts   []DryRunHost `json:"hosts"`
}

// Delivery is one callback or Slack message of a job.
type Delivery struct {
	EventID     string              `json:"event_id"`
	Kind        string              `json:"kind"`
	JobID       string              `json:"job_id"`
	URL         string              `json:"url"`
	State       model.DeliveryState `json:"state"` // pending, delivered, dead
	Attempts    int                 `json:"attempts"`
	NextAt      *time.Time          `json:"next_at,omitempty"`
	LastError   string              `json:"last_error,omitempty"`
	CreatedAt   time.Time           `json:"created_at"`
	DeliveredAt *time.Time          `json:"delivered_at,omitempty"`
}

// DeliveryList is the body of GET /api/v1/deliveries.
type DeliveryList struct {
	Deliveries []Delivery `json:"deliveries"`
}

// JobList is the body of GET /api/v1/jobs; Next, when set, is the value of
// "before" for the next page.
type JobList struct {
	Jobs []Job  `json:"jobs"`
	Next string `json:"next,omitempty"`
}

// Labels is the body of PUT /api/v1/minions/{id}/labels.
type Labels struct {
	Set    map[string]string `json:"set,omitempty"`
	Remove []string          `json:"remove,omitempty"`
}

// Callback is the JSON a job's callback_url receives when the job ends.
type Callback struct {
	EventID string `json:"event_id"` // the same on every retry: deduplicate on it
	Job
}

// HostResult is one host's result.
type HostResult struct {
	Host      string      `json:"host"`
	Address   string      `json:"address,omitempty"`
	State     model.State `json:"state"`
	ExitCode  int         `json:"exit_code"`
	Signal    string      `json:"signal,omitempty"`
	Stdout    string      `json:"stdout"`
	Stderr    string      `json:"stderr"`
	Truncated bool        `json:"truncated"`
	Error     string      `json:"error,omitempty"`
	Transport string      `json:"transport,omitempty"`
	// Files is what a file job (push, fetch) did on the host.
	Files *model.FileReport `json:"files,omitempty"`
	// Packages is what a package job did on the host.
	Packages *model.PkgReport `json:"packages,omitempty"`
	// Apply is what an apply job did on the host.
	Apply      *model.ApplyReport `json:"apply,omitempty"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at"`
	DurationMS int64              `json:"duration_ms"`
}

// Job is a job with its per-host results. GET /api/v1/jobs/{id} (and the
// ?wait answer of a job request) pages the results by host: NextHost, when
// set, is the value of hosts_after for the next page. Summary always
// counts every host of the job.
type Job struct {
	JobID   string   `json:"job_id"`
	ID      string   `json:"id"`
	CmdLine string   `json:"cmd_line"`
	CmdType string   `json:"cmd_type"`
	Targets []string `json:"targets"`
	// RequestedBy names the API token that asked for the job.
	RequestedBy string         `json:"requested_by,omitempty"`
	State       model.JobState `json:"state"`
	CreatedAt   time.Time      `json:"created_at"`
	FinishedAt  *time.Time     `json:"finished_at,omitempty"`
	Total       int            `json:"total"`
	Summary     map[string]int `json:"summary"`
	Results     []HostResult   `json:"results,omitempty"`
	Deliveries  []Delivery     `json:"deliveries,omitempty"`
	NextHost    string         `json:"next_host,omitempty"`
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`          // read, operator or admin
	TTL  string `json:"ttl,omitempty"` // Go duration; empty or "0": no expiry
	// Scope, when set, are target patterns (as targets takes them): the
	// token sees and runs jobs on those hosts only. Not for admin tokens.
	Scope []string `json:"scope,omitempty"`
}

// Token describes an API token; Token, the secret, only in the answer that
// created it.
type Token struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	Token     string     `json:"token,omitempty"`
	Scope     []string   `json:"scope,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// TokenList is the body of GET /api/v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// AuditEntry is one state-changing request in the audit log.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Who     string    `json:"who"` // the API token's name, "minion:ID" for a registration, "-" unauthenticated
	Role    string    `json:"role,omitempty"`
	Source  string    `json:"source"`
	Method  string    `json:"method"`
	Path    string    `json:"path"`
	Status  int       `json:"status"`
	Targets string    `json:"targets,omitempty"`
	JobID   string    `json:"job_id,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}

// AuditLog is the body of GET /api/v1/audit; Next, when set, is the value
// of "before" for the next page.
type AuditLog struct {
	Entries []AuditEntry `json:"entries"`
	Next    int64        `json:"next,omitempty"`
}
