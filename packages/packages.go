// Package packages drives a package job on one host: it finds the host's
// package manager, asks it what is installed, runs it only for what must
// change, asks again, and reports every package with its version before
// and after. It runs nothing itself: each step is one fixed command line
// given to a Runner — the host's transport (a minion, or SSH with sudo) —
// so minions need nothing new and agentless hosts work the same way.
// Every word of a command line is quoted; package names and versions are
// checked (model.ParsePkg) before a job is stored, and again here.
package packages

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/felix-ops/felix/model"
)

// Runner runs one command line on the host (/bin/sh -c there) and streams
// its output to out.
type Runner = func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error)

// MaxListed bounds the packages a list reports per host; more are cut,
// with a note on stderr.
const MaxListed = 20000

// maxCapture bounds what a query's output may be (a list of every package
// of a large host is a few hundred KiB).
const maxCapture = 16 << 20

// Run performs spec on host t through run and returns the report in
// Exit.Packages (Exit.Code 0 when no package failed). The manager is
// spec.Manager, else t.PkgManager (the pkg_manager label), else the
// first of model.PkgManagers the host has. The manager's own output goes
// to out; the queries' does not. An error from run on the very first
// command is returned as is (so errors.Is(err, exec.ErrUnreachable) still
// tells that nothing ran).
func Run(ctx context.Context, run Runner, t model.Target, spec *model.PkgSpec, out model.OutputFunc) (model.Exit, error) {
	exit := model.Exit{Code: -1}
	if err := spec.Check(); err != nil {
		return exit, fmt.Errorf("package job on %s: %w", t.ID, err)
	}
	h := &host{run: run, out: out, spec: spec}
	m, err := h.manager(ctx, t)
	if err != nil {
		return exit, err
	}
	rep := &model.PkgReport{Manager: m.name, DryRun: spec.DryRun}
	exit.Packages = rep
	if spec.InstallRoot != "" && !m.hasRoot {
		return exit, fmt.Errorf("%s has no install root (installroot %s): use dnf, yum, zypper, apk or pacman", m.name, spec.InstallRoot)
	}
	if spec.Refresh { // the index only, a dry run too: what it reports is then current
		if _, err := h.manage(ctx, m, m.refresh(h.root())); err != nil {
			return exit, fmt.Errorf("refresh the package index with %s: %w", m.name, err)
		}
	}
	switch spec.Action {
	case model.PkgList:
		err = h.list(ctx, m, rep)
	case model.PkgInfo:
		err = h.info(ctx, m, rep)
	default:
		err = h.change(ctx, m, rep)
	}
	rep.Count()
	if err != nil {
		return exit, err
	}
	if rep.Failed == 0 {
		exit.Code = 0
	} else {
		exit.Code = 1
	}
	return exit, nil
}

// host runs a job's commands on one host.
type host struct {
	run   Runner
	out   model.OutputFunc
	spec  *model.PkgSpec
	first bool // a command has been run
}

func (h *host) root() string { return h.spec.InstallRoot }

// exec runs argv (quoted) with env words before it, capturing its output
// when capture (else streaming it to h.out), and returns what it printed.
func (h *host) exec(ctx context.Context, env, argv []string, capture bool) (stdout, stderr []byte, code int, err error) {
	timeout := time.Hour
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d)-2*time.Second, time.Second)
	}
	// A manager waits for its lock (a held dpkg lock, another zypper)
	// until a little before the job's deadline, then fails with its own
	// message, which names the holder.
	wait := strconv.Itoa(int(max(timeout-5*time.Second, time.Second).Seconds()))
	env, argv = withLockWait(env, wait), withLockWait(argv, wait)
	line := quote(env, argv)
	var ob, eb capped
	out := func(s model.Stream, p []byte) {
		if s == model.Stderr {
			eb.Write(p)
		} else {
			ob.Write(p)
		}
		if !capture && h.out != nil {
			h.out(s, p)
		}
	}
	first := !h.first
	h.first = true
	x, err := h.run(ctx, model.Command{Line: line, Timeout: timeout}, out)
	if err != nil {
		if first {
			return nil, nil, -1, err // as the transport said: maybe nothing ran
		}
		return nil, nil, -1, fmt.Errorf("%s: %w", line, err)
	}
	if x.TimedOut {
		return ob.b.Bytes(), eb.b.Bytes(), -1, fmt.Errorf("%s: killed at the job's deadline: %w", line, context.DeadlineExceeded)
	}
	if x.Cancelled {
		return ob.b.Bytes(), eb.b.Bytes(), -1, fmt.Errorf("%s: %w", line, context.Canceled)
	}
	if x.Signal != "" {
		return ob.b.Bytes(), eb.b.Bytes(), -1, fmt.Errorf("%s: killed by %s", line, x.Signal)
	}
	return ob.b.Bytes(), eb.b.Bytes(), x.Code, nil
}

