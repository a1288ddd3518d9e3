package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/model"
)

// Every command that prints takes -o FORMAT:
//
//	table  the default: a table for a person (job results folded)
//	wide   the table with the columns it leaves out (transport, time,
//	       fingerprints, labels, full ids); job results one row per host
//	json   one JSON document, the API's fields
//	yaml   the same document as YAML: the same fields, in the same order
//	jsonl  one JSON object a line: a list's items, or a job's results as
//	       hosts finish, then {"type":"summary",...} (see jsonl.go)
//
// stdout carries the output alone; progress, warnings and errors go to
// stderr in every format.

const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
	formatJSONL = "jsonl"
)

// addNoFold adds --no-fold alone to fs: for the job tables that fold
// rows (fetch, pkg, apply, minions upgrade) rather than output.
func addNoFold(fs *pflag.FlagSet) *view {
	v := &view{}
	fs.BoolVar(&v.noFold, "no-fold", false, "one row per host instead of hosts with the same outcome folded into one")
	return v
}

// outputFormats are the values -o takes.
var outputFormats = []string{formatTable, formatWide, formatJSON, formatYAML, formatJSONL}

// checkFormat refuses an -o value felix does not print.
func checkFormat(format string) error {
	for _, f := range outputFormats {
		if format == f {
			return nil
		}
	}
	return usageError{fmt.Sprintf("-o %q: want %s", format, strings.Join(outputFormats, ", "))}
}

// structured reports whether format prints data (json, yaml, jsonl)
// rather than a table.
func structured(format string) bool {
	return format == formatJSON || format == formatYAML || format == formatJSONL
}

// printAs prints v as a structured format says: one JSON document, the
// same as YAML, or for jsonl each element of the slice items on its own
// line (v on one line when items is nil).
func printAs(w io.Writer, format string, v, items any) error {
	switch format {
	case formatYAML:
		return printYAML(w, v)
	case formatJSONL:
		if items == nil {
			return printLine(w, v)
		}
		s := reflect.ValueOf(items)
		if s.Kind() != reflect.Slice {
			return fmt.Errorf("print %T as lines: not a slice", items)
		}
		for i := range s.Len() {
			if err := printLine(w, s.Index(i).Interface()); err != nil {
				return err
			}
		}
		return nil
	}
	return printJSON(w, v)
}

// printLine prints v as JSON on one line.
func printLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(escapeJSON(b), '\n'))
	return err
}

// printYAML prints v as YAML: the fields JSON would have, in its order.
func printYAML(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := jsonToYAML(b)
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, y)
	return err
}

// jsonToYAML turns one JSON document into block-style YAML. Keys keep
// their order; strings print plain when nothing could read them as
// another type, multi-line text as a literal block, anything else
// double-quoted with JSON's escapes (valid YAML) — so that no character a
// terminal acts on is printed raw.
func jsonToYAML(doc []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	n, err := readNode(dec)
	if err != nil {
		return "", fmt.Errorf("yaml: %w", err)
	}
	var b strings.Builder
	switch {
	case n.kind == '{' && len(n.keys) > 0:
		writeMapping(&b, n, 0, false)
	case n.kind == '[' && len(n.vals) > 0:
		writeSeq(&b, n, 0)
	default:
		b.WriteString(scalar(n, 0, false) + "\n")
	}
	return b.String(), nil
}

// node is a JSON value with its object keys in order.
type node struct {
	kind byte   // '{', '[', '"' (a string) or 0 (a number, true, false, null)
	text string // a string's value, or the literal
	keys []string
	vals []*node
}

func readNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		n := &node{kind: byte(t)}
		for dec.More() {
			if n.kind == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				ks, ok := k.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				n.keys = append(n.keys, ks)
			}
			v, err := readNode(dec)
			if err != nil {
				return nil, err
			}
			n.vals = append(n.vals, v)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &node{kind: '"', text: t}, nil
	case json.Number:
		return &node{text: t.String()}, nil
	case bool:
		return &node{text: strconv.FormatBool(t)}, nil
	case nil:
		return &node{text: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

func indentTo(b *strings.Builder, n int) { b.WriteString(strings.Repeat(" ", n)) }

// writeMapping writes an object's keys at indent; inline leaves out the
// first key's indent (it follows "- ").
func writeMapping(b *strings.Builder, n *node, indent int, inline bool) {
	for i, k := range n.keys {
		if i > 0 || !inline {
			indentTo(b, indent)
		}
		b.WriteString(quoteKey(k) + ":")
		writeValue(b, n.vals[i], indent, false)
	}
}

// writeSeq writes an array's items at indent.
func writeSeq(b *strings.Builder, n *node, indent int) {
	for _, v := range n.vals {
		indentTo(b, indent)
		b.WriteString("-")
		writeValue(b, v, indent, true)
	}
}

// writeValue writes what follows "key:" (or, item, "-") at indent: an
// item's object starts on the line of its "-", its array on the next
// line, indented.
func writeValue(b *strings.Builder, v *node, indent int, item bool) {
	switch {
	case v.kind == '{' && len(v.keys) > 0 && item:
		b.WriteString(" ")
		writeMapping(b, v, indent+2, true)
	case v.kind == '{' && len(v.keys) > 0:
		b.WriteString("\n")
		writeMapping(b, v, indent+2, false)
	case v.kind == '[' && len(v.vals) > 0 && item:
		b.WriteString("\n")
		writeSeq(b, v, indent+2)
	case v.kind == '[' && len(v.vals) > 0:
		b.WriteString("\n")
		writeSeq(b, v, indent)
	default:
		b.WriteString(" " + scalar(v, indent+2, true) + "\n")
	}
}

// scalar is a value that is not a non-empty object or array; a literal
// block's lines are indented by indent.
func scalar(n *node, indent int, block bool) string {
	switch n.kind {
	case '{':
		return "{}"
	case '[':
		return "[]"
	case '"':
		s := n.text
		if plainSafe(s) {
			return s
		}
		if block && blockSafe(s) {
			return literal(s, indent)
		}
		return quoted(s)
	}
	return n.text
}

func quoteKey(k string) string {
	if plainSafe(k) {
		return k
	}
	return quoted(k)
}

// quoted is s double-quoted with JSON's escapes, which YAML reads the same.
func quoted(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return string(escapeJSON(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))))
}

