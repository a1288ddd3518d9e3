package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/felix-ops/felix/api/wire"
)

// TestOutputFormats runs felix exec and felix minions against a real
// master and two real minions in each format and parses what they print:
// -o jsonl a line per host (stdout and stderr apart) then the summary,
// -o yaml the job document; an -o felix does not print exits 2.
func TestOutputFormats(t *testing.T) {
	c := startMaster(t)
	c.joinAll("fmt1", "fmt2")
	// One host wins the mkdir and exits 3; the other prints on both streams.
	won := filepath.Join(t.TempDir(), "won")
	cmd := "mkdir " + won + " 2>/dev/null && exit 3; echo hello; echo warn >&2"

	out, errOut, code := c.felix("exec", "-t", "fmt*", "-o", "jsonl", "--", cmd)
	if code != 1 || errOut != "" {
		t.Errorf("felix exec -o jsonl: exit %d, stderr %q; want 1 (a host failed) and nothing", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("felix exec -o jsonl printed %d lines; want 2 hosts and the summary:\n%s", len(lines), out)
	}
	states := map[string]int{}
	for i, l := range lines[:2] {
		var r struct {
			Type, Host, State, Stdout, Stderr string
			ExitCode                          int `json:"exit_code"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil || r.Type != "result" {
			t.Fatalf("line %d = %s (%v); want a result", i+1, l, err)
		}
		states[r.State]++
		switch r.State {
		case "ok":
			if r.Stdout != "hello\n" || r.Stderr != "warn\n" || r.ExitCode != 0 {
				t.Errorf("the ok host's line: %s; want stdout hello, stderr warn apart, exit 0", l)
			}
		case "failed":
			if r.ExitCode != 3 || r.Stdout != "" {
				t.Errorf("the failed host's line: %s; want exit 3 and no output", l)
			}
		}
	}
	var sum struct {
		Type, State string
		Total       int
		Summary     map[string]int
		Unreachable []string
	}
	if err := json.Unmarshal([]byte(lines[2]), &sum); err != nil || sum.Type != "summary" || sum.State != "done" || sum.Total != 2 ||
		sum.Summary["ok"] != 1 || sum.Summary["failed"] != 1 || sum.Unreachable == nil || len(sum.Unreachable) != 0 {
		t.Errorf("summary line %s (%v); want done, 1 ok, 1 failed, none unreachable", lines[2], err)
	}
	if states["ok"] != 1 || states["failed"] != 1 {
		t.Errorf("hosts by state %v; want one ok and one failed", states)
	}

	out, errOut, code = c.felix("exec", "-t", "fmt*", "-o", "yaml", "--", "echo hello; echo warn >&2")
	if code != 0 || errOut != "" {
		t.Errorf("felix exec -o yaml: exit %d, stderr %q; want 0 and nothing", code, errOut)
	}
	var job wire.Job
	fromYAML(t, out, &job)
	if job.State != "done" || len(job.Results) != 2 || job.Summary["ok"] != 2 {
		t.Fatalf("felix exec -o yaml: %+v\n%s", job, out)
	}
	for _, r := range job.Results {
		if r.Stdout != "hello\n" || r.Stderr != "warn\n" || r.Transport != "agent" || r.State != "ok" {
			t.Errorf("host %s: %+v; want ok over agent, stdout hello and stderr warn apart", r.Host, r)
		}
	}

	out, _, code = c.felix("minions", "-o", "yaml")
	var list wire.MinionList
	fromYAML(t, out, &list)
	if code != 0 || len(list.Minions) != 2 || list.Minions[0].Fingerprint == "" {
		t.Errorf("felix minions -o yaml: exit %d, %+v\n%s", code, list, out)
	}
	out, _, code = c.felix("minions", "-o", "jsonl")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); code != 0 || len(lines) != 2 {
		t.Errorf("felix minions -o jsonl: exit %d; want a line per minion:\n%s", code, out)
	}
	out, errOut, code = c.felix("jobs", "-o", "wide")
	if code != 0 || !strings.Contains(out, "FINISHED") || !strings.Contains(out, "echo hello; echo warn >&2") {
		t.Errorf("felix jobs -o wide: exit %d, %s\n%s", code, errOut, out)
	}

	out, errOut, code = c.felix("exec", "-t", "fmt*", "-o", "xml", "--", "true")
	if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `-o "xml": want table, wide, json, yaml, jsonl`) {
		t.Errorf("felix exec -o xml: exit %d, stdout %q, stderr %q; want 2 and one line naming the formats", code, out, errOut)
	}
}

// fromYAML reads YAML text into v through JSON: v's json tags name the
// fields, as they do for -o json.
func fromYAML(t *testing.T, text string, v any) {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, text)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("yaml as json: %v\n%s", err, text)
	}
}
