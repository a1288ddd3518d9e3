package api

import (
	"fmt"

	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// Rate limits. Guessing a token is bounded per source address: each failed
// authentication (a bad API token, a bad join token) takes one from the
// source's bucket, and a source whose bucket is empty gets 429 with
// Retry-After before its token is even looked at — so a legitimate client
// never notices, and a guesser gets AuthFailureBurst tries, then one every
// few seconds. Each API token also has a bucket of requests, so one
// runaway script cannot starve the master.

// Limits bound what one source or one token may do; a zero rate is no limit.
type Limits struct {
	AuthFailuresPerMinute float64 // failed authentications a source may make, sustained
	AuthFailureBurst      int     // ... and at once
	TokenRequestsPerSec   float64 // requests one API token may make, sustained
	TokenBurst            int     // ... and at once
	// RegistrationsInFlight bounds the minion registrations handled at
	// once (0: no bound); past it a registration gets 429 with a jittered
	// Retry-After, so a fleet that reconnects together is spread out.
	RegistrationsInFlight int
}

// DefaultLimits are the master's defaults.
var DefaultLimits = Limits{AuthFailuresPerMinute: 10, AuthFailureBurst: 30, TokenRequestsPerSec: 200, TokenBurst: 1000}

// maxLimiterKeys bounds the sources or tokens remembered; past it, keys
// whose bucket has refilled are forgotten (they are as good as new).
const maxLimiterKeys = 100_000

// keyedLimiter is a token bucket per key (a source address, a token name).
type keyedLimiter struct {
	limit rate.Limit
	burst int

	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	lim  *rate.Limiter
	last time.Time // last use
}

func newKeyedLimiter(perSecond float64, burst int) *keyedLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &keyedLimiter{limit: rate.Limit(perSecond), burst: max(burst, 1), keys: map[string]*keyState{}}
}

// state returns key's bucket, made full when new.
func (k *keyedLimiter) state(key string, now time.Time) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, ok := k.keys[key]
	if !ok {
		if len(k.keys) >= maxLimiterKeys {
			k.forgetRefilled(now)
		}
		st = &keyState{lim: rate.NewLimiter(k.limit, k.burst)}
		k.keys[key] = st
	}
	st.last = now
	return st.lim
}

// forgetRefilled drops the keys unused long enough for their bucket to be
// full again; if that frees nothing, the oldest half goes.
func (k *keyedLimiter) forgetRefilled(now time.Time) {
	refill := time.Duration(float64(k.burst) / float64(k.limit) * float64(time.Second))
	for key, st := range k.keys {
		if now.Sub(st.last) > refill {
			delete(k.keys, key)
		}
	}
	if len(k.keys) < maxLimiterKeys {
		return
	}
	var oldest time.Time
	for _, st := range k.keys {
		if oldest.IsZero() || st.last.Before(oldest) {
			oldest = st.last
		}
	}
	cut := oldest.Add(now.Sub(oldest) / 2)
	for key, st := range k.keys {
		if st.last.Before(cut) {
			delete(k.keys, key)
		}
	}
}

// blocked reports whether key's bucket is empty, and when it will hold one
// again.
func (k *keyedLimiter) blocked(key string, now time.Time) (time.Duration, bool) {
	if k == nil {
		return 0, false
	}
	lim := k.state(key, now)
	if lim.TokensAt(now) >= 1 {
		return 0, false
	}
	return retryIn(lim, now), true
}

// take takes one from key's bucket; when it is empty it reports when it
// will hold one again.
func (k *keyedLimiter) take(key string, now time.Time) (time.Duration, bool) {
	if k == nil {
		return 0, true
	}
	lim := k.state(key, now)
	if lim.AllowN(now, 1) {
		return 0, true
	}
	return retryIn(lim, now), false
}

func retryIn(lim *rate.Limiter, now time.Time) time.Duration {
	r := lim.ReserveN(now, 1)
	defer r.CancelAt(now)
	return r.DelayFrom(now)
}

// limiters are the server's buckets, made from Limits once.
type limiters struct {
	authFailures *keyedLimiter // by source address
	tokens       *keyedLimiter // by API token name
}

func newLimiters(l Limits) *limiters {
	return &limiters{
		authFailures: newKeyedLimiter(l.AuthFailuresPerMinute/60, l.AuthFailureBurst),
		tokens:       newKeyedLimiter(l.TokenRequestsPerSec, l.TokenBurst),
	}
}

// tooMany answers 429 with Retry-After (whole seconds, at least 1).
func tooMany(c *gin.Context, wait time.Duration, format string, args ...any) {
	secs := int(math.Ceil(wait.Seconds()))
	secs = max(secs, 1)
	c.Header("Retry-After", strconv.Itoa(secs))
	c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": fmt.Sprintf(format, args...) + fmt.Sprintf("; retry in %ds", secs)})
}

// authGuard answers 429 when the request's source has failed to
// authenticate too often; it reports whether the request may go on.
func (s *Server) authGuard(c *gin.Context) bool {
	if s.limits == nil {
		return true
	}
	if wait, blocked := s.limits.authFailures.blocked(c.ClientIP(), s.now()); blocked {
		tooMany(c, wait, "too many failed authentications from %s", c.ClientIP())
		return false
	}
	return true
}

// authFailed counts a failed authentication against the request's source.
func (s *Server) authFailed(c *gin.Context) {
	if s.limits == nil {
		return
	}
	s.limits.authFailures.take(c.ClientIP(), s.now())
}

// tokenGuard takes one request from the token's bucket, answering 429
// when it is empty; it reports whether the request may go on.
func (s *Server) tokenGuard(c *gin.Context, name string) bool {
	if s.limits == nil {
		return true
	}
	if wait, ok := s.limits.tokens.take(name, s.now()); !ok {
		tooMany(c, wait, "API token %q: over %g requests a second", name, s.Config.Limits.TokenRequestsPerSec)
		return false
	}
	return true
}

// DefaultBodiesInFlight bounds the bytes of large JSON bodies (over the
// 4 MiB of an ordinary request: an exec with its script inline, base64)
// being read and decoded at once. Decoding holds a body and what it
// decodes to, so each counts twice.
const DefaultBodiesInFlight = 256 << 20

// reserveBody reserves room for a JSON body of up to limit bytes before it
// is read. A small body needs none; a large one that does not fit beside
// those in flight gets 429 with Retry-After (multipart uploads, streamed
// to disk, need none). It reports whether the request may go on, and the
// returned func (never nil) gives the room back.
func (s *Server) reserveBody(c *gin.Context, limit int64) (release func(), ok bool) {
	n := c.Request.ContentLength
	if n < 0 || n > limit {
		n = limit // chunked: as much as it may be
	}
	if n <= maxBody || s.bodies == nil {
		return func() {}, true
	}
	w := min(2*n, s.bodiesMax)
	if !s.bodies.TryAcquire(w) {
		tooMany(c, time.Second, "too many large request bodies in flight (at most %d MiB together): retry shortly, or send the file as multipart/form-data", s.bodiesMax>>20)
		return func() {}, false
	}
	return func() { s.bodies.Release(w) }, true
}
