// Package notify announces finished jobs: it makes each job's deliveries —
// a signed callback to the requester's callback_url, a summary for Slack,
// whose bodies the master's renderers (Config.CallbackBody, SlackBody) make
// from the API's shapes — which the job service stores in the inventory's outbox in the transaction
// that ends the job, and it delivers them at least once, with backoff,
// across restarts of the master, without letting one slow or dead receiver
// hold up the others. Callback URLs are guarded against reaching the
// master itself or its neighbourhood (loopback, link-local, its own
// addresses), both when a job is created and when a connection is dialled.
//
// Retry policy. A 2xx answer delivers. 429 and 503 with Retry-After
// (seconds or an HTTP date) retry at that time, for callbacks and Slack
// alike. 410 Gone makes the delivery dead at once: the receiver says the
// URL is gone for good. Every other failure — a network error, a timeout,
// a redirect (never followed for callbacks), any other status, 4xx
// included, since a receiver being deployed or misconfigured is usually
// fixed within hours — retries after an exponential backoff with full
// jitter (random in (0, 1s·2^(attempts-1)], at most 10 minutes). A failure
// at or after Config.MaxAge since the job ended makes the delivery dead,
// with its last error kept; the last retry is scheduled at that deadline.
//
// Isolation. Each attempt runs in its own goroutine, at most
// Config.Parallel at once and at most a quarter of that to one receiver
// (scheme and host:port), so one slow receiver ties up only its own share
// for at most Config.Timeout. A receiver that fails is held as a whole for
// a backoff of its own (and Retry-After), its due deliveries moved past
// the hold, then probed with a single delivery, so its backlog does not
// crowd out the others; once a probe succeeds, the rest follow within a
// Timeout.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felix-ops/felix/internal/backoff"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// retryPolicy is the retry policy of the package comment: full jitter over
// 1 s doubling, at most 10 minutes. A failing receiver is held for the
// same ceilings without jitter.
var retryPolicy = backoff.Policy{Base: time.Second, Cap: 10 * time.Minute, Jitter: backoff.Full}

// Config configures a Notifier.
type Config struct {
	Secret   string // HMAC key for delivery signatures (the master's callbacks.secret); "" refuses callbacks
	SlackURL string // incoming-webhook URL; "" disables Slack
	// CallbackBody renders the body of a job's callback (the master passes
	// the API's shape of the job); required.
	CallbackBody func(eventID string, job inventory.Job, results []model.Result) ([]byte, error)
	// SlackBody renders a job's Slack message; required with SlackURL.
	SlackBody func(job inventory.Job, results []model.Result) ([]byte, error)
	// Allow lists callback destinations permitted although they would be
	// refused: CIDRs ("127.0.0.0/8"), IPs, or a host or host:port
	// ("localhost:9000") matched exactly against the callback URL.
	Allow []string
	// OwnAddrs returns the master's own addresses (listen and interface
	// IPs), which callbacks must not reach; may be nil.
	OwnAddrs func() []net.IP
	Timeout  time.Duration // per delivery attempt; default 10s
	MaxAge   time.Duration // give up (dead) after this long; default 24h
	Parallel int           // deliveries in flight at once; default 32
	// Delivered, if set, is told of each delivery attempt recorded: the
	// item's kind and the state it left it in (delivered, pending to be
	// retried, dead). Fixed at New, like the renderers.
	Delivered func(kind string, state model.DeliveryState)
}

// Notifier builds and delivers job announcements; see the package comment.
type Notifier struct {
	store *inventory.Store
	cfg   Config // its renderers, OwnAddrs and Parallel; the rest is in live
	log   *slog.Logger
	live  atomic.Pointer[settings] // what Reconfigure replaces

	callbacks   *http.Client // guarded: no proxy, no redirects, dial-time address check
	slack       *http.Client // the operator's own URL: environment proxy allowed
	guardDialer *net.Dialer
	plainDialer *net.Dialer
	kick        chan struct{}

	// Tunables, fixed after New; tests shorten them.
	lookup func(ctx context.Context, host string) ([]net.IPAddr, error)
	retry  backoff.Policy // waits between a delivery's attempts, and receiver holds
	poll   time.Duration  // longest sleep between looks at the outbox
}

// settings are the parts of a Config that Reconfigure replaces while the
// Notifier runs, checked and with their defaults filled in.
type settings struct {
	secret, slackURL string
	allow            allowList
	timeout, maxAge  time.Duration
}

