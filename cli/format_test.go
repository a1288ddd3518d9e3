package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/felix-ops/felix/api/wire"
)

// TestFormatGolden holds yaml, wide and jsonl of a job, of exec and of a
// list to golden files (UPDATE=1 rewrites them).
func TestFormatGolden(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
	}{
		{"job-jpaged-yaml", []string{"job", "jpaged", "-o", "yaml"}, 0},
		{"job-jpaged-wide", []string{"job", "jpaged", "-o", "wide"}, 0},
		{"job-jpaged-jsonl", []string{"job", "jpaged", "-o", "jsonl"}, 0},
		{"job-jesc-yaml", []string{"job", "jesc", "-o", "yaml"}, 0},
		{"exec-yaml", []string{"exec", "-t", "*", "-o", "yaml", "--", "paged"}, 1},
		{"exec-wide", []string{"exec", "-t", "*", "-o", "wide", "--", "paged"}, 1},
		{"exec-jsonl", []string{"exec", "-t", "*", "-o", "jsonl", "--", "paged"}, 1},
		{"minions-yaml", []string{"minions", "-o", "yaml"}, 0},
		{"minions-wide", []string{"minions", "-o", "wide"}, 0},
		{"minions-jsonl", []string{"minions", "-o", "jsonl"}, 0},
		{"jobs-wide", []string{"jobs", "-o", "wide"}, 0},
		{"exec-dry-run-yaml", []string{"exec", "-t", "*", "--dry-run", "-o", "yaml", "--", "true"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, context.Background(), tt.args...)
			if code != tt.code || stderr != "" {
				t.Errorf("felix %s: exit %d, stderr %q; want %d and nothing", strings.Join(tt.args, " "), code, stderr, tt.code)
			}
			golden(t, tt.name, stdout)
		})
	}
}

// TestYAMLIsJSON: -o yaml prints the document -o json prints, read back
// by a YAML parser as the same values, and nothing a terminal acts on.
func TestYAMLIsJSON(t *testing.T) {
	f := fakeMaster(t)
	for _, args := range [][]string{
		{"minions"},
		{"jobs"},
		{"job", "jpaged"},
		{"job", "jesc"},
		{"job", "jfail"},
		{"job", "jmany"},
		{"exec", "-t", "*", "--", "paged"},
		{"exec", "-t", "*", "--dry-run", "--", "true"},
		{"job", "output", "jesc", "web01"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, js, _ := f.run(t, context.Background(), withFormat(args, "json")...)
			_, ys, stderr := f.run(t, context.Background(), withFormat(args, "yaml")...)
			if stderr != "" {
				t.Errorf("stderr %q; want nothing", stderr)
			}
			if visible(ys) != ys {
				t.Errorf("yaml shows characters a terminal acts on:\n%q", ys)
			}
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
				t.Fatalf("json: %v\n%s", err, js)
			}
			if err := yaml.Unmarshal([]byte(ys), &fromYAML); err != nil {
				t.Fatalf("yaml: %v\n%s", err, ys)
			}
			if a, b := normal(t, fromJSON), normal(t, fromYAML); !reflect.DeepEqual(a, b) {
				t.Errorf("yaml reads back as\n%v\nwant what json says:\n%v\nyaml:\n%s", b, a, ys)
			}
		})
	}
}

// withFormat is args with -o format after the command name (before any --).
func withFormat(args []string, format string) []string {
	return append([]string{args[0], "-o", format}, args[1:]...)
}

