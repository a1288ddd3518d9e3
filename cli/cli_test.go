package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/pki"
)

// fake is a master that answers the API routes the CLI uses with canned
// bodies and records what it was sent.
type fake struct {
	srv *httptest.Server

	mu       sync.Mutex        // protects the fields below
	exec     wire.ExecRequest  // the last exec body
	execURL  string            // the last exec URL, with its query
	labels   wire.Labels       // the last labels body
	requests []string          // "METHOD /path?query" of every request
	polls    map[string]int    // GETs of each job
	hung     chan struct{}     // closed once the jhang event stream has begun
	minion   map[string]string // web01's labels
}

// fakeJobs are the jobs the fake knows; POST /api/v1/exec starts the one
// whose id is in the command line, else j1.
var fakeJobs = map[string]wire.Job{
	"j1": {JobID: "j1", State: "done", Total: 1, Summary: map[string]int{"ok": 1}, CmdLine: "echo hi",
		Results:    []wire.HostResult{{Host: "web01", State: "ok", Stdout: "hi\n", Transport: "agent"}},
		Deliveries: []wire.Delivery{{Kind: "callback", State: "delivered", Attempts: 2}}},
	"jfail": {JobID: "jfail", State: "done", Total: 2, Summary: map[string]int{"ok": 1, "unreachable": 1},
		Results: []wire.HostResult{{Host: "web01", State: "ok", Stdout: "hi\n", Transport: "agent"},
			{Host: "web02", State: "unreachable", ExitCode: -1, Error: "connection refused"}},
		Deliveries: []wire.Delivery{{Kind: "callback", State: "dead", Attempts: 12, LastError: "HTTP 500 from receiver"}}},
	"jbroken": {JobID: "jbroken", State: "done", Total: 1, Summary: map[string]int{"ok": 1},
		Results: []wire.HostResult{{Host: "web01", State: "ok", Stdout: "polled\n"}}},
	"jhang": {JobID: "jhang", State: "running", Total: 1},
	"jpaged": {JobID: "jpaged", State: "done", Total: 5, Summary: map[string]int{"ok": 4, "failed": 1}, CmdLine: "paged",
		Results: []wire.HostResult{
			{Host: "h1", State: "ok", Stdout: "one\n", Transport: "agent", DurationMS: 12},
			{Host: "h2", State: "ok", Stdout: "a longer line of output\n", Transport: "ssh", DurationMS: 1500},
			{Host: "h3", State: "failed", ExitCode: 2, Stderr: "no such file\n", Transport: "agent"},
			{Host: "h4", State: "ok", Stdout: "<four> & \"4\"\n", Truncated: true, Transport: "agent"},
			{Host: "h5", State: "ok", Stdout: "five\n", Transport: "agent"}},
		Deliveries: []wire.Delivery{{Kind: "callback", State: "delivered", Attempts: 1}}},
	"jesc": {JobID: "jesc", State: "done", Total: 1, Summary: map[string]int{"failed": 1}, CmdLine: "printf evil",
		Results: []wire.HostResult{{Host: "web01", State: "failed", ExitCode: 1, Stdout: escOut, Stderr: "bell\a\xff\n",
			Error: "exit \x1b[31mred", Transport: "agent"}},
		Deliveries: []wire.Delivery{{Kind: "callback", State: "dead", Attempts: 1, LastError: "HTTP 500: \x1b]0;owned\a"}}},
	"jloop": {JobID: "jloop", State: "done", Total: 3, Summary: map[string]int{"ok": 3},
		Results: []wire.HostResult{{Host: "h1", State: "ok"}, {Host: "h2", State: "ok"}, {Host: "h3", State: "ok"}}},
}

// fakePageSize is the fake master's default hosts_limit: small, so that a
// job of a few hosts comes in pages.
const fakePageSize = 2

// pageOf answers GET /api/v1/jobs/ID?q as the master does: the hosts
// after hosts_after, at most hosts_limit of them, next_host when more
// follow, no output with output=none. jloop's pages never move on.
func pageOf(job wire.Job, q url.Values, size int) wire.Job {
	limit := size
	if l := q.Get("hosts_limit"); l != "" {
		limit, _ = strconv.Atoi(l)
	}
	after := q.Get("hosts_after")
	if job.JobID == "jloop" {
		after = ""
	}
	var rs []wire.HostResult
	for _, r := range job.Results {
		if r.Host > after {
			if q.Get("output") == "none" {
				r.Stdout, r.Stderr = "", ""
			}
			rs = append(rs, r)
		}
	}
	if len(rs) > limit {
		rs = rs[:limit]
		job.NextHost = rs[limit-1].Host
	}
	job.Results = rs
	return job
}

