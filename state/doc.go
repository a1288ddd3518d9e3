// Package state is felix's managed configuration: a state document (YAML)
// says what each host should hold — files rendered from templates, dirs,
// symlinks, packages, services, guarded commands — and Run makes one host
// so, resource by resource, reporting each as changed, unchanged, failed
// or skipped, with exact diffs in a dry run too.
//
// The master parses and checks a document (Parse) before anything is
// stored, renders it per host from the host's facts, labels and the
// document's variables (Render: host data is only ever a value inside a
// template, never parsed as one), and drives the host through its
// transport: fixed command lines for queries, services and packages, the
// verified atomic file transfer for files. Minions need nothing new.
package state

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/felix-ops/felix/model"
	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Doc is a parsed, checked state document.
type Doc struct {
	Vars      []VarsBlock `yaml:"vars"`
	Resources []Spec      `yaml:"resources"`

	templates map[string]*template.Template // content, by resource id
	paths     map[string]*template.Template // templated paths, by resource id
}

// VarsBlock sets variables for the hosts Match selects (the target syntax
// of -t: an id, a glob, an address or range, key=value over labels and
// facts; several patterns separated by commas). Blocks merge in document
// order, later ones winning.
type VarsBlock struct {
	Match string         `yaml:"match"`
	Vars  map[string]any `yaml:"vars"`
}

// Spec is one resource as written. Which keys a type takes is checked by
// Parse (allowed).
type Spec struct {
	ID   string `yaml:"id"`
	Type string `yaml:"type"`

	Path     string  `yaml:"path"`
	Content  *string `yaml:"content"`
	Template *string `yaml:"template"`
	// Source is content in the master's store, "sha256:HEX"; the CLI
	// uploads a local file named here and writes its sha256 in its place.
	Source string `yaml:"source"`
	Target string `yaml:"target"`
	Mode   string `yaml:"mode"`
	Owner  string `yaml:"owner"`
	Group  string `yaml:"group"`
	Backup bool   `yaml:"backup"`

	Names []string `yaml:"names"`

	Name    string `yaml:"name"`
	Enabled *bool  `yaml:"enabled"`
	Reload  bool   `yaml:"reload"`

	Run     string `yaml:"run"`
	Creates string `yaml:"creates"`
	Unless  string `yaml:"unless"`

	// State is file/dir/symlink: present|absent; pkg:
	// installed|latest|absent; service: running|stopped.
	State string `yaml:"state"`

	OnChange []string `yaml:"onchange"`
	Require  []string `yaml:"require"`
}

// allowed lists the keys each type takes besides id, type, state,
// onchange and require.
var allowed = map[string][]string{
	model.ResFile:    {"path", "content", "template", "source", "mode", "owner", "group", "backup"},
	model.ResDir:     {"path", "mode", "owner", "group"},
	model.ResSymlink: {"path", "target"},
	model.ResPkg:     {"names"},
	model.ResService: {"name", "enabled", "reload"},
	model.ResCmd:     {"run", "creates", "unless"},
}

var states = map[string][]string{
	model.ResFile:    {"", "present", "absent"},
	model.ResDir:     {"", "present", "absent"},
	model.ResSymlink: {"", "present", "absent"},
	model.ResPkg:     {"", "installed", "latest", "absent"},
	model.ResService: {"", "running", "stopped"},
	model.ResCmd:     {""},
}

