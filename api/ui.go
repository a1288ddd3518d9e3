package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// The web dashboard is served at /ui/ on the API's own TLS listener. Its
// assets (plain HTML, CSS and JS, embedded; no build step) hold no data;
// the data comes from /ui/api/..., which takes a session cookie instead of
// a bearer token:
//
//   - POST /ui/api/login with {"token": API_TOKEN} checks the token and
//     starts a session: a random id, kept server-side with the token's
//     hash, sent as the cookie __Host-felix-session (HttpOnly, Secure,
//     SameSite=Strict, Path=/). Every request looks the token up again, so
//     a revoked or expired token ends its sessions at once.
//   - Every request but GET and HEAD must carry the session's CSRF token
//     in X-CSRF-Token (the page reads it from the login answer or
//     GET /ui/api/session, which a cross-site page cannot read), be JSON,
//     and come from the master's own origin when the browser says where it
//     comes from (Origin, Sec-Fetch-Site): a cross-site form post carries
//     none of these and is refused before it reaches a handler.
//   - POST /ui/api/logout ends the session.
//
// The bearer-token API never looks at the cookie, so a cookie alone
// reaches no /api/v1 route. Every /ui/ answer sets a strict
// Content-Security-Policy (no inline script) and forbids framing.

//go:embed ui
var uiFiles embed.FS

const (
	uiCookie     = "__Host-felix-session"
	uiCSRFHeader = "X-CSRF-Token"
	// uiSessionTTL is how long a session lasts from login, at most.
	uiSessionTTL = 12 * time.Hour
	// uiMaxSessions bounds the sessions held; logins past it are refused
	// (503) until some expire or log out.
	uiMaxSessions = 10000
	// uiMaxTokenSessions bounds one token's sessions: a login past it ends
	// that token's oldest session, so one token cannot fill the table.
	uiMaxTokenSessions = 16
	// uiLoginBody bounds a login request.
	uiLoginBody = 4 << 10
	// uiExecBody bounds a run request from the page: a command line.
	uiExecBody = 2*model.MaxCmdLine + 4<<10
	// uiCSP is the dashboard's Content-Security-Policy: its own files only,
	// no inline script or style, no framing, no form posting elsewhere.
	uiCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

// uiSession is one login: whose token it stands for and until when.
type uiSession struct {
	tokenHash string // inventory.HashToken of the API token
	csrf      string
	expires   time.Time
	seq       uint64 // the order of logins: the oldest of a token's sessions ends first
}

// uiSessions are the dashboard's sessions, by the hash of their id (a
// leaked memory dump does not hand out cookies).
type uiSessions struct {
	mu  sync.Mutex // guards m and seq
	m   map[string]uiSession
	seq uint64
}

func newUISessions() *uiSessions { return &uiSessions{m: map[string]uiSession{}} }

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// randomID returns 32 random bytes, base64url.
func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// start makes a session for the token; false when the table is full.
func (u *uiSessions) start(tokenHash string, now time.Time) (id string, s uiSession, ok bool, err error) {
	if id, err = randomID(); err != nil {
		return "", s, false, err
	}
	csrf, err := randomID()
	if err != nil {
		return "", s, false, err
	}
	s = uiSession{tokenHash: tokenHash, csrf: csrf, expires: now.Add(uiSessionTTL)}
	u.mu.Lock()
	defer u.mu.Unlock()
	var oldest string
	n := 0
	for k, v := range u.m {
		if v.tokenHash != tokenHash {
			continue
		}
		n++
		if oldest == "" || v.seq < u.m[oldest].seq {
			oldest = k
		}
	}
	if n >= uiMaxTokenSessions {
		delete(u.m, oldest)
	}
	if len(u.m) >= uiMaxSessions {
		for k, v := range u.m {
			if !now.Before(v.expires) {
				delete(u.m, k)
			}
		}
		if len(u.m) >= uiMaxSessions {
			return "", s, false, nil
		}
	}
	u.seq++
	s.seq = u.seq
	u.m[sessionKey(id)] = s
	return id, s, true, nil
}

// get returns the live session of id, dropping it when expired.
func (u *uiSessions) get(id string, now time.Time) (uiSession, bool) {
	if id == "" {
		return uiSession{}, false
	}
	k := sessionKey(id)
	u.mu.Lock()
	defer u.mu.Unlock()
	s, ok := u.m[k]
	if ok && !now.Before(s.expires) {
		delete(u.m, k)
		ok = false
	}
	return s, ok
}

func (u *uiSessions) end(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.m, sessionKey(id))
}

