package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// fakeFingerprint is a stable, well-formed fingerprint for a minion id.
// Register stores fingerprints and PEM as given, without parsing them.
func fakeFingerprint(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "sha256:" + hex.EncodeToString(sum[:])
}

type testMinion struct {
	id     string
	addr   string
	ips    []string
	state  model.KeyState
	facts  string            // JSON, as the minion reports it
	labels map[string]string // set by an operator
}

const (
	debianFacts = `{"os_name":"debian","arch":"x86_64"}`
	ubuntuFacts = `{"os_name":"Ubuntu","arch":"x86_64"}`
)

// The inventory every Resolve test runs against.
var testMinions = []testMinion{
	{id: "web1", addr: "10.0.0.1:4506", ips: []string{"10.0.0.1", "192.168.1.1"}, state: model.KeyAccepted,
		facts: debianFacts, labels: map[string]string{"role": "web"}},
	{id: "web2", addr: "10.0.0.2:4506", ips: []string{"10.0.0.2", "fd00::2"}, state: model.KeyAccepted,
		facts: ubuntuFacts, labels: map[string]string{"role": "web"}},
	{id: "web3", addr: "10.0.0.3:4506", ips: []string{"10.0.0.3"}, state: model.KeyPending,
		facts: debianFacts, labels: map[string]string{"role": "web"}},
	{id: "web4", addr: "10.0.0.4:4506", ips: []string{"10.0.0.4"}, state: model.KeyRejected, facts: debianFacts},
	{id: "db1", addr: "10.0.1.1:4506", ips: []string{"10.0.1.1", "172.16.0.5"}, state: model.KeyAccepted,
		facts: debianFacts, labels: map[string]string{"role": "db"}},
	// db2 reports web1's dial address as one of its own: a dial address wins.
	// Its arch label overrides its arch fact.
	{id: "db2", addr: "db2.example:4506", ips: []string{"10.0.0.1", "172.16.0.6"}, state: model.KeyAccepted,
		facts: debianFacts, labels: map[string]string{"role": "db", "arch": "arm64"}},
	{id: "v6", addr: "[fd00::6]:4506", state: model.KeyAccepted},
	// Every host reports loopback; docker hosts share 172.17.0.1.
	{id: "dock1", addr: "10.0.2.1:4506", ips: []string{"127.0.0.1", "fe80::1", "172.17.0.1"}, state: model.KeyAccepted},
	{id: "dock2", addr: "10.0.2.2:4506", ips: []string{"127.0.0.1", "fe80::1", "172.17.0.1"}, state: model.KeyAccepted},
}

// newTestStore opens an inventory in t.TempDir() holding testMinions.
func newTestStore(t *testing.T) *inventory.Store { return newTestStoreIn(t, t.TempDir()) }

// newTestStoreIn is newTestStore with the database in dir.
func newTestStoreIn(t *testing.T, dir string) *inventory.Store {
	t.Helper()
	ctx := context.Background()
	store, err := inventory.Open(ctx, filepath.Join(dir, "felix.db"))
	if err != nil {
		t.Fatalf("open inventory: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Now()
	tokens := make(map[bool]string)
	for _, auto := range []bool{true, false} {
		tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: auto, Uses: -1}, now)
		if err != nil {
			t.Fatalf("create join token: %v", err)
		}
		tokens[auto] = tok
	}
	for _, m := range testMinions {
		reg := inventory.Registration{
			Minion: inventory.Minion{ID: m.id, Hostname: m.id, Addr: m.addr, IPs: m.ips, Facts: m.facts,
				CertPEM: "not a real certificate", Fingerprint: fakeFingerprint(m.id)},
			JoinTokenHash: inventory.HashToken(tokens[m.state == model.KeyAccepted]),
		}
		if _, _, err := store.Register(ctx, reg, now); err != nil {
			t.Fatalf("register %s: %v", m.id, err)
		}
		if m.state == model.KeyRejected {
			if err := store.SetMinionState(ctx, m.id, m.state, now); err != nil {
				t.Fatalf("reject %s: %v", m.id, err)
			}
		}
		if m.labels != nil {
			if err := store.SetLabels(ctx, m.id, m.labels, nil); err != nil {
				t.Fatalf("label %s: %v", m.id, err)
			}
		}
	}
	return store
}

// accepted is the target an accepted test minion resolves to.
func accepted(id string) model.Target {
	for _, m := range testMinions {
		if m.id == id {
			return model.Target{ID: id, Addr: m.addr, Fingerprint: fakeFingerprint(id)}
		}
	}
	panic("no test minion " + id)
}

// notAccepted is the target a pending or rejected test minion resolves to.
func notAccepted(id string) model.Target {
	t := accepted(id)
	t.Skip = model.StateNotAccepted
	return t
}