var (
	idRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	ownerRe = regexp.MustCompile(`^([a-z_][a-z0-9_.-]{0,31}|[0-9]{1,10})$`)
	varRe   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	svcRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9@._:-]{0,255}$`)

	sourceRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

// Error is a problem with a document, with the line it is on (0 when it
// is about the whole document).
type Error struct {
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Parse reads and checks a state document: YAML of at most
// model.MaxConfigSize bytes; known keys only, each valid for its
// resource's type; unique ids; onchange and require naming earlier
// resources (so there are no cycles); absolute, clean paths; modes,
// owners, package and service names that are plain data; templates that
// parse. The error names the line.
func Parse(body []byte) (*Doc, error) {
	if len(body) > model.MaxConfigSize {
		return nil, &Error{Msg: fmt.Sprintf("the document is %d bytes; at most %d", len(body), model.MaxConfigSize)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, &Error{Msg: "the document is empty"}
	}
	var d Doc
	if err := yaml.UnmarshalWithOptions(body, &d, yaml.DisallowUnknownField()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			return nil, &Error{Line: ye.GetToken().Position.Line, Msg: ye.GetMessage()}
		}
		return nil, &Error{Msg: err.Error()}
	}
	file, err := parser.ParseBytes(body, 0)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	line := func(p string) int { return lineOf(file, p) }
	if len(d.Resources) == 0 {
		return nil, &Error{Msg: "the document has no resources"}
	}
	if len(d.Resources) > model.MaxConfigResources {
		return nil, &Error{Msg: fmt.Sprintf("%d resources; at most %d", len(d.Resources), model.MaxConfigResources)}
	}
	for i, v := range d.Vars {
		at := fmt.Sprintf("$.vars[%d]", i)
		if strings.TrimSpace(v.Match) == "" {
			return nil, &Error{Line: line(at), Msg: "a vars block needs match (a target such as role=web or '*')"}
		}
		for k := range v.Vars {
			if !varRe.MatchString(k) {
				return nil, &Error{Line: line(at + ".vars"), Msg: fmt.Sprintf("variable name %q: want letters, digits and _", k)}
			}
		}
	}
	seen := map[string]bool{}
	d.templates, d.paths = map[string]*template.Template{}, map[string]*template.Template{}
	for i := range d.Resources {
		r := &d.Resources[i]
		at := fmt.Sprintf("$.resources[%d]", i)
		if err := checkSpec(r, seen, &d); err != nil {
			l := line(at + err.key)
			if l == 0 { // a key that is missing: the resource's line
				l = line(at)
			}
			return nil, &Error{Line: l, Msg: fmt.Sprintf("resource %s: %s", describe(r, i), err.msg)}
		}
		seen[r.ID] = true
	}
	return &d, nil
}

// specError is a problem with one key of a resource ("" the resource).
type specError struct{ key, msg string }

func bad(key, format string, args ...any) *specError {
	if key != "" {
		key = "." + key
	}
	return &specError{key: key, msg: fmt.Sprintf(format, args...)}
}

func describe(r *Spec, i int) string {
	if r.ID != "" {
		return fmt.Sprintf("%q", r.ID)
	}
	return fmt.Sprintf("#%d", i+1)
}

func checkSpec(r *Spec, seen map[string]bool, d *Doc) *specError {
	switch {
	case r.ID == "":
		return bad("", "needs an id")
	case !idRe.MatchString(r.ID):
		return bad("id", "id %q: 1-128 letters, digits, '.', '_', '-', starting with a letter or digit", r.ID)
	case seen[r.ID]:
		return bad("id", "id %q is used twice", r.ID)
	}
	keys, ok := allowed[r.Type]
	if !ok {
		return bad("type", "type %q: want one of %s", r.Type, strings.Join(model.ResourceTypes, ", "))
	}
	for _, k := range setKeys(r) {
		if !slices.Contains(keys, k) {
			return bad(k, "a %s resource has no %s (it takes %s)", r.Type, k, strings.Join(keys, ", "))
		}
	}
	if !slices.Contains(states[r.Type], r.State) {
		return bad("state", "state %q: a %s is %s", r.State, r.Type, strings.Join(states[r.Type][1:], " or "))
	}
	for _, list := range []struct {
		key string
		ids []string
	}{{"require", r.Require}, {"onchange", r.OnChange}} {
		for _, id := range list.ids {
			if !seen[id] {
				if id == r.ID {
					return bad(list.key, "%s names the resource itself", list.key)
				}
				return bad(list.key, "%s names %q, which is not a resource before this one", list.key, id)
			}
		}
	}
	switch r.Type {
	case model.ResFile, model.ResDir, model.ResSymlink:
		if strings.Contains(r.Path, "{{") {
			// A templated path (/srv/{{ .Host.ID }}/app.conf): checked
			// again once rendered for each host.
			if !strings.HasPrefix(r.Path, "/") {
				return bad("path", "path %q is not absolute", r.Path)
			}
			t, err := template.New(r.ID + " path").Option("missingkey=error").Funcs(funcs).Parse(r.Path)
			if err != nil {
				return bad("path", "path template: %v", err)
			}
			for _, v := range varsUsed(t.Tree.Root) {
				if !d.defines(v) {
					return bad("path", "path template: .Vars.%s is set by no vars block", v)
				}
			}
			d.paths[r.ID] = t
		} else if err := model.CheckPath(r.Path); err != nil {
			return bad("path", "%v", err)
		}
		if _, err := model.ParseMode(r.Mode); err != nil {
			return bad("mode", "%v", err)
		}
		for _, o := range []struct{ key, v string }{{"owner", r.Owner}, {"group", r.Group}} {
			if o.v != "" && !ownerRe.MatchString(o.v) {
				return bad(o.key, "%s %q: a user or group name ([a-z_][a-z0-9_.-]*) or number", o.key, o.v)
			}
		}
	}
	absent := r.State == "absent"
	switch r.Type {
	case model.ResFile:
		n := 0
		for _, set := range []bool{r.Content != nil, r.Template != nil, r.Source != ""} {
			if set {
				n++
			}
		}
		switch {
		case absent && n > 0:
			return bad("state", "an absent file has no content, template or source")
		case !absent && n != 1:
			return bad("", "a file needs content, template or source (one of them)")
		case r.Source != "" && !sourceRe.MatchString(r.Source):
			return bad("source", "source %q: want sha256:HEX, content in the master's store (felix apply and felix config put upload a local file named here; POST /api/v1/content stores one)", r.Source)
		}
		if r.Template != nil {
			t, err := template.New(r.ID).Option("missingkey=error").Funcs(funcs).Parse(*r.Template)
			if err != nil {
				return bad("template", "template: %v", err)
			}
			for _, v := range varsUsed(t.Tree.Root) {
				if !d.defines(v) {
					return bad("template", "template: .Vars.%s is set by no vars block", v)
				}
			}
			d.templates[r.ID] = t
		}
	case model.ResSymlink:
		if !absent && (r.Target == "" || strings.ContainsRune(r.Target, 0)) {
			return bad("target", "a symlink needs a target")
		}
	case model.ResPkg:
		if len(r.Names) == 0 {
			return bad("names", "a pkg resource needs names")
		}
		for _, n := range r.Names {
			p, err := model.ParsePkg(n)
			if err != nil {
				return bad("names", "%v", err)
			}
			if p.Version != "" && r.State != "" && r.State != "installed" {
				return bad("names", "%s: a pinned version is for state installed", n)
			}
		}
	case model.ResService:
		if !svcRe.MatchString(r.Name) {
			return bad("name", "service name %q: letters, digits and @._:- only", r.Name)
		}
		if r.State == "" && r.Enabled == nil {
			return bad("", "a service needs state (running or stopped) or enabled")
		}
	case model.ResCmd:
		if strings.TrimSpace(r.Run) == "" {
			return bad("run", "a cmd resource needs run")
		}
		if len(r.Run) > model.MaxCmdLine || len(r.Unless) > model.MaxCmdLine {
			return bad("run", "a command is at most %d bytes", model.MaxCmdLine)
		}
		if r.Creates != "" {
			if err := model.CheckPath(r.Creates); err != nil {
				return bad("creates", "%v", err)
			}
		}
	}
	return nil
}

// Sources lists the sha256 (hex) of the stored content the document's
// files name, each once.
func (d *Doc) Sources() []string {
	var out []string
	for _, r := range d.Resources {
		if sha, ok := strings.CutPrefix(r.Source, "sha256:"); ok && !slices.Contains(out, sha) {
			out = append(out, sha)
		}
	}
	return out
}

// defines reports whether a vars block sets v.
func (d *Doc) defines(v string) bool {
	for _, b := range d.Vars {
		if _, ok := b.Vars[v]; ok {
			return true
		}
	}
	return false
}

// varsUsed lists the NAMEs of .Vars.NAME a template reads with the
// document's dot (not inside range or with, where the dot is another).
func varsUsed(n parse.Node) []string {
	var out []string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if len(n.Ident) >= 2 && n.Ident[0] == "Vars" {
				out = append(out, n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
		case *parse.WithNode:
			walk(n.Pipe)
		}
	}
	walk(n)
	return out
}

// setKeys lists the type-specific keys r sets.
func setKeys(r *Spec) []string {
	var out []string
	for _, f := range []struct {
		key string
		set bool
	}{
		{"path", r.Path != ""}, {"content", r.Content != nil}, {"template", r.Template != nil}, {"source", r.Source != ""},
		{"target", r.Target != ""}, {"mode", r.Mode != ""}, {"owner", r.Owner != ""}, {"group", r.Group != ""},
		{"backup", r.Backup}, {"names", r.Names != nil}, {"name", r.Name != ""}, {"enabled", r.Enabled != nil},
		{"reload", r.Reload}, {"run", r.Run != ""}, {"creates", r.Creates != ""}, {"unless", r.Unless != ""},
	} {
		if f.set {
			out = append(out, f.key)
		}
	}
	return out
}

// lineOf is the line of the node at the YAML path p, 0 when unknown.
func lineOf(f *ast.File, p string) int {
	yp, err := yaml.PathString(p)
	if err != nil {
		return 0
	}
	n, err := yp.FilterFile(f)
	if err != nil || n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}
