package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

// UpgradeAgent is what a fleet upgrade needs of the agent transport;
// satisfied by *agent.Pool.
type UpgradeAgent interface {
	// Info pings a minion: its version and binary's sha256.
	Info(ctx context.Context, t model.Target) (model.MinionInfo, error)
	// Upgrade streams bin to the minion, which swaps itself; it returns
	// the version the minion will run, and unchanged when it already did.
	Upgrade(ctx context.Context, t model.Target, bin model.UpgradeBinary) (version string, unchanged bool, err error)
}

// UpgradeSSH is what a fleet upgrade needs to upgrade a bootstrapped host
// over SSH; satisfied by *bootstrap.Bootstrapper.
type UpgradeSSH interface {
	// Upgrade replaces the minion binary on t's host with the one pick
	// chooses for the host's os/arch, keeping the old one to roll back to.
	// Its report's Outcome is "" when nothing was replaced.
	Upgrade(ctx context.Context, t model.Target, pick func(goos, goarch string) (model.UpgradeBinary, error)) (model.UpgradeReport, error)
}

// DefaultUpgradeTimeout is a fleet upgrade's per-host deadline when the
// request gives none: the transfer, the swap, and the wait for the minion
// to come back (a minion's own watchdog gives up on a new binary after
// 60 s and restores the old one).
const DefaultUpgradeTimeout = 3 * time.Minute

// upgradePoll is how often a host is pinged while the master waits for it
// to come back.
const upgradePoll = 250 * time.Millisecond

// reasonWait bounds how long a rolled back minion's reason is waited for.
const reasonWait = 5 * time.Second

// checkUpgrade checks an upgrade job's spec and sets its command line.
// Other jobs pass unless they carry an upgrade spec.
func checkUpgrade(spec *model.JobSpec) error {
	if spec.Upgrade == nil {
		if spec.CmdType == model.CmdUpgrade {
			return invalid{errors.New("an upgrade job needs its upgrade spec")}
		}
		return nil
	}
	if spec.CmdType != model.CmdUpgrade || spec.IsTransfer() || spec.HasPayload() || spec.Packages != nil || spec.Apply != nil {
		return invalid{errors.New("an upgrade job is cmd_type upgrade, without a command, file, transfer, package or apply spec")}
	}
	if err := spec.Upgrade.Check(); err != nil {
		return invalid{err}
	}
	if spec.Timeout <= 0 {
		spec.Timeout = DefaultUpgradeTimeout
	}
	spec.CmdLine = UpgradeCmdLine(spec)
	return nil
}

// UpgradeCmdLine is how an upgrade job is shown as a command line: the
// felix command that asks for it, without its targets.
func UpgradeCmdLine(spec *model.JobSpec) string {
	words := []string{"minions", "upgrade"}
	u := spec.Upgrade
	if u.Canary > 0 {
		words = append(words, "--canary", strconv.Itoa(u.Canary))
	}
	if spec.Batch != "" {
		words = append(words, "--batch", spec.Batch)
	}
	if spec.FailThreshold > 0 {
		words = append(words, "--fail-threshold", strconv.Itoa(spec.FailThreshold))
	}
	if u.Binary != "" {
		words = append(words, "--binary", "sha256:"+u.Binary[:12]+"("+u.BinaryOS+"/"+u.BinaryArch+")")
	}
	return strings.Join(words, " ")
}

// holdBinary holds an upgrade's uploaded binary in the content store while
// the job runs.
func (s *Service) holdBinary(u *model.UpgradeSpec) (func(), error) {
	if u.Binary == "" {
		return func() {}, nil
	}
	if s.Content == nil {
		return nil, fmt.Errorf("binary %s: %w", u.Binary, ErrNoContent)
	}
	_, release, err := s.Content.Hold(u.Binary)
	if err != nil {
		return nil, fmt.Errorf("binary %s: %w", u.Binary, ErrNoContent)
	}
	return release, nil
}

