package hostlist

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/felix-ops/felix/model"
)

// Formats of a host list (ParseFormat).
const (
	FormatAuto   = ""       // FormatYAML or FormatRoster for a YAML mapping, else FormatINI
	FormatINI    = "ini"    // Parse: host lines and Ansible INI
	FormatYAML   = "yaml"   // ParseYAML: Ansible's YAML inventory
	FormatRoster = "roster" // ParseRoster: a salt-ssh roster
)

// ParseFormat parses text as format, one of the Format constants; with
// FormatAuto it detects the format (Detect). An unknown format is a
// single error at line 0.
func ParseFormat(text, format string) ([]Host, []LineError) {
	if format == FormatAuto {
		format = Detect(text)
	}
	switch format {
	case FormatINI:
		return Parse(text)
	case FormatYAML:
		return ParseYAML(text)
	case FormatRoster:
		return ParseRoster(text)
	}
	return nil, []LineError{{Reason: fmt.Sprintf("format %q: want ini, yaml or roster", format)}}
}

// ValidFormat reports why format is not one ParseFormat knows, or nil.
func ValidFormat(format string) error {
	switch format {
	case FormatAuto, FormatINI, FormatYAML, FormatRoster:
		return nil
	}
	return fmt.Errorf("format %q: want ini, yaml or roster", format)
}

// Detect tells the format of a host list: a text that is a YAML mapping
// is an Ansible YAML inventory when one of its top-level entries is all,
// or holds hosts, children or vars, and else a salt-ssh roster; any other
// text (host lines, INI sections, key=value lines) is FormatINI.
func Detect(text string) string {
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil || len(f.Docs) == 0 {
		return FormatINI
	}
	top, ok := unwrap(f.Docs[0].Body).(*ast.MappingNode)
	if !ok {
		return FormatINI
	}
	for _, kv := range top.Values {
		if kv.Key.String() == "all" {
			return FormatYAML
		}
		if m, ok := unwrap(kv.Value).(*ast.MappingNode); ok {
			for _, e := range m.Values {
				switch e.Key.String() {
				case "hosts", "children", "vars":
					return FormatYAML
				}
			}
		}
	}
	return FormatRoster
}

// yamlDoc parses text as one YAML document whose body is a mapping.
func yamlDoc(text, what string) (*ast.MappingNode, []LineError) {
	f, err := parser.ParseBytes([]byte(text), 0)
	if err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			return nil, []LineError{{Line: ye.GetToken().Position.Line, Reason: ye.GetMessage()}}
		}
		return nil, []LineError{{Line: 1, Reason: err.Error()}}
	}
	if len(f.Docs) != 1 {
		return nil, []LineError{{Line: 1, Reason: fmt.Sprintf("want one YAML document (%s), not %d", what, len(f.Docs))}}
	}
	top, ok := unwrap(f.Docs[0].Body).(*ast.MappingNode)
	if !ok {
		return nil, []LineError{{Line: lineOf(f.Docs[0].Body), Reason: fmt.Sprintf("want a mapping (%s)", what)}}
	}
	return top, nil
}

// unwrap returns the node an anchor or a tag stands for.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// lineOf is the line of n, 1 when unknown.
func lineOf(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 1
	}
	return n.GetToken().Position.Line
}

// isNull reports an empty value ("name:" with nothing after).
func isNull(n ast.Node) bool {
	_, null := unwrap(n).(*ast.NullNode)
	return n == nil || null
}

// scalar returns the text of a scalar value; ok is false for a mapping,
// a sequence or an alias.
func scalar(n ast.Node) (string, bool) {
	switch v := unwrap(n).(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	}
	return "", false
}

// yamlParser collects what an Ansible YAML inventory or a roster lists,
// as Parse does for INI.
type yamlParser struct {
	bad       []LineError
	order     []*invHost
	byID      map[string]*invHost
	groupVars map[string]map[string]string
	children  map[string][]string
	childLine map[[2]string]int
	total     int  // hosts listed so far, ranges expanded
	over      bool // over MaxHosts: parsing stopped
	depth     int  // groups nested in the one being read
}

