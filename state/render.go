package state

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"text/template"

	"github.com/felix-ops/felix/model"
)

// MaxRendered bounds what one template may render to.
const MaxRendered = 4 << 20

// Host is what a template knows of the host it renders for: .Host.ID and
// .Host.Addr, .Facts (as the host reported them), .Labels (as operators
// set them) and .Vars (the document's, merged for this host).
type Host struct {
	ID     string
	Addr   string
	Facts  map[string]any
	Labels map[string]string
}

// data is a template's dot.
type data struct {
	Host   struct{ ID, Addr string }
	Facts  map[string]any
	Labels map[string]string
	Vars   map[string]any
}

// funcs are the few functions templates get besides text/template's own;
// none runs anything or reads the master's files.
var funcs = template.FuncMap{
	"default": func(def, v any) any {
		if v == nil || v == "" {
			return def
		}
		return v
	},
	"join": func(sep string, v any) string {
		switch s := v.(type) {
		case []any:
			parts := make([]string, len(s))
			for i, x := range s {
				parts[i] = fmt.Sprint(x)
			}
			return strings.Join(parts, sep)
		case []string:
			return strings.Join(s, sep)
		}
		return fmt.Sprint(v)
	},
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// VarsFor merges the variables of the blocks selects says select the host
// (selects(i) for block i), in document order.
func (d *Doc) VarsFor(selects func(i int) bool) map[string]any {
	out := map[string]any{}
	for i, b := range d.Vars {
		if selects(i) {
			maps.Copy(out, b.Vars)
		}
	}
	return out
}

// Render makes the document's resources for one host: templates executed
// with h and vars (host data is a value in them, never template text),
// modes and names turned into their checked forms.
func (d *Doc) Render(h Host, vars map[string]any) ([]model.Resource, error) {
	dot := data{Facts: h.Facts, Labels: h.Labels, Vars: vars}
	dot.Host.ID, dot.Host.Addr = h.ID, h.Addr
	if dot.Facts == nil {
		dot.Facts = map[string]any{}
	}
	if dot.Labels == nil {
		dot.Labels = map[string]string{}
	}
	out := make([]model.Resource, 0, len(d.Resources))
	for _, s := range d.Resources {
		r := model.Resource{ID: s.ID, Type: s.Type, Path: s.Path, Target: s.Target, Owner: s.Owner, Group: s.Group,
			Backup: s.Backup, Absent: s.State == "absent", Name: s.Name, Enabled: s.Enabled, Reload: s.Reload,
			Run: s.Run, Creates: s.Creates, Unless: s.Unless, OnChange: s.OnChange, Require: s.Require,
			Latest: s.State == "latest", Content: s.Content, Source: strings.TrimPrefix(s.Source, "sha256:")}
		r.Mode, _ = model.ParseMode(s.Mode) // checked by Parse
		if s.Type == model.ResService && s.State != "" {
			running := s.State == "running"
			r.Running = &running
		}
		for _, n := range s.Names {
			p, _ := model.ParsePkg(n) // checked by Parse
			r.Packages = append(r.Packages, p)
		}
		if t := d.templates[s.ID]; t != nil {
			var b cappedWriter
			if err := t.Execute(&b, dot); err != nil {
				return nil, fmt.Errorf("render %s for %s: %w", s.ID, h.ID, err)
			}
			content := b.String()
			r.Content = &content
		}
		if t := d.paths[s.ID]; t != nil {
			var b cappedWriter
			if err := t.Execute(&b, dot); err != nil {
				return nil, fmt.Errorf("render the path of %s for %s: %w", s.ID, h.ID, err)
			}
			if err := model.CheckPath(b.String()); err != nil {
				return nil, fmt.Errorf("the path of %s for %s: %w", s.ID, h.ID, err)
			}
			r.Path = b.String()
		}
		out = append(out, r)
	}
	return out, nil
}

var errTooLarge = errors.New("the template renders to more than 4 MiB")

// cappedWriter fails once MaxRendered bytes were written.
type cappedWriter struct{ strings.Builder }

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.Len()+len(p) > MaxRendered {
		return 0, errTooLarge
	}
	return w.Builder.Write(p)
}