// normal is v through JSON: numbers as float64, whatever decoded it.
func normal(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestJSONToYAML: strings YAML could read as something else, multi-line
// text, escapes and empty values come back from a YAML parser as they
// went in.
func TestJSONToYAML(t *testing.T) {
	// YAML 1.1 line breaks in a literal block would end it (and add keys);
	// an indented first line after empty ones would lose its indentation.
	for _, s := range []string{"a\nb\u2028c: injected\n", "a\n\u2029b\n", "a\n\u0085b\n", "\n  indented\n", "\n\tx\n"} {
		if blockSafe(s) {
			t.Errorf("blockSafe(%q) = true; want it double-quoted", s)
		}
	}
	strs := []string{"", "plain", "yes", "No", "null", "~", "1.5", "0x1F", "2026-12-05", "a: b", "a:b", "- x", "#c", "a #b",
		"trailing ", " lead", "key:", "@x", "!tag", "&a", "*a", "[x]", "{x}", "%x", "'q'", `"q"`, "a,b", "日本語",
		"multi\nline\n", "no newline\nend", "two\n\n", "three\n\n\n", "\nfirst empty", "  indented\nx", "x\n  indented\n",
		"tab\there\n", "line\r\n", "\x1b[31mred\n", "\u202eevil\n", "\u009b2J", "bell\a", "bad \ufffd", "a\n \nb",
		"ends with colon:\n", "web[01-40],db[1-3] (43 hosts)",
		"a\nb\u2028c: injected\n", "a\n\u2029b: x\n", "a\n\u0085b: x\n", "\n  indented\n", "\n\n\tx\ny\n"}
	objs := make([]map[string]any, 0, len(strs))
	keys := map[string]any{}
	for _, s := range strs {
		objs = append(objs, map[string]any{"v": s, "list": []any{s, 1, true, nil}, "empty": map[string]any{}, "none": []any{}})
		keys[s] = s
	}
	doc := map[string]any{"objs": objs, "keys": keys, "nested": []any{[]any{"a", []any{}}, map[string]any{}}}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	y, err := jsonToYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if visible(y) != y {
		t.Errorf("yaml shows characters a terminal acts on:\n%q", y)
	}
	var back any
	if err := yaml.Unmarshal([]byte(y), &back); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	if a, b := normal(t, doc), normal(t, back); !reflect.DeepEqual(a, b) {
		t.Errorf("yaml reads back as\n%v\nwant\n%v\nyaml:\n%s", b, a, y)
	}
	for _, tt := range []struct{ in, want string }{
		{`"x"`, "x\n"},
		{`{}`, "{}\n"},
		{`{"a":{"b":[1,{"c":"d","e":[]}]}}`, "a:\n  b:\n  - 1\n  - c: d\n    e: []\n"},
		{`{"out":"hi\n"}`, "out: |\n  hi\n"},
	} {
		if got, err := jsonToYAML([]byte(tt.in)); err != nil || got != tt.want {
			t.Errorf("jsonToYAML(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// jsonlLines parses out as jsonl: every line one JSON object, the summary
// last and alone.
func jsonlLines(t *testing.T, out string) (results []jsonlResult, summary jsonlSummary) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		var typ struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &typ); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, l)
		}
		last := i == len(lines)-1
		switch {
		case typ.Type == "result" && !last:
			var r jsonlResult
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("line %d: %v\n%s", i+1, err, l)
			}
			results = append(results, r)
		case typ.Type == "summary" && last:
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&summary); err != nil {
				t.Fatalf("summary: %v\n%s", err, l)
			}
		default:
			t.Fatalf("line %d of %d has type %q: want results, then the summary last\n%s", i+1, len(lines), typ.Type, out)
		}
	}
	return results, summary
}

