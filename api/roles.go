package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// Roles and the audit log. Every authenticated route is registered with
// the least role that may use it (route), so a route cannot be added
// without one; a token below it gets 403 and nothing is done. Every
// state-changing request — POST, PUT, DELETE, authenticated or not,
// allowed or not — is written to the audit log and logged.

// RouteRole is an authenticated route and the least role that may use it.
type RouteRole struct {
	Method, Path, Role string
}

// RouteRoles lists the authenticated routes with their roles (filled by
// Handler).
func (s *Server) RouteRoles() []RouteRole { return s.routes }

// Context keys the handlers set for the audit log.
const (
	ctxToken        = "token"
	ctxRole         = "role"
	ctxScope        = "scope"
	ctxAuditJob     = "audit.job"
	ctxAuditTargets = "audit.targets"
	ctxAuditWho     = "audit.who"
	ctxAuditDetail  = "audit.detail"
)

// allow answers 403 unless the request's token has at least role.
func allow(role string) gin.HandlerFunc {
	return func(c *gin.Context) {
		have := c.GetString(ctxRole)
		if model.RoleRank(have) < model.RoleRank(role) {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": fmt.Sprintf(
				"token %q (role %s) may not %s %s: it needs the %s role", c.GetString(ctxToken), have, c.Request.Method,
				c.FullPath(), role)})
			return
		}
		c.Next()
	}
}

// audit records a state-changing request once it is answered: in the
// audit log (a failure to write it is logged, the answer stands) and as a
// log line.
func (s *Server) audit(c *gin.Context) {
	c.Next()
	switch c.Request.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return
	}
	who := c.GetString(ctxToken)
	if who == "" {
		who = c.GetString(ctxAuditWho)
	}
	if who == "" {
		who = "-"
	}
	e := inventory.AuditEntry{At: s.now(), Who: who, Role: c.GetString(ctxRole), Source: c.ClientIP(),
		Method: c.Request.Method, Path: c.Request.URL.Path, Status: c.Writer.Status(),
		Targets: c.GetString(ctxAuditTargets), JobID: c.GetString(ctxAuditJob), Detail: c.GetString(ctxAuditDetail)}
	s.Log.Info("audit", "who", e.Who, "role", e.Role, "source", e.Source, "method", e.Method, "path", e.Path,
		"status", e.Status, "targets", e.Targets, "job", e.JobID, "detail", e.Detail)
	if s.Store == nil {
		return
	}
	if err := s.Store.AddAudit(c.Request.Context(), e); err != nil {
		s.Log.Error("audit log: entry not stored", "err", err)
	}
}

// auditJob tells the audit log the job a request made and its targets.
func auditJob(c *gin.Context, job inventory.Job) {
	c.Set(ctxAuditJob, job.ID)
	c.Set(ctxAuditTargets, strings.Join(job.Targets, ","))
}

func (s *Server) createToken(c *gin.Context) {
	var req wire.TokenRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	c.Set(ctxAuditDetail, "token "+req.Name)
	if err := model.ValidID(req.Name); err != nil {
		s.abort(c, badRequestf("name: %v", err))
		return
	}
	if err := model.ValidRole(req.Role); err != nil {
		s.abort(c, badRequest{err.Error()})
		return
	}
	if len(req.Scope) > 0 {
		if req.Role == model.RoleAdmin {
			s.abort(c, badRequestf("scope: an admin token cannot be scoped (it could change labels and hosts); give it role operator or read"))
			return
		}
		if len(req.Scope) > maxScope {
			s.abort(c, badRequestf("scope: %d patterns; at most %d", len(req.Scope), maxScope))
			return
		}
		for _, p := range req.Scope {
			if len(p) > model.MaxTargetLen {
				s.abort(c, badRequestf("scope: a pattern of %d bytes; at most %d", len(p), model.MaxTargetLen))
				return
			}
		}
		if _, err := s.Jobs.InScope(c.Request.Context(), req.Scope); err != nil {
			s.abort(c, err) // a bad pattern is a 400
			return
		}
	}
	var ttl time.Duration
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < 0 {
			s.abort(c, badRequestf("ttl %q: want a duration such as 720h, or 0 for no expiry", req.TTL))
			return
		}
		ttl = d
	}
	now := s.now()
	tok, err := s.Store.CreateScopedAPIToken(c.Request.Context(), req.Name, req.Role, req.Scope, ttl, now)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.Token{Name: req.Name, Role: req.Role, Token: tok, Scope: req.Scope, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	if ttl > 0 {
		exp := out.CreatedAt.Add(ttl)
		out.ExpiresAt = &exp
	}
	c.JSON(http.StatusCreated, out)
}

