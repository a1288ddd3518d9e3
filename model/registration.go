package model

import "encoding/json"

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
}

// RegisterResponse answers a registration.
type RegisterResponse struct {
	ID          string   `json:"id"`
	State       KeyState `json:"state"`
	Fingerprint string   `json:"fingerprint"`
	Address     string   `json:"address"`
}
