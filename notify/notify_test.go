package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

const secret = "test-secret-0123456789abcdef"

// env is a store with its result writer, as the master has them.
type env struct {
	t      *testing.T
	path   string
	store  *inventory.Store
	writer *inventory.ResultWriter
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "felix.db")}
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	s, err := inventory.Open(context.Background(), e.path)
	if err != nil {
		e.t.Fatalf("Open(%q) = %v", e.path, err)
	}
	w := inventory.NewResultWriter(s, testenv.Logger(e.t))
	e.store, e.writer = s, w
	e.t.Cleanup(func() {
		w.Close()
		s.Close()
	})
}

// reopen closes the store and opens it again: a master restart.
func (e *env) reopen() {
	e.t.Helper()
	e.writer.Close()
	if err := e.store.Close(); err != nil {
		e.t.Fatalf("Close() = %v", err)
	}
	e.open()
}

// notifier returns a Notifier with short backoffs and polls.
func (e *env) notifier(cfg Config) *Notifier {
	e.t.Helper()
	if cfg.Secret == "" {
		cfg.Secret = secret
	}
	if cfg.CallbackBody == nil {
		cfg.CallbackBody = api.CallbackBody
	}
	if cfg.SlackBody == nil {
		cfg.SlackBody = api.SlackBody
	}
	n, err := New(e.store, cfg, testenv.Logger(e.t))
	if err != nil {
		e.t.Fatalf("New() = %v", err)
	}
	n.retry.Base, n.retry.Cap, n.poll = 10*time.Millisecond, 50*time.Millisecond, 20*time.Millisecond
	return n
}

// run starts n's loop; the returned stop (also run at cleanup) cancels it
// and waits for Run to return.
func (e *env) run(n *Notifier) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Run(ctx)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			e.t.Fatal("Run did not return 30s after its context ended")
		}
	}
	e.t.Cleanup(stop)
	return stop
}

// finish stores a job with results and ends it with n's announcements, as
// the job service does, and returns the job.
func (e *env) finish(n *Notifier, clientID string, spec model.JobSpec, results []model.Result) inventory.Job {
	e.t.Helper()
	ctx := context.Background()
	now := time.Now()
	job := inventory.Job{ID: jobs.NewJobID(now), ClientID: clientID, CmdLine: "uptime", CmdType: "line",
		Targets: []string{"web*"}, State: model.JobRunning, Total: len(results), CreatedAt: now}
	pending := make([]model.Result, len(results))
	for i, r := range results {
		pending[i] = model.Result{Host: r.Host, State: model.StatePending}
	}
	if err := e.store.CreateJob(ctx, job, pending); err != nil {
		e.t.Fatalf("CreateJob() = %v", err)
	}
	for _, r := range results {
		e.writer.Add(job.ID, r)
	}
	job.State, job.FinishedAt = model.JobDone, time.Now()
	spec.ClientID = clientID
	items := n.Announce(job, spec, results)
	if err := e.writer.Finish(ctx, job.ID, job.State, job.FinishedAt, items...); err != nil {
		e.t.Fatalf("Finish() = %v", err)
	}
	n.Kick()
	return job
}

// items returns the outbox rows of a job.
func (e *env) items(jobID string) []inventory.OutboxItem {
	e.t.Helper()
	its, err := e.store.Outbox(context.Background(), inventory.OutboxFilter{JobID: jobID})
	if err != nil {
		e.t.Fatalf("Outbox() = %v", err)
	}
	return its
}

// item returns the one outbox row of a job of the given kind.
func (e *env) item(jobID, kind string) inventory.OutboxItem {
	e.t.Helper()
	for _, it := range e.items(jobID) {
		if it.Kind == kind {
			return it
		}
	}
	e.t.Fatalf("job %s has no %s delivery", jobID, kind)
	return inventory.OutboxItem{}
}

// waitFor polls cond with a generous bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an httptest server on loopback that records requests and
// answers with respond(i, w, r) for the i-th request (from 0).
type receiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request // protected by mu
	respond func(i int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, respond func(i int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		i := len(rc.reqs)
		rc.reqs = append(rc.reqs, request{header: r.Header.Clone(), body: body, at: time.Now()})
		rc.mu.Unlock()
		if rc.respond != nil {
			rc.respond(i, w, r)
		}
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.reqs...)
}

