package api

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// packages starts a package job (POST /api/v1/packages): names and
// versions are checked before any host is contacted and before anything
// is stored; each host's result carries its report. dry_run, in the body
// or the query, is each manager's own simulation, not a targets-only dry
// run: the job runs, and reports what would change.
func (s *Server) packages(c *gin.Context) {
	spec, wait, err := s.pkgRequest(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.submit(c, spec, wait)
}

// pkgRequest reads a package request: its query (wait, dry_run) and body.
func (s *Server) pkgRequest(c *gin.Context) (model.JobSpec, time.Duration, error) {
	wait, dry, err := s.jobQuery(c)
	if err != nil {
		return model.JobSpec{}, 0, err
	}
	var req wire.PkgRequest
	if err := decode(c, &req, nullTargets); err != nil {
		return model.JobSpec{}, 0, err
	}
	spec, err := s.pkgSpec(c, req, dry)
	return spec, wait, err
}

// pkgSpec validates a package request into a job spec. A package job's
// default timeout is the file jobs' (files.timeout): a package manager
// may take minutes.
func (s *Server) pkgSpec(c *gin.Context, req wire.PkgRequest, dry bool) (model.JobSpec, error) {
	spec := model.JobSpec{CmdType: model.CmdPkg}
	p := &model.PkgSpec{Action: req.Action, Glob: req.Glob, DryRun: req.DryRun || dry, Refresh: req.Refresh,
		Manager: req.Manager, InstallRoot: req.InstallRoot}
	if len(req.Packages) > model.MaxPkgNames {
		return spec, badRequestf("packages: %d named; at most %d in one job", len(req.Packages), model.MaxPkgNames)
	}
	for _, w := range req.Packages {
		k, err := model.ParsePkg(w)
		if err != nil {
			return spec, badRequestf("packages: %v", err)
		}
		p.Packages = append(p.Packages, k)
	}
	if err := p.Check(); err != nil {
		return spec, badRequest{err.Error()}
	}
	if err := s.jobOptions(c, req.JobOptions, s.Config.FilesTimeout, &spec); err != nil {
		return spec, err
	}
	spec.Packages = p
	return spec, nil
}
