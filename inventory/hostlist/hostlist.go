// Package hostlist parses a list of agentless hosts, as an operator pastes
// it into felix hosts import: one host a line, an Ansible INI inventory, or
// both mixed; or Ansible's YAML inventory, or a salt-ssh roster (yaml.go).
// It is parsing only: it returns host records and every bad line, and the
// caller (the API) decides what to store. It imports nothing heavier than
// the standard library, model's validators and the YAML parser.
package hostlist

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/felix-ops/felix/model"
)

// MaxErrors bounds the bad lines Parse reports.
const MaxErrors = 100

// maxLine bounds the length of one line, in bytes.
const maxLine = 4096

// Host is one host of a list, checked: ID is a valid id, Address a valid
// host, Port 1-65535 (22 when the list names none).
type Host struct {
	ID      string
	Address string
	Port    int
	User    string // "" when the list names none
	KeyPath string // "" when the list names none
	Become  bool   // become root (or BecomeUser) with sudo -n
	Group   string // the first Ansible group the host is listed in; "" for none
	// RemoteTmp is ansible_remote_tmp, where commands are staged; "" when
	// the list names none.
	RemoteTmp string
	// Groups are every group the host is in: those it is listed in, in
	// order of appearance, then their ancestors ([x:children], YAML
	// children) nearest first; never all or ungrouped.
	Groups []string
	// ProxyJump are jump hosts (model.ParseProxyJump's syntax), from
	// ansible_ssh_common_args or ansible_ssh_extra_args "-J X" or
	// "-o ProxyJump=X"; "" for none.
	ProxyJump string
	// BecomeUser is ansible_become_user (salt-ssh sudo_user) when it is
	// not root; "" for root.
	BecomeUser string
}

// LineError is one bad line of a list.
type LineError struct {
	Line   int // from 1
	Reason string
}

// Error reads "line N: REASON".
func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// maxRange bounds the hosts one Ansible host range (web[01:50]) expands to.
const maxRange = 10000

// MaxHosts bounds the hosts one text may list, ranges expanded: parsing
// stops at the line that goes over it, so a few short lines of wide ranges
// cannot make the master build millions of hosts.
const MaxHosts = 20000