func fakeMaster(t *testing.T) *fake {
	t.Helper()
	f := &fake{polls: map[string]int{}, hung: make(chan struct{}), minion: map[string]string{"role": "db", "env": "prod"}}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			reply(w, 401, wire.Error{Error: "api token: invalid or expired token"})
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		p := r.URL.Path
		jobID, action, _ := strings.Cut(strings.TrimPrefix(p, "/api/v1/jobs/"), "/")
		switch {
		case p == "/api/v1/minions":
			reply(w, 200, wire.MinionList{Minions: []wire.Minion{
				{ID: "web01", Address: "10.0.0.1:4510", State: "accepted", Health: "ok", OS: "debian 12", Fingerprint: "sha256:aa",
					Labels: map[string]string{"role": "web", "env": "prod"}},
				{ID: "web02", Address: "10.0.0.2:4510", State: "pending", Health: "unknown", Fingerprint: "sha256:bb",
					OS: "deb\x1b[2J\u009b31m\u202eian"},
			}})
		case p == "/api/v1/exec":
			var req wire.ExecRequest
			json.NewDecoder(r.Body).Decode(&req)
			f.mu.Lock()
			f.exec, f.execURL = req, r.URL.RequestURI()
			f.mu.Unlock()
			if req.DryRun || r.URL.Query().Get("dry_run") == "true" {
				reply(w, 200, wire.DryRun{Targets: req.Targets, Hosts: []wire.DryRunHost{
					{Host: "web01", Address: "10.0.0.1:4510", State: "would run"},
					{Host: "web02", Address: "10.0.0.2:4510", State: "not_accepted", Error: "minion is pending"}}})
				return
			}
			id := "j1"
			for _, j := range []string{"jfail", "jbroken", "jhang", "jpaged"} {
				if strings.Contains(req.CmdLine, strings.TrimPrefix(j, "j")) {
					id = j
				}
			}
			reply(w, 202, wire.ExecAccepted{JobID: id, ID: req.ID, State: "running", Total: fakeJobs[id].Total})
		case p == "/api/v1/jobs":
			list := wire.JobList{Jobs: []wire.Job{fakeJobs["j1"], fakeJobs["jfail"]}}
			list.Jobs[1].CmdLine = "for i in 1 2 3; do echo a long command line that goes on and on; done"
			if r.URL.Query().Get("limit") == "2" {
				list.Next = "jfail"
			}
			reply(w, 200, list)
		case strings.HasPrefix(action, "hosts/") && r.Method == "GET":
			host, rest, _ := strings.Cut(strings.TrimPrefix(action, "hosts/"), "/")
			i := slices.IndexFunc(fakeJobs[jobID].Results, func(r wire.HostResult) bool { return r.Host == host })
			if i < 0 {
				reply(w, 404, wire.Error{Error: "host " + host + " in job " + jobID + ": not found"})
				return
			}
			res := fakeJobs[jobID].Results[i]
			if rest == "" {
				reply(w, 200, res)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			if r.URL.Query().Get("stream") == "stderr" {
				io.WriteString(w, res.Stderr)
			} else {
				io.WriteString(w, res.Stdout)
			}
		case strings.HasPrefix(p, "/api/v1/jobs/") && action == "" && r.Method == "GET":
			job, ok := fakeJobs[jobID]
			if !ok {
				reply(w, 404, wire.Error{Error: "job " + jobID + ": not found"})
				return
			}
			f.mu.Lock()
			f.polls[jobID]++
			if jobID == "jbroken" && f.polls[jobID] == 1 {
				job = wire.Job{JobID: jobID, State: "running", Total: 1}
			}
			f.mu.Unlock()
			reply(w, 200, pageOf(job, r.URL.Query(), fakePageSize))
		case action == "events":
			f.events(w, r, jobID)
		case action == "cancel":
			switch jobID {
			case "jhang":
				reply(w, 202, map[string]string{"job_id": jobID, "state": "cancelling"})
			case "j1", "jfail":
				reply(w, 409, wire.Error{Error: "job " + jobID + ": already finished"})
			default:
				reply(w, 404, wire.Error{Error: "job " + jobID + ": not found"})
			}
		case action == "rerun":
			reply(w, 202, wire.ExecAccepted{JobID: "j1", State: "running", Total: 1})
		case strings.HasPrefix(p, "/api/v1/minions/web01/labels") && r.Method == "PUT":
			var req wire.Labels
			json.NewDecoder(r.Body).Decode(&req)
			f.mu.Lock()
			f.labels = req
			for k, v := range req.Set {
				f.minion[k] = v
			}
			for _, k := range req.Remove {
				delete(f.minion, k)
			}
			m := wire.Minion{ID: "web01", Labels: maps.Clone(f.minion)}
			f.mu.Unlock()
			reply(w, 200, m)
		case strings.HasPrefix(p, "/api/v1/minions/") && strings.HasSuffix(p, "/accept"):
			if strings.Contains(p, "nosuch") {
				reply(w, 404, wire.Error{Error: "minion nosuch: not found"})
				return
			}
			reply(w, 200, map[string]string{"state": "accepted"})
		default:
			reply(w, 404, wire.Error{Error: "no such endpoint"})
		}
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// events serves a job's Server-Sent Events like the master: the job's
// start, each host running, its output and its end, the job's end, "end".
// jbroken's stream breaks after the start; jhang's stays open.
func (f *fake) events(w http.ResponseWriter, r *http.Request, id string) {
	job, ok := fakeJobs[id]
	if !ok {
		w.WriteHeader(404)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	seq := 0
	send := func(typ string, e map[string]any) {
		seq++
		e["seq"], e["type"] = seq, typ
		b, _ := json.Marshal(e)
		fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", seq, typ, b)
		w.(http.Flusher).Flush()
	}
	send("job", map[string]any{"state": "running", "total": job.Total})
	switch id {
	case "jbroken":
		return
	case "jhang":
		close(f.hung)
		<-r.Context().Done()
		return
	}
	for _, res := range job.Results {
		send("host", map[string]any{"host": res.Host, "state": "running"})
		if res.Stdout != "" {
			send("output", map[string]any{"host": res.Host, "stream": "stdout", "data": res.Stdout})
		}
		send("host", map[string]any{"host": res.Host, "state": res.State, "exit_code": res.ExitCode})
	}
	send("job", map[string]any{"state": job.State, "total": job.Total})
	fmt.Fprint(w, "event: end\ndata: {}\n\n")
}

func (f *fake) lastExec() (wire.ExecRequest, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exec, f.execURL
}

func (f *fake) sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// conn returns the flags that connect to the fake.
func (f *fake) conn(t *testing.T) []string {
	return []string{"--master", f.srv.URL, "--token", "good", "--master-fingerprint", pki.Fingerprint(f.srv.Certificate().Raw),
		"--config", filepath.Join(t.TempDir(), "none.toml")}
}

// run runs felix with args, the connection flags after the command name.
func (f *fake) run(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append(append([]string{args[0]}, f.conn(t)...), args[1:]...)
	code = Main(ctx, full, &out, &errb)
	return code, out.String(), errb.String()
}

// runAt runs felix against srv with args, the connection flags after the
// command name.
func runAt(t *testing.T, srv *httptest.Server, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	conn := []string{"--master", srv.URL, "--token", "good", "--master-fingerprint", pki.Fingerprint(srv.Certificate().Raw),
		"--config", filepath.Join(t.TempDir(), "none.toml")}
	var out, errb bytes.Buffer
	code = Main(context.Background(), append(append([]string{args[0]}, conn...), args[1:]...), &out, &errb)
	return code, out.String(), errb.String()
}

func TestMain(t *testing.T) {
	f := fakeMaster(t)
	conn := f.conn(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantErr    string   // substring of stderr
		wantTarget []string
	}{
		{"minions table", []string{"minions"}, 0, []string{"ID", "web01", "10.0.0.1:4510", "debian 12", "LAST SEEN"}, "", nil},
		{"minions labels column", []string{"minions"}, 0, []string{"LABELS", "env=prod", "role=web"}, "", nil},
		{"minions json", []string{"minions", "-o", "json"}, 0, []string{`"id": "web01"`}, "", nil},
		{"keys lists pending first", []string{"keys"}, 0, []string{"pending", "sha256:bb"}, "", nil},
		{"keys accept", []string{"keys", "accept", "web02"}, 0, []string{"web02: accepted"}, "", nil},
		{"keys accept unknown", []string{"keys", "accept", "nosuch"}, 1, nil, "not found", nil},
		{"exec ok", []string{"exec", "-t", "web*,db01", "-t", "10.0.0.9", "-v", "--", "echo", "hi"}, 0,
			[]string{"web01", "ok", "hi", "1 host: 1 ok", "callback: delivered (2 attempts)"}, "", []string{"web*", "db01", "10.0.0.9"}},
		{"exec with a failed host exits 1", []string{"exec", "-t", "*", "--", "fail"}, 1,
			[]string{"unreachable", "connection refused", "callback: dead: HTTP 500 from receiver"}, "", []string{"*"}},
		{"exec dry run", []string{"exec", "-t", "web*", "--dry-run", "--", "rm", "-rf", "/tmp/x"}, 0,
			[]string{"HOST", "ADDRESS", "WOULD", "NOTE", "would run", "not_accepted", "minion is pending", "1 of 2 hosts would run"}, "", []string{"web*"}},
		{"exec dry run json", []string{"exec", "-t", "web*", "--dry-run", "-o", "json", "--", "true"}, 0,
			[]string{`"state": "would run"`}, "", nil},
		{"exec follows json", []string{"exec", "-t", "*", "-o", "json", "--", "echo", "hi"}, 0, []string{`"job_id": "j1"`, `"stdout": "hi\n"`}, "", nil},
		{"exec script and file", []string{"exec", "-t", "*", "--script", "a.sh", "--file", "b", "--", "x"}, 1, nil, "not both", nil},
		{"exec file without command", []string{"exec", "-t", "*", "--file", "b"}, 1, nil, "no command", nil},
		{"exec missing script", []string{"exec", "-t", "*", "--script", "/nonexistent/a.sh"}, 1, nil, "no such file", nil},
		{"jobs table", []string{"jobs"}, 0, []string{"JOB", "STATE", "HOSTS", "OK", "FAILED", "COMMAND", "CREATED", "jfail", "for i in 1 2 3; do echo a long command …"}, "", nil},
		{"jobs paging hint", []string{"jobs", "--limit", "2"}, 0, []string{"more: felix jobs --before jfail --limit 2"}, "", nil},
		{"jobs json", []string{"jobs", "-o", "json"}, 0, []string{`"job_id": "jfail"`}, "", nil},
		{"job show (a display command: exit 0 though a host failed)", []string{"job", "jfail"}, 0, []string{"connection refused", "callback: dead: HTTP 500 from receiver (12 attempts)"}, "", nil},
		{"job unknown", []string{"job", "nosuch"}, 1, nil, "job nosuch: not found (HTTP 404)", nil},
		{"job cancel", []string{"job", "cancel", "jhang"}, 0, []string{"job jhang: cancelling"}, "", nil},
		{"job cancel finished", []string{"job", "cancel", "j1"}, 1, nil, "job j1: already finished (HTTP 409)", nil},
		{"job cancel unknown", []string{"job", "cancel", "nosuch"}, 1, nil, "(HTTP 404)", nil},
		{"job rerun follows", []string{"job", "rerun", "jfail", "--failed"}, 0, []string{"web01", "1 host: 1 ok"}, "", nil},
		{"job rerun async", []string{"job", "rerun", "--async", "jfail"}, 0, []string{"j1"}, "", nil},
		{"job flags only for rerun", []string{"job", "--failed", "j1"}, 1, nil, "for felix job rerun", nil},
		{"job output json", []string{"job", "output", "jpaged", "h4", "-o", "json"}, 0, []string{`"host": "h4"`, `"truncated": true`}, "", nil},
		{"job output unknown host", []string{"job", "output", "jpaged", "h9"}, 1, nil, "host h9 in job jpaged: not found (HTTP 404)", nil},
		{"job output without host", []string{"job", "output", "jpaged"}, 1, nil, "felix job output JOB_ID HOST", nil},
		{"job --stderr only for output", []string{"job", "jpaged", "--stderr"}, 1, nil, "--stderr is for felix job output", nil},
		{"minions label without labels", []string{"minions", "label", "web01"}, 1, nil, "no labels", nil},
		{"minions label bad word", []string{"minions", "label", "web01", "role"}, 1, nil, "want key=value", nil},
		{"exec without targets", []string{"exec", "--", "true"}, 1, nil, "no targets", nil},
		{"exec without command", []string{"exec", "-t", "*"}, 1, nil, "no command", nil},
		{"bad output format", []string{"minions", "-o", "xml"}, 2, nil, `-o "xml": want table, wide, json, yaml, jsonl`, nil},
		{"bad output format of a job", []string{"exec", "-t", "*", "-o", "csv", "--", "true"}, 2, nil, `-o "csv": want table`, nil},
		{"unknown command", []string{"frobnicate"}, 2, nil, "unknown command", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append(append([]string{tt.args[0]}, conn...), tt.args[1:]...)
			code := Main(context.Background(), args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit = %d; want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tt.wantErr != "" && !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q; want it to contain %q", stderr.String(), tt.wantErr)
			}
			if tt.wantErr != "" && strings.Count(strings.TrimSpace(stderr.String()), "\n") > 0 {
				t.Errorf("stderr has more than one line: %q", stderr.String())
			}
			last, _ := f.lastExec()
			if tt.wantTarget != nil && strings.Join(last.Targets, " ") != strings.Join(tt.wantTarget, " ") {
				t.Errorf("targets sent = %q; want %q", last.Targets, tt.wantTarget)
			}
		})
	}
}

func TestExecAsync(t *testing.T) {
	f := fakeMaster(t)
	code, stdout, stderr := f.run(t, context.Background(), "exec", "-t", "*", "--async", "--id", "req-7", "--batch", "10%",
		"--fail-threshold", "3", "--timeout", "5s", "--", "sleep", "1")
	if code != 0 || stdout != "j1\n" || stderr != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0, \"j1\\n\", \"\"", code, stdout, stderr)
	}
	req, u := f.lastExec()
	want := wire.ExecRequest{JobOptions: wire.JobOptions{ID: "req-7", Targets: []string{"*"}, Timeout: "5s", Batch: "10%", FailThreshold: 3}, CmdLine: "sleep 1", CmdType: "line"}
	if fmt.Sprint(req) != fmt.Sprint(want) || u != "/api/v1/exec" {
		t.Errorf("sent %s %+v; want /api/v1/exec %+v", u, req, want)
	}
	for _, r := range f.sent() {
		if strings.Contains(r, "/events") || strings.HasPrefix(r, "GET /api/v1/jobs/") {
			t.Errorf("--async followed the job: %s", r)
		}
	}
}