func TestResolve(t *testing.T) {
	s := &Service{Store: newTestStore(t)}
	tests := []struct {
		name     string
		patterns []string
		want     []model.Target
		wantErr  error
	}{
		{name: "exact id", patterns: []string{"web1"}, want: []model.Target{accepted("web1")}},
		{name: "exact id with spaces", patterns: []string{"  web1 "}, want: []model.Target{accepted("web1")}},
		{name: "pending id", patterns: []string{"web3"}, want: []model.Target{notAccepted("web3")}},
		{name: "rejected id", patterns: []string{"web4"}, want: []model.Target{notAccepted("web4")}},
		{name: "unknown id", patterns: []string{"nope"}, wantErr: ErrNoTargets},
		{name: "unknown id beside a known one", patterns: []string{"nope", "web1"}, want: []model.Target{{ID: "nope", Skip: model.StateUnknown}, accepted("web1")}},
		{name: "glob takes accepted only", patterns: []string{"web*"}, want: []model.Target{accepted("web1"), accepted("web2")}},
		{name: "glob class", patterns: []string{"db[12]"}, want: []model.Target{accepted("db1"), accepted("db2")}},
		{name: "glob question mark", patterns: []string{"web?"}, want: []model.Target{accepted("web1"), accepted("web2")}},
		{name: "ip of the dial address", patterns: []string{"10.0.0.2"}, want: []model.Target{accepted("web2")}},
		{name: "dial address beats reported ip", patterns: []string{"10.0.0.1"}, want: []model.Target{accepted("web1")}},
		{name: "ip reported only", patterns: []string{"172.16.0.5"}, want: []model.Target{accepted("db1")}},
		{name: "ipv6 dial address", patterns: []string{"fd00::6"}, want: []model.Target{accepted("v6")}},
		{name: "ipv6 reported", patterns: []string{"FD00:0::2"}, want: []model.Target{accepted("web2")}},
		{name: "ip of a pending minion", patterns: []string{"10.0.0.3"}, want: []model.Target{notAccepted("web3")}},
		{name: "ip of nothing", patterns: []string{"10.9.9.9"}, wantErr: ErrNoTargets},
		{
			name:     "duplicates deduped",
			patterns: []string{"web1", "web1", "web*", "10.0.0.1", "192.168.1.1"},
			want:     []model.Target{accepted("web1"), accepted("web2")},
		},
		{
			name:     "sorted by id",
			patterns: []string{"web2", "zz-unknown", "db1", "web3", "a-unknown", "web1"},
			want: []model.Target{{ID: "a-unknown", Skip: model.StateUnknown}, accepted("db1"), accepted("web1"),
				accepted("web2"), notAccepted("web3"), {ID: "zz-unknown", Skip: model.StateUnknown}},
		},
		{name: "loopback is never matched by report", patterns: []string{"127.0.0.1", "web1"},
			want: []model.Target{{ID: "127.0.0.1", Addr: "127.0.0.1", Skip: model.StateUnknown}, accepted("web1")}},
		{name: "link-local is never matched by report", patterns: []string{"fe80::1", "web1"},
			want: []model.Target{{ID: "fe80::1", Addr: "fe80::1", Skip: model.StateUnknown}, accepted("web1")}},
		{name: "address reported by several minions", patterns: []string{"172.17.0.1"}, wantErr: ErrBadTarget},
		{name: "control character", patterns: []string{"web1\nweb2"}, wantErr: ErrBadTarget},
		{name: "glob matching nothing", patterns: []string{"zzz*"}, wantErr: ErrNoTargets},
		{name: "glob matching only pending and rejected", patterns: []string{"web[34]"}, wantErr: ErrNoTargets},
		{name: "bad glob", patterns: []string{"["}, wantErr: ErrBadTarget},
		{name: "bad glob among good", patterns: []string{"web1", "db[1"}, wantErr: ErrBadTarget},
		{name: "empty pattern", patterns: []string{"web1", " "}, wantErr: ErrBadTarget},
		{name: "no patterns", patterns: nil, wantErr: ErrNoTargets},
		{name: "empty list", patterns: []string{}, wantErr: ErrNoTargets},

		// CIDR ranges: accepted minions dialled at, or reporting, an address inside.
		{name: "cidr", patterns: []string{"10.0.0.0/30"}, want: []model.Target{accepted("db2"), accepted("web1"), accepted("web2")}},
		{name: "cidr of dial addresses only", patterns: []string{"10.0.1.0/24"}, want: []model.Target{accepted("db1")}},
		{name: "ipv6 cidr", patterns: []string{"fd00::/64"}, want: []model.Target{accepted("v6"), accepted("web2")}},
		{name: "cidr with a pending minion only", patterns: []string{"10.0.0.3/32"}, wantErr: ErrNoTargets},
		{name: "cidr ignores reported loopback", patterns: []string{"127.0.0.0/8"}, wantErr: ErrNoTargets},
		{name: "bad cidr", patterns: []string{"10.0.0.0/99"}, wantErr: ErrBadTarget},

		// Filters over labels and facts, ANDed with each other and with the rest.
		{name: "fact filter alone", patterns: []string{"os=debian"}, want: []model.Target{accepted("db1"), accepted("db2"), accepted("web1")}},
		{name: "fact filter by its full name", patterns: []string{"os_name=debian"}, want: []model.Target{accepted("db1"), accepted("db2"), accepted("web1")}},
		{name: "fact filter ignores case", patterns: []string{"os=ubuntu"}, want: []model.Target{accepted("web2")}},
		{name: "fact filter glob", patterns: []string{"os=deb*"}, want: []model.Target{accepted("db1"), accepted("db2"), accepted("web1")}},
		{name: "label filter alone", patterns: []string{"role=web"}, want: []model.Target{accepted("web1"), accepted("web2")}},
		{name: "glob and label", patterns: []string{"web*", "role=web"}, want: []model.Target{accepted("web1"), accepted("web2")}},
		{name: "glob and fact narrows", patterns: []string{"web*", "os=debian"}, want: []model.Target{accepted("web1")}},
		{name: "two filters", patterns: []string{"role=db", "os=debian"}, want: []model.Target{accepted("db1"), accepted("db2")}},
		{name: "filters that never hold together", patterns: []string{"role=web", "os=deb*", "arch=arm64"}, wantErr: ErrNoTargets},
		{name: "cidr and filter", patterns: []string{"10.0.0.0/30", "role=db"}, want: []model.Target{accepted("db2")}},
		{name: "label beats fact of the same key", patterns: []string{"arch=x86_64"}, want: []model.Target{accepted("db1"), accepted("web1"), accepted("web2")}},
		{name: "label value matches", patterns: []string{"arch=arm64"}, want: []model.Target{accepted("db2")}},
		{name: "filter keeps a matching pending id", patterns: []string{"web3", "os=debian"}, want: []model.Target{notAccepted("web3")}},
		{name: "glob and filter matching nothing", patterns: []string{"db*", "role=web"}, wantErr: ErrNoTargets},
		{name: "unknown key", patterns: []string{"zone=eu"}, wantErr: ErrNoTargets},
		{name: "filter without key", patterns: []string{"=x"}, wantErr: ErrBadTarget},
		{name: "filter without value", patterns: []string{"k="}, wantErr: ErrBadTarget},
		{name: "filter with a bad glob", patterns: []string{"os=[deb"}, wantErr: ErrBadTarget},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Resolve(context.Background(), tt.patterns)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want error %v", tt.patterns, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.patterns, err)
			}
			for i := range got {
				// A skipped host must say why; the exact words are not tested.
				if (got[i].Skip != "") != (got[i].Error != "") {
					t.Errorf("%s: Skip %q with Error %q; want an error exactly when skipped", got[i].ID, got[i].Skip, got[i].Error)
				}
				got[i].Error = ""
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve(%q) =\n  %+v\nwant\n  %+v", tt.patterns, got, tt.want)
			}
		})
	}
}