func newYAMLParser() *yamlParser {
	return &yamlParser{byID: map[string]*invHost{}, groupVars: map[string]map[string]string{},
		children: map[string][]string{}, childLine: map[[2]string]int{}}
}

func (p *yamlParser) fail(line int, format string, args ...any) {
	if len(p.bad) < MaxErrors {
		p.bad = append(p.bad, LineError{Line: line, Reason: fmt.Sprintf(format, args...)})
	}
}

// vars reads a mapping of Ansible variables into felix names; others
// are ignored. where names the mapping in errors.
func (p *yamlParser) vars(n ast.Node, where string) map[string]string {
	out := map[string]string{}
	if isNull(n) {
		return out
	}
	m, ok := unwrap(n).(*ast.MappingNode)
	if !ok {
		p.fail(lineOf(n), "%s: want a mapping of variables", where)
		return out
	}
	for _, kv := range m.Values {
		k := kv.Key.String()
		if hostVars[k] == "" {
			continue
		}
		v, ok := scalar(kv.Value)
		if !ok {
			p.fail(lineOf(kv.Key), "%s: %s: want a single value", where, k)
			continue
		}
		name, v, err := hostVar(k, v)
		if err != nil {
			p.fail(lineOf(kv.Key), "%v", err)
			continue
		}
		out[name] = v
	}
	return out
}

// hosts adds the hosts of SPEC (a pattern) with their variables, listed
// in group ("" for none).
func (p *yamlParser) hosts(spec string, line int, vars map[string]string, group string) {
	if p.over {
		return
	}
	hs, err := newHosts(spec, vars)
	if err != nil {
		p.fail(line, "%v", err)
		return
	}
	if p.total += len(hs); p.total > MaxHosts {
		p.fail(line, "over %d hosts in one import (ranges expanded): split the file", MaxHosts)
		p.over = true
		return
	}
	for _, h := range hs {
		h.line = line
		if err := addHost(p.byID, &p.order, h, group); err != nil {
			p.fail(line, "%v", err)
		}
	}
}

// maxDepth bounds how deep YAML groups nest.
const maxDepth = 64

// group reads the body of group name: hosts, children and vars.
func (p *yamlParser) group(name string, line int, body ast.Node) {
	if !groupName.MatchString(name) {
		p.fail(line, "group %q: want letters, digits, '_', '.', '-'", name)
		return
	}
	if isNull(body) {
		return
	}
	m, ok := unwrap(body).(*ast.MappingNode)
	if !ok {
		p.fail(lineOf(body), "group %s: want a mapping of hosts, children and vars", name)
		return
	}
	if p.depth++; p.depth > maxDepth {
		p.fail(line, "group %s: groups nest over %d deep", name, maxDepth)
		p.depth--
		return
	}
	defer func() { p.depth-- }()
	for _, kv := range m.Values {
		switch key := kv.Key.String(); key {
		case "vars":
			vs := p.vars(kv.Value, "group "+name+" vars")
			if p.groupVars[name] == nil {
				p.groupVars[name] = map[string]string{}
			}
			for k, v := range vs {
				p.groupVars[name][k] = v
			}
		case "hosts":
			if isNull(kv.Value) {
				continue
			}
			hm, ok := unwrap(kv.Value).(*ast.MappingNode)
			if !ok {
				p.fail(lineOf(kv.Value), "group %s hosts: want a mapping of host names", name)
				continue
			}
			for _, h := range hm.Values {
				spec, ok := scalar(h.Key)
				if !ok || spec == "" {
					p.fail(lineOf(h.Key), "group %s hosts: want a host name", name)
					continue
				}
				p.hosts(spec, lineOf(h.Key), p.vars(h.Value, "host "+spec), name)
			}
		case "children":
			if isNull(kv.Value) {
				continue
			}
			cm, ok := unwrap(kv.Value).(*ast.MappingNode)
			if !ok {
				p.fail(lineOf(kv.Value), "group %s children: want a mapping of groups", name)
				continue
			}
			for _, c := range cm.Values {
				child := c.Key.String()
				l := lineOf(c.Key)
				if !groupName.MatchString(child) {
					p.fail(l, "group %s children: %q is not a group name", name, child)
					continue
				}
				if _, seen := p.childLine[[2]string{name, child}]; !seen {
					p.children[name] = append(p.children[name], child)
					p.childLine[[2]string{name, child}] = l
				}
				if name == child {
					continue // a cycle, reported by finish
				}
				p.group(child, l, c.Value)
			}
		default:
			p.fail(lineOf(kv.Key), "group %s: %q: want hosts, children or vars", name, key)
		}
	}
}

