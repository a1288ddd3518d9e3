package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// ErrNoTargets is returned when the targets of a request match no host.
var ErrNoTargets = errors.New("no host matched")

// ErrBadTarget is returned for a target pattern that cannot be parsed.
var ErrBadTarget = errors.New("bad target")

// factAliases lets filters use short names for facts.
var factAliases = map[string]string{"os": "os_name", "version": "os_version"}

// Resolve turns target patterns into hosts, sorted by id. Hosts are
// minions and agentless (SSH) hosts together, one per id: an id that names
// both is one machine with a minion and SSH settings, and its target
// carries both (the selecting transport picks).
//
// A pattern is an id; a glob over ids (web*, db[12]) of accepted minions
// and agentless hosts; an IP address, which matches the minion the master
// dials at that address and the hosts with that address, else the one
// minion reporting it; a CIDR range (10.0.0.0/24), matching accepted
// minions dialled or reporting an address in it and hosts whose address is
// in it; or a filter key=value over labels and facts (role=web, os=debian;
// the value may be a glob). Patterns other than filters are unioned;
// filters narrow that union (or, alone, all accepted minions and hosts)
// and must all hold: AND. The key group matches a group label and any of
// the inventory groups of a host (ancestors included). A minion's facts
// are those it reported; an SSH host's are gathered over SSH (see
// hostfacts.go) when a filter over a fact needs them and they are missing
// or older than the TTL. A host whose facts cannot be gathered is a target
// skipped as unreachable, saying why: never silently dropped or included.
//
// An id or address that is not in the inventory becomes a host reported
// unknown, never dropped. A pending or rejected minion is reported
// not_accepted, unless its id also has SSH settings: then it is a target
// without a minion (no fingerprint), which auto and ssh mode run over SSH.
func (s *Service) Resolve(ctx context.Context, patterns []string) ([]model.Target, error) {
	return s.resolve(ctx, patterns, nil)
}

