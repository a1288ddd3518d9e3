// Package jobs is felix's job service: it turns a request into a job —
// resolves targets against the inventory, stores the job with a row per
// host, runs it through the exec engine in the background, stores each
// host's result as it arrives through the single result writer, streams
// progress to event subscribers, and on the job's end enqueues its
// announcements (callbacks, Slack) in the same transaction that finishes it.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/backoff"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// ErrFinished is returned when cancelling a job that has already ended.
var ErrFinished = errors.New("job already finished")

// ErrShuttingDown is returned for jobs submitted while the master stops.
var ErrShuttingDown = errors.New("the master is shutting down")

// batchLimit turns a batch value into hosts at a time for n hosts (0: no batching).
func batchLimit(b string, n int) int {
	if p, ok := strings.CutSuffix(b, "%"); ok {
		pct, _ := strconv.Atoi(p)
		return max(1, (n*pct+99)/100)
	}
	v, _ := strconv.Atoi(b)
	return v
}

// Announcer builds the deliveries that announce a finished job; satisfied
// by *notify.Notifier.
type Announcer interface {
	Announce(job inventory.Job, spec model.JobSpec, results []model.Result) []inventory.OutboxItem
}

// Observer is told of every job that ends, with its hosts' results, once
// its end is stored; satisfied by *metrics.Metrics.
type Observer interface {
	JobEnded(cmdType string, state model.JobState, results []model.Result)
}

// Service runs jobs.
type Service struct {
	Store  *inventory.Store
	Writer *inventory.ResultWriter
	Engine *exec.Engine
	Log    *slog.Logger
	// PayloadDir keeps the content of script and file jobs, one file per job.
	PayloadDir string
	// Content stores what push jobs send and fetch jobs bring back.
	Content *content.Store
	// Announcer, if set, is asked for each finished job's deliveries.
	Announcer Announcer
	// Started, if set, is called with a job's context before its hosts run;
	// the agent transport uses it to tag requests with the job id.
	Started func(ctx context.Context, jobID string) context.Context
	// CheckURL, if set, checks a rerun's callback URL again: what was allowed
	// when the first job was made may not be now.
	CheckURL func(ctx context.Context, url string) error
	// Finished, if set, is called after a job's end and its deliveries are
	// stored; the notifier uses it to deliver at once instead of at its
	// next poll.
	Finished func(jobID string)
	// Observer, if set, is told of every job that ends (metrics).
	Observer Observer
	// Upgrader, DistDir and LastUpgrade serve fleet upgrade jobs
	// (upgrade.go): the agent transport's upgrade, the directory of
	// minion-<os>-<arch> binaries, and, if set, the reason a minion
	// reported for rolling back an upgrade to version ("" if none).
	Upgrader    UpgradeAgent
	DistDir     string
	LastUpgrade func(ctx context.Context, id, version string) string
	// SSHUpgrader, if set, upgrades bootstrapped hosts over SSH: those
	// without an accepted minion, and in auto mode those whose minion
	// cannot be reached (see upgrader.Exec).
	SSHUpgrader UpgradeSSH
	// HostFacts, if set, gathers the facts of SSH hosts (hostfacts.go);
	// nil: a filter over facts cannot select a host without a minion.
	HostFacts FactsGatherer

	factsTTL atomic.Int64 // SetFactsTTL's duration; 0: DefaultFactsTTL

	mu      sync.Mutex
	running map[string]*run // by job id; protected by mu
	closing bool            // Shutdown began: no new jobs; protected by mu
	forced  chan struct{}   // closed when Shutdown's deadline passed; made by forcedLocked; protected by mu
	wg      sync.WaitGroup  // running jobs
}

// forcedLocked returns the channel Shutdown closes when its deadline has
// passed; s.mu must be held.
func (s *Service) forcedLocked() chan struct{} {
	if s.forced == nil {
		s.forced = make(chan struct{})
	}
	return s.forced
}

