package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/inventory"
)

// ErrNoTargets is returned when the targets of a request match no host.
var ErrNoTargets = errors.New("no host matched")

// ErrBadTarget is returned for a target pattern that cannot be parsed.
var ErrBadTarget = errors.New("bad target")

// factAliases lets filters use short names for facts.
var factAliases = map[string]string{"os": "os_name", "version": "os_version"}

// Resolve turns target patterns into hosts, sorted by id.
//
// A pattern is a minion id; a glob over accepted minions' ids (web*,
// db[12]); an IP address, which matches the minion the master dials at that
// address, else the one minion reporting it; a CIDR range (10.0.0.0/24),
// matching accepted minions dialled or reporting an address in it; or a
// filter key=value over labels and facts (role=web, os=debian; the value may
// be a glob). Patterns other than filters are unioned; filters narrow that
// union (or, alone, all accepted minions) and must all hold: AND.
//
// An id or address that is not in the inventory, or names a minion that is
// not accepted, becomes a host reported as such, never dropped.
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
			for _, m := range all {
				if ok, _ := path.Match(p, m.ID); ok && m.State == inventory.StateAccepted {
					add(m)
				}
			}
		case strings.Contains(p, "/"):
			_, cidr, err := net.ParseCIDR(p)
			if err != nil {
				return nil, fmt.Errorf("%w: %q is not a CIDR range", ErrBadTarget, p)
			}
			for _, m := range all {
				if m.State == inventory.StateAccepted && inRange(m, cidr) {
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
		selectors++
	}
	if len(filters) > 0 {
		if selectors == 0 {
			for _, m := range all {
				if m.State == inventory.StateAccepted {
					add(m)
				}
			}
		}
		for id := range picked {
			if m, known := byID[id]; known && !matches(m, filters) {
				delete(picked, id)
			}
		}
	}
	if len(picked) == 0 {
		accepted := 0
		for _, m := range all {
			if m.State == inventory.StateAccepted {
				accepted++
			}
		}
		return nil, fmt.Errorf("%w: targets %s matched none of the %d accepted minions", ErrNoTargets,
			strings.Join(patterns, ", "), accepted)
	}
	out := make([]exec.Target, 0, len(picked))
	for _, t := range picked {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// matches reports whether every filter holds for m: a label of that key, or
// else a fact, equal to the value (a glob; case-insensitive).
func matches(m inventory.Minion, filters [][2]string) bool {
	var facts map[string]any
	for _, f := range filters {
		key, want := f[0], strings.ToLower(f[1])
		have, ok := m.Labels[key]
		if !ok {
			if facts == nil {
				facts = map[string]any{}
				json.Unmarshal([]byte(m.Facts), &facts)
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