func TestExecScript(t *testing.T) {
	dir := t.TempDir()
	binary := []byte{0x7f, 'E', 'L', 'F', 0, 0xff, 0xfe}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		args    []string
		want    wire.ExecRequest
		content []byte
	}{
		{"binary script with quoted args",
			[]string{"--script", write("deploy.sh", binary), "--", "arg one", "two", "it's"},
			wire.ExecRequest{CmdType: "script", CmdLine: `./deploy.sh 'arg one' 'two' 'it'\''s'`, FileName: "deploy.sh", FileEncoding: "base64"},
			binary},
		{"text script without args",
			[]string{"--script", write("hello world.sh", []byte("#!/bin/sh\necho hi\n"))},
			wire.ExecRequest{CmdType: "script", CmdLine: `'./hello world.sh'`, FileName: "hello world.sh"},
			[]byte("#!/bin/sh\necho hi\n")},
		{"file with a command",
			[]string{"--file", write("app.tgz", binary), "--", "tar", "xzf", "app.tgz"},
			wire.ExecRequest{CmdType: "file", CmdLine: "tar xzf app.tgz", FileName: "app.tgz", FileEncoding: "base64"},
			binary},
	}
	f := fakeMaster(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"exec", "-t", "*"}, tt.args...)
			if code, stdout, stderr := f.run(t, context.Background(), args...); code != 0 || !strings.Contains(stdout, "1 host: 1 ok") {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
			}
			got, _ := f.lastExec()
			if got.CmdType != tt.want.CmdType || got.CmdLine != tt.want.CmdLine || got.FileName != tt.want.FileName ||
				got.FileEncoding != tt.want.FileEncoding {
				t.Errorf("sent cmd_type %q cmd_line %q file_name %q file_encoding %q; want %q %q %q %q",
					got.CmdType, got.CmdLine, got.FileName, got.FileEncoding,
					tt.want.CmdType, tt.want.CmdLine, tt.want.FileName, tt.want.FileEncoding)
			}
			content := []byte(got.File)
			if got.FileEncoding == "base64" {
				var err error
				if content, err = base64.StdEncoding.DecodeString(got.File); err != nil {
					t.Fatalf("file is not base64: %v", err)
				}
			}
			if !bytes.Equal(content, tt.content) {
				t.Errorf("file = %q; want %q", content, tt.content)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	tests := []struct{ in, quote, word string }{
		{"two", "'two'", "two"},
		{"arg one", "'arg one'", "'arg one'"},
		{"it's", `'it'\''s'`, `'it'\''s'`},
		{"", "''", ""},
		{"./deploy-v1.2_x.sh", "'./deploy-v1.2_x.sh'", "./deploy-v1.2_x.sh"},
		{"$(rm -rf /)", "'$(rm -rf /)'", "'$(rm -rf /)'"},
	}
	for _, tt := range tests {
		if got := shellQuote(tt.in); got != tt.quote {
			t.Errorf("shellQuote(%q) = %q; want %q", tt.in, got, tt.quote)
		}
		if got := shellWord(tt.in); got != tt.word && tt.in != "" {
			t.Errorf("shellWord(%q) = %q; want %q", tt.in, got, tt.word)
		}
	}
}