// run is a job in progress.
type run struct {
	cancel context.CancelFunc
	done   chan struct{}
	hub    *hub
	// cancelled is set by Cancel: the job ends cancelled, not done.
	cancelled bool // protected by Service.mu
	// ended is set once the job's final state is decided; Cancel then
	// reports ErrFinished instead of claiming a cancel that cannot happen.
	ended bool // protected by Service.mu
}

// NewJobID returns a new random job id: a sortable time prefix and 6 random bytes.
func NewJobID(now time.Time) string {
	b := make([]byte, 6)
	rand.Read(b)
	return now.UTC().Format("20060102T150405.000") + "-" + hex.EncodeToString(b)
}

// DryRun resolves spec's targets without running anything.
func (s *Service) DryRun(ctx context.Context, spec model.JobSpec) ([]model.Target, error) {
	if err := checkPackages(&spec); err != nil {
		return nil, err
	}
	if err := checkUpgrade(&spec); err != nil {
		return nil, err
	}
	if err := checkApply(&spec); err != nil {
		return nil, err
	}
	if err := s.checkApplyTargets(ctx, &spec); err != nil {
		return nil, err
	}
	if spec.IsTransfer() {
		release, err := s.checkFiles(&spec)
		if err != nil {
			return nil, err
		}
		release()
	}
	return s.targets(ctx, spec)
}

// targets resolves spec's targets and gives each the transport mode of the
// spec. A host the mode cannot reach is skipped at once, so a dry run
// shows it and it takes no slot: under agent, one without an accepted
// minion; under ssh, one without SSH settings.
func (s *Service) targets(ctx context.Context, spec model.JobSpec) ([]model.Target, error) {
	if err := model.ValidMode(spec.Transport); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	mode := spec.Transport
	if mode == "" {
		mode = model.ModeAuto
	}
	targets, err := s.Resolve(ctx, spec.Targets)
	if err != nil {
		return nil, err
	}
	if err := s.checkScope(ctx, targets); err != nil {
		return nil, err
	}
	for i := range targets {
		t := &targets[i]
		t.Mode = mode
		if t.SSH != nil && (spec.SSHUser != "" || spec.Become || spec.BecomeUser != "") {
			st := *t.SSH // per-run overrides (minions ignore them)
			if spec.SSHUser != "" {
				st.User = spec.SSHUser
			}
			st.Become = st.Become || spec.Become
			if spec.BecomeUser != "" {
				st.Become, st.BecomeUser = true, spec.BecomeUser
			}
			t.SSH = &st
		}
		if t.Skip != "" {
			continue
		}
		switch {
		case mode == model.ModeAgent && t.Fingerprint == "" && t.SSH != nil:
			t.Skip, t.Error = model.StateUnreachable, "no accepted minion on "+t.ID+" (transport agent); use --transport auto or ssh"
		case mode == model.ModeSSH && t.SSH == nil:
			t.Skip, t.Error = model.StateUnreachable, "no ssh settings for "+t.ID+" (transport ssh); add them with: felix hosts add ADDRESS --id "+t.ID
		}
	}
	return targets, nil
}

// ErrOutsideScope refuses a job (or a dry run) on hosts outside the scope
// of the token that asks (WithScope): nothing is stored.
var ErrOutsideScope = errors.New("outside the token's scope")

// scopeKey is the context key of WithScope.
type scopeKey struct{}

// WithScope returns ctx limiting the jobs submitted with it to the hosts
// the target patterns scope select (a scoped API token's).
func WithScope(ctx context.Context, scope []string) context.Context {
	return context.WithValue(ctx, scopeKey{}, scope)
}

// Scope is the scope ctx carries (WithScope), or nil: every host.
func Scope(ctx context.Context) []string {
	scope, _ := ctx.Value(scopeKey{}).([]string)
	return scope
}

// InScope returns the ids of the hosts scope selects.
func (s *Service) InScope(ctx context.Context, scope []string) (map[string]bool, error) {
	undecided := map[string]bool{}
	targets, err := s.resolve(ctx, scope, undecided)
	if errors.Is(err, ErrNoTargets) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token scope %s: %w", strings.Join(scope, ","), err)
	}
	in := make(map[string]bool, len(targets))
	for _, t := range targets {
		// A host whose facts could not be gathered is not known to be in
		// a scope that filters by facts.
		if t.Skip != model.StateUnknown && !undecided[t.ID] {
			in[t.ID] = true
		}
	}
	return in, nil
}

