package model

import (
	"encoding/json"
	"time"
)

// RegisterRequest is what a minion sends to the master's
// POST /api/v1/minions/register: its identity, which the master pins.
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
	// LastUpgrade is the minion's last self-upgrade, nil if it never upgraded itself.
	LastUpgrade *LastUpgrade `json:"last_upgrade,omitempty"`
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	ID          string   `json:"id"`
	State       KeyState `json:"state"`
	Fingerprint string   `json:"fingerprint"`
	Address     string   `json:"address"`
}

// Upgrade states, in LastUpgrade.State.
const (
	UpgradeUpgraded   = "upgraded"    // the new binary runs and reached the master
	UpgradeRolledBack = "rolled_back" // the new binary failed; the old one was restored and runs
	UpgradeUpgrading  = "upgrading"   // in flight: in the minion's own record only, never reported
)

// LastUpgrade is the outcome of a minion's last self-upgrade, which it
// reports with every registration from then on (RegisterRequest) and the
// master keeps with the minion.
type LastUpgrade struct {
	From   string    `json:"from"`
	To     string    `json:"to"`
	State  string    `json:"state"`            // UpgradeUpgraded or UpgradeRolledBack
	Reason string    `json:"reason,omitempty"` // why it was rolled back
	At     time.Time `json:"at"`               // when the new binary was handed over to
}