func (rc *receiver) count() int { return len(rc.requests()) }

func hostResults() []model.Result {
	now := time.Now()
	return []model.Result{
		{Host: "web1", Addr: "10.0.0.1", State: model.StateOK, Stdout: []byte("up 3 days\n"), StartedAt: now, FinishedAt: now},
		{Host: "web2", Addr: "10.0.0.2", State: model.StateOK, Stdout: []byte("up 3 days\n"), StartedAt: now, FinishedAt: now},
		{Host: "web3", Addr: "10.0.0.3", State: model.StateFailed, ExitCode: 2, Stderr: []byte("boom\n"),
			StartedAt: now, FinishedAt: now},
	}
}

var loopbackOK = []string{"127.0.0.0/8"}

func TestCallbackDeliveredOnceSigned(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	n := e.notifier(Config{Allow: loopbackOK})
	stop := e.run(n)
	url := rc.srv.URL + "/hook?token=abc"
	if err := n.CheckURL(context.Background(), url); err != nil {
		t.Fatalf("CheckURL(%q) = %v; want nil (allow-listed)", url, err)
	}
	job := e.finish(n, "seed-42", model.JobSpec{CallbackURL: url}, hostResults())
	waitFor(t, "callback delivered", func() bool { return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDelivered })
	for range 3 { // more chances to deliver twice
		n.Kick()
		time.Sleep(30 * time.Millisecond)
	}
	stop()

	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests; want exactly 1", len(reqs))
	}
	r := reqs[0]
	if err := Verify(secret, r.header, r.body, time.Minute); err != nil {
		t.Errorf("Verify() = %v; want nil", err)
	}
	for h, want := range map[string]string{"Content-Type": "application/json", "User-Agent": "felix-master",
		HeaderEventID: "cb-" + job.ID} {
		if got := r.header.Get(h); got != want {
			t.Errorf("header %s = %q; want %q", h, got, want)
		}
	}
	var cb wire.Callback
	if err := json.Unmarshal(r.body, &cb); err != nil {
		t.Fatalf("callback body %s: %v", r.body, err)
	}
	if cb.EventID != "cb-"+job.ID || cb.ID != "seed-42" || cb.JobID != job.ID || cb.State != model.JobDone {
		t.Errorf("callback = event %q id %q job %q state %q; want cb-%s, seed-42, %s, done",
			cb.EventID, cb.ID, cb.JobID, cb.State, job.ID, job.ID)
	}
	if len(cb.Results) != 3 || cb.Results[2].Host != "web3" || cb.Results[2].ExitCode != 2 || cb.Summary["ok"] != 2 {
		t.Errorf("callback results = %+v, summary %v; want web1..web3 with web3 exit 2, 2 ok", cb.Results, cb.Summary)
	}
	it := e.item(job.ID, inventory.KindCallback)
	if it.Attempts != 1 || it.DeliveredAt.IsZero() || it.LastError != "" {
		t.Errorf("delivered item = attempts %d, delivered_at %v, last_error %q; want 1, set, empty",
			it.Attempts, it.DeliveredAt, it.LastError)
	}
}

func TestCallbackRetriedUntilReceiverRecovers(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i < 2 {
			http.Error(w, "not yet", http.StatusInternalServerError)
		}
	})
	n := e.notifier(Config{Allow: loopbackOK})
	e.run(n)
	job := e.finish(n, "seed-1", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "callback delivered", func() bool { return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDelivered })
	it := e.item(job.ID, inventory.KindCallback)
	if it.Attempts != 3 {
		t.Errorf("attempts = %d; want 3 (two 500s, then 200)", it.Attempts)
	}
	reqs := rc.requests()
	if len(reqs) != 3 {
		t.Fatalf("receiver got %d requests; want 3", len(reqs))
	}
	for i, r := range reqs {
		if got := r.header.Get(HeaderEventID); got != "cb-"+job.ID {
			t.Errorf("request %d event id = %q; want the same on every try, cb-%s", i, got, job.ID)
		}
		if err := Verify(secret, r.header, r.body, time.Minute); err != nil {
			t.Errorf("request %d: Verify() = %v", i, err)
		}
	}
}