// checkScope refuses targets that reach a host outside ctx's scope. An
// unknown id runs nowhere and passes.
func (s *Service) checkScope(ctx context.Context, targets []model.Target) error {
	scope := Scope(ctx)
	if len(scope) == 0 {
		return nil
	}
	in, err := s.InScope(ctx, scope)
	if err != nil {
		return err
	}
	outside := 0
	for _, t := range targets {
		if t.Skip != model.StateUnknown && !in[t.ID] {
			outside++
		}
	}
	if outside == 0 {
		return nil
	}
	// Counted, not named: the token must not learn of hosts beyond its scope.
	return fmt.Errorf("%w (%s): the targets select %d hosts beyond it", ErrOutsideScope, strings.Join(scope, ","), outside)
}

// requesterKey is the context key of WithRequester.
type requesterKey struct{}

// WithRequester returns ctx naming who asks for the jobs submitted with it
// (the API token's name): the job keeps it as RequestedBy.
func WithRequester(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, requesterKey{}, who)
}

// Requester is who ctx says asks (WithRequester), or "".
func Requester(ctx context.Context) string {
	who, _ := ctx.Value(requesterKey{}).(string)
	return who
}

// Submit resolves spec's targets, stores the job with a pending row per
// host and starts it in the background. payload, for script and file jobs,
// is the content already stored by StorePayload under a temporary name; it
// becomes the job's.
//
// A file job (spec.Push or spec.Fetch) is checked here; a push's content
// must be in the content store, and is held there while the job runs. So
// is a package job (spec.Packages), before anything is stored.
func (s *Service) Submit(ctx context.Context, spec model.JobSpec, payload string) (inventory.Job, error) {
	err := checkPackages(&spec)
	if err == nil {
		err = checkUpgrade(&spec)
	}
	if err == nil {
		err = checkApply(&spec)
	}
	if err == nil {
		err = s.checkApplyTargets(ctx, &spec)
	}
	if err != nil {
		if payload != "" {
			os.Remove(payload)
		}
		return inventory.Job{}, err
	}
	release := func() {}
	switch {
	case spec.IsTransfer():
		var err error
		if release, err = s.checkFiles(&spec); err != nil {
			return inventory.Job{}, err
		}
	case spec.Apply != nil:
		var err error
		if release, err = s.holdSources(spec.Apply); err != nil {
			return inventory.Job{}, err
		}
	case spec.Upgrade != nil:
		var err error
		if release, err = s.holdBinary(spec.Upgrade); err != nil {
			return inventory.Job{}, err
		}
	}
	targets, err := s.targets(ctx, spec)
	if err != nil {
		release()
		if payload != "" {
			os.Remove(payload)
		}
		return inventory.Job{}, err
	}
	job, err := s.start(ctx, spec, targets, payload, release)
	if err != nil {
		release()
	}
	return job, err
}