// resolve is Resolve; it adds to undecided, when not nil, the ids of the
// hosts whose facts a filter needed and could not be gathered.
func (s *Service) resolve(ctx context.Context, patterns []string, undecided map[string]bool) ([]model.Target, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("%w: no targets given", ErrNoTargets)
	}
	minions, err := s.Store.Minions(ctx)
	if err != nil {
		return nil, err
	}
	hosts, err := s.Store.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*machine, len(minions)+len(hosts))
	var all []*machine // sorted by id
	for i := range minions {
		x := &machine{id: minions[i].ID, m: &minions[i]}
		byID[x.id] = x
		all = append(all, x)
	}
	for i := range hosts {
		if x, ok := byID[hosts[i].ID]; ok {
			x.h = &hosts[i]
			continue
		}
		x := &machine{id: hosts[i].ID, h: &hosts[i]}
		byID[x.id] = x
		all = append(all, x)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].id < all[j].id })

	picked := make(map[string]model.Target)
	add := func(x *machine) { picked[x.id] = x.target() }
	var filters [][2]string
	selectors := 0
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
			return nil, fmt.Errorf("%w: empty target", ErrBadTarget)
		case len(p) > 253 || strings.IndexFunc(p, unicode.IsControl) >= 0 || !utf8.ValidString(p):
			return nil, fmt.Errorf("%w: %q is not an id, glob, address, range or filter", ErrBadTarget, p)
		case strings.Contains(p, "="):
			k, v, _ := strings.Cut(p, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if k == "" || v == "" {
				return nil, fmt.Errorf("%w: filter %q: want key=value", ErrBadTarget, p)
			}
			if _, err := path.Match(v, ""); err != nil {
				return nil, fmt.Errorf("%w: filter %q: %v", ErrBadTarget, p, err)
			}
			filters = append(filters, [2]string{k, v})
			continue
		case strings.ContainsAny(p, "*?["):
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("%w: %q: %v", ErrBadTarget, p, err)
			}
			for _, x := range all {
				if ok, _ := path.Match(p, x.id); ok && x.selectable() {
					add(x)
				}
			}
		case strings.Contains(p, "/"):
			_, cidr, err := net.ParseCIDR(p)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not a CIDR range", ErrBadTarget, p)
			}
			for _, x := range all {
				if x.selectable() && x.inRange(cidr) {
					add(x)
				}
			}
		case net.ParseIP(p) != nil:
			xs, err := matchIP(all, net.ParseIP(p))
			if err != nil {
				return nil, err
			}
			if len(xs) == 0 {
				picked[p] = model.Target{ID: p, Addr: p, Skip: model.StateUnknown, Error: "no minion or host has address " + p}
			}
			for _, x := range xs {
				add(x)
			}
		default:
			if x, ok := byID[p]; ok {
				add(x)
			} else {
				picked[p] = model.Target{ID: p, Skip: model.StateUnknown, Error: "no minion or host with id " + p}
			}
		}
		selectors++
	}
	if len(filters) > 0 {
		if selectors == 0 {
			for _, x := range all {
				if x.selectable() {
					add(x)
				}
			}
		}
		gathered := s.freshenFacts(ctx, picked, byID, filters)
		now, ttl := time.Now(), s.FactsTTL()
		for id := range picked {
			x, known := byID[id]
			if !known {
				continue
			}
			// Facts gathered just now are fresh, whatever the TTL.
			fresh := gathered[id] && x.h.Facts.Error == "" || x.h != nil && x.h.Facts.Fresh(now, ttl)
			switch ok, why := x.matches(filters, fresh); {
			case why != "":
				t := picked[id]
				t.Skip, t.Error = model.StateUnreachable, why
				picked[id] = t
				if undecided != nil {
					undecided[id] = true
				}
			case !ok:
				delete(picked, id)
			}
		}
	}
	known := 0
	for _, t := range picked {
		if t.Skip != model.StateUnknown {
			known++
		}
	}
	// Nothing known matched: one rule for a glob that matches nothing and
	// an id or address naming no host — no job (a job of unknown hosts
	// alone would only store and announce that nothing ran).
	if known == 0 {
		accepted := 0
		for _, m := range minions {
			if m.State == model.KeyAccepted {
				accepted++
			}
		}
		return nil, fmt.Errorf("%w: targets %s matched none of the %d accepted minions and %d agentless hosts", ErrNoTargets,
			strings.Join(patterns, ", "), accepted, len(hosts))
	}
	out := make([]model.Target, 0, len(picked))
	for _, t := range picked {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// machine is one id of the inventory: a minion, an agentless host, or both.
type machine struct {
	id string
	m  *inventory.Minion // nil: no minion
	h  *inventory.Host   // nil: no SSH settings
}

// selectable reports whether globs, ranges and filters may pick x: it has
// an accepted minion or SSH settings.
func (x *machine) selectable() bool {
	return x.h != nil || x.m.State == model.KeyAccepted
}

// target is what x runs as. A minion that is not accepted and has no SSH
// settings is skipped as not_accepted; with SSH settings it runs without
// its minion.
func (x *machine) target() model.Target {
	t := model.Target{ID: x.id, PkgManager: x.labels()[model.PkgLabel]}
	if h := x.h; h != nil {
		port := h.Port
		if port == 0 {
			port = 22
		}
		t.Addr = net.JoinHostPort(h.Address, strconv.Itoa(port))
		t.SSH = &model.SSHTarget{Host: h.Address, Port: port, User: h.User, KeyPath: h.KeyPath, Become: h.Become,
			RemoteTmp: h.RemoteTmp, Labels: x.labels(), Groups: x.groups(), BecomeUser: h.BecomeUser}
		var err error
		if t.SSH.Jump, t.SSH.NoJump, err = model.SSHJump(h.ProxyJump); err != nil {
			t.Skip, t.Error = model.StateUnreachable, "proxy_jump: "+err.Error()
		}
	}
	switch m := x.m; {
	case m == nil:
	case m.State == model.KeyAccepted:
		t.Addr, t.Fingerprint = m.Addr, m.Fingerprint
	case t.SSH == nil:
		t.Addr, t.Fingerprint = m.Addr, m.Fingerprint
		t.Skip, t.Error = model.StateNotAccepted, "minion is "+string(m.State)+"; accept it with: felix keys accept "+m.ID
	}
	return t
}

// inRange reports whether x's minion is dialled at, or reports, an address
// in cidr, or its SSH address is in cidr.
func (x *machine) inRange(cidr *net.IPNet) bool {
	if x.h != nil {
		if ip := net.ParseIP(x.h.Address); ip != nil && cidr.Contains(ip) {
			return true
		}
	}
	return x.m != nil && inRange(*x.m, cidr)
}

// labels returns x's labels: its host's, and its minion's over them.
func (x *machine) labels() map[string]string {
	switch {
	case x.m == nil:
		return x.h.Labels
	case x.h == nil || len(x.h.Labels) == 0:
		return x.m.Labels
	}
	out := maps.Clone(x.h.Labels)
	maps.Copy(out, x.m.Labels)
	return out
}

// groups returns the inventory groups of x's SSH host.
func (x *machine) groups() []string {
	if x.h == nil {
		return nil
	}
	return x.h.Groups
}

// hostFacts reports whether x's facts are its SSH host's (gathered over
// SSH) rather than those its minion reported.
func (x *machine) hostFacts() bool {
	return x.h != nil && (x.m == nil || x.m.Facts == "" || x.m.Facts == "{}")
}

// needsFacts reports whether a filter over a fact must be checked against
// x's facts: one whose key is a fact and not a label of x, while the
// filters over labels and groups hold.
func (x *machine) needsFacts(filters [][2]string) bool {
	need := false
	labels := x.labels()
	for _, f := range filters {
		if _, isLabel := labels[f[0]]; isLabel || f[0] == "group" || !factKeys[f[0]] {
			if !matches(labels, x.groups(), "{}", [][2]string{f}) {
				return false
			}
			continue
		}
		need = true
	}
	return need
}

// matches reports whether every filter holds for x. When one needs the
// facts of x's SSH host and they are not fresh (missing, older than the
// TTL, or their last gathering failed), it holds neither way: why says so.
func (x *machine) matches(filters [][2]string, fresh bool) (ok bool, why string) {
	facts := "{}"
	switch {
	case x.hostFacts():
		if x.needsFacts(filters) && !fresh {
			reason := "never gathered"
			if x.h.Facts.Error != "" {
				reason = x.h.Facts.Error
			}
			return false, fmt.Sprintf("facts unknown (%s): cannot tell whether it matches %s", reason, filterText(filters))
		}
		if x.h.Facts.JSON != "" {
			facts = x.h.Facts.JSON
		}
	case x.m != nil:
		facts = x.m.Facts
	}
	return matches(x.labels(), x.groups(), facts, filters), ""
}

// filterText shows filters as the request gave them.
func filterText(filters [][2]string) string {
	parts := make([]string, len(filters))
	for i, f := range filters {
		parts[i] = f[0] + "=" + f[1]
	}
	return strings.Join(parts, ",")
}

// freshenFacts gathers the facts of the picked SSH hosts whose facts a
// filter needs and are missing or stale, and updates them in byID. It
// returns the ids it gathered.
func (s *Service) freshenFacts(ctx context.Context, picked map[string]model.Target, byID map[string]*machine, filters [][2]string) map[string]bool {
	now, ttl := time.Now(), s.FactsTTL()
	var stale []model.Target
	for id, t := range picked {
		x, known := byID[id]
		if known && t.Skip == "" && x.hostFacts() && x.needsFacts(filters) && !x.h.Facts.Fresh(now, ttl) {
			stale = append(stale, t)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	s.logger().Info("gathering facts of SSH hosts for a filter", "hosts", len(stale), "filters", filterText(filters))
	gathered := make(map[string]bool, len(stale))
	for id, r := range s.gatherFacts(ctx, stale) {
		h := byID[id].h
		if r.Facts == (inventory.HostFacts{}) {
			h.Facts.Error = r.Error // not tried: the facts stored stay, unused
		} else {
			h.Facts = r.Facts
		}
		gathered[id] = true
	}
	return gathered
}

// matches reports whether every filter holds: a label of that key, or
// for the key group one of groups, or else a fact (factsJSON, as
// reported), equal to the value (a glob; case-insensitive).
func matches(labels map[string]string, groups []string, factsJSON string, filters [][2]string) bool {
	var facts map[string]any
	for _, f := range filters {
		key, want := f[0], strings.ToLower(f[1])
		if key == "group" && matchesAny(want, groups) {
			continue
		}
		have, ok := labels[key]
		if !ok {
			if facts == nil {
				facts = map[string]any{}
				json.Unmarshal([]byte(factsJSON), &facts)
			}
			if alias, isAlias := factAliases[key]; isAlias {
				key = alias
			}
			v, found := facts[key]
			if !found {
				return false
			}
			have = fmt.Sprint(v)
		}
		if ok, _ := path.Match(want, strings.ToLower(have)); !ok {
			return false
		}
	}
	return true
}

// matchesAny reports whether the glob want matches one of vs, ignoring case.
func matchesAny(want string, vs []string) bool {
	for _, v := range vs {
		if ok, _ := path.Match(want, strings.ToLower(v)); ok {
			return true
		}
	}
	return false
}

// inRange reports whether m is dialled at, or reports, an address in cidr.
func inRange(m inventory.Minion, cidr *net.IPNet) bool {
	if host, _, err := net.SplitHostPort(m.Addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && cidr.Contains(ip) {
			return true
		}
	}
	for _, s := range m.IPs {
		if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && cidr.Contains(ip) {
			return true
		}
	}
	return false
}

// matchIP returns the machines whose minion is dialled at ip or whose SSH
// address is ip, or failing that the one minion that reports ip among its
// addresses. Loopback, link-local and unspecified addresses are never
// matched by report (every host has them), and an address reported by
// several minions (a NAT or docker0 address) is refused as ambiguous rather
// than run everywhere.
func matchIP(all []*machine, ip net.IP) ([]*machine, error) {
	var byAddr, byFact []*machine
	for _, x := range all {
		if x.h != nil && ip.Equal(net.ParseIP(x.h.Address)) {
			byAddr = append(byAddr, x)
			continue
		}
		if x.m == nil {
			continue
		}
		if host, _, err := net.SplitHostPort(x.m.Addr); err == nil && ip.Equal(net.ParseIP(host)) {
			byAddr = append(byAddr, x)
			continue
		}
		for _, s := range x.m.IPs {
			if ip.Equal(net.ParseIP(s)) {
				byFact = append(byFact, x)
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
		for i, x := range byFact {
			ids[i] = x.id
		}
		return nil, fmt.Errorf("%w: address %s is reported by %d minions (%s); name them by id", ErrBadTarget, ip,
			len(byFact), strings.Join(ids, ", "))
	}
	return byFact, nil
}