func TestCallbackDeadAfterMaxAge(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down for good", http.StatusInternalServerError)
	})
	n := e.notifier(Config{Allow: loopbackOK, MaxAge: 200 * time.Millisecond})
	e.run(n)
	job := e.finish(n, "", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "callback dead", func() bool { return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDead })
	dead, err := e.store.Outbox(context.Background(), inventory.OutboxFilter{State: model.DeliveryDead})
	if err != nil {
		t.Fatalf("Outbox(dead) = %v", err)
	}
	if len(dead) != 1 || dead[0].JobID != job.ID {
		t.Fatalf("dead deliveries = %+v; want the job's callback", dead)
	}
	if !strings.Contains(dead[0].LastError, "500") || !strings.Contains(dead[0].LastError, "down for good") {
		t.Errorf("last_error = %q; want the HTTP 500 and its body", dead[0].LastError)
	}
	if dead[0].Attempts < 1 || dead[0].Attempts != rc.count() {
		t.Errorf("attempts = %d, receiver saw %d; want equal and ≥ 1", dead[0].Attempts, rc.count())
	}
}

func TestGoneIsDeadAtOnce(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	n := e.notifier(Config{Allow: loopbackOK})
	e.run(n)
	job := e.finish(n, "", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "callback dead", func() bool { return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDead })
	if it := e.item(job.ID, inventory.KindCallback); it.Attempts != 1 {
		t.Errorf("attempts = %d; want 1: 410 Gone is final", it.Attempts)
	}
}

func TestSlowReceiverDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t)
	entered := make(chan struct{}, 10)
	var slowReturned atomic.Bool
	release := make(chan struct{})
	slow := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		defer slowReturned.Store(true)
		entered <- struct{}{}
		select { // hang: never answer until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before slow.srv.Close
	got := make(chan struct{}, 10)
	fast := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) { got <- struct{}{} })
	n := e.notifier(Config{Allow: loopbackOK, Timeout: time.Minute, Parallel: 2})
	e.run(n)

	e.finish(n, "slow", model.JobSpec{CallbackURL: slow.srv.URL}, hostResults())
	<-entered // the slow receiver holds a delivery
	job := e.finish(n, "fast", model.JobSpec{CallbackURL: fast.srv.URL}, hostResults())
	<-got
	if slowReturned.Load() {
		t.Fatal("the slow receiver answered before the fast one got its callback")
	}
	waitFor(t, "fast callback recorded", func() bool {
		return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDelivered
	})
	if slowReturned.Load() {
		t.Error("the slow receiver's delivery ended before the fast one was recorded")
	}
}

func TestSlackRetryAfterAndSummary(t *testing.T) {
	e := newEnv(t)
	checked := make(chan struct{})
	second := make(chan struct{})
	first := make(chan time.Time, 1)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		switch i {
		case 0:
			w.Header().Set("Retry-After", "1")
			first <- time.Now()
			w.WriteHeader(http.StatusTooManyRequests)
		case 1:
			close(second)
			<-checked // the test reads the row while this attempt is open
		}
	})
	// Slack is the operator's URL: not subject to the callback guard.
	n := e.notifier(Config{SlackURL: rc.srv.URL + "/services/T0/B0/secret"})
	e.run(n)
	job := e.finish(n, "seed-7", model.JobSpec{}, hostResults())
	if its := e.items(job.ID); len(its) != 1 || its[0].Kind != inventory.KindSlack || its[0].EventID != "slack-"+job.ID {
		t.Fatalf("deliveries = %+v; want one slack-%s", its, job.ID)
	}
	firstAnswered := <-first
	<-second
	it := e.item(job.ID, inventory.KindSlack)
	reqs := rc.requests()
	if it.State != model.DeliveryPending || it.Attempts != 1 || !strings.Contains(it.LastError, "429") {
		t.Errorf("after 429 = state %s attempts %d last_error %q; want pending, 1, the 429", it.State, it.Attempts, it.LastError)
	}
	if strings.Contains(it.LastError, "secret") {
		t.Errorf("last_error %q shows the webhook's secret path", it.LastError)
	}
	if min := firstAnswered.Add(time.Second - 5*time.Millisecond); it.NextAt.Before(min) {
		t.Errorf("next_at = %v; want ≥ %v (Retry-After: 1)", it.NextAt, min)
	}
	if gap := reqs[1].at.Sub(firstAnswered); gap < time.Second-5*time.Millisecond {
		t.Errorf("second try %v after the 429; want ≥ 1s", gap)
	}
	close(checked)
	waitFor(t, "slack delivered", func() bool { return e.item(job.ID, inventory.KindSlack).State == model.DeliveryDelivered })

	var msg struct{ Text string }
	if err := json.Unmarshal(reqs[0].body, &msg); err != nil {
		t.Fatalf("slack body %s: %v", reqs[0].body, err)
	}
	for _, want := range []string{job.ID, "seed-7", "uptime", "*done*", "2 ok, 1 failed", "*2 hosts* ok (exit 0): web1, web2",
		"up 3 days", "*1 host* failed (exit 2): web3", "boom", "*Failures (1)*", "• web3 — failed, exit 2"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("slack text lacks %q:\n%s", want, msg.Text)
		}
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t)
	target := newReceiver(t, nil)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.srv.URL+"/elsewhere", http.StatusTemporaryRedirect)
	})
	n := e.notifier(Config{Allow: loopbackOK})
	e.run(n)
	job := e.finish(n, "", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "a failed try", func() bool { return e.item(job.ID, inventory.KindCallback).Attempts >= 1 })
	it := e.item(job.ID, inventory.KindCallback)
	if it.State != model.DeliveryPending || !strings.Contains(it.LastError, "307") {
		t.Errorf("after a redirect = state %s last_error %q; want pending and the 307", it.State, it.LastError)
	}
	if target.count() != 0 {
		t.Errorf("the redirect's target got %d requests; want 0", target.count())
	}
}