// start stores a job and runs it; release is called when it ends (not
// when start fails: the caller does that).
func (s *Service) start(ctx context.Context, spec model.JobSpec, targets []model.Target, payload string, release func()) (inventory.Job, error) {
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return inventory.Job{}, fmt.Errorf("encode job spec: %w", err)
	}
	now := time.Now()
	job := inventory.Job{ID: NewJobID(now), ClientID: spec.ClientID, CmdLine: spec.CmdLine, CmdType: spec.CmdType,
		Targets: spec.Targets, State: model.JobRunning, Spec: string(specJSON), Total: len(targets), CreatedAt: now,
		RequestedBy: Requester(ctx)}
	if payload != "" {
		if err := os.Rename(payload, s.payloadPath(job.ID)); err != nil {
			os.Remove(payload)
			return job, fmt.Errorf("keep payload of job %s: %w", job.ID, err)
		}
	}
	rows := make([]model.Result, len(targets))
	for i, t := range targets {
		rows[i] = model.Result{Host: t.ID, Addr: t.Addr, State: model.StatePending}
	}
	if err := s.Store.CreateJob(ctx, job, rows); err != nil {
		os.Remove(s.payloadPath(job.ID))
		return job, err
	}
	jctx, cancel := context.WithCancel(context.Background())
	if s.Started != nil {
		jctx = s.Started(jctx, job.ID)
	}
	r := &run{cancel: cancel, done: make(chan struct{}), hub: newHub()}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		cancel()
		// Stored but never run: end it now, its hosts cancelled.
		for i := range rows {
			rows[i].State, rows[i].Error, rows[i].ExitCode = model.StateCancelled, "the master is shutting down", -1
			s.Writer.Add(job.ID, rows[i])
		}
		job.State, job.FinishedAt = model.JobCancelled, time.Now()
		s.finish(job, spec, rows, false)
		return job, ErrShuttingDown
	}
	if s.running == nil {
		s.running = make(map[string]*run)
	}
	s.running[job.ID] = r
	s.wg.Add(1)
	s.mu.Unlock()
	s.Log.Info("job started", "job", job.ID, "id", spec.ClientID, "by", job.RequestedBy, "hosts", len(targets), "cmd", spec.CmdLine)
	go s.execute(jctx, job, spec, targets, r, release)
	return job, nil
}

// execute runs a job to its end and stores it.
func (s *Service) execute(ctx context.Context, job inventory.Job, spec model.JobSpec, targets []model.Target, r *run, release func()) {
	defer s.wg.Done()
	defer close(r.done)
	defer r.cancel()
	defer release()
	cmd := model.Command{Line: spec.CmdLine, Env: spec.Env, Dir: spec.Dir, Timeout: spec.Timeout, Shell: spec.Shell}
	if spec.IsTransfer() {
		cmd = s.transferCommand(spec)
	} else if spec.Packages != nil {
		cmd = model.Command{Timeout: spec.Timeout, Packages: spec.Packages}
	} else if spec.Apply != nil {
		var err error
		if cmd, err = s.applyCommand(ctx, spec); err != nil {
			failed := fmt.Errorf("prepare the apply: %w", err)
			cmd = model.Command{Timeout: spec.Timeout, Apply: &model.Apply{Spec: spec.Apply,
				Render: func(context.Context, model.Target) ([]model.Resource, error) { return nil, failed }}}
		}
	} else if spec.HasPayload() {
		path := s.payloadPath(job.ID)
		cmd.File = &model.File{Name: spec.FileName, Size: spec.FileSize,
			Open: func() (io.ReadCloser, error) { return os.Open(path) }}
	}
	runnable := 0
	for _, t := range targets {
		if t.Skip == "" {
			runnable++
		}
	}
	opts := exec.Options{Limit: batchLimit(spec.Batch, runnable), FailThreshold: spec.FailThreshold,
		KeepTail: model.AnnouncedTail(len(targets)), KeepPackages: model.AnnouncedPackages(len(targets))}
	r.hub.publish(model.Event{Type: model.EventJob, State: string(model.JobRunning), Total: len(targets)})
	hooks := exec.Hooks{
		Start: func(t model.Target, at time.Time) {
			s.Writer.Add(job.ID, model.Result{Host: t.ID, Addr: t.Addr, State: model.StateRunning, ExitCode: -1, StartedAt: at})
			r.hub.publish(model.Event{Type: model.EventHost, Host: t.ID, State: string(model.StateRunning), At: at})
		},
		Output: func(host string, st model.Stream, p []byte) {
			r.hub.publishOutput(host, st, p)
		},
		Result: func(res model.Result) {
			s.Writer.Add(job.ID, res)
			r.hub.publish(model.Event{Type: model.EventHost, Host: res.Host, State: string(res.State), ExitCode: res.ExitCode,
				Signal: res.Signal, Error: res.Error, Files: res.Files, Packages: res.Packages, Apply: res.Apply, At: res.FinishedAt})
		},
	}
	var results []model.Result
	if spec.Upgrade != nil {
		results = s.runUpgrade(ctx, spec, model.Command{Timeout: spec.Timeout}, targets, opts, hooks)
	} else {
		results = s.Engine.Run(ctx, cmd, targets, opts, hooks)
	}
	if spec.Push != nil && anyState(results, model.StateFailed) {
		s.verifyContent(job.ID, spec.Push)
	}
	job.State, job.FinishedAt = model.JobDone, time.Now()
	s.mu.Lock()
	if r.cancelled && anyCancelled(results) {
		// A cancel that came after every host had finished changed nothing.
		job.State = model.JobCancelled
	}
	r.ended = true
	s.mu.Unlock()
	if err := s.finish(job, spec, results, true); err != nil {
		s.Log.Error("finish job", "job", job.ID, "err", err)
	}
	r.hub.publish(model.Event{Type: model.EventJob, State: string(job.State), Total: len(targets)})
	r.hub.close()
	s.mu.Lock()
	delete(s.running, job.ID)
	s.mu.Unlock()
	s.Log.Info("job finished", "job", job.ID, "state", job.State, "hosts", len(results),
		"took", job.FinishedAt.Sub(job.CreatedAt))
}