// runUpgrade runs an upgrade job's hosts through an engine whose transport
// is the upgrader: canary hosts first, as one batch, and the rest only if
// every canary host ended ok (else they end cancelled, "not started").
func (s *Service) runUpgrade(ctx context.Context, spec model.JobSpec, cmd model.Command, targets []model.Target, opts exec.Options, h exec.Hooks) []model.Result {
	up := &upgrader{s: s, spec: spec, dists: map[string]*distBinary{}}
	eng := &exec.Engine{Transport: up, Limit: s.Engine.Limit, OutputCap: s.Engine.OutputCap, Grace: s.Engine.Grace}
	canary := spec.Upgrade.Canary
	var first []int
	for i, t := range targets {
		if t.Skip == "" && len(first) < canary {
			first = append(first, i)
		}
	}
	if canary <= 0 || len(first) == 0 {
		return eng.Run(ctx, cmd, targets, opts, h)
	}
	results := make([]model.Result, len(targets))
	inFirst := make(map[int]bool, len(first))
	canaries := make([]model.Target, len(first))
	for k, i := range first {
		inFirst[i], canaries[k] = true, targets[i]
	}
	copts := opts
	copts.Limit = len(first)
	failed := ""
	for k, r := range eng.Run(ctx, cmd, canaries, copts, h) {
		results[first[k]] = r
		if r.State != model.StateOK && failed == "" {
			failed = r.Host
		}
	}
	var rest []model.Target
	var at []int
	for i, t := range targets {
		if inFirst[i] {
			continue
		}
		if failed != "" && t.Skip == "" {
			t.Skip, t.Error = model.StateCancelled, "not started: canary host "+failed+" failed; rollout stopped"
		}
		rest, at = append(rest, t), append(at, i)
	}
	for k, r := range eng.Run(ctx, cmd, rest, opts, h) {
		results[at[k]] = r
	}
	return results
}

// upgrader is the transport of an upgrade job: it upgrades one minion and
// waits for it to come back. Its Exec writes the outcome as the first word
// of stdout (model.Outcome*) and fails (host failed) on anything but
// upgraded or unchanged.
type upgrader struct {
	s    *Service
	spec model.JobSpec

	mu    sync.Mutex
	dists map[string]*distBinary // by file name; protected by mu
}

// distBinary is a dist directory binary, hashed once per job.
type distBinary struct {
	once sync.Once
	bin  model.UpgradeBinary
	err  error
}

func (u *upgrader) Name() string { return "agent" }

