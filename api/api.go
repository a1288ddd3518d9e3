// Package api is the master's REST API (Gin, over HTTPS with the master's
// certificate): minions and their keys, agentless hosts, tokens, jobs.
// Every route but minion registration and /healthz needs a bearer token.
// Errors are JSON {"error": "..."} with the matching status; the mapping
// from domain errors to statuses lives in one place (abort).
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/semaphore"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

// maxBody bounds every JSON request body.
const maxBody = 4 << 20

// Runner runs jobs; satisfied by *jobs.Service.
type Runner interface {
	Submit(ctx context.Context, spec model.JobSpec, payload string) (inventory.Job, error)
	DryRun(ctx context.Context, spec model.JobSpec) ([]model.Target, error)
	// InScope returns the ids of the hosts the target patterns scope select.
	InScope(ctx context.Context, scope []string) (map[string]bool, error)
	Wait(ctx context.Context, id string) bool
	Cancel(ctx context.Context, id string) error
	Rerun(ctx context.Context, id string, onlyFailed bool) (inventory.Job, error)
	Events(ctx context.Context, id string, fn func(model.Event) error) error
	StorePayload(content io.Reader, limit int64) (string, int64, error)
	// RefreshFacts gathers again the facts of the SSH hosts the patterns select.
	RefreshFacts(ctx context.Context, patterns []string) ([]jobs.HostFactsResult, error)
}

// Server holds what the handlers use.
type Server struct {
	Store  *inventory.Store
	Jobs   Runner
	Log    *slog.Logger
	Now    func() time.Time
	Config Config
	// Forget, if set, is called when a minion is rejected or deleted, and
	// when it registers (again), so its cached connection is closed.
	Forget func(id string)
	// CheckCallback, if set, refuses callback URLs the master must not call
	// (loopback, link-local, its own addresses) unless allow-listed.
	CheckCallback func(ctx context.Context, url string) error
	// SSH, if set, records host keys for POST /api/v1/hosts/{id}/trust;
	// nil when the master runs without an SSH transport (503).
	SSH HostKeys
	// Bootstrap, if set, installs minions over SSH (POST /api/v1/bootstrap);
	// nil answers 503.
	Bootstrap Bootstrapper
	// Content stores what pushes send and fetches bring back; nil answers
	// 503 on the file routes.
	Content Contents
	// Degraded, if set, says why the master cannot do its work now (its
	// data directory nearly full: see DiskCheck), or "" when it can;
	// /healthz answers 503 "degraded" with the reason.
	Degraded func() string
	// CheckHealth, if set, is called when a minion is accepted and when an
	// accepted minion registers, so the master checks its health at once
	// instead of at its next health round.
	CheckHealth func(id string)
	// Metrics, if set, serves the master's metrics at GET /metrics to
	// tokens of any role without a scope (a scoped token sees only its
	// hosts; metrics are the whole fleet's). Nil: no /metrics route here
	// (the master serves them on metrics_listen instead, or not at all).
	Metrics http.Handler
	// Requests, if set, is told of every request answered, by route
	// template (felix_api_requests_total).
	Requests RequestObserver

	routes    []RouteRole         // the authenticated routes, made by Handler
	limits    *limiters           // made by Handler from Config.Limits
	bodies    *semaphore.Weighted // large JSON bodies in flight, BodiesInFlight bytes
	bodiesMax int64
	regSlots  chan struct{} // registrations in flight (Limits.RegistrationsInFlight); nil: no bound
	regRetry  *retrySpread  // the Retry-After of refused registrations
	ui        *uiSessions   // the web dashboard's sessions, made by Handler
}

