package wire

// PkgRequest is the body of POST /api/v1/packages: a package job. Each
// host's result carries its report (HostResult.Packages).
type PkgRequest struct {
	JobOptions
	// Action is install, remove, upgrade, list or info.
	Action string `json:"action"`
	// Packages are NAME or NAME=VERSION (a version only for install).
	Packages []string `json:"packages,omitempty"`
	// Glob filters list: shell-style * and ?; "" lists everything.
	Glob string `json:"glob,omitempty"`
	// DryRun asks each host's manager for its own simulation: the job
	// runs and reports what would change; nothing changes. (It hides
	// JobOptions.DryRun: a package job has no targets-only dry run.)
	DryRun bool `json:"dry_run,omitempty"`
	// Refresh updates each host's package index first.
	Refresh bool `json:"refresh,omitempty"`
	// Manager is used on every host instead of its detected one and its
	// pkg_manager label.
	Manager string `json:"manager,omitempty"`
	// InstallRoot makes the manager work on the system under that
	// directory (dnf/yum --installroot, zypper --root, ...).
	InstallRoot string `json:"installroot,omitempty"`
}