// query runs a query (captured); a non-zero exit is the caller's to judge.
func (h *host) query(ctx context.Context, c cmd) ([]byte, []byte, int, error) {
	return h.exec(ctx, c.env, c.argv, true)
}

// manage runs the manager itself (its output streamed) and fails on a
// non-zero exit with the end of its stderr, returned as the reason too.
// It returns no reason when the manager did not finish on its own: it
// could not run, or gave up waiting for its lock at the job's deadline
// (wrapping context.DeadlineExceeded: the host timed out), or the job was
// cancelled while it ran (wrapping context.Canceled; what it left half
// done is for the manager's own recovery).
func (h *host) manage(ctx context.Context, m *manager, c cmd) (string, error) {
	stdout, stderr, code, err := h.exec(ctx, c.env, c.argv, false)
	switch {
	case err != nil && (errors.Is(ctx.Err(), context.Canceled) || errors.Is(err, context.Canceled)):
		return "", fmt.Errorf("cancelled while %s was running: felix killed its process group; "+
			"the package manager's own recovery is left to it (%s): %w", m.name, m.recovery, context.Canceled)
	case err != nil:
		return "", err
	case code == 0:
		return "", nil
	}
	reason := lastLines(stderr, 3)
	for _, l := range m.lockHeld {
		if strings.Contains(reason, l) {
			if holder := lastLineWith(stdout, "held by", "locked by"); holder != "" {
				reason = holder + "; " + reason
			}
			return "", fmt.Errorf("%s waited for its lock until the job's deadline, another process holds it: %s: %w: %w",
				m.name, reason, errLockHeld, context.DeadlineExceeded)
		}
	}
	return reason, fmt.Errorf("%s exited %d: %s", m.name, code, reason)
}

// lastLineWith returns the last line of b holding one of subs, trimmed
// (apt names a lock's holder in its progress lines on stdout).
func lastLineWith(b []byte, subs ...string) string {
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		for _, s := range subs {
			if strings.Contains(lines[i], s) {
				return strings.TrimSpace(lines[i])
			}
		}
	}
	return ""
}

// manager picks the host's package manager and checks it is there.
func (h *host) manager(ctx context.Context, t model.Target) (*manager, error) {
	name, why := h.spec.Manager, "asked for"
	if name == "" && t.PkgManager != "" {
		name, why = t.PkgManager, "the host's "+model.PkgLabel+" label"
	}
	if name != "" {
		m := managers[name]
		if m == nil {
			return nil, fmt.Errorf("package manager %q (%s): felix drives %s", name, why, strings.Join(model.PkgManagers, ", "))
		}
		stdout, _, _, err := h.query(ctx, cmd{argv: []string{"sh", "-c", probeScript, "sh", m.binary}})
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(stdout)) == "" {
			return nil, fmt.Errorf("package manager %s (%s) is not installed on %s (%s not found)", name, why, t.ID, m.binary)
		}
		return m, nil
	}
	var bins []string
	for _, n := range model.PkgManagers {
		bins = append(bins, managers[n].binary)
	}
	stdout, _, _, err := h.query(ctx, cmd{argv: append([]string{"sh", "-c", probeScript, "sh"}, bins...)})
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(stdout), "\n") {
		for _, n := range model.PkgManagers {
			if line == managers[n].binary {
				return managers[n], nil
			}
		}
	}
	return nil, fmt.Errorf("no package manager felix drives on %s (looked for %s); set the %s label to name one", t.ID, strings.Join(bins, ", "), model.PkgLabel)
}

// probeScript prints each of its arguments the shell finds as a command,
// in order: the same fixed script for every host, the names as arguments.
const probeScript = `for m; do command -v "$m" >/dev/null 2>&1 && echo "$m"; done; true`