// yamlWords are plain scalars some YAML reader takes for a bool or null.
var yamlWords = map[string]bool{"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true,
	"y": true, "n": true, "null": true, "~": true}

// plainSafe reports whether s can print unquoted and read back as this
// string by any YAML reader: a conservative set — letters, digits and a
// few marks, starting with a letter, not a word that means bool or null.
func plainSafe(s string) bool {
	if s == "" || yamlWords[strings.ToLower(s)] {
		return false
	}
	for i, r := range s {
		switch {
		case unicode.IsLetter(r) && r < 0x80, r >= 0x80 && unicode.IsLetter(r) && !unsafeRune(r, utf8.RuneLen(r)):
		case i == 0:
			return false // not a digit, sign, dot or indicator first
		case unicode.IsDigit(r) && r < 0x80, strings.ContainsRune("_-./@+=%()", r):
		case r == ' ' || r == ',' || r == ':':
			// inside only: not "a: b", not " #", not at the end
			if i == len(s)-1 || r == ':' && s[i+1] == ' ' || r == ' ' && (s[i+1] == '#' || s[i+1] == ' ') {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// blockSafe reports whether s prints as a literal block: several lines of
// characters a terminal shows as they are, none a YAML line break, the
// first that is not empty not indented, no line of blanks alone.
func blockSafe(s string) bool {
	if !strings.Contains(s, "\n") || strings.HasPrefix(s, " ") || strings.HasPrefix(s, "\t") {
		return false
	}
	// A block's indentation is taken from its first line that is not empty:
	// leading empty lines then an indented one would lose its spaces.
	if first := strings.TrimLeft(s, "\n"); first != s && (strings.HasPrefix(first, " ") || strings.HasPrefix(first, "\t")) {
		return false
	}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		// U+0085, U+2028 and U+2029 are line breaks to YAML 1.1 readers: in a
		// block they would end it and let output add keys to the document.
		if r == '\t' || unsafeRune(r, n) || r == 0xfeff || r == 0x85 || r == 0x2028 || r == 0x2029 {
			return false
		}
		i += n
	}
	for _, l := range strings.Split(s, "\n") {
		if l != "" && strings.TrimSpace(l) == "" {
			return false
		}
	}
	return true
}

// literal is s as a literal block ("|"), its lines indented by indent.
func literal(s string, indent int) string {
	body := strings.TrimRight(s, "\n")
	chomp := "-" // no final newline
	switch trailing := len(s) - len(body); {
	case trailing == 1:
		chomp = ""
	case trailing > 1:
		chomp = "+"
	}
	var b strings.Builder
	b.WriteString("|" + chomp)
	lines := strings.Split(body, "\n")
	if chomp == "+" {
		lines = append(lines, make([]string, len(s)-len(body)-1)...)
	}
	for _, l := range lines {
		b.WriteString("\n")
		if l != "" {
			indentTo(&b, indent)
			b.WriteString(l)
		}
	}
	return b.String()
}

// printMinionsWide prints the minions table with every column: hostname,
// IPs, fingerprint, registration and the exact last contact.
func printMinionsWide(w io.Writer, minions []wire.Minion) error {
	t := newTable(w, "ID", "HOSTNAME", "ADDRESS", "IPS", "STATE", "HEALTH", "VERSION", "OS", "LABELS", "FINGERPRINT",
		"REGISTERED", "LAST SEEN")
	for _, m := range minions {
		t.AppendRow(table.Row{m.ID, m.Hostname, m.Address, strings.Join(m.IPs, ","), m.State, m.Health, m.Version, m.OS,
			formatLabels(m.Labels, ","), m.Fingerprint, stamp(m.RegisteredAt), stamp(m.LastSeen)})
	}
	t.Render()
	return nil
}

// stamp is a time to the second in local time, "never" when zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Local().Format(time.DateTime)
}

// jobsWideRow is a row of felix jobs -o wide: the whole command, its
// type, the request id and when the job ended.
func jobsWideRow(j wire.Job, failed int) table.Row {
	finished := "-"
	if j.FinishedAt != nil {
		finished = stamp(*j.FinishedAt)
	}
	return table.Row{j.JobID, j.ID, j.CmdType, j.State, j.Total, j.Summary[string(model.StateOK)], failed, j.CmdLine,
		j.RequestedBy, stamp(j.CreatedAt), finished}
}

// jobsWideHead is the header of felix jobs -o wide.
var jobsWideHead = []any{"JOB", "ID", "TYPE", "STATE", "HOSTS", "OK", "FAILED", "COMMAND", "BY", "CREATED", "FINISHED"}