func (s *Server) listTokens(c *gin.Context) {
	list, err := s.Store.APITokens(c.Request.Context())
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.TokenList{Tokens: []wire.Token{}}
	for _, t := range list {
		v := wire.Token{Name: t.Name, Role: t.Role, Scope: t.Scope, CreatedAt: t.CreatedAt}
		if !t.ExpiresAt.IsZero() {
			exp := t.ExpiresAt
			v.ExpiresAt = &exp
		}
		out.Tokens = append(out.Tokens, v)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) revokeToken(c *gin.Context) {
	name := c.Param("name")
	c.Set(ctxAuditDetail, "token "+name)
	if err := s.Store.RevokeAPIToken(c.Request.Context(), name, s.now()); err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"name": name, "revoked": true})
}

// maxScope bounds the patterns of a token's scope.
const maxScope = 64

// Audit log pages.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

func (s *Server) auditLog(c *gin.Context) {
	limit := defaultAuditLimit
	if v, given := c.GetQuery("limit"); given {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			s.abort(c, badRequestf("limit %q: want 1 to %d", v, maxAuditLimit))
			return
		}
		limit = n
	}
	var before int64
	if v, given := c.GetQuery("before"); given {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			s.abort(c, badRequestf("before %q: want the next of the previous page", v))
			return
		}
		before = n
	}
	entries, next, err := s.Store.AuditLog(c.Request.Context(), before, limit)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.AuditLog{Entries: []wire.AuditEntry{}, Next: next}
	for _, e := range entries {
		out.Entries = append(out.Entries, wire.AuditEntry{ID: e.ID, At: e.At, Who: e.Who, Role: e.Role, Source: e.Source,
			Method: e.Method, Path: e.Path, Status: e.Status, Targets: e.Targets, JobID: e.JobID, Detail: e.Detail})
	}
	c.JSON(http.StatusOK, out)
}

// Scoped tokens. A token with a scope sees only the minions and hosts its
// target patterns select, and only the jobs it asked for (their deliveries
// too); a job or dry run reaching beyond it is refused (jobs.ErrOutsideScope,
// 403). What it may not see answers 404, as if it did not exist.

// scopeOf returns the request's token scope, nil for none.
func scopeOf(c *gin.Context) []string {
	v, _ := c.Get(ctxScope)
	scope, _ := v.([]string)
	return scope
}

// visibleHosts returns a check of whether a minion or host id is in the
// request's scope; nil when the token has none.
func (s *Server) visibleHosts(c *gin.Context) (func(id string) bool, error) {
	scope := scopeOf(c)
	if len(scope) == 0 {
		return nil, nil
	}
	in, err := s.Jobs.InScope(c.Request.Context(), scope)
	if err != nil {
		return nil, err
	}
	return func(id string) bool { return in[id] }, nil
}

// hostHidden answers 404 and reports true when id is beyond the request's
// scope.
func (s *Server) hostHidden(c *gin.Context, id, kind string) bool {
	visible, err := s.visibleHosts(c)
	if err != nil {
		s.abort(c, err)
		return true
	}
	if visible != nil && !visible(id) {
		s.abort(c, fmt.Errorf("%s %s: %w", kind, id, inventory.ErrNotFound))
		return true
	}
	return false
}

// ownJob runs h only for a job the request may see: any job, or for a
// scoped token the jobs it asked for (others are 404).
func (s *Server) ownJob(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if len(scopeOf(c)) > 0 {
			id := c.Param("id")
			who, err := s.Store.JobRequester(c.Request.Context(), id)
			if err == nil && who != c.GetString(ctxToken) {
				err = fmt.Errorf("job %s: %w", id, inventory.ErrNotFound)
			}
			if err != nil {
				s.abort(c, err)
				return
			}
		}
		h(c)
	}
}

// unscoped refuses tokens with a scope: what follows shows the whole fleet.
func unscoped(c *gin.Context) {
	if _, ok := c.Get(ctxScope); ok {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": fmt.Sprintf(
			"token %q is limited to some hosts and may not %s %s: it shows the whole fleet", c.GetString(ctxToken), c.Request.Method, c.FullPath())})
		return
	}
	c.Next()
}

// methodLabel is an HTTP method as a metric label: one of the standard
// methods, else "other", so a client cannot make up label values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