func TestResolveEmptyInventory(t *testing.T) {
	store, err := inventory.Open(context.Background(), filepath.Join(t.TempDir(), "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s := &Service{Store: store}
	if _, err := s.Resolve(context.Background(), []string{"*"}); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Resolve(*) on an empty inventory = %v; want ErrNoTargets", err)
	}
	// An id naming no host is refused like a glob matching nothing.
	if got, err := s.Resolve(context.Background(), []string{"web1"}); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Resolve(web1) on an empty inventory = %+v, %v; want ErrNoTargets", got, err)
	}
}

func TestNewJobID(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.FixedZone("X", 3600))
	a, b := NewJobID(now), NewJobID(now)
	if a == b {
		t.Errorf("two job ids at the same instant are equal: %s", a)
	}
	if want := "20240506T060809.000-"; len(a) != len(want)+12 || a[:len(want)] != want {
		t.Errorf("NewJobID = %q; want %s<12 hex digits> (UTC, milliseconds)", a, want)
	}
	if later := NewJobID(now.Add(time.Second)); later <= a {
		t.Errorf("NewJobID later = %q; want it to sort after %q", later, a)
	}
}

func TestResolveNoTargetsSaysWhat(t *testing.T) {
	s := &Service{Store: newTestStore(t)}
	_, err := s.Resolve(context.Background(), []string{"web*", "zone=eu"})
	if !errors.Is(err, ErrNoTargets) {
		t.Fatalf("Resolve(web*, zone=eu) = %v; want ErrNoTargets", err)
	}
	// Accepted: web1, web2, db1, db2, v6, dock1, dock2.
	for _, want := range []string{"web*", "zone=eu", "7 accepted"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve(web*, zone=eu) = %q; want it to mention %q", err, want)
		}
	}
}

// call is one Exec of the fake transport.
type call struct {
	host    string
	target  model.Target
	cmd     model.Command
	content string // of cmd.File
}

// fakeTransport is an exec.Transport the test controls: run decides each
// call's outcome (nil: exit 0 at once).
type fakeTransport struct {
	run func(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error)

	inFlight, maxInFlight atomic.Int64

	mu    sync.Mutex // protects calls
	calls []call
}

var _ exec.Transport = (*fakeTransport)(nil)

func (f *fakeTransport) Name() string { return "fake" }

func (f *fakeTransport) Exec(ctx context.Context, t model.Target, cmd model.Command, out model.OutputFunc) (model.Exit, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	c := call{host: t.ID, target: t, cmd: cmd}
	if cmd.File != nil {
		r, err := cmd.File.Open()
		if err != nil {
			return model.Exit{}, fmt.Errorf("open content: %w", err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return model.Exit{}, fmt.Errorf("read content: %w", err)
		}
		c.content = string(b)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.run == nil {
		return model.Exit{}, nil
	}
	return f.run(ctx, t, cmd, out)
}

// hosts returns the hosts called, in call order.
func (f *fakeTransport) hosts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.host)
	}
	return out
}

func (f *fakeTransport) callsOf(host string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.host == host {
			out = append(out, c)
		}
	}
	return out
}

// fakeAnnouncer records which jobs it was asked about and returns one
// callback per job.
type fakeAnnouncer struct {
	mu    sync.Mutex // protects calls, specs and count
	calls map[string][]model.Result
	specs map[string]model.JobSpec
	count map[string]int
}

func (a *fakeAnnouncer) Announce(job inventory.Job, spec model.JobSpec, results []model.Result) []inventory.OutboxItem {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calls == nil {
		a.calls, a.specs, a.count = map[string][]model.Result{}, map[string]model.JobSpec{}, map[string]int{}
	}
	a.calls[job.ID] = results
	a.specs[job.ID] = spec
	a.count[job.ID]++
	now := time.Now()
	return []inventory.OutboxItem{{EventID: "cb-" + job.ID, Kind: inventory.KindCallback, JobID: job.ID,
		URL: "http://receiver.example/cb", Body: []byte(`{"job_id":"` + job.ID + `","state":"` + string(job.State) + `"}`),
		NextAt: now, CreatedAt: now}}
}

func (a *fakeAnnouncer) asked(id string) (int, []model.Result) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.count[id], a.calls[id]
}

