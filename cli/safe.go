package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/jedib0t/go-pretty/v6/table"
)

// Nothing a host or a remote service wrote reaches the operator's terminal
// raw: output, facts, ids and error texts may carry escape sequences that
// retitle the window, clear the screen, rewrite earlier lines or hide text
// (an OSC 0, a CSI 2J, a carriage return, a right-to-left override). Tables
// and text lines show such characters in a visible form instead; JSON keeps
// every character, escaped.

// visible returns s with every character a terminal would act on in a
// visible form: C0 controls but newline and tab, DEL, C1 controls and the
// bidirectional overrides and isolates as Go escapes (\x1b, \r, \u009b,
// \u202e), and bytes that are not UTF-8 as \xff. A backslash stays a
// backslash: the form is for reading, not for parsing back.
func visible(s string) string {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r, n) {
			writeEscaped(&b, s[i:i+n], r)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// unsafeRune reports whether the rune r, n bytes long, must not reach a
// terminal as is.
func unsafeRune(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n <= 1:
		return true // not UTF-8
	case r == '\n' || r == '\t':
		return false
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f:
		return true // C1: U+009B is a CSI to some terminals
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f:
		return true // bidirectional overrides, isolates and marks
	}
	return false
}

func writeEscaped(b *strings.Builder, raw string, r rune) {
	switch {
	case r == utf8.RuneError && len(raw) <= 1:
		fmt.Fprintf(b, `\x%02x`, raw[0])
	case r == '\r':
		b.WriteString(`\r`)
	case r < 0x80:
		fmt.Fprintf(b, `\x%02x`, r)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// visibleWriter passes what is written through visible, holding back the
// bytes of a UTF-8 sequence cut by the end of a write until the next one
// (Flush writes them out).
type visibleWriter struct {
	w    io.Writer
	hold []byte
}

func (v *visibleWriter) Write(p []byte) (int, error) {
	buf := append(v.hold, p...)
	cut := len(buf)
	// A rune cut at the end: at most UTFMax-1 bytes from a start byte.
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-(utf8.UTFMax-1); i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	if _, err := io.WriteString(v.w, visible(string(buf[:cut]))); err != nil {
		return 0, err
	}
	v.hold = append(v.hold[:0], buf[cut:]...)
	return len(p), nil
}

// Flush writes out bytes held back (an incomplete sequence at the very end).
func (v *visibleWriter) Flush() error {
	if len(v.hold) == 0 {
		return nil
	}
	_, err := io.WriteString(v.w, visible(string(v.hold)))
	v.hold = v.hold[:0]
	return err
}

// escapeJSON returns JSON text b with the characters encoding/json leaves
// raw but a terminal acts on (C1 controls, bidirectional overrides and
// isolates) written as \u escapes: the same document, safe to print.
func escapeJSON(b []byte) []byte {
	i := 0
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r >= 0x80 && unsafeRune(r, n) && n > 1 {
			break
		}
		i += n
	}
	if i == len(b) {
		return b
	}
	out := bytes.NewBuffer(make([]byte, 0, len(b)+16))
	out.Write(b[:i])
	for i < len(b) {
		r, n := utf8.DecodeRune(b[i:])
		if r >= 0x80 && unsafeRune(r, n) && n > 1 {
			fmt.Fprintf(out, `\u%04x`, r)
		} else {
			out.Write(b[i : i+n])
		}
		i += n
	}
	return out.Bytes()
}

// safeTable is a go-pretty table whose cells are shown through visible:
// it measures and pads what the terminal will show.
type safeTable struct{ table.Writer }

func (t safeTable) AppendRow(row table.Row, configs ...table.RowConfig) {
	t.Writer.AppendRow(visibleRow(row), configs...)
}

func (t safeTable) AppendRows(rows []table.Row, configs ...table.RowConfig) {
	for _, r := range rows {
		t.AppendRow(r, configs...)
	}
}

func (t safeTable) AppendFooter(row table.Row, configs ...table.RowConfig) {
	t.Writer.AppendFooter(visibleRow(row), configs...)
}

func visibleRow(row table.Row) table.Row {
	out := make(table.Row, len(row))
	for i, c := range row {
		switch v := c.(type) {
		case string:
			out[i] = visible(v)
		case fmt.Stringer:
			out[i] = visible(v.String())
		default:
			out[i] = c
		}
	}
	return out
}
