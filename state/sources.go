package state

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// ResolveSources returns doc with each file resource's source that names a
// local file (not yet sha256:HEX) replaced by "sha256:" + resolve(path):
// the CLI uploads the file to the master's content store and the stored
// document names the content. Everything else in the text — comments,
// layout — stays as written. A source must be written on one line.
func ResolveSources(doc []byte, resolve func(path string) (sha string, err error)) ([]byte, error) {
	file, err := parser.ParseBytes(doc, 0)
	if err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	type edit struct {
		line, col int // 1-based, of the value's first character
		sha       string
	}
	var edits []edit
	for _, docNode := range file.Docs {
		top, ok := docNode.Body.(*ast.MappingNode)
		if !ok {
			continue
		}
		for _, kv := range top.Values {
			if kv.Key.String() != "resources" {
				continue
			}
			seq, ok := kv.Value.(*ast.SequenceNode)
			if !ok {
				continue
			}
			for _, item := range seq.Values {
				m, ok := item.(*ast.MappingNode)
				if !ok {
					continue
				}
				for _, f := range m.Values {
					if f.Key.String() != "source" {
						continue
					}
					s, ok := f.Value.(*ast.StringNode)
					if !ok || strings.HasPrefix(s.Value, "sha256:") {
						continue
					}
					tk := s.GetToken()
					sha, err := resolve(s.Value)
					if err != nil {
						return nil, &Error{Line: tk.Position.Line, Msg: fmt.Sprintf("source %q: %v", s.Value, err)}
					}
					edits = append(edits, edit{tk.Position.Line, tk.Position.Column, sha})
				}
			}
		}
	}
	if len(edits) == 0 {
		return doc, nil
	}
	// From the end backwards, so earlier positions stay valid.
	sort.Slice(edits, func(i, j int) bool {
		if edits[i].line != edits[j].line {
			return edits[i].line > edits[j].line
		}
		return edits[i].col > edits[j].col
	})
	lines := strings.SplitAfter(string(doc), "\n")
	for _, e := range edits {
		if e.line < 1 || e.line > len(lines) {
			return nil, &Error{Line: e.line, Msg: "source: cannot find its value"}
		}
		l := lines[e.line-1]
		start := byteIndex(l, e.col-1)
		end, ok := scalarEnd(l, start)
		if start < 0 || !ok {
			return nil, &Error{Line: e.line, Msg: "source: write the path on one line"}
		}
		lines[e.line-1] = l[:start] + "sha256:" + e.sha + l[end:]
	}
	return []byte(strings.Join(lines, "")), nil
}

// byteIndex is the byte offset of the rune at index col of l, -1 past it.
func byteIndex(l string, col int) int {
	for i := range l {
		if col == 0 {
			return i
		}
		col--
	}
	return -1
}

// scalarEnd finds where the scalar starting at l[start] ends: its closing
// quote, or for a plain scalar the first ",", "}", "]" or " #" (or the
// line's end), trailing spaces not included.
func scalarEnd(l string, start int) (int, bool) {
	switch l[start] {
	case '"':
		for i := start + 1; i < len(l); i++ {
			switch l[i] {
			case '\\':
				i++
			case '"':
				return i + 1, true
			}
		}
		return 0, false
	case '\'':
		for i := start + 1; i < len(l); i++ {
			if l[i] == '\'' {
				if i+1 < len(l) && l[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, true
			}
		}
		return 0, false
	}
	end := len(strings.TrimRight(l, "\r\n"))
	for i := start; i < end; i++ {
		if c := l[i]; c == ',' || c == '}' || c == ']' || (c == '#' && i > start && l[i-1] == ' ') {
			end = i
			break
		}
	}
	for end > start {
		r, n := utf8.DecodeLastRuneInString(l[:end])
		if r != ' ' && r != '\t' {
			break
		}
		end -= n
	}
	return end, end > start
}