// Config is what the API needs from the master's configuration.
type Config struct {
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// MaxFileSize bounds the content of script and file commands.
	MaxFileSize int64
	// FilesTimeout is a file job's per-host timeout when it names none.
	FilesTimeout time.Duration
	Version      string
	// TrustedProxies are the addresses and CIDRs whose forwarding headers
	// name the client (gin's trusted proxies); none by default, so a
	// client cannot forge the address logged for it.
	TrustedProxies []string
	// Limits bound failed authentications per source and requests per
	// token (see Limits); the zero value limits nothing.
	Limits Limits
	// BodiesInFlight bounds the bytes of large JSON bodies read at once
	// (see reserveBody); 0 means DefaultBodiesInFlight.
	BodiesInFlight int64
}

// Handler returns the Gin engine with every route.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	s.limits = newLimiters(s.Config.Limits)
	s.bodiesMax = s.Config.BodiesInFlight
	if s.bodiesMax <= 0 {
		s.bodiesMax = DefaultBodiesInFlight
	}
	s.bodies = semaphore.NewWeighted(s.bodiesMax)
	s.regSlots = nil
	s.regRetry = newRetrySpread()
	if n := s.Config.Limits.RegistrationsInFlight; n > 0 {
		s.regSlots = make(chan struct{}, n)
	}
	r := gin.New()
	// Paths are taken as they are: no redirect to a path with or without a
	// trailing slash (a 301 with an HTML body), and an empty segment
	// ("/api/v1/jobs//cancel", "/api/v1/jobs/") is no route at all — not an
	// empty parameter — so every such request gets the JSON 404 below.
	if err := r.SetTrustedProxies(s.Config.TrustedProxies); err != nil {
		// The master checks them at start; trust none rather than all.
		s.Log.Error("trusted proxies refused: trusting none", "err", err)
		_ = r.SetTrustedProxies(nil)
	}
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.RemoveExtraSlash = false
	r.Use(s.logRequests, gin.CustomRecovery(func(c *gin.Context, err any) {
		s.Log.Error("panic in handler", "path", c.Request.URL.Path, "panic", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
	}), noEmptySegments)
	r.NoRoute(noRoute)
	r.HandleMethodNotAllowed = true
	r.NoMethod(func(c *gin.Context) {
		c.JSON(http.StatusMethodNotAllowed, gin.H{"error": "method not allowed: " + c.Request.Method + " " + c.Request.URL.Path})
	})
	r.GET("/healthz", s.healthz)
	if s.Metrics != nil {
		r.GET("/metrics", s.authenticate, allow(model.RoleRead), unscoped, gin.WrapH(s.Metrics))
	}
	v1 := r.Group("/api/v1")
	v1.POST("/minions/register", s.audit, s.register)
	auth := v1.Group("", s.audit, s.authenticate)
	s.routes = nil
	route := func(role, method, path string, h gin.HandlerFunc) {
		s.routes = append(s.routes, RouteRole{Method: method, Path: "/api/v1" + path, Role: role})
		auth.Handle(method, path, allow(role), h)
	}
	read, operator, admin := model.RoleRead, model.RoleOperator, model.RoleAdmin
	route(read, "GET", "/minions", s.listMinions)
	route(read, "GET", "/minions/:id", s.getMinion)
	route(operator, "POST", "/minions/upgrade", s.upgradeMinions)
	route(admin, "DELETE", "/minions/:id", s.deleteMinion)
	route(admin, "POST", "/minions/:id/accept", s.setState(model.KeyAccepted))
	route(admin, "POST", "/minions/:id/reject", s.setState(model.KeyRejected))
	route(admin, "PUT", "/minions/:id/labels", s.setLabels)
	route(admin, "POST", "/tokens/join", s.createJoinToken)
	route(admin, "POST", "/tokens", s.createToken)
	route(admin, "GET", "/tokens", s.listTokens)
	route(admin, "DELETE", "/tokens/:name", s.revokeToken)
	route(admin, "GET", "/audit", s.auditLog)
	route(operator, "POST", "/exec", s.exec)
	route(read, "GET", "/jobs", s.listJobs)
	route(read, "GET", "/jobs/:id", s.ownJob(s.getJob))
	route(read, "GET", "/jobs/:id/events", s.ownJob(s.jobEvents))
	route(read, "GET", "/jobs/:id/hosts/:host", s.ownJob(s.getJobHost))
	route(read, "GET", "/jobs/:id/hosts/:host/output", s.ownJob(s.getJobHostOutput))
	route(operator, "POST", "/jobs/:id/cancel", s.ownJob(s.cancelJob))
	route(operator, "POST", "/jobs/:id/rerun", s.ownJob(s.rerunJob))
	route(read, "GET", "/deliveries", s.listDeliveries)
	route(admin, "POST", "/hosts", s.addHost)
	route(admin, "POST", "/hosts/import", s.importHosts)
	route(operator, "POST", "/hosts/facts", s.refreshHostFacts)
	route(read, "GET", "/hosts", s.listHosts)
	route(read, "GET", "/hosts/:id", s.getHost)
	route(admin, "DELETE", "/hosts/:id", s.deleteHost)
	route(admin, "PUT", "/hosts/:id/labels", s.setHostLabels)
	route(admin, "POST", "/hosts/:id/trust", s.trustHost)
	route(admin, "POST", "/bootstrap", s.bootstrap)
	route(operator, "POST", "/content", s.putContent)
	route(read, "GET", "/content/:sha256", s.getContent)
	route(read, "HEAD", "/content/:sha256", s.getContent)
	route(operator, "POST", "/files", s.pushFiles)
	route(operator, "POST", "/fetch", s.fetchFiles)
	route(operator, "POST", "/packages", s.packages)
	route(operator, "POST", "/apply", s.apply)
	route(operator, "POST", "/configs", s.putConfig)
	route(read, "GET", "/configs", s.listConfigs)
	route(read, "GET", "/configs/:name", s.getConfig)
	route(read, "GET", "/configs/:name/history", s.configHistory)
	route(operator, "DELETE", "/configs/:name", s.deleteConfig)
	v1.GET("/openapi.yaml", s.openAPI)
	s.uiRoutes(r)
	return r
}

