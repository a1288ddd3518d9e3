package wire

import "time"

// ConfigPut is the body of POST /api/v1/configs: a state document to store
// as config Name's next revision.
type ConfigPut struct {
	Name     string `json:"name"`
	Document string `json:"document"`
}

// Config is one revision of a stored state document. Document is in
// GET /api/v1/configs/{name} only; Revisions in the list only.
type Config struct {
	Name      string    `json:"name"`
	Rev       int       `json:"rev"`
	SHA256    string    `json:"sha256"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Revisions int       `json:"revisions,omitempty"`
	Document  *string   `json:"document,omitempty"`
}

// ConfigList is GET /api/v1/configs: each config's latest revision.
type ConfigList struct {
	Configs []Config `json:"configs"`
}

// ConfigHistory is GET /api/v1/configs/{name}/history, newest first.
type ConfigHistory struct {
	Name      string   `json:"name"`
	Revisions []Config `json:"revisions"`
}