// uiRoutes adds the dashboard's routes to r.
func (s *Server) uiRoutes(r *gin.Engine) {
	if s.ui == nil { // a handler rebuilt on reload keeps the sessions
		s.ui = newUISessions()
	}
	r.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	g := r.Group("/ui", uiHeaders)
	g.GET("/", s.uiAsset("index.html", "text/html; charset=utf-8"))
	g.GET("/app.js", s.uiAsset("app.js", "text/javascript; charset=utf-8"))
	g.GET("/style.css", s.uiAsset("style.css", "text/css; charset=utf-8"))
	api := g.Group("/api", s.audit)
	api.POST("/login", s.uiLogin)
	auth := api.Group("", s.uiAuthenticate)
	auth.GET("/session", s.uiSessionInfo)
	auth.POST("/logout", s.uiLogout)
	read, operator := model.RoleRead, model.RoleOperator
	auth.GET("/minions", allow(read), s.listMinions)
	auth.GET("/hosts", allow(read), s.listHosts)
	auth.GET("/targets", allow(read), s.uiTargets)
	auth.GET("/jobs", allow(read), s.listJobs)
	auth.GET("/jobs/:id", allow(read), s.ownJob(s.uiJob))
	auth.GET("/jobs/:id/events", allow(read), s.ownJob(s.jobEvents))
	auth.POST("/exec", allow(operator), s.uiExec)
}

// uiHeaders sets the security headers of every /ui/ answer.
func uiHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.Next()
}

// uiAsset serves one embedded file.
func (s *Server) uiAsset(name, contentType string) gin.HandlerFunc {
	b, err := fs.ReadFile(uiFiles, "ui/"+name)
	if err != nil {
		panic("api: embedded dashboard file missing: " + name) // a build without the assets is a bug
	}
	return func(c *gin.Context) { c.Data(http.StatusOK, contentType, b) }
}

// sameOrigin refuses a request the browser says comes from another site:
// an Origin that is not this master, or Sec-Fetch-Site other than
// same-origin (none: typed in the address bar). Clients that send neither
// (curl) pass; they cannot ride a browser's cookie.
func sameOrigin(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" && o != "https://"+c.Request.Host {
		return false
	}
	switch c.GetHeader("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// uiWrite checks what every state-changing dashboard request needs: the
// same origin and a JSON body. It answers 403 or 415 when not.
func uiWrite(c *gin.Context) bool {
	if !sameOrigin(c) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "cross-site request refused"})
		return false
	}
	if mt, _, _ := strings.Cut(c.GetHeader("Content-Type"), ";"); strings.TrimSpace(mt) != "application/json" {
		c.AbortWithStatusJSON(http.StatusUnsupportedMediaType, gin.H{"error": "want Content-Type: application/json"})
		return false
	}
	return true
}

// uiLoginRequest is the body of POST /ui/api/login.
type uiLoginRequest struct {
	Token string `json:"token"`
}

// uiSessionView answers login and GET /ui/api/session.
type uiSessionView struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	CSRF    string    `json:"csrf"`
	Expires time.Time `json:"expires"`
}

func (s *Server) uiLogin(c *gin.Context) {
	if !s.authGuard(c) || !uiWrite(c) {
		return
	}
	var req uiLoginRequest
	if err := decodeLimit(c, &req, uiLoginBody); err != nil {
		s.abort(c, err)
		return
	}
	tok := strings.TrimSpace(req.Token)
	if tok == "" {
		s.abort(c, badRequestf("token is empty"))
		return
	}
	hash := inventory.HashToken(tok)
	t, err := s.Store.APIToken(c.Request.Context(), hash, s.now())
	if err != nil {
		if errors.Is(err, inventory.ErrInvalidToken) {
			s.authFailed(c)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "unknown, revoked or expired API token"})
			return
		}
		s.abort(c, err)
		return
	}
	c.Set(ctxAuditWho, t.Name)
	id, sess, ok, err := s.ui.start(hash, s.now())
	if err != nil {
		s.abort(c, err)
		return
	}
	if !ok {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "too many dashboard sessions: retry once some expire or log out"})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: uiCookie, Value: id, Path: "/", Expires: sess.expires,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	c.JSON(http.StatusOK, uiSessionView{Name: t.Name, Role: t.Role, CSRF: sess.csrf, Expires: sess.expires})
}