// noRoute answers a path that names no endpoint.
func noRoute(c *gin.Context) {
	c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "no such endpoint: " + c.Request.Method + " " + c.Request.URL.Path})
}

// noEmptySegments answers a path with an empty segment, a trailing slash
// included, as no endpoint: Gin would otherwise match an empty parameter
// (POST /api/v1/jobs//cancel) or, for GET /api/v1/jobs/, try to redirect.
func noEmptySegments(c *gin.Context) {
	if p := c.Request.URL.Path; p != "/" && p != "/ui/" && (strings.Contains(p, "//") || strings.HasSuffix(p, "/")) {
		noRoute(c)
		return
	}
	c.Next()
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// RequestObserver is told of every request the API answered; satisfied
// by *metrics.Metrics. route is the route's template ("/api/v1/jobs/:id"),
// "" when no route matched: never the raw path, whose values are endless.
type RequestObserver interface {
	Request(method, route string, status int)
}

func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	if s.Requests != nil {
		s.Requests.Request(methodLabel(c.Request.Method), c.FullPath(), c.Writer.Status())
	}
	s.Log.Debug("http", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"took", time.Since(start), "remote", c.ClientIP())
}

func (s *Server) healthz(c *gin.Context) {
	if _, err := s.Store.SchemaVersion(c.Request.Context()); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unhealthy", "error": "database: " + err.Error()})
		return
	}
	if s.Degraded != nil {
		if why := s.Degraded(); why != "" {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "degraded", "error": why, "version": s.Config.Version})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ok", "version": s.Config.Version})
}