// finishTries is how often finish tries to store a job's end after a
// failure that will not pass by itself, first with its announcements, then
// once without; finishBackoff spaces all tries (0.5 s doubling to 30 s;
// one writer: no jitter needed).
const finishTries = 4

// impatientWait bounds how long an impatient finish waits for the writer.
const impatientWait = 10 * time.Second

var finishBackoff = backoff.Policy{Base: 500 * time.Millisecond, Cap: 30 * time.Second, Jitter: backoff.None}

// finish stores a job's end with its announcements. A job must end
// whatever storage does. With patient set, a failure that passes by itself
// (a full disk, a busy database: inventory.Transient) is retried until it
// passes — the job stays running meanwhile. Any other failure (every
// failure, unless patient) is tried finishTries times, then once without
// the announcements (an announcement that cannot be stored must not keep a
// job running), then given up to the next start's Recover; so is every
// failure once Shutdown's deadline has passed. (The result writer itself
// waits out a full disk, so no result is lost meanwhile.)
func (s *Service) finish(job inventory.Job, spec model.JobSpec, results []model.Result, patient bool) error {
	var items []inventory.OutboxItem
	if s.Announcer != nil {
		items = s.Announcer.Announce(job, spec, results)
	}
	s.mu.Lock()
	forced := s.forcedLocked()
	s.mu.Unlock()
	// Once Shutdown's deadline passes, stop waiting for the writer too (it
	// may be waiting out a full disk, and closes only after the jobs).
	base, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-forced:
			stop()
		case <-base.Done():
		}
	}()
	failures := 0
	for attempt := 1; ; attempt++ {
		ctx, cancel := base, context.CancelFunc(func() {})
		if !patient {
			// The writer waits out a full disk; an impatient caller (a
			// starting master) does not: the end stays queued and is
			// stored when space returns.
			ctx, cancel = context.WithTimeout(ctx, impatientWait)
		}
		err := s.Writer.Finish(ctx, job.ID, job.State, job.FinishedAt, items...)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, inventory.ErrWriterClosed) {
			return err
		}
		if base.Err() != nil {
			return fmt.Errorf("store the end of job %s (left to the next start): the master is stopping", job.ID)
		}
		if !patient && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("store the end of job %s: storage unavailable; it stays queued and is stored when storage returns", job.ID)
		}
		if !patient || !inventory.Transient(err) {
			failures++
			switch {
			case failures == finishTries && len(items) > 0:
				s.Log.Error("store the end of job with its announcements; storing it without them", "job", job.ID, "err", err)
				items = nil
			case failures >= finishTries:
				return fmt.Errorf("store the end of job %s: %w", job.ID, err)
			}
		}
		wait := finishBackoff.Duration(attempt)
		s.Log.Warn("store the end of job; retrying", "job", job.ID, "in", wait, "err", err)
		select {
		case <-time.After(wait):
		case <-forced:
			return fmt.Errorf("store the end of job %s (left to the next start): %w", job.ID, err)
		}
	}
	if s.Observer != nil {
		s.Observer.JobEnded(spec.CmdType, job.State, results)
	}
	if s.Finished != nil {
		s.Finished(job.ID)
	}
	return nil
}