// spec is the spec the announcer was given with job id.
func (a *fakeAnnouncer) spec(id string) model.JobSpec {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.specs[id]
}

// newService returns a Service over the test inventory whose engine uses tr.
// Cleanups shut it down, then close the writer, then the store.
func newService(t *testing.T, tr exec.Transport) *Service { return newServiceIn(t, t.TempDir(), tr) }

// newServiceIn is newService with the database in dir.
func newServiceIn(t *testing.T, dir string, tr exec.Transport) *Service {
	t.Helper()
	store := newTestStoreIn(t, dir)
	log := testenv.Logger(t)
	w := inventory.NewResultWriter(store, log)
	t.Cleanup(w.Close)
	s := &Service{Store: store, Writer: w, Engine: &exec.Engine{Transport: tr}, Log: log,
		PayloadDir: t.TempDir(), Announcer: &fakeAnnouncer{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s
}

// waitJob waits for a job to end; the deadline only keeps a broken test
// from hanging.
func waitJob(t *testing.T, s *Service, id string) (inventory.Job, []model.Result) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !s.Wait(ctx, id) {
		t.Fatalf("job %s did not end", id)
	}
	j, rs, err := s.Store.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("Job(%s) = %v", id, err)
	}
	return j, rs
}

// states returns the hosts' states as "host=state" in host order.
func states(rs []model.Result) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.Host + "=" + string(r.State))
	}
	return b.String()
}

// gate blocks hosts in the transport until released.
type gate struct {
	entered chan string   // told each host that enters
	release chan struct{} // closed to let them all go
}

func newGate(n int) *gate { return &gate{entered: make(chan string, n), release: make(chan struct{})} }

// wait blocks until the gate opens (ok true) or ctx ends.
func (g *gate) wait(ctx context.Context, host string) bool {
	g.entered <- host
	select {
	case <-g.release:
		return true
	case <-ctx.Done():
		return false
	}
}

