package model

import (
	"fmt"
	"regexp"
	"strings"
)

// Package jobs: install, remove, upgrade, list and inspect software
// packages through each host's own package manager. The master drives a
// package job as a short sequence of fixed commands on the host (query,
// change, query again) through the host's transport, so minions need
// nothing new and agentless hosts work the same way.

// Package actions (PkgSpec.Action).
const (
	PkgInstall = "install" // install the named packages (a pinned version when given)
	PkgRemove  = "remove"  // remove the named packages
	PkgUpgrade = "upgrade" // upgrade the named packages, or everything when none is named
	PkgList    = "list"    // list installed packages, optionally matching PkgSpec.Glob
	PkgInfo    = "info"    // installed and candidate versions of the named packages
)

// Package managers a host may use (PkgReport.Manager, the pkg_manager
// label, PkgSpec.Manager).
const (
	PkgApt    = "apt"
	PkgDnf    = "dnf"
	PkgYum    = "yum"
	PkgZypper = "zypper"
	PkgApk    = "apk"
	PkgPacman = "pacman"
)

// PkgManagers lists the managers felix drives, in the order a host is
// probed for them.
var PkgManagers = []string{PkgApt, PkgDnf, PkgYum, PkgZypper, PkgApk, PkgPacman}

// Per-package states in a PkgReport.
const (
	PkgChanged   = "changed"   // the manager changed it (or would, in a dry run)
	PkgUnchanged = "unchanged" // already in the requested state: the manager was not run for it
	PkgFailed    = "failed"    // the manager failed for it, or it does not exist
	PkgPresent   = "installed" // list and info: installed, nothing asked of it
	PkgAbsent    = "absent"    // info: not installed
)

// PkgLabel is the host or minion label that names a host's package
// manager, overriding detection (pkg_manager=dnf).
const PkgLabel = "pkg_manager"

// Limits of a package request, checked before anything is stored.
const (
	MaxPkgNames   = 256 // packages named in one job
	MaxPkgNameLen = 128 // bytes of one name, one version or the glob
)

// Pkg is one package a job names: a name and, for install, an optional
// exact version (NAME=VERSION on the command line).
type Pkg struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// String returns NAME or NAME=VERSION.
func (p Pkg) String() string {
	if p.Version == "" {
		return p.Name
	}
	return p.Name + "=" + p.Version
}

// PkgSpec is a validated package job, stored with the job
// (JobSpec.Packages) and carried by the command (Command.Packages).
type PkgSpec struct {
	Action   string `json:"action"`
	Packages []Pkg  `json:"packages,omitempty"`
	// Glob filters list (shell-style * and ?); "" lists everything.
	Glob string `json:"glob,omitempty"`
	// DryRun asks each manager's own simulation what would change; nothing
	// is changed.
	DryRun bool `json:"dry_run,omitempty"`
	// Refresh updates the package index first (once per host per job).
	Refresh bool `json:"refresh,omitempty"`
	// Manager, when set, is used on every host instead of the detected one
	// (or the pkg_manager label).
	Manager string `json:"manager,omitempty"`
	// InstallRoot, when set, makes the manager work on the system under
	// that directory instead of / (dnf/yum --installroot, zypper --root,
	// apk --root, pacman --root); apt has none and such a host fails.
	InstallRoot string `json:"installroot,omitempty"`
}

// PkgReport is what a package job did on one host.
type PkgReport struct {
	Manager  string      `json:"manager"`
	DryRun   bool        `json:"dry_run,omitempty"`
	Packages []PkgChange `json:"packages"`
	// Counts of Packages by state.
	Changed   int `json:"changed"`
	Unchanged int `json:"unchanged"`
	Failed    int `json:"failed"`
}

// PkgChange is one package on one host: its version before and after the
// job ("" when not installed), and what happened to it.
type PkgChange struct {
	Name      string `json:"name"`
	Before    string `json:"before,omitempty"`
	After     string `json:"after,omitempty"`
	Candidate string `json:"candidate,omitempty"` // info: the version the manager would install
	State     string `json:"state"`               // one of the Pkg* states
	Error     string `json:"error,omitempty"`
}

// AnnouncedPackagesTotal bounds the package entries of all hosts' reports
// a finished job keeps in memory and announces (a list on thousands of
// hosts); AnnouncedPackages is one host's share of it. The stored job
// has every entry.
const AnnouncedPackagesTotal = 100_000