// Defaults of a Config's zero fields; the first two equal the master's
// callbacks.timeout and callbacks.max_age defaults (a master test holds
// them together).
const (
	DefaultTimeout  = 10 * time.Second
	DefaultMaxAge   = 24 * time.Hour
	DefaultParallel = 32
)

// New returns a Notifier over store's outbox. It fails on a malformed
// allow-list or Slack URL.
func New(store *inventory.Store, cfg Config, log *slog.Logger) (*Notifier, error) {
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CallbackBody == nil {
		return nil, errors.New("notify: no callback renderer (Config.CallbackBody)")
	}
	n := &Notifier{store: store, cfg: cfg, log: log, kick: make(chan struct{}, 1),
		lookup: net.DefaultResolver.LookupIPAddr, retry: retryPolicy, poll: time.Second}
	if err := n.Reconfigure(cfg); err != nil {
		return nil, err
	}
	// No dial timeout of their own: each attempt's context carries the
	// timeout in force when it starts (post).
	n.plainDialer = &net.Dialer{KeepAlive: 30 * time.Second}
	n.guardDialer = &net.Dialer{KeepAlive: 30 * time.Second, Control: n.control}
	n.callbacks = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil, // never from the environment: the proxy would dial for us, unguarded
			DialContext:           n.dial,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   cfg.Parallel,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		// A redirect would lead the POST past the guard: it is a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	st := http.DefaultTransport.(*http.Transport).Clone()
	st.MaxIdleConnsPerHost = 4
	n.slack = &http.Client{Transport: st}
	return n, nil
}

// Reconfigure replaces the settings a running Notifier reads when it
// uses them — Secret, SlackURL, Allow, Timeout and MaxAge of cfg; its other
// fields are New's and are ignored here — or, when they are invalid, keeps
// the old ones and returns why. Jobs that end afterwards are announced
// with the new Slack URL; every delivery attempt that starts afterwards,
// retries of older deliveries included, is signed with the new secret,
// dialled under the new allow-list, bounded by the new timeout and given up
// after the new max age. Deliveries already stored keep their URL and body.
func (n *Notifier) Reconfigure(cfg Config) error {
	st := &settings{secret: cfg.Secret, slackURL: cfg.SlackURL, timeout: cfg.Timeout, maxAge: cfg.MaxAge}
	if st.timeout <= 0 {
		st.timeout = DefaultTimeout
	}
	if st.maxAge <= 0 {
		st.maxAge = DefaultMaxAge
	}
	if st.slackURL != "" {
		if n.cfg.SlackBody == nil {
			return errors.New("notify: no Slack renderer (Config.SlackBody)")
		}
		u, err := url.Parse(st.slackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("slack url: want an http or https URL") // the URL itself is a secret
		}
	}
	var err error
	if st.allow, err = parseAllow(cfg.Allow); err != nil {
		return err
	}
	n.live.Store(st)
	return nil
}

// now returns the settings in force.
func (n *Notifier) now() *settings { return n.live.Load() }

// Kick wakes the delivery loop to look for due deliveries now; it never
// blocks. The job service calls it when a job's deliveries are stored.
func (n *Notifier) Kick() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// hostState is what the loop knows of a receiver that failed.
type hostState struct {
	streak int       // failures in a row
	until  time.Time // no delivery before; after it, one probe at a time
}

// outcome is how one delivery attempt ended, told to the loop.
type outcome struct {
	id         int64
	host       string
	cancelled  bool          // Run is stopping; nothing recorded
	hostOK     bool          // the receiver answered sanely
	retryAfter time.Duration // the receiver asked to wait
	next       time.Time     // the item's next try, if any
}

// loop is Run's state; only Run's goroutine touches it.
type loop struct {
	n        *Notifier
	inflight map[int64]string // item id → host
	busy     map[string]int   // host → deliveries in flight
	hosts    map[string]*hostState
	wakeAt   time.Time // earliest retry known; zero: none
	done     chan outcome
	hostCap  int // deliveries in flight to one healthy host
	window   int // extra rows to look at beyond those in flight
}