// groupName is an Ansible group name (a host's first is its Group).
var groupName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$`)

// hostVars are the Ansible variables felix reads, by their felix name;
// older ansible_ssh_* spellings are accepted too. Other variables are
// ignored.
var hostVars = map[string]string{
	"ansible_host": "host", "ansible_ssh_host": "host",
	"ansible_port": "port", "ansible_ssh_port": "port",
	"ansible_user": "user", "ansible_ssh_user": "user",
	"ansible_ssh_private_key_file": "key", "ansible_private_key_file": "key",
	"ansible_become":          "become",
	"ansible_become_user":     "become_user",
	"ansible_become_method":   "become_method",
	"ansible_connection":      "connection",
	"ansible_remote_tmp":      "remote_tmp",
	"ansible_ssh_common_args": "ssh_args", "ansible_ssh_extra_args": "ssh_args",
}

// invHost is one host of an inventory being parsed.
type invHost struct {
	line   int
	id     string
	vars   map[string]string // felix names; from the host's line
	groups []string          // in order of appearance
}

// Parse reads a list of agentless hosts. Two forms, which may be mixed:
//
//   - one host a line, "[user@]host[:port]" ("[ipv6]:port" with a port);
//   - an Ansible INI inventory: [group] sections of "name key=value..."
//     lines, where ansible_host, ansible_port, ansible_user,
//     ansible_ssh_private_key_file, ansible_become and ansible_become_user
//     are read (the name
//     is the id; without ansible_host it is also the address), [group:vars]
//     and [all:vars] give those variables to a group's hosts, and
//     [group:children] nests groups. Host ranges (web[01:20].example.com,
//     db[a:c]) are expanded. A host's first group is its Group. Other
//     variables are ignored; ones felix cannot honour
//     (another connection type, another become method) are
//     errors rather than surprises.
//
// Blank lines and lines starting with '#' or ';' are comments, as is
// anything after " #". A host listed twice with the same settings is one
// host (of both groups); with different settings it is an error. It
// returns the hosts in order of first appearance, or the bad lines (at
// most MaxErrors of them).
func Parse(text string) ([]Host, []LineError) {
	var (
		bad       []LineError
		order     []*invHost
		byID      = map[string]*invHost{}
		groupVars = map[string]map[string]string{} // by group: felix names
		children  = map[string][]string{}          // parent group -> child groups
		childLine = map[[2]string]int{}            // {parent, child} -> the line nesting them first
		section   = ""                             // the group of host lines; "" ungrouped
		kind      = "hosts"                        // hosts, vars or children
	)
	fail := func(line int, format string, args ...any) {
		if len(bad) < MaxErrors {
			bad = append(bad, LineError{Line: line, Reason: fmt.Sprintf(format, args...)})
		}
	}
	total := 0 // hosts listed so far, ranges expanded
lines:
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if c := strings.Index(line, " #"); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if c := strings.Index(line, "\t#"); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if err := model.CheckText("line", line, maxLine); err != nil {
			fail(n, "%v", err)
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") && !isHostSpec(line) {
			name := strings.TrimSpace(line[1 : len(line)-1])
			kind = "hosts"
			if g, ok := strings.CutSuffix(name, ":vars"); ok {
				name, kind = g, "vars"
			} else if g, ok := strings.CutSuffix(name, ":children"); ok {
				name, kind = g, "children"
			}
			if !groupName.MatchString(name) {
				fail(n, "section [%s]: want [group], [group:vars] or [group:children] (group: letters, digits, '_', '.', '-')", name)
				section, kind = "\x00bad", "bad"
				continue
			}
			section = name
			continue
		}
		switch kind {
		case "bad":
			// Lines of a bad section were reported with it.
		case "vars":
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				fail(n, "[%s:vars]: %q: want key=value", section, line)
				continue
			}
			name, v, err := hostVar(strings.TrimSpace(k), strings.TrimSpace(v))
			if err != nil {
				fail(n, "%v", err)
				continue
			}
			if name != "" {
				if groupVars[section] == nil {
					groupVars[section] = map[string]string{}
				}
				groupVars[section][name] = v
			}
		case "children":
			if !groupName.MatchString(line) {
				fail(n, "[%s:children]: %q is not a group name", section, line)
				continue
			}
			children[section] = append(children[section], line)
			if childLine[[2]string{section, line}] == 0 {
				childLine[[2]string{section, line}] = n
			}
		default:
			hs, err := parseHostLine(line)
			if err != nil {
				fail(n, "%v", err)
				continue
			}
			if total += len(hs); total > MaxHosts {
				fail(n, "over %d hosts in one import (ranges expanded): split the file", MaxHosts)
				break lines
			}
			for _, h := range hs {
				h.line = n
				if err := addHost(byID, &order, h, section); err != nil {
					fail(n, "%v", err)
				}
			}
		}
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return finish(order, groupVars, children, childLine)
}

// addHost adds h, listed in group (none when "", all or ungrouped), to
// the hosts of an inventory. A host listed again (in another group) adds
// up its settings, which must not contradict each other.
func addHost(byID map[string]*invHost, order *[]*invHost, h *invHost, group string) error {
	if group != "" && group != "all" && group != "ungrouped" {
		h.groups = []string{group}
	}
	old, dup := byID[h.id]
	if !dup {
		byID[h.id] = h
		*order = append(*order, h)
		return nil
	}
	for k, v := range h.vars {
		if ov, set := old.vars[k]; set && ov != v {
			return fmt.Errorf("host %s is on line %d with another %s (%s, here %s)", h.id, old.line, k, ov, v)
		}
	}
	maps.Copy(old.vars, h.vars)
	for _, g := range h.groups {
		if !slices.Contains(old.groups, g) {
			old.groups = append(old.groups, g)
		}
	}
	return nil
}

// finish checks the group tree of an inventory (no cycles) and builds its
// hosts with their effective variables and groups.
func finish(order []*invHost, groupVars map[string]map[string]string, children map[string][]string, childLine map[[2]string]int) ([]Host, []LineError) {
	if bad := groupCycles(children, childLine); len(bad) > 0 {
		return nil, bad
	}
	parents := map[string][]string{} // child group -> parent groups, sorted
	for p, cs := range children {
		for _, c := range cs {
			parents[c] = append(parents[c], p)
		}
	}
	for _, ps := range parents {
		slices.Sort(ps)
	}
	var bad []LineError
	out := make([]Host, 0, len(order))
	for _, h := range order {
		vars := effectiveVars(h, groupVars, parents)
		lh, err := listHost(h.id, vars)
		if err != nil {
			if len(bad) < MaxErrors {
				bad = append(bad, LineError{Line: h.line, Reason: fmt.Sprintf("host %s: %v", h.id, err)})
			}
			continue
		}
		if len(h.groups) > 0 {
			lh.Group = h.groups[0]
		}
		lh.Groups = ancestry(h.groups, parents)
		out = append(out, lh)
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return out, nil
}

// ancestry returns groups followed by their ancestors (parents: child
// group -> its parent groups), nearest first, each once; all and
// ungrouped are left out.
func ancestry(groups []string, parents map[string][]string) []string {
	var out []string
	seen := map[string]bool{"all": true, "ungrouped": true}
	queue := slices.Clone(groups)
	for len(queue) > 0 {
		g := queue[0]
		queue = queue[1:]
		if seen[g] {
			continue
		}
		seen[g] = true
		out = append(out, g)
		queue = append(queue, parents[g]...)
	}
	return out
}

// groupCycles reports each group nested, through its children, in itself:
// at the line that closes the cycle.
func groupCycles(children map[string][]string, childLine map[[2]string]int) []LineError {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var bad []LineError
	var path []string
	var visit func(g string)
	visit = func(g string) {
		state[g] = open
		path = append(path, g)
		for _, c := range children[g] {
			switch state[c] {
			case open:
				i := slices.Index(path, c)
				cycle := strings.Join(append(slices.Clone(path[i:]), c), " → ")
				if len(bad) < MaxErrors {
					bad = append(bad, LineError{Line: childLine[[2]string{g, c}], Reason: fmt.Sprintf("group cycle: %s", cycle)})
				}
			case unseen:
				visit(c)
			}
		}
		path = path[:len(path)-1]
		state[g] = done
	}
	for _, g := range slices.Sorted(maps.Keys(children)) {
		if state[g] == unseen {
			visit(g)
		}
	}
	slices.SortFunc(bad, func(a, b LineError) int { return a.Line - b.Line })
	return bad
}

// isHostSpec tells "[fd00::1]:22" and "[fd00::1]" (an IPv6 host) from a
// section header.
func isHostSpec(line string) bool {
	inner := strings.TrimSuffix(strings.TrimPrefix(line, "["), "]")
	return strings.Count(inner, ":") >= 2 && !strings.ContainsAny(inner, " \t")
}

// parseHostLine reads "SPEC [key=value...]": SPEC is [user@]host[:port]
// (which may be an Ansible range), or with ansible_host a name (the id).
func parseHostLine(line string) ([]*invHost, error) {
	fields, err := splitQuoted(line)
	if err != nil {
		return nil, err
	}
	spec := fields[0]
	vars := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value after the host", f)
		}
		name, v, err := hostVar(k, v)
		if err != nil {
			return nil, err
		}
		if name != "" {
			vars[name] = v
		}
	}
	return newHosts(spec, vars)
}

// newHosts makes the hosts of SPEC, a host pattern (which may be an
// Ansible range) with its checked variables (felix names): with
// ansible_host the pattern is a name (the id), else [user@]host[:port].
func newHosts(spec string, vars map[string]string) ([]*invHost, error) {
	specs, err := expandRange(spec)
	if err != nil {
		return nil, err
	}
	if _, named := vars["host"]; named && len(specs) > 1 {
		return nil, fmt.Errorf("host range %s: ansible_host would give every host the same address", spec)
	}
	out := make([]*invHost, 0, len(specs))
	for _, sp := range specs {
		h := &invHost{vars: maps.Clone(vars)}
		if _, named := vars["host"]; named {
			// Ansible's "name ansible_host=address": the name is the id.
			if err := model.ValidID(sp); err != nil {
				return nil, fmt.Errorf("host name: %v", err)
			}
			h.id = sp
		} else {
			user, host, port, err := model.ParseHostSpec(sp)
			if err != nil {
				return nil, err
			}
			if err := model.ValidID(host); err != nil {
				return nil, fmt.Errorf("%s is not a valid id; name it: NAME ansible_host=%s", host, host)
			}
			h.id = host
			if user != "" {
				if _, set := h.vars["user"]; !set {
					h.vars["user"] = user
				}
			}
			if port != 0 {
				if _, set := h.vars["port"]; !set {
					h.vars["port"] = strconv.Itoa(port)
				}
			}
		}
		out = append(out, h)
	}
	return out, nil
}

// hostVar checks one Ansible variable: it returns its felix name ("" for
// one felix ignores) and its value without quotes.
func hostVar(k, v string) (name, value string, err error) {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	}
	name = hostVars[k]
	switch name {
	case "":
		return "", "", nil
	case "host":
		err = model.ValidHost(v)
	case "port":
		p, convErr := strconv.Atoi(v)
		if convErr != nil {
			err = fmt.Errorf("%s %q: want 1-65535", k, v)
		} else {
			err = model.ValidPort(p)
		}
	case "user":
		err = model.ValidUser(v)
	case "key":
		err = model.ValidKeyPath(v)
	case "remote_tmp":
		err = model.ValidRemoteTmp(v)
	case "become":
		var b bool
		b, err = parseAnsibleBool(v)
		if err != nil {
			err = fmt.Errorf("%s %q: want true or false", k, v)
		}
		v = strconv.FormatBool(b)
	case "become_user":
		err = model.ValidUser(v)
	case "become_method":
		if v != "sudo" {
			err = fmt.Errorf("%s=%s: felix becomes root with sudo only", k, v)
		}
	case "connection":
		if v != "ssh" && v != "smart" && v != "paramiko" {
			err = fmt.Errorf("%s=%s: felix reaches agentless hosts over ssh only", k, v)
		}
	case "ssh_args":
		v, err = proxyJumpArgs(k, v)
	}
	return name, v, err
}

func parseAnsibleBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true, nil
	case "false", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean")
}

// effectiveVars returns h's variables: its own, then those of its groups
// in the order it was listed in them, then of their parent groups, then
// [all:vars].
func effectiveVars(h *invHost, groupVars map[string]map[string]string, parents map[string][]string) map[string]string {
	out := maps.Clone(h.vars)
	for _, g := range append(ancestry(h.groups, parents), "all") {
		for k, v := range groupVars[g] {
			if _, set := out[k]; !set {
				out[k] = v
			}
		}
	}
	return out
}

// listHost builds the host of id from checked variables.
func listHost(id string, vars map[string]string) (Host, error) {
	h := Host{ID: id, Address: vars["host"], Port: model.DefaultSSHPort, User: vars["user"],
		KeyPath: vars["key"], Become: vars["become"] == "true", RemoteTmp: vars["remote_tmp"], ProxyJump: vars["ssh_args"]}
	if h.Address == "" {
		h.Address = id
	}
	if p := vars["port"]; p != "" {
		h.Port, _ = strconv.Atoi(p)
	}
	if vars["become_user"] != "" && !h.Become {
		// Harmless, but a sign the inventory means something felix does not do.
		return h, fmt.Errorf("ansible_become_user without ansible_become")
	}
	if u := vars["become_user"]; u != "root" {
		h.BecomeUser = u
	}
	return h, nil
}

// rangePart matches one Ansible range: [01:20], [1:20:5] or [a:f].
var rangePart = regexp.MustCompile(`\[([0-9]+):([0-9]+)(?::([0-9]+))?\]|\[([a-z]):([a-z])\]`)

// expandRange expands the Ansible ranges of a host pattern; a pattern
// without one is returned as is.
func expandRange(spec string) ([]string, error) {
	if strings.HasPrefix(spec, "[") || strings.Contains(spec, "@[") {
		return []string{spec}, nil // an IPv6 address in brackets
	}
	loc := rangePart.FindStringSubmatchIndex(spec)
	if loc == nil {
		return []string{spec}, nil
	}
	m := rangePart.FindStringSubmatch(spec)
	prefix, suffix := spec[:loc[0]], spec[loc[1]:]
	var items []string
	if m[1] != "" {
		from, err1 := strconv.Atoi(m[1])
		to, err2 := strconv.Atoi(m[2])
		step := 1
		if m[3] != "" {
			step, _ = strconv.Atoi(m[3])
		}
		if err1 != nil || err2 != nil || from > to || step < 1 || (to-from)/step >= maxRange {
			return nil, fmt.Errorf("host range %s: want [FROM:TO] with FROM <= TO, at most %d hosts", spec, maxRange)
		}
		width := 0
		if len(m[1]) > 1 && m[1][0] == '0' {
			width = len(m[1])
		}
		for i := from; i <= to; i += step {
			items = append(items, fmt.Sprintf("%0*d", width, i))
		}
	} else {
		if m[4] > m[5] {
			return nil, fmt.Errorf("host range %s: want [FROM:TO] with FROM <= TO", spec)
		}
		for c := m[4][0]; c <= m[5][0]; c++ {
			items = append(items, string(c))
		}
	}
	var out []string
	for _, it := range items {
		rest, err := expandRange(prefix + it + suffix)
		if err != nil {
			return nil, err
		}
		out = append(out, rest...)
		if len(out) > maxRange {
			return nil, fmt.Errorf("host range %s: over %d hosts", spec, maxRange)
		}
	}
	return out, nil
}

// proxyJumpArgs translates ssh arguments that only name jump hosts ("-J X",
// "-JX", "-o ProxyJump=X", "-oProxyJump=X") into X, checked; anything
// else is refused: felix passes no options to ssh.
func proxyJumpArgs(k, v string) (string, error) {
	f := strings.Fields(v)
	var jump string
	switch {
	case len(f) == 0:
		return "", nil
	case len(f) == 2 && (f[0] == "-J" || f[0] == "-o" && strings.HasPrefix(f[1], "ProxyJump=")):
		jump = strings.TrimPrefix(f[1], "ProxyJump=")
	case len(f) == 1 && strings.HasPrefix(f[0], "-J") && len(f[0]) > 2:
		jump = f[0][2:]
	case len(f) == 1 && strings.HasPrefix(f[0], "-oProxyJump="):
		jump = strings.TrimPrefix(f[0], "-oProxyJump=")
	default:
		return "", fmt.Errorf("%s=%q: felix translates only \"-J HOSTS\" or \"-o ProxyJump=HOSTS\" and refuses other ssh options", k, v)
	}
	if jump == model.ProxyJumpNone {
		return jump, nil
	}
	if _, err := model.ParseProxyJump(jump); err != nil {
		return "", fmt.Errorf("%s: %w", k, err)
	}
	return jump, nil
}

// splitQuoted splits a host line at blanks, keeping what is inside single
// or double quotes together (key='a b' is one field, quotes kept for
// hostVar to strip).
func splitQuoted(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range line {
		switch {
		case quote != 0:
			cur.WriteRune(r)
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
			in = true
			cur.WriteRune(r)
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			in = true
			cur.WriteRune(r)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}
