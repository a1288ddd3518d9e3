package model

import (
	"context"
	"fmt"
	"io"
)

// CmdApply is the command type of a job that applies a state document
// (JobSpec.Apply).
const CmdApply = "apply"

// Limits of managed configuration, checked at the door.
const (
	MaxConfigSize      = 1 << 20 // bytes of one state document
	MaxConfigResources = 1000    // resources in one document
	MaxConfigDiff      = 64 << 10
)

// The states of one resource on one host after an apply.
const (
	ResChanged   = "changed"   // it was (or, in a dry run, would be) changed
	ResUnchanged = "unchanged" // it was already as the document says
	ResFailed    = "failed"    // it could not be made so: Error says why
	ResSkipped   = "skipped"   // a resource it requires failed, or it watches none that changed
)

// The resource types of a state document.
const (
	ResFile    = "file"
	ResDir     = "dir"
	ResSymlink = "symlink"
	ResPkg     = "pkg"
	ResService = "service"
	ResCmd     = "cmd"
)

// ResourceTypes lists the resource types, in the order the docs give them.
var ResourceTypes = []string{ResFile, ResDir, ResSymlink, ResPkg, ResService, ResCmd}

// ApplySpec is what an apply job applies: a state document — stored
// (Config names it, at revision Rev) or given inline (Config empty) —
// with Document its text, kept with the job so that a rerun applies the
// same one.
type ApplySpec struct {
	Config   string `json:"config,omitempty"`
	Rev      int    `json:"rev,omitempty"`
	Document string `json:"document"`
	// DryRun computes every change exactly — file diffs, package versions,
	// service states — and makes none.
	DryRun bool `json:"dry_run,omitempty"`
}

// Name is how the spec names its document: NAME@REV, or "inline".
func (a *ApplySpec) Name() string {
	if a.Config == "" {
		return "inline"
	}
	return fmt.Sprintf("%s@%d", a.Config, a.Rev)
}

// Apply is an apply job as the transports receive it: the spec, and how
// to render the document's resources for one host (its facts, labels
// and variables filled in), which the master supplies.
type Apply struct {
	Spec   *ApplySpec
	Render func(ctx context.Context, t Target) ([]Resource, error)
	// Content opens stored content by its sha256 (a file's Source), with
	// its size.
	Content func(sha string) (io.ReadCloser, int64, error)
}

// Resource is one rendered resource: what the host is made to hold. Paths
// are absolute and clean, names checked; Content is final (templates are
// rendered on the master, host data only ever a value in them).
type Resource struct {
	ID   string `json:"id"`
	Type string `json:"type"`

	// file, dir, symlink
	Path    string  `json:"path,omitempty"`
	Content *string `json:"content,omitempty"` // file: the whole content
	Source  string  `json:"source,omitempty"`  // file: or the sha256 of content in the master's store
	Target  string  `json:"target,omitempty"`  // symlink: where it points
	Mode    uint32  `json:"mode,omitempty"`    // 0: keep (0644 / 0755 for new ones)
	Owner   string  `json:"owner,omitempty"`
	Group   string  `json:"group,omitempty"`
	Backup  bool    `json:"backup,omitempty"`
	Absent  bool    `json:"absent,omitempty"` // file, dir, symlink, pkg: make sure it is not there

	// pkg
	Packages []Pkg `json:"packages,omitempty"`
	Latest   bool  `json:"latest,omitempty"`

	// service
	Name    string `json:"name,omitempty"`
	Running *bool  `json:"running,omitempty"`
	Enabled *bool  `json:"enabled,omitempty"`
	Reload  bool   `json:"reload,omitempty"` // onchange reloads rather than restarts

	// cmd
	Run     string `json:"run,omitempty"`
	Creates string `json:"creates,omitempty"`
	Unless  string `json:"unless,omitempty"`

	OnChange []string `json:"onchange,omitempty"`
	Require  []string `json:"require,omitempty"`
}

// ApplyReport is one host's apply: every resource in document order.
type ApplyReport struct {
	Config    string           `json:"config"`
	DryRun    bool             `json:"dry_run,omitempty"`
	Resources []ResourceResult `json:"resources"`
	Changed   int              `json:"changed"`
	Unchanged int              `json:"unchanged"`
	Failed    int              `json:"failed"`
	Skipped   int              `json:"skipped"`
}

// ResourceResult is one resource on one host.
type ResourceResult struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	State string `json:"state"` // one of the Res* states
	// Diff is a file's unified diff (at most MaxConfigDiff bytes).
	Diff string `json:"diff,omitempty"`
	// Detail says what changed otherwise: "mode 0644 → 0600",
	// "stopped → running", "nginx - → 1.22".
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Count sets the report's counts from its resources.
func (r *ApplyReport) Count() {
	r.Changed, r.Unchanged, r.Failed, r.Skipped = 0, 0, 0, 0
	for _, x := range r.Resources {
		switch x.State {
		case ResChanged:
			r.Changed++
		case ResUnchanged:
			r.Unchanged++
		case ResFailed:
			r.Failed++
		case ResSkipped:
			r.Skipped++
		}
	}
}

// MaxReportDiffs bounds the diffs of one host's report together; past it
// a resource keeps its state and detail but not its diff.
const MaxReportDiffs = 1 << 20

// diffOmitted stands in for a diff a bound dropped.
const diffOmitted = "[diff omitted: the report's diffs are past felix's bound; see the stored job]\n"

// CutDiffs returns r with its diffs kept while they total at most n bytes,
// the rest replaced by a note: r itself when nothing is cut, else a copy.
func (r *ApplyReport) CutDiffs(n int) *ApplyReport {
	total, cut := 0, -1
	for i, x := range r.Resources {
		total += len(x.Diff)
		if total > n && cut < 0 {
			cut = i
		}
	}
	if cut < 0 {
		return r
	}
	c := *r
	c.Resources = append([]ResourceResult(nil), r.Resources...)
	for i := cut; i < len(c.Resources); i++ {
		if c.Resources[i].Diff != "" {
			c.Resources[i].Diff = diffOmitted
		}
	}
	return &c
}
