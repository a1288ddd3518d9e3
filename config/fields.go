package config

import (
	"bytes"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// field is one key of a config struct, found by walk.
type field struct {
	path  string // dotted: "exec.max_timeout"
	key   string
	table string // dotted table path; "" for the top level
	tag   reflect.StructTag
	v     reflect.Value
}

func (f field) def() (string, bool) { return f.tag.Lookup("default") }

// walk calls fn for every key of the struct v points to (or is), in order,
// and tableFn (may be nil) for every table before its keys.
func walk(v reflect.Value, table string, fn func(field), tableFn func(path string, tag reflect.StructTag)) {
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	t := v.Type()
	var tables []int
	for i := range t.NumField() {
		sf := t.Field(i)
		key := strings.Split(sf.Tag.Get("toml"), ",")[0]
		if key == "" || key == "-" || !sf.IsExported() {
			continue
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type != durationType {
			tables = append(tables, i)
			continue
		}
		kindOf(sf.Type) // panics on a type the machinery does not know
		fn(field{path: join(table, key), key: key, table: table, tag: sf.Tag, v: v.Field(i)})
	}
	// TOML puts a table's keys before its sub-tables, whatever the struct order.
	for _, i := range tables {
		sf := t.Field(i)
		path := join(table, strings.Split(sf.Tag.Get("toml"), ",")[0])
		if tableFn != nil {
			tableFn(path, sf.Tag)
		}
		walk(v.Field(i), path, fn, tableFn)
	}
}

func join(table, key string) string {
	if table == "" {
		return key
	}
	return table + "." + key
}

var durationType = reflect.TypeFor[Duration]()

// kindOf names a supported field type, or panics.
func kindOf(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "int"
	case t.Kind() == reflect.Bool:
		return "bool"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		return "list"
	}
	panic(fmt.Sprintf("config: field type %s is not supported", t))
}

// set parses text as Go text for f's type and stores it; empty text is
// the zero value.
func set(f field, text string) error {
	switch kindOf(f.v.Type()) {
	case "duration":
		var d time.Duration
		if text != "" {
			var err error
			if d, err = time.ParseDuration(text); err != nil {
				return fmt.Errorf("%s: %q is not a duration such as 30s or 5m", f.path, text)
			}
		}
		f.v.Set(reflect.ValueOf(Duration{d}))
	case "string":
		f.v.SetString(text)
	case "int":
		var n int64
		if text != "" {
			var err error
			if n, err = strconv.ParseInt(text, 10, 64); err != nil {
				return fmt.Errorf("%s: %q is not a whole number", f.path, text)
			}
		}
		f.v.SetInt(n)
	case "bool":
		var b bool
		if text != "" {
			var err error
			if b, err = strconv.ParseBool(text); err != nil {
				return fmt.Errorf("%s: %q is not true or false", f.path, text)
			}
		}
		f.v.SetBool(b)
	case "list":
		var l []string
		if text != "" {
			l = strings.Split(text, ",")
		}
		f.v.Set(reflect.ValueOf(l))
	}
	return nil
}

// setDefault stores f's default; it panics on a malformed one.
func setDefault(f field) {
	def, _ := f.def()
	if err := set(f, def); err != nil {
		panic(fmt.Sprintf("config: default of %s: %v", f.path, err))
	}
}

// SetDefaults sets every key of the struct v points to to its default
// (the zero value where there is none).
func SetDefaults(v any) {
	walk(reflect.ValueOf(v), "", setDefault, nil)
}

// FillZero sets each key that is unset — an empty string, a number or
// duration of 0 or less — to its default, so that a config built in code
// or emptied by the environment means what the commented file says. Lists
// and booleans are left alone (empty and false are values an operator
// chooses), as are keys tagged zero:"error" or zero:"computed", which
// Validate handles, and zero:"off", where 0 turns a feature off.
func FillZero(v any) {
	walk(reflect.ValueOf(v), "", func(f field) {
		def, ok := f.def()
		if !ok || def == "" || f.tag.Get("zero") != "" {
			return
		}
		unset := false
		switch kindOf(f.v.Type()) {
		case "duration":
			unset = f.v.Interface().(Duration).Duration <= 0
		case "string":
			unset = f.v.String() == ""
		case "int":
			unset = f.v.Int() <= 0
		}
		if unset {
			setDefault(f)
		}
	}, nil)
}

// AddFlags defines a string flag in fs for every key of v's type with a
// flag tag; Apply reads them.
func AddFlags(fs *pflag.FlagSet, v any) {
	walk(reflect.ValueOf(v), "", func(f field) {
		if name := f.tag.Get("flag"); name != "" {
			fs.String(name, "", firstSentence(f.tag.Get("doc")))
		}
	}, nil)
}

// Apply overrides the keys of the struct v points to from the environment
// (env tags; a variable set but empty counts), then from the flags of fs
// that were given (flag tags; fs may be nil): flags win over environment,
// which wins over the file.
func Apply(v any, fs *pflag.FlagSet) error {
	var err error
	walk(reflect.ValueOf(v), "", func(f field) {
		if err != nil {
			return
		}
		if env := f.tag.Get("env"); env != "" {
			if text, ok := os.LookupEnv(env); ok {
				if e := set(f, text); e != nil {
					err = fmt.Errorf("%s: %w", env, e)
					return
				}
			}
		}
		if name := f.tag.Get("flag"); name != "" && fs != nil && fs.Changed(name) {
			if e := set(f, fs.Lookup(name).Value.String()); e != nil {
				err = fmt.Errorf("--%s: %w", name, e)
			}
		}
	}, nil)
	return err
}

// Template returns the commented TOML file of v's type with every key at
// its default, header (comment lines) first: what a daemon writes on first
// run. It decodes back to SetDefaults' values.
func Template(header string, v any) string {
	d := reflect.New(reflect.TypeOf(v)).Elem()
	for d.Kind() == reflect.Pointer {
		d.Set(reflect.New(d.Type().Elem()))
		d = d.Elem()
	}
	SetDefaults(d.Addr().Interface())
	b, err := render(header, d, true)
	if err != nil {
		panic(fmt.Sprintf("config: template: %v", err))
	}
	return string(b)
}

// Render returns the commented TOML file of the values in v (a struct or a
// pointer to one), header (comment lines) first. Every value is encoded by
// the TOML encoder, so no value can add a key or a line.
func Render(header string, v any) ([]byte, error) {
	return render(header, reflect.ValueOf(v), false)
}

// render writes the file. With asTemplate, durations are written as their
// default's text ("60s" rather than "1m0s").
func render(header string, v reflect.Value, asTemplate bool) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(header)
	var err error
	walk(v, "", func(f field) {
		if err != nil {
			return
		}
		if f.table == "" {
			buf.WriteString("\n")
		}
		writeComment(&buf, f.tag.Get("doc"))
		var val any
		switch kindOf(f.v.Type()) {
		case "duration":
			d := f.v.Interface().(Duration).Duration
			val = shortDuration(d)
			if def, _ := f.def(); asTemplate && def != "" {
				val = def
			}
		case "list":
			if f.v.Len() == 0 {
				// Written commented: an empty list decodes as empty, not
				// as unset, and the file should load back as it was.
				fmt.Fprintf(&buf, "# %s = []\n", f.key)
				return
			}
			val = f.v.Interface()
		default:
			val = f.v.Interface()
		}
		if e := toml.NewEncoder(&buf).Encode(map[string]any{f.key: val}); e != nil {
			err = fmt.Errorf("encode %s: %w", f.path, e)
		}
	}, func(path string, tag reflect.StructTag) {
		fmt.Fprintf(&buf, "\n[%s]\n", path)
		if doc := tag.Get("doc"); doc != "" {
			writeComment(&buf, doc)
			buf.WriteString("\n") // the table's comment, apart from its first key's
		}
	})
	return buf.Bytes(), err
}

// shortDuration writes d as Go does without zero units: 1m, 24h, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// writeComment writes doc as "# " lines of at most 80 columns.
func writeComment(buf *bytes.Buffer, doc string) {
	for para := range strings.SplitSeq(doc, "\n") {
		line := "#"
		for w := range strings.FieldsSeq(para) {
			if len(line) > 1 && len(line)+1+len(w) > 80 {
				buf.WriteString(line + "\n")
				line = "#"
			}
			line += " " + w
		}
		if len(line) > 1 {
			buf.WriteString(line + "\n")
		}
	}
}

// firstSentence is doc up to its first ". ", for a flag's help.
func firstSentence(doc string) string {
	if i := strings.Index(doc, ". "); i >= 0 {
		return doc[:i+1]
	}
	return doc
}
