package wire

import (
	"encoding/json"
	"time"

	"github.com/felix-ops/felix/model"
)

// HostRequest is the body of POST /api/v1/hosts: an agentless host.
type HostRequest struct {
	ID     string            `json:"id,omitempty"`   // default: host
	Host   string            `json:"host"`           // DNS name or IP address
	Port   int               `json:"port,omitempty"` // default 22
	User   string            `json:"user,omitempty"` // default: the master's [ssh] user
	Key    string            `json:"key,omitempty"`  // private key file on the master; default: the configured keys
	Become bool              `json:"become,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// BecomeUser is whom become runs as (sudo -n -u); it implies become.
	// Default root.
	BecomeUser string `json:"become_user,omitempty"`
	// RemoteTmp is where script and file commands are staged on the host;
	// default the master's ssh.remote_tmp (model.ValidRemoteTmp).
	RemoteTmp string `json:"remote_tmp,omitempty"`
	// ProxyJump are jump hosts, OpenSSH's "[user@]host[:port][,...]";
	// "none" for a direct connection even when the host's group has some.
	ProxyJump string `json:"proxy_jump,omitempty"`
}

// Host is an agentless host as the API shows it.
type Host struct {
	ID     string            `json:"id"`
	Host   string            `json:"host"`
	Port   int               `json:"port"`
	User   string            `json:"user,omitempty"`
	Key    string            `json:"key,omitempty"`
	Become bool              `json:"become"`
	Labels map[string]string `json:"labels,omitempty"`
	// BecomeUser is whom become runs as; "" for root.
	BecomeUser string `json:"become_user,omitempty"`
	// RemoteTmp is the host's own staging directory, if it has one.
	RemoteTmp string `json:"remote_tmp,omitempty"`
	// ProxyJump as the host was given it; "" when it names none.
	ProxyJump string `json:"proxy_jump,omitempty"`
	// Minion is the state of a minion with the same id ("" when none): the
	// machine has both, and auto mode prefers the minion.
	Minion    model.KeyState `json:"minion,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
	// Groups are the inventory groups an import put the host in,
	// ancestors included; the target group=G matches any of them.
	Groups []string `json:"groups,omitempty"`
	// Facts are those last gathered over SSH (absent before the first
	// success), gathered at FactsGatheredAt; FactsError says why the last
	// attempt failed.
	Facts           json.RawMessage `json:"facts,omitempty"`
	FactsGatheredAt *time.Time      `json:"facts_gathered_at,omitempty"`
	FactsError      string          `json:"facts_error,omitempty"`
}

// HostFactsRequest is the body of POST /api/v1/hosts/facts: the hosts
// whose facts to gather again.
type HostFactsRequest struct {
	Targets []string `json:"targets"`
}

// HostFacts is one host's answer of POST /api/v1/hosts/facts.
type HostFacts struct {
	ID         string          `json:"id"`
	Facts      json.RawMessage `json:"facts,omitempty"`
	GatheredAt *time.Time      `json:"gathered_at,omitempty"`
	Error      string          `json:"error,omitempty"` // why this gathering failed (the facts shown are older)
}

// HostFactsList answers POST /api/v1/hosts/facts, by host id.
type HostFactsList struct {
	Hosts []HostFacts `json:"hosts"`
}

// HostList is the body of GET /api/v1/hosts.
type HostList struct {
	Hosts []Host `json:"hosts"`
}

// ImportError is one bad line of an inventory import.
type ImportError struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ImportResult answers POST /api/v1/hosts/import. On a 400, Error says
// what went wrong and Errors lists every bad line; nothing was stored.
type ImportResult struct {
	Added   int           `json:"added"`
	Updated int           `json:"updated"`
	Errors  []ImportError `json:"errors"`
	Error   string        `json:"error,omitempty"`
}

// TrustRequest is the body of POST /api/v1/hosts/{id}/trust.
type TrustRequest struct {
	// Fingerprint is the host key's SHA256 fingerprint as the operator
	// checked it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).
	Fingerprint string `json:"fingerprint"`
	// Port overrides the host's port (or 22 for an address that is not in
	// the inventory).
	Port int `json:"port,omitempty"`
}

// Trusted answers a trust request.
type Trusted struct {
	ID          string `json:"id"`
	Host        string `json:"host"`
	Port        int    `json:"port"`
	Fingerprint string `json:"fingerprint"`
}