// AnnouncedPackages is the most entries of one host's report a finished
// job of hosts hosts keeps and announces: a fair share, at least 16.
func AnnouncedPackages(hosts int) int { return max(16, AnnouncedPackagesTotal/max(hosts, 1)) }

// Count sets the report's counts from its packages.
func (r *PkgReport) Count() {
	r.Changed, r.Unchanged, r.Failed = 0, 0, 0
	for _, p := range r.Packages {
		switch p.State {
		case PkgChanged:
			r.Changed++
		case PkgUnchanged:
			r.Unchanged++
		case PkgFailed:
			r.Failed++
		}
	}
}

var (
	pkgWord = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:~-]*$`)
	pkgGlob = regexp.MustCompile(`^[A-Za-z0-9.+_:~*?-]+$`)
)

// ValidPkgManager reports why m is not a manager felix drives, or nil.
func ValidPkgManager(m string) error {
	for _, k := range PkgManagers {
		if m == k {
			return nil
		}
	}
	return fmt.Errorf("package manager %q: want one of %s", m, strings.Join(PkgManagers, ", "))
}

// ParsePkg parses NAME or NAME=VERSION, refusing anything a package
// manager could read as an option or a shell as syntax: both parts start
// with a letter or digit and hold only letters, digits and . + _ : ~ -.
func ParsePkg(s string) (Pkg, error) {
	name, version, pinned := strings.Cut(s, "=")
	p := Pkg{Name: name, Version: version}
	if err := checkPkgWord("package name", name); err != nil {
		return p, err
	}
	if pinned {
		if err := checkPkgWord("version of "+name, version); err != nil {
			return p, err
		}
	}
	return p, nil
}

// ValidPkgGlob reports why g is not a list filter, or nil.
func ValidPkgGlob(g string) error {
	if len(g) > MaxPkgNameLen {
		return fmt.Errorf("glob %.32q…: longer than %d bytes", g, MaxPkgNameLen)
	}
	if !pkgGlob.MatchString(g) || g[0] == '-' {
		return fmt.Errorf("glob %q: want letters, digits, . + _ : ~ - and the wildcards * ?, not starting with -", g)
	}
	return nil
}

func checkPkgWord(what, s string) error {
	if len(s) > MaxPkgNameLen {
		return fmt.Errorf("%s %.32q…: longer than %d bytes", what, s, MaxPkgNameLen)
	}
	if !pkgWord.MatchString(s) {
		return fmt.Errorf("%s %q: want a letter or digit, then letters, digits and . + _ : ~ -", what, s)
	}
	return nil
}

// Check reports why spec is not a package job felix can run, or nil:
// the action, the names (some for install, remove and info; none for
// list), the glob, the manager and the install root.
func (spec *PkgSpec) Check() error {
	switch spec.Action {
	case PkgInstall, PkgRemove, PkgInfo:
		if len(spec.Packages) == 0 {
			return fmt.Errorf("%s: name at least one package", spec.Action)
		}
	case PkgUpgrade:
	case PkgList:
		if len(spec.Packages) > 0 {
			return fmt.Errorf("list takes a glob, not package names")
		}
	default:
		return fmt.Errorf("action %q: want install, remove, upgrade, list or info", spec.Action)
	}
	if len(spec.Packages) > MaxPkgNames {
		return fmt.Errorf("%d packages: at most %d in one job", len(spec.Packages), MaxPkgNames)
	}
	seen := make(map[string]bool, len(spec.Packages))
	for _, p := range spec.Packages {
		if _, err := ParsePkg(p.String()); err != nil {
			return err
		}
		if p.Version != "" && spec.Action != PkgInstall {
			return fmt.Errorf("package %s: a version can only be given to install", p)
		}
		if seen[p.Name] {
			return fmt.Errorf("package %s named twice", p.Name)
		}
		seen[p.Name] = true
	}
	if spec.Glob != "" {
		if spec.Action != PkgList {
			return fmt.Errorf("a glob is only for list")
		}
		if err := ValidPkgGlob(spec.Glob); err != nil {
			return err
		}
	}
	if spec.Manager != "" {
		if err := ValidPkgManager(spec.Manager); err != nil {
			return err
		}
	}
	if spec.InstallRoot != "" {
		if err := CheckPath(spec.InstallRoot); err != nil {
			return fmt.Errorf("installroot: %w", err)
		}
	}
	if spec.DryRun && (spec.Action == PkgList || spec.Action == PkgInfo) {
		return fmt.Errorf("%s changes nothing: a dry run is for install, remove and upgrade", spec.Action)
	}
	return nil
}