// DiskCheck returns a Degraded check that reports the file system of dir
// when less than minFree bytes are free there: then SQLite and the stores
// cannot write, and jobs cannot end until space returns.
func DiskCheck(dir string, minFree uint64) func() string {
	return func() string {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return fmt.Sprintf("data directory %s: %v", dir, err)
		}
		if free := st.Bavail * uint64(st.Bsize); free < minFree {
			return fmt.Sprintf("disk nearly full: %d KiB free in %s (want at least %d KiB); jobs cannot be stored or end until space is freed",
				free>>10, dir, minFree>>10)
		}
		return ""
	}
}

// badRequest marks an error as the client's fault (400).
type badRequest struct{ msg string }

func (e badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error { return badRequest{fmt.Sprintf(format, args...)} }

// abort answers with the status that err means, in one place.
func (s *Server) abort(c *gin.Context, err error) {
	var br badRequest
	var mbe *http.MaxBytesError
	status := http.StatusInternalServerError
	msg := err.Error()
	switch {
	case errors.As(err, &br):
		status = http.StatusBadRequest
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit)
	case errors.Is(err, inventory.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, inventory.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, inventory.ErrInvalidToken):
		status = http.StatusUnauthorized
		c.Header("WWW-Authenticate", `Bearer realm="felix"`)
	case errors.Is(err, jobs.ErrBadTarget):
		status = http.StatusBadRequest
	case errors.Is(err, jobs.ErrNoTargets):
		status = http.StatusNotFound
	case errors.Is(err, jobs.ErrOutsideScope):
		status = http.StatusForbidden
	case errors.Is(err, jobs.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case errors.Is(err, jobs.ErrNoContent), errors.Is(err, jobs.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, jobs.ErrShuttingDown):
		status = http.StatusServiceUnavailable
	case inventory.IsFull(err):
		status, msg = http.StatusInsufficientStorage, "the master's disk is full: nothing was stored; free space in its data directory and try again"
		s.Log.Error("request refused: disk full", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
	}
	if status == http.StatusInternalServerError {
		s.Log.Error("request failed", "method", c.Request.Method, "path", c.Request.URL.Path, "err", err)
		msg = "internal error; see the master's log"
	}
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// decode reads one JSON object strictly: unknown fields, trailing data,
// nulls (but in the fields allowNull names) and oversized bodies are errors
// that name the problem.
func decode(c *gin.Context, v any, allowNull ...string) error {
	return decodeLimit(c, v, maxBody, allowNull...)
}

// decodeLimit is decode with a body limit of its own.
func decodeLimit(c *gin.Context, v any, limit int64, allowNull ...string) error {
	return decodeWith(c, v, limit, true, allowNull...)
}

// decodeWith is decodeLimit, refusing unknown fields only when strict.
func decodeWith(c *gin.Context, v any, limit int64, strict bool, allowNull ...string) error {
	body := http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	nulls := &nullScanner{allow: allowNull}
	dec := json.NewDecoder(io.TeeReader(body, nulls))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			return badRequestf("malformed JSON: empty body")
		case errors.As(err, &se):
			return badRequestf("malformed JSON at byte %d: %v", se.Offset, err)
		case errors.As(err, &te):
			return badRequestf("malformed JSON: %s", typeError(te))
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badRequestf("malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return badRequestf("malformed JSON: %v", err)
	}
	if dec.More() {
		return badRequestf("malformed JSON: data after the object")
	}
	return nulls.err
}

// nullScanner watches a JSON body stream by, as it is decoded, for a null
// value: decoded into a Go value it would become the zero value and be
// taken for the default ({"uses": null} as no uses given), so it is
// refused instead. Top-level fields named in allow may be null or hold
// nulls. It holds no more than the current key, whatever the body's size.
type nullScanner struct {
	allow      []string
	depth      int
	inString   bool
	escaped    bool
	expectKey  bool   // at depth 1 in an object: the next string is a key
	readingKey bool   // the string being read is a top-level key
	key        []byte // the last top-level key, raw (escapes kept)
	done       bool   // the first value has ended; what follows is the decoder's business
	err        error  // the first null refused
}

// maxKey bounds the bytes of a key kept; no field name is longer.
const maxKey = 256

func (n *nullScanner) Write(p []byte) (int, error) {
	for i := 0; i < len(p) && !n.done && n.err == nil; i++ {
		if n.inString && !n.escaped && !n.readingKey {
			// Inside a value string only a quote or a backslash matters:
			// skip to it (a file's content is most of a large body).
			j := bytes.IndexAny(p[i:], `"\`)
			if j < 0 {
				break
			}
			i += j
		}
		n.step(p[i])
	}
	return len(p), nil
}

func (n *nullScanner) step(b byte) {
	if n.inString {
		switch {
		case n.escaped:
			n.escaped = false
		case b == '\\':
			n.escaped = true
		case b == '"':
			n.inString, n.readingKey = false, false
			return
		}
		if n.readingKey && len(n.key) < maxKey {
			n.key = append(n.key, b)
		}
		return
	}
	switch b {
	case '"':
		n.inString = true
		if n.depth == 1 && n.expectKey {
			n.readingKey, n.expectKey, n.key = true, false, n.key[:0]
		}
	case '{', '[':
		n.depth++
		if n.depth == 1 {
			n.expectKey = b == '{'
		}
	case '}', ']':
		n.depth--
		n.done = n.depth <= 0
	case ',':
		if n.depth == 1 {
			n.expectKey = true
		}
	case 'n': // outside a string only null starts with n
		if n.depth == 0 {
			n.err = badRequestf("malformed JSON: the body is null; want an object")
			return
		}
		var key string
		if err := json.Unmarshal(append(append([]byte{'"'}, n.key...), '"'), &key); err != nil {
			key = string(n.key)
		}
		for _, a := range n.allow {
			if strings.EqualFold(a, key) { // as encoding/json matches names
				return
			}
		}
		n.err = badRequestf("malformed JSON: field %q is or holds null; leave a field out for its default", key)
	}
}

// authenticate requires a valid bearer API token.
func (s *Server) authenticate(c *gin.Context) {
	if !s.authGuard(c) {
		return
	}
	h := c.GetHeader("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || strings.TrimSpace(tok) == "" {
		s.authFailed(c)
		c.Header("WWW-Authenticate", `Bearer realm="felix"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "missing bearer token (Authorization: Bearer TOKEN)"})
		return
	}
	t, err := s.Store.APIToken(c.Request.Context(), inventory.HashToken(strings.TrimSpace(tok)), s.now())
	if err != nil {
		if errors.Is(err, inventory.ErrInvalidToken) {
			s.authFailed(c)
			err = fmt.Errorf("api token: %w", err)
		}
		s.abort(c, err)
		return
	}
	s.actAs(c, t)
}

// actAs lets the request on as token t: its name, role and scope, its
// request budget.
func (s *Server) actAs(c *gin.Context, t inventory.APIToken) {
	c.Set(ctxToken, t.Name)
	c.Set(ctxRole, t.Role)
	ctx := jobs.WithRequester(c.Request.Context(), t.Name) // the jobs it makes name it
	if len(t.Scope) > 0 {
		c.Set(ctxScope, t.Scope)
		ctx = jobs.WithScope(ctx, t.Scope)
	}
	c.Request = c.Request.WithContext(ctx)
	if !s.tokenGuard(c, t.Name) {
		return
	}
	c.Next()
}

// typeError says which field of a request has the wrong JSON type, named as
// the caller wrote it: the names of embedded Go structs (JobOptions) that
// encoding/json puts in the path are left out.
func typeError(te *json.UnmarshalTypeError) string {
	var path []string
	for _, p := range strings.Split(te.Field, ".") {
		if p != "" && !(p[0] >= 'A' && p[0] <= 'Z') {
			path = append(path, p)
		}
	}
	return fmt.Sprintf("field %q must be %s, not %s", strings.Join(path, "."), te.Type, te.Value)
}