func TestProgress(t *testing.T) {
	f := fakeMaster(t)
	t.Run("not a terminal", func(t *testing.T) {
		code, _, stderr := f.run(t, context.Background(), "exec", "-t", "*", "--", "fail")
		if code != 1 || stderr != "" {
			t.Errorf("exit %d, stderr %q; want 1 and nothing on stderr", code, stderr)
		}
	})
	t.Run("terminal", func(t *testing.T) {
		defer func(old func(io.Writer) bool) { isTerminal = old }(isTerminal)
		isTerminal = func(io.Writer) bool { return true }
		code, stdout, stderr := f.run(t, context.Background(), "exec", "-t", "*", "--", "fail")
		for _, want := range []string{"\r[job jfail] 0/2 done, 0 failed", "\r[job jfail] 1/2 done, 0 failed",
			"\r[job jfail] 2/2 done, 1 failed"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q: %q", want, stderr)
			}
		}
		if !strings.HasSuffix(stderr, "\r\x1b[K") {
			t.Errorf("progress line not cleared at the end: %q", stderr)
		}
		if code != 1 || !strings.Contains(stdout, "connection refused") {
			t.Errorf("exit %d, stdout %s; want 1 and the table", code, stdout)
		}
	})
}

func TestFollowFallsBackToPolling(t *testing.T) {
	defer func(old time.Duration) { pollInterval = old }(pollInterval)
	pollInterval = 10 * time.Millisecond
	f := fakeMaster(t)
	code, stdout, stderr := f.run(t, context.Background(), "exec", "-t", "*", "--", "broken")
	if code != 0 || !strings.Contains(stdout, "polled") {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	// The first poll finds the job running; then its counts alone are
	// asked for until it has ended, and then its first page.
	var polls []string
	for _, r := range f.sent() {
		if strings.HasPrefix(r, "GET /api/v1/jobs/jbroken") && !strings.Contains(r, "/events") {
			polls = append(polls, r)
		}
	}
	want := []string{"GET /api/v1/jobs/jbroken", "GET /api/v1/jobs/jbroken?hosts_limit=1&output=none", "GET /api/v1/jobs/jbroken"}
	if !slices.Equal(polls, want) {
		t.Errorf("polls = %q; want %q (running, then done, then the results)", polls, want)
	}
}

func TestFollowInterrupted(t *testing.T) {
	f := fakeMaster(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.hung
		cancel()
	}()
	code, stdout, stderr := f.run(t, ctx, "exec", "-t", "*", "--", "hang")
	if code != 1 || stdout != "" || !strings.Contains(stderr, "felix job cancel jhang") ||
		strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, one line naming felix job cancel jhang", code, stdout, stderr)
	}
	for _, r := range f.sent() {
		if strings.Contains(r, "/cancel") {
			t.Errorf("Ctrl-C cancelled the job: %s", r)
		}
	}
}

