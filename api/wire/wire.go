// Package wire holds the JSON bodies of felix's REST API. It imports nothing
// heavier than the standard library, so the minion and the felix CLI can
// speak the API without linking Gin or SQLite.
package wire

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ValidID reports why id cannot name a minion, or nil. Ids are host-name
// like: 1–253 bytes of letters, digits, '.', '-' and '_', starting with a
// letter or digit, with no "..": safe as a file name and a shell word.
func ValidID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("id is empty")
	case len(id) > 253:
		return fmt.Errorf("id is %d bytes; at most 253", len(id))
	case !utf8.ValidString(id):
		return fmt.Errorf("id is not valid UTF-8")
	case strings.Contains(id, ".."):
		return fmt.Errorf("id %q contains \"..\"", id)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && strings.ContainsRune(".-_", r))
		if !ok {
			return fmt.Errorf("id %q: character %q at byte %d is not allowed (letters, digits, '.', '-', '_')", id, r, i)
		}
	}
	return nil
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}

// RegisterRequest is what a minion sends to POST /api/v1/minions/register.
// It must be sent over TLS presenting CertPEM as the client certificate,
// which proves the minion holds its key.
type RegisterRequest struct {
	ID        string          `json:"id"`
	Hostname  string          `json:"hostname"`
	IPs       []string        `json:"ips"`
	GRPCAddr  string          `json:"grpc_addr"` // host:port; an empty or unspecified host means "the address you see me at"
	Version   string          `json:"version"`
	Facts     json.RawMessage `json:"facts"`
	CertPEM   string          `json:"cert_pem"`
	JoinToken string          `json:"join_token"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	Fingerprint string `json:"fingerprint"`
	Address     string `json:"address"`
}

// Minion is a minion as the API shows it.
type Minion struct {
	ID           string          `json:"id"`
	Hostname     string          `json:"hostname"`
	IPs          []string        `json:"ips"`
	Address      string          `json:"address"`
	Version      string          `json:"version"`
	OS           string          `json:"os"`
	Fingerprint  string          `json:"fingerprint"`
	State        string          `json:"state"`
	Health       string          `json:"health"`
	LastSeen     time.Time       `json:"last_seen"`
	RegisteredAt time.Time       `json:"registered_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
	Facts        json.RawMessage `json:"facts,omitempty"`
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

// ExecRequest is the body of POST /api/v1/exec. It keeps the seed's fields
// (id, callback_url, cmd_line, cmd_type, file, minion_ip) and adds felix's.
type ExecRequest struct {
	ID          string            `json:"id,omitempty"`           // the caller's own id, echoed back unchanged
	CallbackURL string            `json:"callback_url,omitempty"` // not supported yet: refused when set
	CmdLine     string            `json:"cmd_line"`
	CmdType     string            `json:"cmd_type,omitempty"` // "line" (default)
	File        string            `json:"file,omitempty"`     // for script/file types: not supported yet
	MinionIP    string            `json:"minion_ip,omitempty"`
	Targets     []string          `json:"targets,omitempty"`
	Timeout     string            `json:"timeout,omitempty"` // Go duration, e.g. "30s"
	Env         map[string]string `json:"env,omitempty"`
	Cwd         string            `json:"cwd,omitempty"`
}

// HostResult is one host's result.
type HostResult struct {
	Host       string    `json:"host"`
	Address    string    `json:"address,omitempty"`
	State      string    `json:"state"`
	ExitCode   int       `json:"exit_code"`
	Signal     string    `json:"signal,omitempty"`
	Stdout     string    `json:"stdout"`
	Stderr     string    `json:"stderr"`
	Truncated  bool      `json:"truncated"`
	Error      string    `json:"error,omitempty"`
	Transport  string    `json:"transport,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	DurationMS int64     `json:"duration_ms"`
}

// Job is a job with its per-host results.
type Job struct {
	JobID      string         `json:"job_id"`
	ID         string         `json:"id"`
	CmdLine    string         `json:"cmd_line"`
	CmdType    string         `json:"cmd_type"`
	Targets    []string       `json:"targets"`
	State      string         `json:"state"`
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt time.Time      `json:"finished_at"`
	Summary    map[string]int `json:"summary"`
	Results    []HostResult   `json:"results"`
}
