package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/felix-ops/felix/api/wire"
)

// escOut is a host's output that would retitle the window, clear the
// screen, move the cursor with a C1 CSI, reverse the text and rewrite the
// line, were it printed raw.
const escOut = "\x1b]0;X\x07\x1b[2Jok\u009b1A\u202etxt.exe\rdone\n"

func TestVisible(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text\twith tab\nand lines", "plain text\twith tab\nand lines"},
		{"héllo wörld ✓ 日本", "héllo wörld ✓ 日本"},
		{"\x1b]0;X\x07", `\x1b]0;X\x07`},
		{"a\rb", `a\rb`},
		{"del\x7f", `del\x7f`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"rlo \u202e isolate \u2066 mark \u200f", `rlo \u202e isolate \u2066 mark \u200f`},
		{"bad \xff\xfe utf8", `bad \xff\xfe utf8`},
		{"cut \xe2\x9c", `cut \xe2\x9c`},
		{"\uFFFD is fine", "\uFFFD is fine"},
	} {
		if got := visible(tc.in); got != tc.want {
			t.Errorf("visible(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVisibleWriterSplitsRunes(t *testing.T) {
	in := []byte("ok ✓ \u009b2J \x1b[K é")
	want := visible(string(in))
	// Every split point, so a C1 or multi-byte rune is cut across writes.
	for cut := 0; cut <= len(in); cut++ {
		var b bytes.Buffer
		v := &visibleWriter{w: &b}
		if n, err := v.Write(in[:cut]); n != cut || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		v.Write(in[cut:])
		if err := v.Flush(); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Errorf("cut at %d: %q, want %q", cut, b.String(), want)
		}
	}
}

func TestEscapeJSON(t *testing.T) {
	v := map[string]string{"out": escOut, "plain": "é ✓"}
	b, _ := json.Marshal(v)
	got := escapeJSON(b)
	if bytes.ContainsAny(got, "\x1b\x07\r") || strings.Contains(string(got), "\u009b") || strings.Contains(string(got), "\u202e") {
		t.Errorf("escapeJSON left raw controls: %q", got)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["out"] != escOut || back["plain"] != "é ✓" {
		t.Errorf("escapeJSON changed the document: %v, %q", err, back)
	}
}

// rawControls reports the first character of s a terminal would act on.
func rawControls(s string) (string, bool) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) || r == 0x202e {
			return s[max(0, i-20):min(len(s), i+20)], true
		}
		i += n
	}
	return "", false
}

// TestNothingRawReachesTheTerminal: host output, errors, a receiver's
// error and a minion's os name with escape sequences are shown, not acted
// on, in tables and text lines; JSON keeps them, escaped; job output is
// raw into a pipe and visible on a terminal.
func TestNothingRawReachesTheTerminal(t *testing.T) {
	f := fakeMaster(t)
	ctx := context.Background()
	for _, args := range [][]string{{"job", "jesc"}, {"minions"}, {"exec", "-t", "*", "--", "jesc"}} {
		_, stdout, stderr := f.run(t, ctx, args...)
		for name, s := range map[string]string{"stdout": stdout, "stderr": stderr} {
			if at, bad := rawControls(s); bad {
				t.Errorf("felix %s: %s has a raw control near %q", strings.Join(args, " "), name, at)
			}
		}
		if args[0] == "minions" && !strings.Contains(stdout, `deb\x1b[2J\u009b31m\u202eian`) {
			t.Errorf("felix minions: the os name is not shown escaped:\n%s", stdout)
		}
		if args[0] == "job" && !strings.Contains(stdout, `\x1b]0;X\x07\x1b[2Jok\u009b1A\u202etxt.exe\rdone`) {
			t.Errorf("felix job: the output is not shown escaped:\n%s", stdout)
		}
	}

	_, stdout, _ := f.run(t, ctx, "job", "jesc", "-o", "json")
	if at, bad := rawControls(stdout); bad {
		t.Errorf("felix job -o json: raw control near %q", at)
	}
	var j wire.Job
	if err := json.Unmarshal([]byte(stdout), &j); err != nil || len(j.Results) != 1 || j.Results[0].Stdout != escOut {
		t.Errorf("felix job -o json: %v; want the output kept exactly: %q", err, stdout)
	}

	_, stdout, _ = f.run(t, ctx, "job", "output", "jesc", "web01")
	if stdout != escOut {
		t.Errorf("felix job output into a pipe = %q, want the bytes as stored", stdout)
	}
	defer func(old func(io.Writer) bool) { isTerminal = old }(isTerminal)
	isTerminal = func(io.Writer) bool { return true }
	_, stdout, _ = f.run(t, ctx, "job", "output", "jesc", "web01")
	if stdout != visible(escOut) {
		t.Errorf("felix job output on a terminal = %q, want %q", stdout, visible(escOut))
	}
	_, stdout, _ = f.run(t, ctx, "job", "output", "jesc", "web01", "--raw")
	if stdout != escOut {
		t.Errorf("felix job output --raw on a terminal = %q, want the bytes as stored", stdout)
	}
}