func TestDialTimeGuard(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	// The API's check saw "localhost" resolve to a public address; by the
	// time of delivery it resolves to loopback (DNS rebinding).
	n := e.notifier(Config{})
	n.lookup = func(ctx context.Context, host string) ([]net.IPAddr, error) {
		return []net.IPAddr{{IP: net.ParseIP("203.0.113.7")}}, nil
	}
	url := "http://localhost:" + port + "/hook"
	if err := n.CheckURL(context.Background(), url); err != nil {
		t.Fatalf("CheckURL(%q) with a public answer = %v; want nil", url, err)
	}
	e.run(n)
	job := e.finish(n, "", model.JobSpec{CallbackURL: url}, hostResults())
	waitFor(t, "a refused try", func() bool { return e.item(job.ID, inventory.KindCallback).Attempts >= 1 })
	it := e.item(job.ID, inventory.KindCallback)
	if it.State != model.DeliveryPending || !strings.Contains(it.LastError, ErrRefused.Error()) {
		t.Errorf("after a loopback dial = state %s last_error %q; want pending, refused", it.State, it.LastError)
	}
	if rc.count() != 0 {
		t.Errorf("receiver got %d requests; want 0", rc.count())
	}
}

func TestDialAllowedByName(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, nil)
	_, port, _ := net.SplitHostPort(rc.srv.Listener.Addr().String())
	n := e.notifier(Config{Allow: []string{"localhost:" + port}})
	e.run(n)
	byName := e.finish(n, "", model.JobSpec{CallbackURL: "http://localhost:" + port + "/"}, hostResults())
	byIP := e.finish(n, "", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults()) // 127.0.0.1: not allowed
	waitFor(t, "callback by name delivered", func() bool {
		return e.item(byName.ID, inventory.KindCallback).State == model.DeliveryDelivered
	})
	waitFor(t, "callback by IP refused", func() bool { return e.item(byIP.ID, inventory.KindCallback).Attempts >= 1 })
	if it := e.item(byIP.ID, inventory.KindCallback); it.State != model.DeliveryPending ||
		!strings.Contains(it.LastError, "loopback") {
		t.Errorf("callback to %s = state %s last_error %q; want pending, refused as loopback", rc.srv.URL, it.State, it.LastError)
	}
	if rc.count() != 1 {
		t.Errorf("receiver got %d requests; want 1", rc.count())
	}
}

func TestPendingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	var up atomic.Bool
	var delivered atomic.Int32
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
	})
	n := e.notifier(Config{Allow: loopbackOK})
	stop := e.run(n)
	job := e.finish(n, "seed-r", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "a failed try", func() bool { return e.item(job.ID, inventory.KindCallback).Attempts >= 1 })
	stop()

	e.reopen()
	up.Store(true)
	n2 := e.notifier(Config{Allow: loopbackOK})
	stop2 := e.run(n2)
	waitFor(t, "callback delivered after restart", func() bool {
		return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDelivered
	})
	stop2()
	if got := delivered.Load(); got != 1 {
		t.Errorf("receiver accepted %d callbacks; want 1", got)
	}
	var cb wire.Callback
	reqs := rc.requests()
	if err := json.Unmarshal(reqs[len(reqs)-1].body, &cb); err != nil || cb.ID != "seed-r" {
		t.Errorf("callback after restart = %+v, %v; want id seed-r", cb, err)
	}
}

func TestAnnounce(t *testing.T) {
	e := newEnv(t)
	job := inventory.Job{ID: "J1", ClientID: "c1", CmdLine: "true", State: model.JobDone}
	n := e.notifier(Config{})
	if its := n.Announce(job, model.JobSpec{}, hostResults()); len(its) != 0 {
		t.Errorf("Announce without callback or Slack = %d items; want 0", len(its))
	}
	n = e.notifier(Config{SlackURL: "https://hooks.example.com/x"})
	its := n.Announce(job, model.JobSpec{CallbackURL: "https://cb.example.com/"}, hostResults())
	if len(its) != 2 {
		t.Fatalf("Announce = %d items; want 2", len(its))
	}
	for i, want := range []struct{ id, kind, url string }{
		{"cb-J1", inventory.KindCallback, "https://cb.example.com/"},
		{"slack-J1", inventory.KindSlack, "https://hooks.example.com/x"},
	} {
		it := its[i]
		if it.EventID != want.id || it.Kind != want.kind || it.URL != want.url || it.JobID != "J1" ||
			it.NextAt.IsZero() || it.CreatedAt.IsZero() || !json.Valid(it.Body) {
			t.Errorf("item %d = %+v; want %s %s to %s, due now, JSON body", i, it, want.id, want.kind, want.url)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	e := newEnv(t)
	render := func(c Config) Config {
		c.CallbackBody, c.SlackBody = api.CallbackBody, api.SlackBody
		return c
	}
	tests := []struct {
		cfg  Config
		want string
	}{
		{render(Config{Allow: []string{"http://example.com"}}), "http://example.com"},
		{render(Config{Allow: []string{"host:notaport"}}), "host:notaport"},
		{render(Config{Allow: []string{"10.0.0.0/33"}}), "10.0.0.0/33"},
		{render(Config{SlackURL: "ftp://hooks.example.com/"}), "slack url"},
		{render(Config{SlackURL: "hooks.example.com"}), "slack url"},
		{Config{SlackBody: api.SlackBody}, "no callback renderer"},
		{Config{CallbackBody: api.CallbackBody, SlackURL: "https://hooks.example.com/x"}, "no Slack renderer"},
	}
	for _, tt := range tests {
		if _, err := New(e.store, tt.cfg, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(allow %q, slack %q) = %v; want an error about %q", tt.cfg.Allow, tt.cfg.SlackURL, err, tt.want)
		}
	}
	if _, err := New(e.store, render(Config{Allow: []string{"127.0.0.0/8", "localhost:9000"}, SlackURL: "https://hooks.example.com/x"}), nil); err != nil {
		t.Errorf("New(good config) = %v; want nil", err)
	}
}

// Reconfigure takes effect for what is announced and delivered afterwards;
// a bad config keeps the old settings whole.
func TestReconfigure(t *testing.T) {
	e := newEnv(t)
	n := e.notifier(Config{SlackURL: "https://hooks.example.com/old"})
	job := inventory.Job{ID: "J1", State: model.JobDone}
	slackURL := func() string {
		for _, it := range n.Announce(job, model.JobSpec{}, hostResults()) {
			if it.Kind == inventory.KindSlack {
				return it.URL
			}
		}
		return ""
	}
	tests := []struct {
		name      string
		cfg       Config
		wantErr   string
		wantSlack string
		wantCheck bool // CheckURL of http://127.0.0.1:9/ passes
	}{
		{"new slack url and allow-list", Config{Secret: "s2", SlackURL: "https://hooks.example.com/new", Allow: []string{"127.0.0.0/8"}},
			"", "https://hooks.example.com/new", true},
		{"bad allow-list keeps all", Config{Secret: "s3", SlackURL: "https://hooks.example.com/other", Allow: []string{"10.0.0.0/33"}},
			"10.0.0.0/33", "https://hooks.example.com/new", true},
		{"bad slack url keeps all", Config{Secret: "s3", SlackURL: "hooks.example.com"}, "slack url", "https://hooks.example.com/new", true},
		{"slack off, allow-list gone", Config{Secret: "s4"}, "", "", false},
	}
	for _, tt := range tests {
		err := n.Reconfigure(tt.cfg)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: Reconfigure = %v; want error %q", tt.name, err, tt.wantErr)
		}
		if got := slackURL(); got != tt.wantSlack {
			t.Errorf("%s: Slack delivery to %q; want %q", tt.name, got, tt.wantSlack)
		}
		if err := n.CheckURL(context.Background(), "http://127.0.0.1:9/"); (err == nil) != tt.wantCheck {
			t.Errorf("%s: CheckURL(loopback) = %v; want allowed %v", tt.name, err, tt.wantCheck)
		}
	}

	// The secret and the timeout in force when an attempt starts are used.
	rc := newReceiver(t, nil)
	if err := n.Reconfigure(Config{Secret: "rotated", Allow: loopbackOK, Timeout: 5 * time.Second}); err != nil {
		t.Fatal(err)
	}
	stop := e.run(n)
	job2 := e.finish(n, "seed-7", model.JobSpec{CallbackURL: rc.srv.URL + "/hook"}, hostResults())
	waitFor(t, "callback delivered", func() bool { return e.item(job2.ID, inventory.KindCallback).State == model.DeliveryDelivered })
	stop()
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests; want 1", len(reqs))
	}
	if err := Verify("rotated", reqs[0].header, reqs[0].body, time.Minute); err != nil {
		t.Errorf("Verify(rotated secret) = %v; want nil", err)
	}
}