func TestSubmitWaitDone(t *testing.T) {
	g := newGate(3)
	tr := &fakeTransport{run: func(ctx context.Context, tg model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		if !g.wait(ctx, tg.ID) {
			return model.Exit{}, ctx.Err()
		}
		out(model.Stdout, []byte("hello from "+tg.ID))
		if tg.ID == "db1" {
			return model.Exit{Code: 3}, nil
		}
		return model.Exit{}, nil
	}}
	s := newService(t, tr)
	ctx := context.Background()
	spec := model.JobSpec{ClientID: "req-1", CmdType: "line", CmdLine: "hostname", Targets: []string{"web1", "web2", "db1", "nope"}}
	job, err := s.Submit(ctx, spec, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	if job.State != model.JobRunning || job.Total != 4 || job.ID == "" {
		t.Errorf("Submit = %+v; want a running job of 4 hosts", job)
	}

	// Before the transport lets any host finish, every host is stored
	// pending (the unknown one may already have its final state).
	for range 3 {
		<-g.entered
	}
	stored, rs, err := s.Store.Job(ctx, job.ID)
	if err != nil {
		t.Fatalf("Job(%s) = %v", job.ID, err)
	}
	if stored.State != model.JobRunning || stored.Total != 4 || stored.ClientID != "req-1" {
		t.Errorf("stored job = %+v; want running, 4 hosts, client id req-1", stored)
	}
	for _, r := range rs {
		// Stored asynchronously: a started host is pending or already running.
		if r.State != model.StatePending && r.State != model.StateRunning && !(r.Host == "nope" && r.State == model.StateUnknown) {
			t.Errorf("while running: %s is %s; want pending or running", r.Host, r.State)
		}
	}
	if len(rs) != 4 {
		t.Errorf("while running: hosts %s; want db1, nope, web1 and web2", states(rs))
	}

	close(g.release)
	stored, rs = waitJob(t, s, job.ID)
	if stored.State != model.JobDone || stored.FinishedAt.IsZero() {
		t.Errorf("after Wait: job %s finished %v; want done", stored.State, stored.FinishedAt)
	}
	if got, want := states(rs), "db1=failed nope=unknown web1=ok web2=ok"; got != want {
		t.Errorf("after Wait: %s; want %s", got, want)
	}
	for _, r := range rs {
		if r.Host == "nope" {
			continue
		}
		if string(r.Stdout) != "hello from "+r.Host || r.Transport != "fake" || r.StartedAt.IsZero() {
			t.Errorf("%s: stdout %q, transport %q, started %v; want its output, fake, set", r.Host, r.Stdout, r.Transport, r.StartedAt)
		}
	}
	if rs[0].ExitCode != 3 {
		t.Errorf("db1 exit code = %d; want 3", rs[0].ExitCode)
	}
	if n, _ := s.Announcer.(*fakeAnnouncer).asked(job.ID); n != 1 {
		t.Errorf("announcer asked %d times about the job; want 1", n)
	}
	if sp := s.Announcer.(*fakeAnnouncer).spec(job.ID); sp.ClientID != "req-1" || sp.CmdLine != "hostname" || len(sp.Targets) != 4 {
		t.Errorf("announcer given spec %+v; want the submitted one (id req-1, hostname, 4 targets)", sp)
	}
	if !s.Wait(ctx, job.ID) {
		t.Errorf("Wait on an ended job = false; want true")
	}
}

func TestCancel(t *testing.T) {
	g := newGate(2)
	tr := &fakeTransport{run: func(ctx context.Context, tg model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
		g.wait(ctx, tg.ID) // never released: only cancelling ends it
		return model.Exit{}, fmt.Errorf("exec on %s: %w", tg.ID, ctx.Err())
	}}
	s := newService(t, tr)
	ctx := context.Background()
	job, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "sleep 300", Targets: []string{"web*"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	<-g.entered
	<-g.entered
	if err := s.Cancel(ctx, job.ID); err != nil {
		t.Fatalf("Cancel(running) = %v", err)
	}
	stored, rs := waitJob(t, s, job.ID)
	if stored.State != model.JobCancelled {
		t.Errorf("job state = %s; want cancelled", stored.State)
	}
	if got, want := states(rs), "web1=cancelled web2=cancelled"; got != want {
		t.Errorf("hosts %s; want %s", got, want)
	}
	if err := s.Cancel(ctx, job.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("Cancel(cancelled job) = %v; want ErrFinished", err)
	}

	done, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"nope", "web3"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	waitJob(t, s, done.ID)
	if err := s.Cancel(ctx, done.ID); !errors.Is(err, ErrFinished) {
		t.Errorf("Cancel(finished job) = %v; want ErrFinished", err)
	}
	if err := s.Cancel(ctx, "no-such-job"); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("Cancel(unknown) = %v; want inventory.ErrNotFound", err)
	}
}

func TestRerun(t *testing.T) {
	tr := &fakeTransport{run: func(_ context.Context, tg model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
		if tg.ID == "web2" {
			return model.Exit{Code: 1}, nil
		}
		return model.Exit{}, nil
	}}
	s := newService(t, tr)
	ctx := context.Background()
	spec := model.JobSpec{ClientID: "r", CmdType: "line", CmdLine: "deploy", Env: []string{"A=1"}, Timeout: 7 * time.Second,
		Targets: []string{"web*", "db1"}}
	first, err := s.Submit(ctx, spec, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	waitJob(t, s, first.ID)

	again, err := s.Rerun(ctx, first.ID, true)
	if err != nil {
		t.Fatalf("Rerun(only failed) = %v", err)
	}
	if again.ID == first.ID {
		t.Errorf("Rerun reused the job id %s", again.ID)
	}
	_, rs := waitJob(t, s, again.ID)
	if got, want := states(rs), "web2=failed"; got != want {
		t.Errorf("rerun of failed hosts ran %s; want %s", got, want)
	}
	calls := tr.callsOf("web2")
	if len(calls) != 2 {
		t.Fatalf("web2 called %d times; want 2", len(calls))
	}
	if c := calls[1].cmd; c.Line != "deploy" || c.Timeout != 7*time.Second || !slices.Equal(c.Env, []string{"A=1"}) {
		t.Errorf("rerun command = %+v; want the first job's line, timeout and env", c)
	}
	if n := len(tr.callsOf("web1")); n != 1 {
		t.Errorf("web1 called %d times; want 1 (it did not fail)", n)
	}
	stored, _, _ := s.Store.Job(ctx, again.ID)
	if stored.ClientID != "r" || !slices.Equal(stored.Targets, []string{"web2"}) {
		t.Errorf("rerun job: client id %q, targets %q; want r, [web2]", stored.ClientID, stored.Targets)
	}

	all, err := s.Rerun(ctx, first.ID, false)
	if err != nil {
		t.Fatalf("Rerun(all) = %v", err)
	}
	if _, rs := waitJob(t, s, all.ID); len(rs) != 3 {
		t.Errorf("rerun of all hosts ran %s; want db1, web1, web2", states(rs))
	}

	ok, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"web1"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	waitJob(t, s, ok.ID)
	if _, err := s.Rerun(ctx, ok.ID, true); !errors.Is(err, ErrNoTargets) {
		t.Errorf("Rerun(only failed) of a job without failures = %v; want ErrNoTargets", err)
	}
	if _, err := s.Rerun(ctx, "no-such-job", false); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("Rerun(unknown) = %v; want inventory.ErrNotFound", err)
	}
}

func TestRerunScriptSharesPayload(t *testing.T) {
	tr := &fakeTransport{}
	s := newService(t, tr)
	ctx := context.Background()
	const script = "#!/bin/sh\necho \"$@\"\n"
	path, n, err := s.StorePayload(strings.NewReader(script), 1024)
	if err != nil || n != int64(len(script)) {
		t.Fatalf("StorePayload = %q, %d, %v; want %d bytes", path, n, err, len(script))
	}
	spec := model.JobSpec{CmdType: "script", CmdLine: "./run.sh 'arg one' two", FileName: "run.sh", FileSize: n, Targets: []string{"web1"}}
	first, err := s.Submit(ctx, spec, path)
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("upload %s still there after Submit (%v); want it renamed to the job's", path, err)
	}
	waitJob(t, s, first.ID)
	again, err := s.Rerun(ctx, first.ID, false)
	if err != nil {
		t.Fatalf("Rerun = %v", err)
	}
	waitJob(t, s, again.ID)

	calls := tr.callsOf("web1")
	if len(calls) != 2 {
		t.Fatalf("web1 called %d times; want 2", len(calls))
	}
	for i, c := range calls {
		if c.content != script || c.cmd.File.Name != "run.sh" || c.cmd.File.Size != n || c.cmd.Line != spec.CmdLine {
			t.Errorf("call %d: file %+v with %q, line %q; want run.sh with the script", i, c.cmd.File, c.content, c.cmd.Line)
		}
	}
	a, errA := os.Stat(filepath.Join(s.PayloadDir, first.ID))
	b, errB := os.Stat(filepath.Join(s.PayloadDir, again.ID))
	if errA != nil || errB != nil {
		t.Fatalf("payloads: %v, %v; want both jobs' kept", errA, errB)
	}
	if !os.SameFile(a, b) {
		t.Errorf("the rerun's payload is a copy; want a hard link to the first job's")
	}
	entries, _ := os.ReadDir(s.PayloadDir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("payload directory holds %q; want only the two jobs' payloads", names)
	}
}

