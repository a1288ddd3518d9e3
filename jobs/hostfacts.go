package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// Facts of agentless hosts. A minion reports its facts when it registers;
// an SSH host's are gathered over SSH (facts.ProbeScript) when first
// needed — a filter over a fact selects among hosts whose facts are
// missing or older than the TTL — or when an operator refreshes them
// (RefreshFacts), and kept in the inventory, one row a host.

// FactsGatherer gathers a host's facts over SSH; satisfied by *ssh.Pool.
type FactsGatherer interface {
	Facts(ctx context.Context, t model.Target) (facts.Facts, error)
}

// DefaultFactsTTL is how long gathered facts select hosts when
// SetFactsTTL was not called.
const DefaultFactsTTL = time.Hour

// factsTimeout bounds gathering one host's facts; factsParallel, the
// hosts gathered at once; factsBound, the hosts started by one request
// (a refresh, or the targets of one job): those not started by then are
// left as they were, their result saying so.
const (
	factsTimeout  = 30 * time.Second
	factsParallel = 32
	factsBound    = 5 * time.Minute
)

// maxFactsJSON bounds the facts kept of one host, as a minion's
// registration is bounded: a host cannot fill the inventory.
const maxFactsJSON = 64 << 10

// factKeys are the filter keys that are facts (facts.Facts' JSON names and
// factAliases): only those make Resolve gather facts. A key that is
// neither a label nor a fact matches no host.
var factKeys = func() map[string]bool {
	b, _ := json.Marshal(facts.Facts{})
	var m map[string]any
	json.Unmarshal(b, &m)
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	for k := range factAliases {
		out[k] = true
	}
	return out
}()

// SetFactsTTL sets how long gathered facts of SSH hosts are used to
// select them (ssh.facts_ttl); 0 means DefaultFactsTTL.
func (s *Service) SetFactsTTL(d time.Duration) { s.factsTTL.Store(int64(d)) }

// FactsTTL is the TTL SetFactsTTL set, or DefaultFactsTTL.
func (s *Service) FactsTTL() time.Duration {
	if d := time.Duration(s.factsTTL.Load()); d > 0 {
		return d
	}
	return DefaultFactsTTL
}

// logger is s.Log, or a logger that drops everything when none is set.
func (s *Service) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// HostFactsResult is the outcome of gathering one host's facts.
type HostFactsResult struct {
	ID    string
	Facts inventory.HostFacts // as stored afterwards (JSON empty when never gathered)
	Error string              // why this gathering failed; "" when it succeeded
}

// RefreshFacts gathers again, whatever their age, the facts of the SSH
// hosts the target patterns select, and stores them. Every selected host
// has a result: a minion without SSH settings or an unknown id gets an
// error saying so. Targets beyond ctx's scope are refused
// (ErrOutsideScope).
func (s *Service) RefreshFacts(ctx context.Context, patterns []string) ([]HostFactsResult, error) {
	targets, err := s.Resolve(ctx, patterns)
	if err != nil {
		return nil, err
	}
	if err := s.checkScope(ctx, targets); err != nil {
		return nil, err
	}
	var ssh []model.Target
	out := make([]HostFactsResult, len(targets))
	for i, t := range targets {
		out[i].ID = t.ID
		switch {
		case t.Skip == model.StateUnknown:
			out[i].Error = t.Error
		case t.SSH == nil:
			out[i].Error = "no SSH settings: its minion reports its facts when it registers"
		default:
			ssh = append(ssh, t)
		}
	}
	got := s.gatherFacts(ctx, ssh)
	for i := range out {
		if r, ok := got[out[i].ID]; ok {
			out[i] = r
		}
	}
	return out, nil
}

// gatherFacts gathers the facts of targets (SSH hosts) over SSH, at most
// factsParallel at once, each within factsTimeout, and records every
// outcome in the inventory. A failure is a result, never an error. Hosts
// not started within factsBound are not tried: their result says so and
// nothing is stored for them.
func (s *Service) gatherFacts(ctx context.Context, targets []model.Target) map[string]HostFactsResult {
	out := make(map[string]HostFactsResult, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, factsParallel)
	bound := time.NewTimer(factsBound)
	defer bound.Stop()
	late := false
	for _, t := range targets {
		if !late {
			select {
			case sem <- struct{}{}:
			case <-bound.C:
				late = true
			case <-ctx.Done():
				late = true
			}
		}
		if late {
			mu.Lock()
			out[t.ID] = HostFactsResult{ID: t.ID, Error: fmt.Sprintf("not gathered: one request gathers facts for %s at most; name fewer hosts", factsBound)}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := s.gatherOne(ctx, t)
			mu.Lock()
			out[t.ID] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// gatherOne gathers and stores the facts of one SSH host.
func (s *Service) gatherOne(ctx context.Context, t model.Target) HostFactsResult {
	r := HostFactsResult{ID: t.ID}
	var body []byte
	var err error
	if s.HostFacts == nil {
		err = fmt.Errorf("the master runs without the ssh transport")
	} else {
		gctx, cancel := context.WithTimeout(ctx, factsTimeout)
		t.Mode = model.ModeSSH
		var f facts.Facts
		f, err = s.HostFacts.Facts(gctx, t)
		cancel()
		if err == nil {
			body, err = json.Marshal(f)
			if err == nil && len(body) > maxFactsJSON {
				err = fmt.Errorf("facts of %s: %d bytes; at most %d", t.ID, len(body), maxFactsJSON)
			}
		}
	}
	if err != nil && ctx.Err() != nil {
		// Interrupted: that says nothing about the host, and is not stored.
		r.Error = "not gathered: the request ended before the host answered"
		return r
	}
	now := time.Now()
	if err != nil {
		r.Error = err.Error()
		s.logger().Warn("gathering facts failed", "host", t.ID, "err", err)
	}
	if serr := s.Store.SetHostFacts(ctx, t.ID, string(body), err, now); serr != nil {
		s.logger().Error("storing facts failed", "host", t.ID, "err", serr)
		if r.Error == "" {
			r.Error = serr.Error()
		}
	}
	if h, herr := s.Store.Host(ctx, t.ID); herr == nil {
		r.Facts = h.Facts
	} else if err == nil {
		r.Facts = inventory.HostFacts{JSON: string(body), GatheredAt: now}
	}
	return r
}