// A slow receiver with a backlog must not fill the due window: the fast
// receiver's callback is delivered while the slow one still holds its share.
func TestSlowBacklogDoesNotDelayOthers(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	var slowDone atomic.Int64
	slow := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		select { // answers 200, but only when the test lets it
		case <-r.Context().Done():
		case <-release:
		}
		slowDone.Add(1)
	})
	t.Cleanup(func() { close(release) })
	got := make(chan struct{}, 1)
	fast := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) { got <- struct{}{} })
	n := e.notifier(Config{Allow: loopbackOK, Timeout: time.Minute, Parallel: 4})
	// The backlog first, all due before the fast receiver's item.
	for i := range 40 {
		e.finish(n, fmt.Sprintf("slow%02d", i), model.JobSpec{CallbackURL: slow.srv.URL}, hostResults())
	}
	e.finish(n, "fast", model.JobSpec{CallbackURL: fast.srv.URL}, hostResults())
	e.run(n)
	select {
	case <-got:
	case <-time.After(30 * time.Second): // a hang bound, not a timing assertion
		t.Fatal("the fast receiver got nothing while the slow one's backlog waited")
	}
	if d := slowDone.Load(); d != 0 {
		t.Errorf("%d slow deliveries ended before the fast one arrived; want 0", d)
	}
}

// Config.Delivered is told of every attempt with the state it left the
// delivery in: two failures (pending, retried), then delivered.
func TestDeliveredObserved(t *testing.T) {
	e := newEnv(t)
	rc := newReceiver(t, func(i int, w http.ResponseWriter, r *http.Request) {
		if i < 2 {
			http.Error(w, "not yet", http.StatusInternalServerError)
		}
	})
	var mu sync.Mutex
	var seen []string
	n := e.notifier(Config{Allow: loopbackOK, Delivered: func(kind string, state model.DeliveryState) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, kind+" "+string(state))
	}})
	e.run(n)
	job := e.finish(n, "seed-1", model.JobSpec{CallbackURL: rc.srv.URL}, hostResults())
	waitFor(t, "callback delivered", func() bool { return e.item(job.ID, inventory.KindCallback).State == model.DeliveryDelivered })
	waitFor(t, "three attempts observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"callback pending", "callback pending", "callback delivered"}; !slices.Equal(seen, want) {
		t.Errorf("observed %v; want %v", seen, want)
	}
}
