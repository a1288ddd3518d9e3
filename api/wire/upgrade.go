package wire

// UpgradeRequest is the body of POST /api/v1/minions/upgrade: a fleet
// upgrade of the target minions. Each host's stdout starts with its
// outcome: upgraded, unchanged or rolled_back (see the README).
type UpgradeRequest struct {
	JobOptions
	// Canary hosts run first, as one batch; the rollout stops (the rest
	// end cancelled) unless every one of them ends ok.
	Canary int `json:"canary,omitempty"`
	// Binary, when set, is the sha256 of a minion binary already in the
	// content store (POST /api/v1/content): sent to every host whose
	// os/arch it is built for. Unset: each host gets the master's dist
	// directory binary minion-<os>-<arch>.
	Binary string `json:"binary,omitempty"`
	// OS and Arch, when set, are what Binary must be built for (GOOS,
	// GOARCH names: linux, amd64); its header is checked either way.
	OS   string `json:"os,omitempty"`
	Arch string `json:"arch,omitempty"`
}
