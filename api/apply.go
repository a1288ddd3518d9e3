package api

import (
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// maxApplyBody bounds an apply request: a document of model.MaxConfigSize
// bytes, escaped in JSON, and the job's fields.
const maxApplyBody = 8 << 20

// apply starts an apply job (POST /api/v1/apply): the document is checked
// whole (state.Parse) before anything is stored or any host contacted;
// each host's result carries its report. dry_run, in the body or the
// query, computes every change and makes none.
func (s *Server) apply(c *gin.Context) {
	spec, wait, err := s.applyRequest(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.submit(c, spec, wait)
}

func (s *Server) applyRequest(c *gin.Context) (model.JobSpec, time.Duration, error) {
	wait, dry, err := s.jobQuery(c)
	if err != nil {
		return model.JobSpec{}, 0, err
	}
	var req wire.ApplyRequest
	if err := decodeLimit(c, &req, maxApplyBody, nullTargets); err != nil {
		return model.JobSpec{}, 0, err
	}
	spec := model.JobSpec{CmdType: model.CmdApply}
	a := &model.ApplySpec{Document: req.Document, DryRun: req.DryRun || dry}
	switch {
	case req.Config != "" && req.Document != "":
		return spec, 0, badRequestf("give config or document, not both")
	case req.Config != "":
		cfg, err := s.storedConfig(c, req.Config, req.Rev)
		if err != nil {
			return spec, 0, err
		}
		a.Config, a.Rev, a.Document = req.Config, cfg.rev, cfg.body
	case req.Rev != 0:
		return spec, 0, badRequestf("rev is for a stored config")
	case req.Document == "":
		return spec, 0, badRequestf("give config (a stored state document's name) or document (its text)")
	}
	if len(a.Document) > model.MaxConfigSize {
		return spec, 0, badRequestf("document: %d bytes; at most %d", len(a.Document), model.MaxConfigSize)
	}
	if err := s.jobOptions(c, req.JobOptions, s.Config.FilesTimeout, &spec); err != nil {
		return spec, 0, err
	}
	spec.Apply = a
	return spec, wait, nil
}