func TestRecover(t *testing.T) {
	s := newService(t, &fakeTransport{})
	ctx := context.Background()
	now := time.Now()
	// A job a killed master left running: web1 ended ok, the rest had not.
	hosts := []model.Result{{Host: "web1", State: model.StatePending}, {Host: "web2", State: model.StatePending},
		{Host: "db1", State: model.StatePending}}
	left := inventory.Job{ID: NewJobID(now), CmdLine: "true", CmdType: "line", Targets: []string{"web1", "web2", "db1"},
		State: model.JobRunning, Spec: `{"id":"seed-7","cmd_type":"line","cmd_line":"true","callback_url":"https://cb.example/x"}`,
		CreatedAt: now}
	if err := s.Store.CreateJob(ctx, left, hosts); err != nil {
		t.Fatal(err)
	}
	over := inventory.Job{ID: NewJobID(now), CmdLine: "true", CmdType: "line", State: model.JobDone, CreatedAt: now}
	if err := s.Store.CreateJob(ctx, over, nil); err != nil {
		t.Fatal(err)
	}
	s.Writer.Add(left.ID, model.Result{Host: "web1", State: model.StateOK, Stdout: []byte("fine"), StartedAt: now, FinishedAt: now})
	if err := s.Writer.Finish(ctx, over.ID, model.JobDone, now); err != nil { // commits web1's result too
		t.Fatal(err)
	}

	if err := s.Recover(ctx); err != nil {
		t.Fatalf("Recover = %v", err)
	}
	job, rs, err := s.Store.Job(ctx, left.ID)
	if err != nil {
		t.Fatal(err)
	}
	if job.State != model.JobDone || job.FinishedAt.IsZero() {
		t.Errorf("recovered job: %s, finished %v; want done", job.State, job.FinishedAt)
	}
	if got, want := states(rs), "db1=lost web1=ok web2=lost"; got != want {
		t.Errorf("recovered hosts %s; want %s", got, want)
	}
	for _, r := range rs {
		if r.State == model.StateLost && (r.Error == "" || r.ExitCode != -1) {
			t.Errorf("%s lost with error %q, exit code %d; want a reason and -1", r.Host, r.Error, r.ExitCode)
		}
		if r.Host == "web1" && string(r.Stdout) != "fine" {
			t.Errorf("web1 stdout = %q; want its stored output kept", r.Stdout)
		}
	}
	ann := s.Announcer.(*fakeAnnouncer)
	n, told := ann.asked(left.ID)
	if n != 1 || states(told) != "db1=lost web1=ok web2=lost" {
		t.Errorf("announcer asked %d times with %s; want once with the recovered results", n, states(told))
	}
	if sp := ann.spec(left.ID); sp.CallbackURL != "https://cb.example/x" || sp.ClientID != "seed-7" {
		t.Errorf("announcer given spec %+v; want the stored request (callback_url, id)", sp)
	}
	if n, _ := ann.asked(over.ID); n != 0 {
		t.Errorf("announcer asked %d times about a job that had ended; want 0", n)
	}
	items, err := s.Store.Outbox(ctx, inventory.OutboxFilter{JobID: left.ID})
	if err != nil || len(items) != 1 || items[0].EventID != "cb-"+left.ID || items[0].State != model.DeliveryPending {
		t.Errorf("outbox of the recovered job = %+v, %v; want its callback pending", items, err)
	}

	// A second start finds nothing left to recover.
	if err := s.Recover(ctx); err != nil {
		t.Fatalf("Recover again = %v", err)
	}
	if n, _ := ann.asked(left.ID); n != 1 {
		t.Errorf("after a second Recover the announcer was asked %d times; want 1", n)
	}
}

func TestBatchLimit(t *testing.T) {
	tests := []struct {
		batch string
		hosts int
		want  int
	}{
		{"", 25, 0},
		{"1", 25, 1},
		{"10", 25, 10},
		{"10%", 25, 3},
		{"1%", 5, 1},
		{"50%", 4, 2},
		{"100%", 7, 7},
		{"10%", 0, 1},
	}
	for _, tt := range tests {
		if got := batchLimit(tt.batch, tt.hosts); got != tt.want {
			t.Errorf("batchLimit(%q, %d) = %d; want %d", tt.batch, tt.hosts, got, tt.want)
		}
	}
}

func TestBatchOfOne(t *testing.T) {
	// Each host lingers in the transport, yielding, so that hosts run
	// without batching would overlap; batched, they never can.
	tr := &fakeTransport{run: func(context.Context, model.Target, model.Command, model.OutputFunc) (model.Exit, error) {
		for range 1000 {
			runtime.Gosched()
		}
		return model.Exit{}, nil
	}}
	s := newService(t, tr)
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"*"}, Batch: "1"}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	_, rs := waitJob(t, s, job.ID)
	if len(rs) != 7 {
		t.Fatalf("job ran on %s; want the 7 accepted minions", states(rs))
	}
	if m := tr.maxInFlight.Load(); m != 1 {
		t.Errorf("max hosts in the transport at once = %d; want 1", m)
	}
	if n := len(tr.hosts()); n != 7 {
		t.Errorf("transport called %d times; want 7", n)
	}
}