// Run delivers due outbox items until ctx ends, then waits for the
// deliveries in flight to stop (their requests are cancelled; an
// interrupted attempt is not counted and is retried by the next Run).
// Call it once per Notifier.
func (n *Notifier) Run(ctx context.Context) {
	l := &loop{n: n, inflight: map[int64]string{}, busy: map[string]int{}, hosts: map[string]*hostState{},
		done: make(chan outcome, n.cfg.Parallel), hostCap: max(1, n.cfg.Parallel/4), window: 4 * n.cfg.Parallel}
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		timer.Reset(l.dispatch(ctx, &wg))
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
		case <-timer.C:
		case o := <-l.done:
			l.finished(o)
		drain:
			for {
				select {
				case o := <-l.done:
					l.finished(o)
				default:
					break drain
				}
			}
		}
	}
}

// dispatch starts due deliveries up to the limits, defers those of held
// receivers, and returns how long to sleep.
func (l *loop) dispatch(ctx context.Context, wg *sync.WaitGroup) time.Duration {
	n := l.n
	for range 8 { // a few rounds while deferring moves the window
		if ctx.Err() != nil || len(l.inflight) >= n.cfg.Parallel {
			break
		}
		now := time.Now()
		var busy []string
		for host, b := range l.busy {
			if b >= l.hostCap {
				busy = append(busy, host)
			}
		}
		items, err := n.store.DueOutbox(ctx, now, len(l.inflight)+l.window, busy...)
		if err != nil {
			if ctx.Err() == nil {
				n.log.Error("read due deliveries", "err", err)
			}
			break
		}
		deferred := 0
		for _, it := range items {
			if len(l.inflight) >= n.cfg.Parallel {
				break
			}
			if _, ok := l.inflight[it.ID]; ok {
				continue
			}
			host := receiverOf(it.URL)
			hs := l.hosts[host]
			switch {
			case hs != nil && hs.until.After(now):
				l.deferItem(ctx, it, hs.until, now)
				deferred++
			case hs != nil && l.busy[host] > 0:
				// A probe of a failing receiver is in flight: wait for its word.
				l.deferItem(ctx, it, now.Add(n.now().timeout), now)
				deferred++
			case l.busy[host] >= l.hostCap:
				// Busy receiver: a slot frees when one of its deliveries ends.
			default:
				l.inflight[it.ID] = host
				l.busy[host]++
				wg.Add(1)
				go func() {
					defer wg.Done()
					l.done <- n.deliver(ctx, it, host)
				}()
			}
		}
		if deferred == 0 {
			break
		}
	}
	now := time.Now()
	wait := n.poll
	if !l.wakeAt.IsZero() {
		if d := l.wakeAt.Sub(now); d > 0 {
			wait = min(wait, d)
		} else {
			l.wakeAt = time.Time{}
		}
	}
	for _, hs := range l.hosts {
		if d := hs.until.Sub(now); d > 0 {
			wait = min(wait, d)
		}
	}
	return wait
}

// deferItem moves a pending item's next try to at, keeping its count and
// last error, so a held receiver's backlog leaves the due window.
func (l *loop) deferItem(ctx context.Context, it inventory.OutboxItem, at, now time.Time) {
	if !it.NextAt.Before(at) {
		return
	}
	if err := l.n.store.OutboxDone(ctx, it.ID, model.DeliveryPending, it.Attempts, at, it.LastError, now); err != nil && ctx.Err() == nil {
		l.n.log.Error("defer delivery", "event", it.EventID, "err", err)
	}
}

func (l *loop) finished(o outcome) {
	delete(l.inflight, o.id)
	if l.busy[o.host]--; l.busy[o.host] <= 0 {
		delete(l.busy, o.host)
	}
	if o.cancelled {
		return
	}
	if !o.next.IsZero() && (l.wakeAt.IsZero() || o.next.Before(l.wakeAt)) {
		l.wakeAt = o.next
	}
	if o.hostOK {
		delete(l.hosts, o.host)
		return
	}
	hs := l.hosts[o.host]
	if hs == nil {
		hs = &hostState{}
		l.hosts[o.host] = hs
	}
	hs.streak++
	hs.until = time.Now().Add(max(l.n.retry.Ceiling(hs.streak), o.retryAfter))
}

// receiverOf names the receiver of a delivery for the per-receiver limits.
func receiverOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL
	}
	return u.Scheme + "://" + strings.ToLower(u.Host)
}