// Exec upgrades t over the path the rule of the transports picks
// (transport.Plan, as for a command): its minion over gRPC when it has an
// accepted one, else over SSH when it has SSH settings (a bootstrapped
// host: see bootstrap.Upgrade); in auto mode, a minion that cannot be
// reached (its ping fails with exec.ErrUnreachable, before anything was
// sent) on a host with SSH settings is upgraded over SSH instead. Mode
// agent never uses SSH, mode ssh never the minion.
func (u *upgrader) Exec(ctx context.Context, t model.Target, _ model.Command, out model.OutputFunc) (model.Exit, error) {
	say := func(format string, args ...any) { out(model.Stdout, []byte(fmt.Sprintf(format, args...)+"\n")) }
	// The job's deadline for this host, ended here before the engine's
	// (which adds a grace) so that a host that did not come back is told
	// apart from one that answered nothing.
	wait, cancel := context.WithTimeout(ctx, u.spec.Timeout)
	defer cancel()
	first, fallback := transport.Plan(t)
	switch first {
	case transport.NameSSH:
		return u.overSSH(wait, t, say)
	case "":
		return model.Exit{Code: -1}, fmt.Errorf("%s has no accepted minion and no ssh settings: %w", t.ID, exec.ErrUnreachable)
	}
	if u.s.Upgrader == nil {
		return model.Exit{Code: -1}, errors.New("this master has no agent transport")
	}
	before, err := u.s.Upgrader.Info(wait, t)
	if err != nil && fallback == transport.NameSSH && errors.Is(err, exec.ErrUnreachable) && wait.Err() == nil {
		exit, sshErr := u.overSSH(wait, t, say)
		if sshErr != nil {
			sshErr = fmt.Errorf("%w (after the minion was unreachable over gRPC: %v)", sshErr, err)
		}
		return exit, sshErr
	}
	if err != nil {
		return model.Exit{Code: -1}, fmt.Errorf("%w (nothing changed)", err)
	}
	bin, err := u.binary(ctx, t)
	if err != nil {
		return model.Exit{Code: -1}, err
	}
	if before.BinarySHA256 == bin.SHA256 {
		say("%s %s (it runs that binary: nothing sent)", model.OutcomeUnchanged, before.Version)
		return model.Exit{}, nil
	}
	v, unchanged, err := u.s.Upgrader.Upgrade(wait, t, bin)
	if err != nil {
		return model.Exit{Code: -1}, err
	}
	if unchanged {
		say("%s %s (already that version: nothing swapped)", model.OutcomeUnchanged, v)
		return model.Exit{}, nil
	}
	swapped := time.Now()
	// Back: the same pinned certificate (the target, re-read for its new
	// address, must keep its fingerprint) answering with the new version.
	var last model.MinionInfo
	var rolled time.Time // when the minion first answered rolled back
	answered := false
	tick := time.NewTicker(upgradePoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return model.Exit{Code: -1}, fmt.Errorf("swapped to %s; the job ended before the minion came back: %w", v, ctx.Err())
		case <-wait.Done():
			if answered && last.Version == before.Version {
				say("%s %s -> %s: still runs %s at the deadline", model.OutcomeRolledBack, before.Version, v, last.Version)
				return model.Exit{Code: 1}, fmt.Errorf("rolled back: the minion runs %s again, not %s", last.Version, v)
			}
			return model.Exit{Code: -1}, fmt.Errorf("swapped to %s but the minion did not come back with it within %s", v, u.spec.Timeout)
		case <-tick.C:
		}
		cur, err := u.current(ctx, t)
		if err != nil {
			return model.Exit{Code: -1}, err
		}
		pctx, done := context.WithTimeout(wait, 2*time.Second)
		info, err := u.s.Upgrader.Info(pctx, cur)
		done()
		if err != nil {
			continue // down while it hands over
		}
		last, answered = info, true
		if info.Version == v {
			say("%s %s -> %s", model.OutcomeUpgraded, before.Version, v)
			return model.Exit{}, nil
		}
		// The old version from a process started after the swap: the
		// minion's watchdog restored the old binary.
		if info.Version == before.Version && time.Duration(info.Uptime)*time.Millisecond < time.Since(swapped) {
			if rolled.IsZero() {
				rolled = time.Now()
			}
			reason := ""
			if u.s.LastUpgrade != nil {
				// The minion reports why with its re-registration, which
				// may come just after its first answer.
				if reason = u.s.LastUpgrade(ctx, t.ID, v); reason == "" && time.Since(rolled) < reasonWait {
					continue
				}
			}
			if reason == "" {
				reason = "the new binary did not reach the master"
			}
			say("%s %s -> %s: %s", model.OutcomeRolledBack, before.Version, v, reason)
			return model.Exit{Code: 1}, fmt.Errorf("rolled back to %s: %s", before.Version, reason)
		}
	}
}

// overSSH upgrades t's host over SSH and says its outcome as the agent
// path does, with "over ssh" in the detail.
func (u *upgrader) overSSH(ctx context.Context, t model.Target, say func(string, ...any)) (model.Exit, error) {
	failed := model.Exit{Code: -1, Transport: transport.NameSSH}
	if u.s.SSHUpgrader == nil {
		return failed, fmt.Errorf("%s: %w: %w", t.ID, transport.ErrNoSSH, exec.ErrUnreachable)
	}
	rep, err := u.s.SSHUpgrader.Upgrade(ctx, t, u.pick)
	switch rep.Outcome {
	case model.OutcomeUpgraded:
		say("%s %s -> %s (over ssh)", model.OutcomeUpgraded, rep.From, rep.To)
		return model.Exit{Transport: transport.NameSSH}, nil
	case model.OutcomeUnchanged:
		detail := ""
		if rep.Detail != "" {
			detail = "; " + rep.Detail
		}
		say("%s %s (over ssh: it has that binary, nothing replaced%s)", model.OutcomeUnchanged, rep.From, detail)
		return model.Exit{Transport: transport.NameSSH}, nil
	case model.OutcomeRolledBack:
		say("%s %s -> %s (over ssh): %s", model.OutcomeRolledBack, rep.From, rep.To, rep.Detail)
		return model.Exit{Code: 1, Transport: transport.NameSSH}, err
	}
	if err == nil {
		err = errors.New("the upgrade over ssh reported no outcome")
	}
	return failed, err
}

