package jobs

import (
	"errors"
	"strings"

	"github.com/felix-ops/felix/model"
)

// checkPackages checks a package job's spec (CmdType pkg with Packages, a
// PkgSpec that passes its Check) and sets its command line, which names
// the job in lists and lets it be rerun: "pkg install nginx curl=7.88.1".
// Other jobs pass unless they carry a package spec.
func checkPackages(spec *model.JobSpec) error {
	if spec.Packages == nil {
		if spec.CmdType == model.CmdPkg {
			return invalid{errors.New("a package job needs its packages spec")}
		}
		return nil
	}
	if spec.CmdType != model.CmdPkg || spec.IsTransfer() || spec.HasPayload() {
		return invalid{errors.New("a package job is cmd_type pkg, without a command, file or transfer")}
	}
	if err := spec.Packages.Check(); err != nil {
		return invalid{err}
	}
	spec.CmdLine = PkgCmdLine(spec.Packages)
	return nil
}

// PkgCmdLine is how a package job is shown as a command line: the felix
// pkg command that asks for it, without targets and job flags.
func PkgCmdLine(p *model.PkgSpec) string {
	words := []string{"pkg", p.Action}
	for _, k := range p.Packages {
		words = append(words, k.String())
	}
	if p.Glob != "" {
		words = append(words, p.Glob)
	}
	for _, f := range []struct {
		on   bool
		flag string
	}{{p.DryRun, "--dry-run"}, {p.Refresh, "--refresh"}, {p.Manager != "", "--manager " + p.Manager},
		{p.InstallRoot != "", "--installroot " + p.InstallRoot}} {
		if f.on {
			words = append(words, f.flag)
		}
	}
	return strings.Join(words, " ")
}