func TestJobRerunFailed(t *testing.T) {
	f := fakeMaster(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "rerun", "jfail", "--failed", "--async"}, "POST /api/v1/jobs/jfail/rerun?only=failed"},
		{[]string{"job", "rerun", "jfail", "--async"}, "POST /api/v1/jobs/jfail/rerun"},
	} {
		if code, _, stderr := f.run(t, context.Background(), tt.args...); code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", tt.args, code, stderr)
		}
		if sent := f.sent(); sent[len(sent)-1] != tt.want {
			t.Errorf("%v sent %q; want %q", tt.args, sent[len(sent)-1], tt.want)
		}
	}
}

func TestMinionsLabel(t *testing.T) {
	f := fakeMaster(t)
	code, stdout, stderr := f.run(t, context.Background(), "minions", "label", "web01", "role=web", "-env", "tier=", "--", "-o")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	f.mu.Lock()
	got := f.labels
	f.mu.Unlock()
	want := wire.Labels{Set: map[string]string{"role": "web", "tier": ""}, Remove: []string{"env", "o"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sent %+v; want %+v", got, want)
	}
	if !strings.Contains(stdout, "role") || !strings.Contains(stdout, "web") || strings.Contains(stdout, "prod") {
		t.Errorf("stdout does not show the new labels:\n%s", stdout)
	}
	code, stdout, _ = f.run(t, context.Background(), "minions", "label", "web01", "-role", "-tier", "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"id": "web01"`) || strings.Contains(stdout, `"labels"`) {
		t.Errorf("exit %d, stdout %s; want the minion as JSON without labels", code, stdout)
	}
}

func TestLabelRemovals(t *testing.T) {
	tests := []struct {
		in, rest, removals string
	}{
		{"--master x label web01 a=1 -b -o json", "--master x label web01 a=1 -o json", "b"},
		{"-o json label web01 -b", "-o json label web01", "b"},
		{"label web01 -b -- -c", "label web01 -- -c", "b"},
		{"--token label label web01 -b", "--token label label web01", "b"},
		{"-b label", "-b label", ""},
		{"list -b", "list -b", ""},
	}
	for _, tt := range tests {
		rest, removals := labelRemovals(strings.Fields(tt.in))
		if strings.Join(rest, " ") != tt.rest || strings.Join(removals, " ") != tt.removals {
			t.Errorf("labelRemovals(%q) = %q, %q; want %q, %q", tt.in, rest, removals, tt.rest, tt.removals)
		}
	}
}

func TestReadSSE(t *testing.T) {
	in := "id: 1\r\nevent: job\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\ndata: x\n\nevent: end\ndata: {}\n\nevent: job\ndata: after\n\n"
	var got []string
	err := readSSE(strings.NewReader(in), func(typ string, data []byte) error {
		got = append(got, typ+"="+string(data))
		return nil
	})
	want := []string{"job={\"a\":\n1}", "message=x"}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readSSE = %q, %v; want %q, nil", got, err, want)
	}
	if err := readSSE(strings.NewReader("event: job\ndata: {}\n\n"), func(string, []byte) error { return nil }); err != errStreamBroken {
		t.Errorf("readSSE without end = %v; want errStreamBroken", err)
	}
}