// TestJSONL: a job prints a line per host — streamed from the events, or
// from the stored pages when the stream breaks — then the summary; a list
// a line per item.
func TestJSONL(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		name        string
		args        []string
		code        int
		hosts       []string
		unreachable []string
		stdout      map[string]string
	}{
		{"exec streamed", []string{"exec", "-t", "*", "--", "paged"}, 1, []string{"h1", "h2", "h3", "h4", "h5"}, []string{},
			map[string]string{"h1": "one\n", "h3": ""}},
		{"exec unreachable", []string{"exec", "-t", "*", "--", "fail"}, 1, []string{"web01", "web02"}, []string{"web02"},
			map[string]string{"web01": "hi\n"}},
		{"exec stream broken", []string{"exec", "-t", "*", "--", "broken"}, 0, []string{"web01"}, []string{},
			map[string]string{"web01": "polled\n"}},
		{"job stored", []string{"job", "jmany"}, 0, nil, []string{"web13", "web14"}, map[string]string{"web07": fakeJobs["jmany"].Results[9].Stdout}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := f.run(t, context.Background(), withFormat(tt.args, "jsonl")...)
			if code != tt.code || stderr != "" {
				t.Errorf("exit %d, stderr %q; want %d and nothing", code, stderr, tt.code)
			}
			results, sum := jsonlLines(t, stdout)
			var hosts []string
			failed := 0
			for _, r := range results {
				hosts = append(hosts, r.Host)
				if r.State != "ok" {
					failed++
				}
				if want, ok := tt.stdout[r.Host]; ok && r.Stdout != want {
					t.Errorf("%s: stdout %q; want %q", r.Host, r.Stdout, want)
				}
			}
			if tt.hosts != nil && !reflect.DeepEqual(hosts, tt.hosts) {
				t.Errorf("result lines for %q; want %q", hosts, tt.hosts)
			}
			if sum.Hosts != len(results) || sum.Total != len(results) || sum.Failed != failed ||
				!reflect.DeepEqual(sum.Unreachable, tt.unreachable) {
				t.Errorf("summary %+v; want %d hosts, %d failed, unreachable %q", sum, len(results), failed, tt.unreachable)
			}
		})
	}
	code, stdout, _ := f.run(t, context.Background(), "minions", "-o", "jsonl")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 0 || len(lines) != 2 {
		t.Fatalf("minions -o jsonl: exit %d, %d lines; want 0 and a line per minion\n%s", code, len(lines), stdout)
	}
	for i, l := range lines {
		var m wire.Minion
		if err := json.Unmarshal([]byte(l), &m); err != nil || m.ID != []string{"web01", "web02"}[i] {
			t.Errorf("line %d = %s (%v); want minion %d", i+1, l, err, i+1)
		}
	}
}

// TestFetchFold: hosts whose copies are the same fold into one row with
// no saved paths; --no-fold and -o wide show each host's; -o jsonl saves
// each copy as its host's line prints, naming it.
func TestFetchFold(t *testing.T) {
	same, other := []byte("same everywhere\n"), []byte("different\n")
	results := []wire.HostResult{okCopy("web01", same), okCopy("web02", same), okCopy("web03", same), okCopy("web04", other),
		{Host: "web05", State: "unreachable", ExitCode: -1, Error: "dial: connection refused"}}
	for _, tt := range []struct {
		name  string
		args  []string
		saved bool
	}{
		{"fetch-fold", nil, false},
		{"fetch-no-fold", []string{"--no-fold"}, true},
		{"fetch-wide", []string{"-o", "wide"}, true},
		{"fetch-jsonl", []string{"-o", "jsonl"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFilesFake(t)
			f.setJob(fetchJob(results...))
			f.store(same)
			f.store(other)
			t.Chdir(t.TempDir())
			code, stdout, stderr := f.run(t, append([]string{"fetch", "-t", "web*", "/etc/motd", "out"}, tt.args...)...)
			if code != 1 || stderr != "" {
				t.Errorf("exit %d, stderr %q; want 1 (web05 unreachable) and nothing", code, stderr)
			}
			for i, b := range [][]byte{same, same, same, other} {
				p := filepath.Join("out", "web0"+string(rune('1'+i)), "motd")
				if got, err := os.ReadFile(p); err != nil || string(got) != string(b) {
					t.Errorf("%s = %q, %v; want %q", p, got, err, b)
				}
				if strings.Contains(stdout, p) != tt.saved {
					t.Errorf("stdout names %s: %v; want %v\n%s", p, !tt.saved, tt.saved, stdout)
				}
			}
			if tt.name == "fetch-jsonl" {
				rs, sum := jsonlLines(t, stdout)
				if len(rs) != 5 || rs[0].Saved != filepath.Join("out", "web01", "motd") || rs[4].Saved != "" ||
					!reflect.DeepEqual(sum.Unreachable, []string{"web05"}) {
					t.Errorf("lines %+v, summary %+v; want 5 with saved paths, web05 unreachable", rs, sum)
				}
				return
			}
			golden(t, tt.name, stdout)
		})
	}
}