func TestFailThreshold(t *testing.T) {
	tr := &fakeTransport{run: func(_ context.Context, tg model.Target, _ model.Command, _ model.OutputFunc) (model.Exit, error) {
		if tg.ID == "db1" {
			return model.Exit{Code: 1}, nil
		}
		return model.Exit{}, nil
	}}
	s := newService(t, tr)
	// Hosts run in id order, one at a time: db1 first.
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"db1", "web*"},
		Batch: "1", FailThreshold: 1}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	stored, rs := waitJob(t, s, job.ID)
	if got, want := states(rs), "db1=failed web1=cancelled web2=cancelled"; got != want {
		t.Errorf("hosts %s; want %s", got, want)
	}
	if stored.State != model.JobDone {
		t.Errorf("job state = %s; want done", stored.State)
	}
	if got := tr.hosts(); !slices.Equal(got, []string{"db1"}) {
		t.Errorf("transport called for %q; want only db1", got)
	}
	for _, r := range rs[1:] {
		if !strings.Contains(r.Error, "threshold") {
			t.Errorf("%s: error %q; want it to name the fail threshold", r.Host, r.Error)
		}
	}
}

// eventLog collects events from a subscriber goroutine.
type eventLog struct {
	mu     sync.Mutex // protects events
	events []model.Event
}