func TestConnectionErrors(t *testing.T) {
	srv := fakeMaster(t).srv
	cfg := filepath.Join(t.TempDir(), "none.toml")
	wrongFP := "sha256:" + strings.Repeat("0", 64)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no master", []string{"minions"}, nil, "no master URL"},
		{"no token", []string{"minions", "--master", srv.URL}, nil, "no API token"},
		{"wrong token", []string{"minions", "--master", srv.URL, "--token", "bad", "--master-fingerprint",
			pki.Fingerprint(srv.Certificate().Raw)}, nil, "invalid or expired token (HTTP 401)"},
		{"wrong fingerprint", []string{"minions", "--master", srv.URL, "--token", "good", "--master-fingerprint", wrongFP},
			nil, "does not match the pinned"},
		{"no fingerprint and no CA", []string{"minions", "--master", srv.URL, "--token", "good"}, nil, "master-fingerprint"},
		{"environment", []string{"minions"}, map[string]string{"FELIX_MASTER": srv.URL, "FELIX_TOKEN": "bad",
			"FELIX_MASTER_FINGERPRINT": pki.Fingerprint(srv.Certificate().Raw)}, "HTTP 401"},
		{"http URL", []string{"minions", "--master", "http://x", "--token", "t"}, nil, "want https://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"FELIX_MASTER", "FELIX_TOKEN", "FELIX_MASTER_FINGERPRINT"} {
				t.Setenv(k, tt.env[k])
			}
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), append(tt.args, "--config", cfg), &stdout, &stderr)
			if code != 1 || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr.String(), tt.wantErr)
			}
		})
	}
}
