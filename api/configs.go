package api

import (
	"net/http"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/state"
)

// configName is what a stored state document may be called.
var configName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func checkConfigName(name string) error {
	if !configName.MatchString(name) {
		return badRequestf("config name %q: 1-128 letters, digits, '.', '_', '-', starting with a letter or digit", name)
	}
	return nil
}

func configView(c inventory.Config) wire.Config {
	return wire.Config{Name: c.Name, Rev: c.Rev, SHA256: c.SHA256, CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt,
		Revisions: c.Revisions}
}

// putConfig stores a state document (POST /api/v1/configs) as its name's
// next revision, after checking it whole (state.Parse) and that the
// content its files name is in the store: 201, or 200 with the latest
// revision when the document is that revision's already. Nothing is
// stored on a 4xx.
func (s *Server) putConfig(c *gin.Context) {
	var req wire.ConfigPut
	if err := decodeLimit(c, &req, maxApplyBody); err != nil {
		s.abort(c, err)
		return
	}
	c.Set(ctxAuditDetail, "config "+req.Name)
	if err := checkConfigName(req.Name); err != nil {
		s.abort(c, err)
		return
	}
	if len(req.Document) > model.MaxConfigSize {
		s.abort(c, badRequestf("document: %d bytes; at most %d", len(req.Document), model.MaxConfigSize))
		return
	}
	d, err := state.Parse([]byte(req.Document))
	if err != nil {
		s.abort(c, badRequestf("state document: %v", err))
		return
	}
	for _, sha := range d.Sources() {
		if s.Content == nil {
			s.abort(c, badRequestf("source sha256:%s: the master has no content store", sha))
			return
		}
		if _, err := s.Content.Stat(sha); err != nil {
			s.abort(c, badRequestf("source sha256:%s: not in the master's content store (upload it with POST /api/v1/content)", sha))
			return
		}
	}
	cfg, created, err := s.Store.PutConfig(c.Request.Context(), req.Name, []byte(req.Document),
		jobs.Requester(c.Request.Context()), s.now())
	if err != nil {
		s.abort(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, configView(cfg))
}

func (s *Server) listConfigs(c *gin.Context) {
	list, err := s.Store.Configs(c.Request.Context())
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.ConfigList{Configs: []wire.Config{}}
	for _, cfg := range list {
		out.Configs = append(out.Configs, configView(cfg))
	}
	c.JSON(http.StatusOK, out)
}

// getConfig answers a stored state document (GET /api/v1/configs/{name},
// ?rev=N, default the latest) with its text.
func (s *Server) getConfig(c *gin.Context) {
	rev := 0
	if v, ok := c.GetQuery("rev"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.abort(c, badRequestf("rev %q: want a revision number from 1", v))
			return
		}
		rev = n
	}
	cfg, err := s.Store.GetConfig(c.Request.Context(), c.Param("name"), rev)
	if err != nil {
		s.abort(c, err)
		return
	}
	v := configView(cfg)
	doc := string(cfg.Body)
	v.Document = &doc
	c.JSON(http.StatusOK, v)
}

func (s *Server) configHistory(c *gin.Context) {
	name := c.Param("name")
	hist, err := s.Store.ConfigHistory(c.Request.Context(), name)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.ConfigHistory{Name: name, Revisions: []wire.Config{}}
	for _, cfg := range hist {
		out.Revisions = append(out.Revisions, configView(cfg))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) deleteConfig(c *gin.Context) {
	name := c.Param("name")
	c.Set(ctxAuditDetail, "config "+name)
	if err := s.Store.DeleteConfig(c.Request.Context(), name); err != nil {
		s.abort(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