// installed asks which of names are installed, and at which version.
func (h *host) installed(ctx context.Context, m *manager, names []string) (map[string]string, error) {
	stdout, stderr, code, err := h.query(ctx, m.query(h.root(), names))
	if err != nil {
		return nil, fmt.Errorf("ask %s what is installed: %w", m.name, err)
	}
	vs, perr := m.parseQuery(stdout, names)
	if perr != nil || (code != 0 && m.queryFails) {
		return nil, fmt.Errorf("ask %s what is installed: exit %d: %s", m.name, code, firstNonEmpty(perr, lastLines(stderr, 3)))
	}
	return vs, nil
}

func firstNonEmpty(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// change installs, removes or upgrades spec's packages.
func (h *host) change(ctx context.Context, m *manager, rep *model.PkgReport) error {
	spec := h.spec
	if spec.Action == model.PkgUpgrade && len(spec.Packages) == 0 {
		return h.upgradeAll(ctx, m, rep)
	}
	names := make([]string, len(spec.Packages))
	for i, p := range spec.Packages {
		names[i] = p.Name
	}
	before, err := h.installed(ctx, m, names)
	if err != nil {
		return err
	}
	// What is available matters for upgrades, and for installing what is
	// not installed yet (a name apt does not know fails alone); a host that
	// already has everything asked runs two queries and nothing more.
	var ask []string
	for _, p := range spec.Packages {
		if _, inst := before[p.Name]; spec.Action == model.PkgUpgrade || (spec.Action == model.PkgInstall && !inst) {
			ask = append(ask, p.Name)
		}
	}
	cands := map[string]string{}
	if len(ask) > 0 {
		if cands, err = h.candidates(ctx, m, ask); err != nil {
			return err
		}
	}
	var todo []model.Pkg
	for _, p := range spec.Packages {
		v, inst := before[p.Name]
		c := model.PkgChange{Name: p.Name, Before: v, After: v, State: model.PkgUnchanged}
		switch spec.Action {
		case model.PkgInstall:
			switch {
			case p.Version != "" && m.noPins && !versionIs(v, p.Version):
				c.State, c.Error = model.PkgFailed, m.name+" installs only the version its repositories have: drop ="+p.Version
			case !inst && cands[p.Name] == "":
				// Named alone: apt would refuse the whole transaction.
				c.State, c.Error = model.PkgFailed, "not available from the host's repositories"
			case !inst || (p.Version != "" && !versionIs(v, p.Version)):
				todo = append(todo, p)
			}
		case model.PkgRemove:
			if inst {
				todo = append(todo, p)
			}
		case model.PkgUpgrade:
			switch {
			case !inst:
				c.State, c.Error = model.PkgFailed, "not installed: install it first"
			case cands[p.Name] != "" && cands[p.Name] != v:
				todo = append(todo, p)
			}
		}
		rep.Packages = append(rep.Packages, c)
	}
	if len(todo) == 0 {
		return nil // everything is as asked: the manager is not run
	}
	if spec.DryRun {
		return h.simulate(ctx, m, rep, todo)
	}
	reason, runErr := h.manage(ctx, m, h.changeCmd(m, todo))
	if runErr != nil && reason == "" {
		// The manager did not finish: what it changed is not known, unless
		// it never got its lock.
		for i := range rep.Packages {
			c := &rep.Packages[i]
			switch {
			case !inTodo(todo, c.Name):
			case errors.Is(runErr, errLockHeld):
				c.State, c.Error = model.PkgFailed, "not "+pastTense(spec.Action)+": "+m.name+"'s lock is held by another process"
			default:
				c.After, c.State, c.Error = "", model.PkgFailed, "not known: "+m.name+" did not finish"
			}
		}
		return runErr
	}
	after, err := h.installed(ctx, m, names)
	if err != nil {
		return err
	}
	asked := map[string]model.Pkg{}
	for _, p := range todo {
		asked[p.Name] = p
	}
	for i := range rep.Packages {
		c := &rep.Packages[i]
		p, ok := asked[c.Name]
		if !ok {
			continue
		}
		c.After = after[c.Name]
		_, nowInst := after[c.Name]
		done := false
		switch spec.Action {
		case model.PkgInstall:
			done = nowInst && (p.Version == "" || versionIs(c.After, p.Version))
		case model.PkgRemove:
			done = !nowInst
		default:
			done = c.After != c.Before
		}
		switch {
		case done && c.After != c.Before: // a removal: Before was a version, After is ""
			c.State = model.PkgChanged
		case done:
			c.State = model.PkgUnchanged
		default:
			c.State, c.Error = model.PkgFailed, "not "+pastTense(spec.Action)
			if reason != "" {
				c.Error += ": " + reason
			}
		}
	}
	return nil
}

// versionIs reports whether the installed version is the pinned one: the
// same, or the same with a release (rpm: 1.0 is 1.0-1) or without an
// epoch of 0.
func versionIs(installed, pinned string) bool {
	installed = strings.TrimPrefix(installed, "0:")
	pinned = strings.TrimPrefix(pinned, "0:")
	return installed == pinned || strings.HasPrefix(installed, pinned+"-")
}

func pastTense(action string) string {
	switch action {
	case model.PkgInstall:
		return "installed"
	case model.PkgRemove:
		return "removed"
	}
	return "upgraded"
}

// simulate reports what the manager would do with todo, changing
// nothing: the manager's own simulation of the very command a real run
// would use.
func (h *host) simulate(ctx context.Context, m *manager, rep *model.PkgReport, todo []model.Pkg) error {
	would, err := h.simulation(ctx, m, h.changeCmd(m, todo))
	if err != nil {
		if errors.Is(err, errRunFailed) {
			return err
		}
		for i := range rep.Packages {
			if inTodo(todo, rep.Packages[i].Name) {
				rep.Packages[i].State, rep.Packages[i].Error = model.PkgFailed, err.Error()
			}
		}
		return nil
	}
	for i := range rep.Packages {
		c := &rep.Packages[i]
		if !inTodo(todo, c.Name) {
			continue
		}
		v, ok := would[c.Name]
		switch {
		case !ok:
			c.State, c.Error = model.PkgFailed, "the manager would not change it"
		case h.spec.Action != model.PkgRemove && v == "":
			c.State, c.Error = model.PkgFailed, "no version of it is available"
		default:
			c.After, c.State = v, model.PkgChanged
		}
	}
	return nil
}

// errLockHeld marks a manager that gave up waiting for its lock.
var errLockHeld = errors.New("lock held")

// errRunFailed marks a simulation that could not run at all (the host
// failed), as against one the manager refused (its packages failed).
var errRunFailed = errors.New("the simulation did not run")

// simulation runs the manager's simulation of c and reads it.
func (h *host) simulation(ctx context.Context, m *manager, c cmd) (map[string]string, error) {
	stdout, stderr, code, err := h.query(ctx, m.simulate(c))
	if err != nil {
		return nil, fmt.Errorf("simulate with %s: %w: %w", m.name, errRunFailed, err)
	}
	would, err := m.parseSimulation(output{stdout, stderr, code}, h.spec.Action == model.PkgRemove)
	if err != nil {
		return nil, fmt.Errorf("the simulation failed: %w", err)
	}
	return would, nil
}

// changeCmd is the manager's command for spec's action on todo.
func (h *host) changeCmd(m *manager, todo []model.Pkg) cmd {
	switch h.spec.Action {
	case model.PkgInstall:
		return m.install(h.root(), todo)
	case model.PkgRemove:
		return m.remove(h.root(), todo)
	}
	return m.upgrade(h.root(), todo)
}

func inTodo(todo []model.Pkg, name string) bool {
	for _, p := range todo {
		if p.Name == name {
			return true
		}
	}
	return false
}

// upgradeAll upgrades everything the manager would, reporting what moved.
func (h *host) upgradeAll(ctx context.Context, m *manager, rep *model.PkgReport) error {
	before, err := h.listed(ctx, m, "")
	if err != nil {
		return err
	}
	if h.spec.DryRun {
		would, err := h.simulation(ctx, m, m.upgrade(h.root(), nil))
		if err != nil {
			return fmt.Errorf("simulate upgrading everything: %w", err)
		}
		for name, v := range would {
			rep.Packages = append(rep.Packages, model.PkgChange{Name: name, Before: before[name], After: v, State: model.PkgChanged})
		}
		sortReport(rep)
		return nil
	}
	if _, err := h.manage(ctx, m, m.upgrade(h.root(), nil)); err != nil {
		return err
	}
	after, err := h.listed(ctx, m, "")
	if err != nil {
		return err
	}
	for name, v := range after {
		if before[name] != v {
			rep.Packages = append(rep.Packages, model.PkgChange{Name: name, Before: before[name], After: v, State: model.PkgChanged})
		}
	}
	for name, v := range before {
		if _, ok := after[name]; !ok {
			rep.Packages = append(rep.Packages, model.PkgChange{Name: name, Before: v, State: model.PkgChanged})
		}
	}
	sortReport(rep)
	return nil
}

// listed returns the installed packages matching glob ("" all).
func (h *host) listed(ctx context.Context, m *manager, glob string) (map[string]string, error) {
	stdout, stderr, code, err := h.query(ctx, m.list(h.root(), glob))
	if err != nil {
		return nil, fmt.Errorf("list installed packages with %s: %w", m.name, err)
	}
	vs, perr := m.parseList(stdout)
	if perr != nil || (code != 0 && len(vs) == 0 && m.listFails) {
		return nil, fmt.Errorf("list installed packages with %s: exit %d: %s", m.name, code, firstNonEmpty(perr, lastLines(stderr, 3)))
	}
	if glob != "" {
		for name := range vs {
			if ok, _ := path.Match(glob, name); !ok {
				delete(vs, name)
			}
		}
	}
	return vs, nil
}

func (h *host) list(ctx context.Context, m *manager, rep *model.PkgReport) error {
	vs, err := h.listed(ctx, m, h.spec.Glob)
	if err != nil {
		return err
	}
	for name, v := range vs {
		rep.Packages = append(rep.Packages, model.PkgChange{Name: name, Before: v, After: v, State: model.PkgPresent})
	}
	sortReport(rep)
	if len(rep.Packages) > MaxListed {
		if h.out != nil {
			h.out(model.Stderr, fmt.Appendf(nil, "felix: %d packages match; the report keeps the first %d\n", len(rep.Packages), MaxListed))
		}
		rep.Packages = rep.Packages[:MaxListed]
	}
	return nil
}

func (h *host) info(ctx context.Context, m *manager, rep *model.PkgReport) error {
	names := make([]string, len(h.spec.Packages))
	for i, p := range h.spec.Packages {
		names[i] = p.Name
	}
	inst, err := h.installed(ctx, m, names)
	if err != nil {
		return err
	}
	cands, err := h.candidates(ctx, m, names)
	if err != nil {
		return err
	}
	for _, n := range names {
		c := model.PkgChange{Name: n, Before: inst[n], After: inst[n], Candidate: cands[n], State: model.PkgAbsent}
		if _, ok := inst[n]; ok {
			c.State = model.PkgPresent
		}
		if c.State == model.PkgAbsent && c.Candidate == "" {
			c.State, c.Error = model.PkgFailed, "neither installed nor available"
		}
		rep.Packages = append(rep.Packages, c)
	}
	return nil
}

// candidates asks which version the manager would install of each name.
func (h *host) candidates(ctx context.Context, m *manager, names []string) (map[string]string, error) {
	stdout, stderr, code, err := h.query(ctx, m.candidates(h.root(), names))
	if err != nil {
		return nil, fmt.Errorf("ask %s which versions are available: %w", m.name, err)
	}
	vs := m.parseCandidates(stdout, names)
	if len(vs) == 0 && code != 0 && m.candidatesFail {
		return nil, fmt.Errorf("ask %s which versions are available: exit %d: %s", m.name, code, lastLines(stderr, 3))
	}
	return vs, nil
}

func sortReport(rep *model.PkgReport) {
	sort.Slice(rep.Packages, func(i, j int) bool { return rep.Packages[i].Name < rep.Packages[j].Name })
}

// capped keeps the first maxCapture bytes written to it.
type capped struct{ b bytes.Buffer }

func (c *capped) Write(p []byte) {
	if room := maxCapture - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
}

// lastLines returns the last n non-empty lines of b, joined with "; ".
func lastLines(b []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, "; ")
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}

// withLockWait returns words with lockWait replaced by seconds.
func withLockWait(words []string, seconds string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = strings.ReplaceAll(w, lockWait, seconds)
	}
	return out
}

// quote makes the command line: env words (fixed KEY=VALUE), then argv,
// every argv word single-quoted for /bin/sh.
func quote(env, argv []string) string {
	var b strings.Builder
	for _, e := range env {
		b.WriteString(e)
		b.WriteByte(' ')
	}
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
	}
	return b.String()
}
