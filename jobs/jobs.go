// Package jobs turns an exec request into a job: it resolves targets against
// the inventory, stores the job, runs it through the exec engine and stores
// each host's result as it arrives through the single result writer.
package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
)

// ErrNoTargets is returned when the targets of a request match no host.
var ErrNoTargets = errors.New("no host matched")

// ErrBadTarget is returned for a target pattern that cannot be parsed.
var ErrBadTarget = errors.New("bad target")

// Spec is a validated exec request.
type Spec struct {
	ClientID string // the requester's id, echoed back
	CmdType  string // "line"
	Command  exec.Command
	Targets  []string // ids, globs or IP addresses
}

// Service runs jobs.
type Service struct {
	Store  *inventory.Store
	Writer *inventory.ResultWriter
	Engine *exec.Engine
	Log    *slog.Logger
	// Started, if set, is called with a job's context before its hosts run;
	// the agent transport uses it to tag requests with the job id.
	Started func(ctx context.Context, jobID string) context.Context
}

// NewJobID returns a new random job id: a sortable time prefix and 6 random bytes.
func NewJobID(now time.Time) string {
	b := make([]byte, 6)
	rand.Read(b)
	return now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// Run resolves spec's targets, stores the job and runs it to the end. Host
// failures are results; the error is for requests that cannot run at all.
func (s *Service) Run(ctx context.Context, spec Spec) (inventory.Job, []exec.Result, error) {
	targets, err := s.Resolve(ctx, spec.Targets)
	if err != nil {
		return inventory.Job{}, nil, err
	}
	now := time.Now()
	job := inventory.Job{ID: NewJobID(now), ClientID: spec.ClientID, CmdLine: spec.Command.Line, CmdType: spec.CmdType,
		Targets: spec.Targets, State: inventory.JobRunning, CreatedAt: now}
	if err := s.Store.CreateJob(ctx, job); err != nil {
		return job, nil, err
	}
	s.Log.Info("job started", "job", job.ID, "id", spec.ClientID, "hosts", len(targets), "cmd", spec.Command.Line)
	runCtx := ctx
	if s.Started != nil {
		runCtx = s.Started(ctx, job.ID)
	}
	results := s.Engine.Run(runCtx, spec.Command, targets, func(r exec.Result) { s.Writer.Add(job.ID, r) })
	job.State, job.FinishedAt = inventory.JobDone, time.Now()
	// The job's end is stored even when the requester went away.
	if err := s.Writer.Finish(context.WithoutCancel(ctx), job.ID, job.State, job.FinishedAt); err != nil {
		return job, results, fmt.Errorf("store results of job %s: %w", job.ID, err)
	}
	s.Log.Info("job done", "job", job.ID, "hosts", len(results), "took", job.FinishedAt.Sub(now))
	return job, results, nil
}

// Resolve turns target patterns into hosts, sorted by id. A pattern is a
// minion id, a glob over accepted minions' ids (web*, db[12]), or an IP
// address, which matches the minion the master dials at that address, else
// minions reporting that address. An id or address that is not in the
// inventory, or names a minion that is not accepted, becomes a host that is
// reported as such, never dropped.
func (s *Service) Resolve(ctx context.Context, patterns []string) ([]exec.Target, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("%w: no targets given", ErrNoTargets)
	}
	all, err := s.Store.Minions(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]inventory.Minion, len(all))
	for _, m := range all {
		byID[m.ID] = m
	}
	picked := make(map[string]exec.Target)
	add := func(m inventory.Minion) {
		t := exec.Target{ID: m.ID, Addr: m.Addr, Fingerprint: m.Fingerprint}
		if m.State != inventory.StateAccepted {
			t.Skip, t.Error = exec.StateNotAccepted, "minion is "+m.State+"; accept it with: felix keys accept "+m.ID
		}
		picked[m.ID] = t
	}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			return nil, fmt.Errorf("%w: empty target", ErrBadTarget)
		case len(p) > 253 || strings.IndexFunc(p, unicode.IsControl) >= 0 || !utf8.ValidString(p):
			return nil, fmt.Errorf("%w: %q is not an id, glob or IP address", ErrBadTarget, p)
		case strings.ContainsAny(p, "*?["):
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrBadTarget, p, err)
			}
			for _, m := range all {
				if ok, _ := path.Match(p, m.ID); ok && m.State == inventory.StateAccepted {
					add(m)
				}
			}
		case net.ParseIP(p) != nil:
			ms, err := matchIP(all, net.ParseIP(p))
			if err != nil {
				return nil, err
			}
			if len(ms) == 0 {
				picked[p] = exec.Target{ID: p, Addr: p, Skip: exec.StateUnknown, Error: "no minion has address " + p}
			}
			for _, m := range ms {
				add(m)
			}
		default:
			if m, ok := byID[p]; ok {
				add(m)
			} else {
				picked[p] = exec.Target{ID: p, Skip: exec.StateUnknown, Error: "no minion with id " + p}
			}
		}
	}
	if len(picked) == 0 {
		return nil, fmt.Errorf("%w: targets %s matched no accepted minion", ErrNoTargets, strings.Join(patterns, ", "))
	}
	out := make([]exec.Target, 0, len(picked))
	for _, t := range picked {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// matchIP returns the minions dialled at ip, or failing that the one minion
// that reports ip among its addresses. Loopback, link-local and unspecified
// addresses are never matched by report (every host has them), and an
// address reported by several minions (a NAT or docker0 address) is refused
// as ambiguous rather than run everywhere.
func matchIP(all []inventory.Minion, ip net.IP) ([]inventory.Minion, error) {
	var byAddr, byFact []inventory.Minion
	for _, m := range all {
		if host, _, err := net.SplitHostPort(m.Addr); err == nil && ip.Equal(net.ParseIP(host)) {
			byAddr = append(byAddr, m)
			continue
		}
		for _, s := range m.IPs {
			if ip.Equal(net.ParseIP(s)) {
				byFact = append(byFact, m)
				break
			}
		}
	}
	if len(byAddr) > 0 {
		return byAddr, nil
	}
	if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
		return nil, nil
	}
	if len(byFact) > 1 {
		ids := make([]string, len(byFact))
		for i, m := range byFact {
			ids[i] = m.ID
		}
		return nil, fmt.Errorf("%w: address %s is reported by %d minions (%s); name them by id", ErrBadTarget, ip,
			len(byFact), strings.Join(ids, ", "))
	}
	return byFact, nil
}
