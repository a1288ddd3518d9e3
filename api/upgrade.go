package api

import (
	"fmt"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

// upgradeMinions starts a fleet upgrade job (POST /api/v1/minions/upgrade).
// An uploaded binary is checked from its header (never run) before
// anything is stored: not a Linux executable, or not for the os/arch the
// request names, is a 400.
func (s *Server) upgradeMinions(c *gin.Context) {
	s.fileJob(c, func() (model.JobSpec, bool, error) {
		var req wire.UpgradeRequest
		if err := decode(c, &req, nullTargets); err != nil {
			return model.JobSpec{}, false, err
		}
		spec := model.JobSpec{CmdType: model.CmdUpgrade}
		def := jobs.DefaultUpgradeTimeout
		if s.Config.MaxTimeout > 0 {
			def = min(def, s.Config.MaxTimeout)
		}
		if err := s.jobOptions(c, req.JobOptions, def, &spec); err != nil {
			return spec, false, err
		}
		u := &model.UpgradeSpec{Canary: req.Canary}
		if req.Canary < 0 {
			return spec, false, badRequestf("canary must be 0 or more")
		}
		if req.Binary != "" {
			if !content.ValidSHA(req.Binary) {
				return spec, false, badRequestf("binary %q: want the sha256 of stored content (64 lower-case hex digits)", req.Binary)
			}
			f, b, err := s.Content.Open(req.Binary)
			if err != nil {
				return spec, false, fmt.Errorf("binary: %w", err)
			}
			goos, goarch, err := model.BinaryPlatform(f)
			f.Close()
			if err != nil {
				return spec, false, badRequestf("binary %s: %v", req.Binary, err)
			}
			if (req.OS != "" && req.OS != goos) || (req.Arch != "" && req.Arch != goarch) {
				return spec, false, badRequestf("binary %s is built for %s/%s, not %s/%s", req.Binary, goos, goarch, req.OS, req.Arch)
			}
			u.Binary, u.BinarySize, u.BinaryOS, u.BinaryArch = b.SHA256, b.Size, goos, goarch
		}
		spec.Upgrade = u
		return spec, req.DryRun, nil
	})
}