// uiAuthenticate lets on only a request with a live session whose token
// is still valid; a state-changing one also needs the session's CSRF
// token, the same origin and a JSON body.
func (s *Server) uiAuthenticate(c *gin.Context) {
	if !s.authGuard(c) {
		return
	}
	id, _ := c.Cookie(uiCookie)
	sess, ok := s.ui.get(id, s.now())
	if !ok {
		if id != "" {
			s.authFailed(c)
		}
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "not logged in (or the session expired): log in with an API token"})
		return
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead {
		if !uiWrite(c) {
			return
		}
		if got := c.GetHeader(uiCSRFHeader); subtle.ConstantTimeCompare([]byte(got), []byte(sess.csrf)) != 1 {
			c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "missing or wrong " + uiCSRFHeader})
			return
		}
	}
	t, err := s.Store.APIToken(c.Request.Context(), sess.tokenHash, s.now())
	if err != nil {
		if errors.Is(err, inventory.ErrInvalidToken) {
			s.ui.end(id)
			c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "the session's API token was revoked or expired: log in again"})
			return
		}
		s.abort(c, err)
		return
	}
	c.Set(ctxUISession, sess)
	c.Set(ctxUISessionID, id)
	s.actAs(c, t)
}

const (
	ctxUISession   = "ui_session"
	ctxUISessionID = "ui_session_id"
)

func (s *Server) uiSessionInfo(c *gin.Context) {
	sess := c.MustGet(ctxUISession).(uiSession)
	c.JSON(http.StatusOK, uiSessionView{Name: c.GetString(ctxToken), Role: c.GetString(ctxRole), CSRF: sess.csrf, Expires: sess.expires})
}

func (s *Server) uiLogout(c *gin.Context) {
	s.ui.end(c.GetString(ctxUISessionID))
	http.SetCookie(c.Writer, &http.Cookie{Name: uiCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	c.JSON(http.StatusOK, gin.H{"logged_out": true})
}

// splitTarget returns the patterns of a -t value: comma-separated, blanks
// dropped, as the CLI sends them.
func splitTarget(t string) []string {
	var out []string
	for _, p := range strings.Split(t, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// uiTargets answers GET /ui/api/targets?t=TARGET with the hosts the
// target selects, as a dry run of a command resolves them: the fleet
// filter and the run form's preview use the master's own resolution.
func (s *Server) uiTargets(c *gin.Context) {
	t := c.Query("t")
	if len(t) > model.MaxCmdLine {
		s.abort(c, badRequestf("t is %d bytes: at most %d", len(t), model.MaxCmdLine))
		return
	}
	targets := splitTarget(t)
	if len(targets) == 0 {
		s.abort(c, badRequestf("no target: give t, e.g. t=* or t=web01,web02"))
		return
	}
	spec, err := s.spec(c, wire.ExecRequest{JobOptions: wire.JobOptions{Targets: targets}, CmdLine: "true"}, false)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.dryRun(c, spec)
}

// uiExecRequest is the body of POST /ui/api/exec: the run form.
type uiExecRequest struct {
	Target  string `json:"target"`
	CmdLine string `json:"cmd_line"`
	Timeout string `json:"timeout,omitempty"`
}

// uiExec starts a command line on a target (-t syntax) and answers 202
// with the job's id; the page follows it over its events.
func (s *Server) uiExec(c *gin.Context) {
	var req uiExecRequest
	if err := decodeLimit(c, &req, uiExecBody); err != nil {
		s.abort(c, err)
		return
	}
	targets := splitTarget(req.Target)
	if len(targets) == 0 {
		s.abort(c, badRequestf("no target: give one, e.g. * or web01,web02"))
		return
	}
	spec, err := s.spec(c, wire.ExecRequest{JobOptions: wire.JobOptions{Targets: targets, Timeout: req.Timeout}, CmdLine: req.CmdLine}, false)
	if err != nil {
		s.abort(c, err)
		return
	}
	job, err := s.Jobs.Submit(c.Request.Context(), spec, "")
	if err != nil {
		s.abort(c, err)
		return
	}
	auditJob(c, job)
	c.JSON(http.StatusAccepted, wire.ExecAccepted{JobID: job.ID, State: job.State, Total: job.Total})
}