// ParseYAML reads an Ansible YAML inventory:
//
//	all:
//	  hosts:
//	    web1: {ansible_host: 10.0.0.1}
//	  children:
//	    prod:
//	      children:
//	        web: {hosts: {web[01:20].example: }}
//	      vars: {ansible_user: ops}
//
// Each top-level key is a group (usually all); a group has hosts (host
// patterns, each with its variables), children (groups, nested the same
// way) and vars. The variables felix reads, their checks, group variables,
// ranges, duplicates and limits are as in Parse; errors carry the line of
// the YAML node. A group nested in itself is an error.
func ParseYAML(text string) ([]Host, []LineError) {
	top, bad := yamlDoc(text, "an Ansible inventory: all: {hosts: ..., children: ..., vars: ...}")
	if bad != nil {
		return nil, bad
	}
	p := newYAMLParser()
	for _, kv := range top.Values {
		p.group(kv.Key.String(), lineOf(kv.Key), kv.Value)
	}
	if len(p.bad) > 0 {
		return nil, p.bad
	}
	return finish(p.order, p.groupVars, p.children, p.childLine)
}

// rosterVars are the salt-ssh roster keys felix reads, by the Ansible
// variable they stand for; other keys are ignored.
var rosterVars = map[string]string{
	"host": "ansible_host", "port": "ansible_port", "user": "ansible_user",
	"priv": "ansible_ssh_private_key_file", "sudo": "ansible_become", "sudo_user": "ansible_become_user",
}

// ParseRoster reads a salt-ssh roster: a mapping of ids, each with host,
// port, user, priv (a key file), sudo and sudo_user (whom sudo runs as). A
// password (passwd) is refused: felix takes passwords from the
// environment only. Checks and limits are as in Parse.
func ParseRoster(text string) ([]Host, []LineError) {
	top, bad := yamlDoc(text, "a salt-ssh roster: ID: {host: ..., user: ...}")
	if bad != nil {
		return nil, bad
	}
	p := newYAMLParser()
	for _, kv := range top.Values {
		id, ok := scalar(kv.Key)
		l := lineOf(kv.Key)
		if !ok || id == "" {
			p.fail(l, "want a host id")
			continue
		}
		vars := map[string]string{}
		if !isNull(kv.Value) {
			m, ok := unwrap(kv.Value).(*ast.MappingNode)
			if !ok {
				p.fail(lineOf(kv.Value), "%s: want a mapping (host, port, user, priv, sudo)", id)
				continue
			}
			for _, e := range m.Values {
				k := e.Key.String()
				if k == "passwd" {
					p.fail(lineOf(e.Key), "%s: passwd: felix takes passwords only from FELIX_SSH_PASSWORD; remove it", id)
					continue
				}
				av := rosterVars[k]
				if av == "" {
					continue
				}
				v, ok := scalar(e.Value)
				if !ok {
					p.fail(lineOf(e.Key), "%s: %s: want a single value", id, k)
					continue
				}
				name, v, err := hostVar(av, v)
				if err != nil {
					p.fail(lineOf(e.Key), "%s: %s", id, strings.Replace(err.Error(), av, k, 1))
					continue
				}
				vars[name] = v
			}
		}
		if vars["host"] == "" {
			// salt-ssh dials the id when host is absent.
			if err := model.ValidHost(id); err != nil {
				p.fail(l, "%s: no host, and the id is no address: %v", id, err)
				continue
			}
			vars["host"] = id
		}
		p.hosts(id, l, vars, "")
	}
	if len(p.bad) > 0 {
		return nil, p.bad
	}
	return finish(p.order, p.groupVars, p.children, p.childLine)
}
