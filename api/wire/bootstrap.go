package wire

// BootstrapRequest is the body of POST /api/v1/bootstrap: install minions
// over SSH on the hosts, each "[user@]host[:port]".
type BootstrapRequest struct {
	Hosts []string `json:"hosts"`
	// ID names the minion; only with a single host. Default: the id in the
	// host's existing minion config, else its host name.
	ID string `json:"id,omitempty"`
	// Port is the SSH port of hosts that name none (default 22).
	Port int `json:"port,omitempty"`
	// Key is a private key file on the master for hosts not in the
	// agentless inventory (default: the master's configured keys and agent).
	Key string `json:"key,omitempty"`
	// SSHFallback records each host bootstrapped that is not in the
	// agentless inventory as an SSH host there, under its minion's id, with
	// the login used (what felix hosts add stores), so that exec falls back
	// to SSH when its minion is down. Default true; false records nothing.
	SSHFallback *bool `json:"ssh_fallback,omitempty"`
	// Become runs the installation with sudo -n, for a login that is not
	// root (hosts not in the agentless inventory; those use their own).
	Become bool `json:"become,omitempty"`
	// ProxyJump are jump hosts for hosts not in the agentless inventory,
	// OpenSSH's "[user@]host[:port][,...]" as in HostRequest; kept by the
	// SSH host recorded. Through a jump host the master URL cannot be
	// derived: bootstrap.master_url must be set.
	ProxyJump string `json:"proxy_jump,omitempty"`
}

// BootstrapResult is one host's outcome.
type BootstrapResult struct {
	Host        string `json:"host"`
	ID          string `json:"id"`
	State       string `json:"state"`            // ok or failed
	Action      string `json:"action,omitempty"` // installed, upgraded, repaired or unchanged
	Arch        string `json:"arch,omitempty"`   // amd64, arm64
	Init        string `json:"init,omitempty"`   // systemd, openrc or supervise
	Fingerprint string `json:"fingerprint,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// SSHHost is the id the host was recorded under in the agentless
	// inventory by this bootstrap; empty when nothing was recorded.
	SSHHost string `json:"ssh_host,omitempty"`
	// Note says what happened besides the bootstrap: "recorded as SSH host
	// ID", or why the host was not recorded.
	Note string `json:"note,omitempty"`
}

// BootstrapResponse answers POST /api/v1/bootstrap, one result per host in
// the order asked.
type BootstrapResponse struct {
	Results []BootstrapResult `json:"results"`
}