// Running is how many jobs run now.
func (s *Service) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

func anyCancelled(rs []model.Result) bool { return anyState(rs, model.StateCancelled) }

func anyState(rs []model.Result, st model.State) bool {
	for _, r := range rs {
		if r.State == st {
			return true
		}
	}
	return false
}

// Wait blocks until the job ends or ctx is done; it reports whether the job
// ended. A job that is not running has ended.
func (s *Service) Wait(ctx context.Context, id string) bool {
	s.mu.Lock()
	r, ok := s.running[id]
	s.mu.Unlock()
	if !ok {
		return true
	}
	select {
	case <-r.done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Cancel stops a running job: hosts not yet started end cancelled, and the
// running ones are killed on their hosts (the transport's context ends).
func (s *Service) Cancel(ctx context.Context, id string) error {
	s.mu.Lock()
	r, ok := s.running[id]
	if ok && r.ended {
		s.mu.Unlock()
		return fmt.Errorf("cancel job %s: %w", id, ErrFinished)
	}
	if ok {
		r.cancelled = true
	}
	s.mu.Unlock()
	if ok {
		r.cancel()
		s.Log.Info("job cancelled", "job", id)
		return nil
	}
	if _, err := s.Store.JobState(ctx, id); err != nil {
		return err
	}
	return fmt.Errorf("cancel job %s: %w", id, ErrFinished)
}

// Rerun starts a new job with the spec of job id, on all of its hosts or,
// with onlyFailed, on those that did not end ok.
func (s *Service) Rerun(ctx context.Context, id string, onlyFailed bool) (inventory.Job, error) {
	old, err := s.Store.JobSummary(ctx, id) // the hosts' results are not needed
	if err != nil {
		return inventory.Job{}, err
	}
	if old.State == model.JobRunning || old.State == model.JobQueued {
		return inventory.Job{}, fmt.Errorf("rerun job %s: it is still %s: %w", id, old.State, inventory.ErrConflict)
	}
	var spec model.JobSpec
	if err := json.Unmarshal([]byte(old.Spec), &spec); err != nil || spec.CmdLine == "" {
		return inventory.Job{}, fmt.Errorf("rerun job %s: its request was not kept: %w", id, inventory.ErrConflict)
	}
	if spec.CallbackURL != "" && s.CheckURL != nil {
		if err := s.CheckURL(ctx, spec.CallbackURL); err != nil {
			return inventory.Job{}, fmt.Errorf("rerun job %s: callback_url: %v: %w", id, err, ErrBadTarget)
		}
	}
	if onlyFailed {
		hosts, err := s.Store.JobHostsNot(ctx, id, model.StateOK)
		if err != nil {
			return inventory.Job{}, err
		}
		if len(hosts) == 0 {
			return inventory.Job{}, fmt.Errorf("%w: job %s has no failed hosts", ErrNoTargets, id)
		}
		spec.Targets = hosts
	}
	payload := ""
	if spec.HasPayload() {
		tmp, err := os.CreateTemp(s.PayloadDir, ".rerun-*")
		if err != nil {
			return inventory.Job{}, fmt.Errorf("rerun job %s: %w", id, err)
		}
		tmp.Close()
		os.Remove(tmp.Name())
		if err := os.Link(s.payloadPath(id), tmp.Name()); err != nil {
			return inventory.Job{}, fmt.Errorf("rerun job %s: its content is gone: %w", id, inventory.ErrConflict)
		}
		payload = tmp.Name()
	}
	job, err := s.Submit(ctx, spec, payload)
	if err != nil && payload != "" {
		os.Remove(payload)
	}
	if errors.Is(err, ErrNoContent) {
		// Collected since: the old job cannot be repeated as it was.
		err = fmt.Errorf("rerun job %s: %w (%w)", id, err, inventory.ErrConflict)
	}
	return job, err
}

// Recover resolves the jobs a previous master left queued or running:
// their unfinished hosts end lost (the minions' commands were cut off with
// the master's connections, and felix does not re-attach to them), the job
// ends done, and its announcements are enqueued like any other job's. A job
// it cannot resolve now is logged and left to the next start; only an
// unreadable job list is an error.
func (s *Service) Recover(ctx context.Context) error {
	ids, err := s.Store.UnfinishedJobs(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, id := range ids {
		// A job that cannot be resolved now (a full disk) is logged and
		// left for the next start: the master starts all the same.
		if err := s.Store.MarkLost(ctx, id, "the master stopped while this host ran", now); err != nil {
			s.Log.Error("recover job left running by the previous master", "job", id, "err", err)
			continue
		}
		job, err := s.Store.JobSummary(ctx, id)
		if err != nil {
			s.Log.Error("recover job left running by the previous master", "job", id, "err", err)
			continue
		}
		// Each host's result with the tail its announcements need, not
		// its whole stored output.
		var results []model.Result
		page := inventory.ResultPage{Limit: math.MaxInt32, Tail: model.AnnouncedTail(job.Total)}
		_, err = s.Store.JobResults(ctx, id, page, func(r model.Result) error {
			results = append(results, r)
			return nil
		})
		if err != nil {
			s.Log.Error("recover job left running by the previous master", "job", id, "err", err)
			continue
		}
		job.State, job.FinishedAt = model.JobDone, now
		var spec model.JobSpec
		if err := json.Unmarshal([]byte(job.Spec), &spec); err != nil {
			// Still end the job; without its request it cannot be announced.
			s.Log.Error("job left running has an unreadable request; it ends without callback", "job", id, "err", err)
		}
		if err := s.finish(job, spec, results, false); err != nil {
			s.Log.Error("recover job left running by the previous master", "job", id, "err", err)
			continue
		}
		s.Log.Warn("job left running by the previous master resolved; unfinished hosts are lost", "job", id)
	}
	return nil
}

// Shutdown waits for running jobs until ctx ends, then cancels them and
// waits for them to store their ends.
func (s *Service) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	s.mu.Lock()
	for _, r := range s.running {
		r.cancelled = true
		r.cancel()
	}
	if f := s.forcedLocked(); !isClosed(f) { // a second Shutdown must not close it again
		close(f)
	}
	s.mu.Unlock()
	// A writer waiting out a full disk would keep the hosts' goroutines
	// blocked on its full queue: give up storing, the next start marks
	// what was not stored lost.
	s.Writer.Abandon()
	<-done
}

// StorePayload copies up to limit bytes of content into a temporary file of
// the payload directory and returns its path and size. More than limit is
// ErrTooLarge and stores nothing.
func (s *Service) StorePayload(content io.Reader, limit int64) (string, int64, error) {
	if err := os.MkdirAll(s.PayloadDir, 0o700); err != nil {
		return "", 0, fmt.Errorf("store payload: %w", err)
	}
	f, err := os.CreateTemp(s.PayloadDir, ".upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("store payload: %w", err)
	}
	n, err := io.Copy(f, io.LimitReader(content, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		err = fmt.Errorf("content over %d bytes: %w", limit, ErrTooLarge)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, err
	}
	return f.Name(), n, nil
}

// ErrTooLarge is returned for content over the configured limit.
var ErrTooLarge = errors.New("too large")

func (s *Service) payloadPath(jobID string) string {
	return filepath.Join(s.PayloadDir, jobID)
}

// PrunePayloads removes the payloads of jobs that no longer exist, and
// uploads a crash left behind. Files younger than an hour are left alone: a
// job being created has its payload before its row.
func (s *Service) PrunePayloads(ctx context.Context) {
	entries, err := os.ReadDir(s.PayloadDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Hour {
			continue
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			os.Remove(filepath.Join(s.PayloadDir, name))
			continue
		}
		if _, err := s.Store.JobState(ctx, name); errors.Is(err, inventory.ErrNotFound) {
			os.Remove(filepath.Join(s.PayloadDir, name))
		}
	}
}

// isClosed reports whether ch is closed (it is only ever closed, never sent on).
func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