func (l *eventLog) add(e model.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// brief renders the events as "type:host:state-or-data" lines.
func brief(evs []model.Event) []string {
	var out []string
	for _, e := range evs {
		v := e.State
		if e.Type == "output" {
			v = e.Stream + "=" + e.Data
		}
		out = append(out, string(e.Type)+":"+e.Host+":"+v)
	}
	return out
}

func TestEvents(t *testing.T) {
	emitted := make(chan struct{})
	release := make(chan struct{})
	tr := &fakeTransport{run: func(ctx context.Context, _ model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
		out(model.Stdout, []byte("step 1\n"))
		close(emitted)
		select {
		case <-release:
		case <-ctx.Done():
			return model.Exit{}, ctx.Err()
		}
		out(model.Stderr, []byte("step 2\n"))
		return model.Exit{}, nil
	}}
	s := newService(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	job, err := s.Submit(ctx, model.JobSpec{CmdType: "line", CmdLine: "work", Targets: []string{"web1"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	<-emitted

	// A subscriber attached while web1 is blocked in the transport.
	var live eventLog
	sawOutput := make(chan struct{})
	var once sync.Once
	errc := make(chan error, 1)
	go func() {
		errc <- s.Events(ctx, job.ID, func(e model.Event) error {
			live.add(e)
			if e.Type == "output" {
				once.Do(func() { close(sawOutput) })
			}
			return nil
		})
	}()
	<-sawOutput // the job cannot end before release
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("Events(live) = %v", err)
	}
	want := []string{"job::running", "host:web1:running", "output:web1:stdout=step 1\n", "output:web1:stderr=step 2\n",
		"host:web1:ok", "job::done"}
	if got := brief(live.events); !slices.Equal(got, want) {
		t.Errorf("live events =\n  %q\nwant\n  %q", got, want)
	}
	for i, e := range live.events {
		if e.Seq != i+1 {
			t.Errorf("live event %d has seq %d; want %d", i, e.Seq, i+1)
		}
	}

	// A subscriber that comes after the end gets the stored outcome.
	var late eventLog
	if err := s.Events(ctx, job.ID, func(e model.Event) error { late.add(e); return nil }); err != nil {
		t.Fatalf("Events(late) = %v", err)
	}
	want = []string{"job::running", "output:web1:stdout=step 1\n", "output:web1:stderr=step 2\n", "host:web1:ok", "job::done"}
	if got := brief(late.events); !slices.Equal(got, want) {
		t.Errorf("late events =\n  %q\nwant\n  %q", got, want)
	}
	if err := s.Events(ctx, "no-such-job", func(model.Event) error { return nil }); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("Events(unknown) = %v; want inventory.ErrNotFound", err)
	}
}

func TestStorePayloadLimit(t *testing.T) {
	s := newService(t, &fakeTransport{})
	if _, _, err := s.StorePayload(strings.NewReader("0123456789x"), 10); !errors.Is(err, ErrTooLarge) {
		t.Errorf("StorePayload(11 bytes, limit 10) = %v; want ErrTooLarge", err)
	}
	if entries, _ := os.ReadDir(s.PayloadDir); len(entries) != 0 {
		t.Errorf("after a refused payload the directory holds %d files; want none", len(entries))
	}
	path, n, err := s.StorePayload(strings.NewReader("0123456789"), 10)
	if err != nil || n != 10 {
		t.Fatalf("StorePayload(10 bytes, limit 10) = %d, %v; want 10, nil", n, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "0123456789" {
		t.Errorf("stored payload = %q, %v; want the content", b, err)
	}
}

func TestSubmitBadTargetRemovesPayload(t *testing.T) {
	tr := &fakeTransport{}
	s := newService(t, tr)
	ctx := context.Background()
	for _, tt := range []struct {
		targets []string
		want    error
	}{
		{[]string{"web1", "["}, ErrBadTarget},
		{[]string{"zzz*"}, ErrNoTargets},
	} {
		path, n, err := s.StorePayload(strings.NewReader("echo hi"), 1024)
		if err != nil {
			t.Fatal(err)
		}
		spec := model.JobSpec{CmdType: "script", CmdLine: "./x.sh", FileName: "x.sh", FileSize: n, Targets: tt.targets}
		if _, err := s.Submit(ctx, spec, path); !errors.Is(err, tt.want) {
			t.Errorf("Submit(%q) = %v; want %v", tt.targets, err, tt.want)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Submit(%q): payload %s left behind (%v)", tt.targets, path, err)
		}
	}
	if jobs, err := s.Store.Jobs(ctx, inventory.JobFilter{}); err != nil || len(jobs) != 0 {
		t.Errorf("jobs stored for refused requests: %+v, %v; want none", jobs, err)
	}
	if n := len(tr.hosts()); n != 0 {
		t.Errorf("transport called %d times; want 0", n)
	}
}

func TestDryRun(t *testing.T) {
	tr := &fakeTransport{}
	s := newService(t, tr)
	got, err := s.DryRun(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "reboot", Targets: []string{"role=web"}})
	if err != nil {
		t.Fatalf("DryRun = %v", err)
	}
	if len(got) != 2 || got[0].ID != "web1" || got[1].ID != "web2" {
		t.Errorf("DryRun = %+v; want web1, web2", got)
	}
	if jobs, _ := s.Store.Jobs(context.Background(), inventory.JobFilter{}); len(jobs) != 0 || len(tr.hosts()) != 0 {
		t.Errorf("DryRun stored %d jobs and ran %d hosts; want nothing", len(jobs), len(tr.hosts()))
	}
}

// TestCancelWhileFinishing cancels a job whose end is decided and being
// stored: it must be refused, not reported as cancelled while the job ends done.
func TestCancelWhileFinishing(t *testing.T) {
	s := newService(t, &fakeTransport{})
	errc := make(chan error, 1)
	s.Finished = func(id string) { errc <- s.Cancel(context.Background(), id) } // the job is still running here
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "true", Targets: []string{"web1"}}, "")
	if err != nil {
		t.Fatalf("Submit = %v", err)
	}
	stored, _ := waitJob(t, s, job.ID)
	if err := <-errc; !errors.Is(err, ErrFinished) {
		t.Errorf("Cancel while the job finishes = %v; want ErrFinished", err)
	}
	if stored.State != model.JobDone {
		t.Errorf("job state = %s; want done", stored.State)
	}
}

// fullDiskJob starts a job of two hosts over a database on a small tmpfs
// and fills the disk while they run; they end once it is full. It returns
// the service, the job and the filler file (remove it to free the space).
func fullDiskJob(t *testing.T, out []byte) (*Service, inventory.Job, string) {
	return fullDiskJobOn(t, out, 0)
}

// fullDiskJobOn is fullDiskJob on extra agentless hosts (big0000, ...)
// besides web1 and web2.
func fullDiskJobOn(t *testing.T, out []byte, extra int) (*Service, inventory.Job, string) {
	t.Helper()
	dir := testenv.Tmpfs(t, 8<<20)
	g := newGate(2 + extra)
	tr := &fakeTransport{run: func(ctx context.Context, tg model.Target, _ model.Command, o model.OutputFunc) (model.Exit, error) {
		if !g.wait(ctx, tg.ID) {
			return model.Exit{}, ctx.Err()
		}
		o(model.Stdout, out)
		return model.Exit{}, nil
	}}
	s := newServiceIn(t, dir, tr)
	targets := []string{"web1", "web2"}
	for i := range extra {
		id := fmt.Sprintf("big%04d", i)
		if _, err := s.Store.AddHost(context.Background(), inventory.Host{ID: id, Address: "10.9.0.1"}, false, time.Now()); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			targets = append(targets, "big*")
		}
	}
	job, err := s.Submit(context.Background(), model.JobSpec{CmdType: "line", CmdLine: "x", Targets: targets}, "")
	if err != nil {
		t.Fatal(err)
	}
	for range 2 + extra {
		<-g.entered
	}
	// Empty the write-ahead log, so that storing the results needs new space.
	rw, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "felix.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	filler := testenv.Fill(t, dir)
	t.Cleanup(func() { os.Remove(filler) }) // the cleanups that follow need room
	close(g.release)
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if s.Wait(short, job.ID) {
		t.Fatalf("job %s ended while its results could not be stored", job.ID)
	}
	return s, job, filler
}

// A job whose hosts end while the disk is full cannot store its end; it
// stays running, retrying, and ends — with every result stored — once
// space is freed. The database lives on a small tmpfs, filled for real.
func TestJobEndsAfterDiskFreed(t *testing.T) {
	out := bytes.Repeat([]byte("x"), 64<<10)
	s, job, filler := fullDiskJob(t, out)
	ctx := context.Background()
	if st, err := s.Store.JobState(ctx, job.ID); err != nil || st != model.JobRunning {
		t.Errorf("stored job state while the disk is full = %s, %v; want running", st, err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	long, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !s.Wait(long, job.ID) {
		t.Fatalf("job %s still running a minute after space was freed", job.ID)
	}
	stored, rs, err := s.Store.Job(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != model.JobDone || states(rs) != "web1=ok web2=ok" {
		t.Errorf("after space returned: job %s, hosts %s; want done, web1=ok web2=ok", stored.State, states(rs))
	}
	for _, r := range rs {
		if len(r.Stdout) != len(out) {
			t.Errorf("%s: %d bytes of stdout stored; want %d", r.Host, len(r.Stdout), len(out))
		}
	}
}

// Shutdown past its deadline returns although a job's end waits for a
// full disk: the end is left to the next start's Recover. With 1,500 hosts
// of 64 KiB each, more than the writer's queue holds, the hosts block in
// Add until Shutdown abandons the writer.
func TestShutdownWhileDiskFull(t *testing.T) {
	for _, extra := range []int{0, 1500} {
		t.Run(fmt.Sprint(2+extra, " hosts"), func(t *testing.T) { shutdownWhileDiskFull(t, extra) })
	}
}

func shutdownWhileDiskFull(t *testing.T, extra int) {
	s, _, _ := fullDiskJobOn(t, bytes.Repeat([]byte("x"), 64<<10), extra)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		s.Shutdown(ctx)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute): // a hang bound, not a timing assertion
		t.Fatal("Shutdown did not return while the disk is full")
	}
}