// deliver makes one attempt at it and records the outcome.
func (n *Notifier) deliver(ctx context.Context, it inventory.OutboxItem, host string) outcome {
	o := outcome{id: it.ID, host: host}
	if len(it.Body) == 0 {
		// Due rows come without their bodies: one body in memory per
		// delivery in flight, not per due row.
		body, err := n.store.OutboxBody(ctx, it.ID)
		if err != nil {
			if ctx.Err() != nil {
				o.cancelled = true
				return o
			}
			n.log.Error("read delivery body; trying again later", "event", it.EventID, "err", err)
			o.cancelled = true // not attempted: it stays due
			return o
		}
		it.Body = body
	}
	st := n.now()
	retryAfter, gone, err := n.post(ctx, st, it)
	if err != nil && ctx.Err() != nil {
		o.cancelled = true
		return o
	}
	// Record even when Run is stopping: a delivered item must not be sent again.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	now := time.Now()
	attempts := it.Attempts + 1
	log := n.log.With("event", it.EventID, "kind", it.Kind, "job", it.JobID, "attempts", attempts, "url", where(it))
	if err == nil {
		o.hostOK = true
		if err := n.store.OutboxDone(sctx, it.ID, model.DeliveryDelivered, attempts, time.Time{}, "", now); err != nil {
			log.Error("record delivery", "err", err)
		}
		n.observe(it.Kind, model.DeliveryDelivered)
		log.Debug("delivered")
		return o
	}
	o.hostOK, o.retryAfter = gone, retryAfter
	state, next := model.DeliveryPending, time.Time{}
	switch {
	case gone:
		state = model.DeliveryDead
	case now.Sub(it.CreatedAt) >= st.maxAge:
		state = model.DeliveryDead
	default:
		delay := retryAfter
		if delay <= 0 {
			delay = n.retry.Duration(attempts)
		}
		next = now.Add(delay)
		if deadline := it.CreatedAt.Add(st.maxAge); next.After(deadline) {
			next = deadline
		}
		o.next = next
	}
	if err := n.store.OutboxDone(sctx, it.ID, state, attempts, next, err.Error(), now); err != nil {
		log.Error("record failed delivery", "err", err)
	}
	n.observe(it.Kind, state)
	if state == model.DeliveryDead {
		log.Error("delivery dead: giving up", "err", err)
	} else {
		log.Warn("delivery failed; will retry", "next", next, "err", err)
	}
	return o
}

// post sends it once under st. It returns nil when the receiver answered 2xx; else
// the error, the wait the receiver asked for (429 and 503 with
// Retry-After) and whether it answered 410 Gone.
func (n *Notifier) post(ctx context.Context, st *settings, it inventory.OutboxItem) (retryAfter time.Duration, gone bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, st.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, it.URL, bytes.NewReader(it.Body))
	if err != nil {
		return 0, false, fmt.Errorf("post %s: %w", where(it), err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	client := n.slack
	if it.Kind != inventory.KindSlack {
		// Signed for the requester; Slack gets no copy of the signature.
		ts := time.Now().Unix()
		req.Header.Set(HeaderEventID, it.EventID)
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		req.Header.Set(HeaderSignature, Sign(st.secret, ts, it.Body))
		client = n.callbacks
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is the delivery's own; keep the cause
		}
		return 0, false, fmt.Errorf("post %s: %w", where(it), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		return 0, false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	msg := fmt.Sprintf("post %s: HTTP %s", where(it), resp.Status)
	if s := strings.Join(strings.Fields(string(bytes.ToValidUTF8(snippet, nil))), " "); s != "" {
		msg += ": " + s
	}
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		msg += " (redirect to " + loc + " not followed)"
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return retryAfter, resp.StatusCode == http.StatusGone, errors.New(msg)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date;
// 0 when absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(7*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// where names a delivery's URL for logs and stored errors without the
// secrets it may carry: a callback's query, a Slack webhook's path.
func where(it inventory.OutboxItem) string {
	u, err := url.Parse(it.URL)
	if err != nil {
		return "(bad url)"
	}
	u.User, u.Fragment = nil, ""
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	if it.Kind == inventory.KindSlack {
		return u.Scheme + "://" + u.Host + "/…"
	}
	return u.String()
}

// observe tells Config.Delivered of a delivery attempt, if it is set.
func (n *Notifier) observe(kind string, state model.DeliveryState) {
	if n.cfg.Delivered != nil {
		n.cfg.Delivered(kind, state)
	}
}