// current re-reads t from the inventory (the minion's address may change
// when it comes back), refusing a changed certificate.
func (u *upgrader) current(ctx context.Context, t model.Target) (model.Target, error) {
	m, err := u.s.Store.Minion(ctx, t.ID)
	if err != nil {
		return t, fmt.Errorf("read minion %s: %w", t.ID, err)
	}
	if m.Fingerprint != t.Fingerprint {
		return t, fmt.Errorf("minion %s came back with another certificate (%s, pinned %s)", t.ID, m.Fingerprint, t.Fingerprint)
	}
	t.Addr = m.Addr
	return t, nil
}

// binary picks the binary of minion t by its system and arch facts (see
// pick); a minion without a system fact runs Linux.
func (u *upgrader) binary(ctx context.Context, t model.Target) (model.UpgradeBinary, error) {
	m, err := u.s.Store.Minion(ctx, t.ID)
	if err != nil {
		return model.UpgradeBinary{}, fmt.Errorf("read minion %s: %w", t.ID, err)
	}
	var f struct {
		System string `json:"system"`
		Arch   string `json:"arch"`
	}
	json.Unmarshal([]byte(m.Facts), &f)
	goos, goarch := model.GoOS(f.System), model.GoArch(f.Arch)
	if goos == "" {
		return model.UpgradeBinary{}, fmt.Errorf("unknown system %q in the facts of %s", f.System, t.ID)
	}
	if goarch == "" {
		return model.UpgradeBinary{}, fmt.Errorf("unknown arch %q in the facts of %s", f.Arch, t.ID)
	}
	return u.pick(goos, goarch)
}

// pick is the binary for a host of goos/goarch: the request's, if built
// for it, else the dist directory's minion-<os>-<arch> (hashed once per
// job).
func (u *upgrader) pick(goos, goarch string) (model.UpgradeBinary, error) {
	if goos == "windows" {
		// The hand-over (swap the running binary, watch the new process
		// register, roll back) is built and tested for Unix minions only.
		return model.UpgradeBinary{}, errors.New("fleet upgrade of Windows minions is not supported yet: nothing was sent; replace minion.exe and restart the felix-minion service")
	}
	if up := u.spec.Upgrade; up.Binary != "" {
		if up.BinaryOS != goos || up.BinaryArch != goarch {
			return model.UpgradeBinary{}, fmt.Errorf("the binary is for %s/%s, the host is %s/%s", up.BinaryOS, up.BinaryArch, goos, goarch)
		}
		cs := u.s.Content
		return model.UpgradeBinary{Name: "sha256:" + up.Binary[:12], Size: up.BinarySize, SHA256: up.Binary,
			Open: func() (io.ReadCloser, error) { f, _, err := cs.Open(up.Binary); return f, err }}, nil
	}
	name := "minion-" + goos + "-" + goarch
	u.mu.Lock()
	d, ok := u.dists[name]
	if !ok {
		d = &distBinary{}
		u.dists[name] = d
	}
	u.mu.Unlock()
	d.once.Do(func() { d.bin, d.err = DistBinary(u.s.DistDir, name, goos, goarch) })
	return d.bin, d.err
}

// DistBinary describes the dist directory's binary name, checking from its
// header (never running it) that it is an executable for goos/goarch, and
// hashing it.
func DistBinary(dir, name, goos, goarch string) (model.UpgradeBinary, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return model.UpgradeBinary{}, fmt.Errorf("no binary for %s/%s: %w", goos, goarch, err)
	}
	defer f.Close()
	gos, garch, err := model.BinaryPlatform(f)
	if err != nil {
		return model.UpgradeBinary{}, fmt.Errorf("%s: %w", path, err)
	}
	if gos != goos || garch != goarch {
		return model.UpgradeBinary{}, fmt.Errorf("%s is for %s/%s, not %s/%s", path, gos, garch, goos, goarch)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return model.UpgradeBinary{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return model.UpgradeBinary{Name: path, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)),
		Open: func() (io.ReadCloser, error) { return os.Open(path) }}, nil
}
