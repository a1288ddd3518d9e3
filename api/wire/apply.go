package wire

// ApplyRequest is the body of POST /api/v1/apply: apply a state document
// — a stored one (Config, at revision Rev, 0 the latest) or the text
// itself (Document) — to the targets. Each host's result carries its
// report (HostResult.Apply).
type ApplyRequest struct {
	JobOptions
	Config   string `json:"config,omitempty"`
	Rev      int    `json:"rev,omitempty"`
	Document string `json:"document,omitempty"`
	// DryRun computes every change exactly (file diffs, package versions,
	// service states) and makes none: the job runs and reports what would
	// change. (It hides JobOptions.DryRun: an apply job has no
	// targets-only dry run.)
	DryRun bool `json:"dry_run,omitempty"`
}
