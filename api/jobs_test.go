package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

// threeWebs is a harness with accepted minions web1..web3.
func threeWebs(t *testing.T) *harness {
	h := newHarness(t)
	for i, id := range []string{"web1", "web2", "web3"} {
		h.addMinion(id, "127.0.0."+strconv.Itoa(11+i)+":4510", true, nil)
	}
	return h
}

func resultStates(j wire.Job) map[string]string {
	out := map[string]string{}
	for _, r := range j.Results {
		out[r.Host] = string(r.State)
	}
	return out
}

func wantStates(t *testing.T, what string, j wire.Job, want map[string]string) {
	t.Helper()
	got := resultStates(j)
	if len(got) != len(want) {
		t.Errorf("%s: host states = %v; want %v", what, got, want)
		return
	}
	for h, st := range want {
		if got[h] != st {
			t.Errorf("%s: host states = %v; want %v", what, got, want)
			return
		}
	}
}

func TestJobCancel(t *testing.T) {
	h := threeWebs(t)
	// Batch 1: web1 runs (and blocks), web2 waits for its turn.
	id := h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1", "web2"}, Batch: "1"}, CmdLine: "sleep"})
	eventually(t, "web1 starts", func() bool { return len(h.fake.Calls()) == 1 })

	var running wire.Job
	h.adminDo("GET", "/api/v1/jobs/"+id, nil, &running, http.StatusOK)
	if running.State != model.JobRunning || running.FinishedAt != nil {
		t.Errorf("job before cancel = %+v; want running, not finished", running)
	}

	var resp map[string]string
	h.adminDo("POST", "/api/v1/jobs/"+id+"/cancel", nil, &resp, http.StatusAccepted)
	if resp["job_id"] != id {
		t.Errorf("cancel = %v; want job_id %s", resp, id)
	}
	job := h.waitJob(id)
	if job.State != model.JobCancelled || job.FinishedAt == nil {
		t.Errorf("job after cancel: state %q, finished %v; want cancelled with a finish time", job.State, job.FinishedAt)
	}
	wantStates(t, "cancelled job", job, map[string]string{"web1": "cancelled", "web2": "cancelled"})
	for _, r := range job.Results {
		if r.Host == "web2" && !strings.Contains(r.Error, "before this host started") {
			t.Errorf("web2 error = %q; want it to say it never started", r.Error)
		}
	}
	if got := hosts(h.fake.Calls()); !slices.Equal(got, []string{"web1"}) {
		t.Errorf("transport ran on %v; want only web1", got)
	}

	status, body := h.do(h.client(nil), "POST", "/api/v1/jobs/"+id+"/cancel", "Bearer "+h.admin, nil)
	if status != http.StatusConflict {
		t.Errorf("second cancel = %d %s; want 409", status, body)
	}
	wantError(t, "second cancel", body, id, "finished")
}

func TestJobUnknownID(t *testing.T) {
	h := newHarness(t)
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/jobs/nope"},
		{"GET", "/api/v1/jobs/nope/events"},
		{"POST", "/api/v1/jobs/nope/cancel"},
		{"POST", "/api/v1/jobs/nope/rerun"},
		{"POST", "/api/v1/jobs/nope/rerun?only=failed"},
	} {
		before := h.dump()
		status, body := h.do(h.client(nil), r.method, r.path, "Bearer "+h.admin, nil)
		if status != http.StatusNotFound {
			t.Errorf("%s %s = %d %s; want 404", r.method, r.path, status, body)
		}
		wantError(t, r.method+" "+r.path, body, "nope")
		h.wantUnchanged(r.method+" "+r.path, before)
	}
}

func TestJobRerun(t *testing.T) {
	h := threeWebs(t)
	var first wire.Job
	h.adminDo("POST", "/api/v1/exec?wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{ID: "r1", Targets: []string{"web*"}}, CmdLine: "fail-on web2"},
		&first, http.StatusOK)
	wantStates(t, "first run", first, map[string]string{"web1": "ok", "web2": "failed", "web3": "ok"})
	if first.Summary["ok"] != 2 || first.Summary["failed"] != 1 {
		t.Errorf("first run summary = %v; want ok 2, failed 1", first.Summary)
	}
	if r := first.Results[1]; r.Host != "web2" || r.ExitCode != 1 || r.Stderr != "boom\n" {
		t.Errorf("web2 = %+v; want exit 1, stderr boom", r)
	}
	calls := len(h.fake.Calls())

	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/jobs/"+first.JobID+"/rerun?only=failed", nil, &acc, http.StatusAccepted)
	if acc.JobID == "" || acc.JobID == first.JobID || acc.ID != "r1" || acc.Total != 1 {
		t.Errorf("rerun = %+v; want a new job, id r1, one host", acc)
	}
	again := h.waitJob(acc.JobID)
	wantStates(t, "rerun of the failed", again, map[string]string{"web2": "failed"})
	if got := hosts(h.fake.Calls()[calls:]); !slices.Equal(got, []string{"web2"}) {
		t.Errorf("rerun ran on %v; want [web2]", got)
	}
	if again.CmdLine != "fail-on web2" {
		t.Errorf("rerun cmd_line = %q; want the old job's", again.CmdLine)
	}

	// Every host again.
	calls = len(h.fake.Calls())
	acc = wire.ExecAccepted{}
	h.adminDo("POST", "/api/v1/jobs/"+first.JobID+"/rerun", nil, &acc, http.StatusAccepted)
	all := h.waitJob(acc.JobID)
	wantStates(t, "full rerun", all, map[string]string{"web1": "ok", "web2": "failed", "web3": "ok"})
	if got := hosts(h.fake.Calls()[calls:]); !slices.Equal(got, []string{"web1", "web2", "web3"}) {
		t.Errorf("full rerun ran on %v; want web1..web3", got)
	}

	// A job without failures has nothing to rerun.
	var okJob wire.Job
	h.adminDo("POST", "/api/v1/exec?wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdLine: "hostname"}, &okJob, http.StatusOK)
	before := h.dump()
	status, body := h.do(h.client(nil), "POST", "/api/v1/jobs/"+okJob.JobID+"/rerun?only=failed", "Bearer "+h.admin, nil)
	if status != http.StatusNotFound {
		t.Errorf("rerun?only=failed of an all-ok job = %d %s; want 404", status, body)
	}
	wantError(t, "rerun of an all-ok job", body, okJob.JobID, "no failed hosts")
	h.wantUnchanged("rerun of an all-ok job", before)

	status, body = h.do(h.client(nil), "POST", "/api/v1/jobs/"+first.JobID+"/rerun?only=bogus", "Bearer "+h.admin, nil)
	if status != http.StatusBadRequest {
		t.Errorf("rerun?only=bogus = %d %s; want 400", status, body)
	}
	wantError(t, "rerun?only=bogus", body, "only", "bogus")
	h.wantUnchanged("rerun?only=bogus", before)
}

func TestJobFailThreshold(t *testing.T) {
	h := threeWebs(t)
	var job wire.Job
	h.adminDo("POST", "/api/v1/exec?wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web*"}, Batch: "1", FailThreshold: 1}, CmdLine: "fail"},
		&job, http.StatusOK)
	wantStates(t, "fail threshold 1", job, map[string]string{"web1": "failed", "web2": "cancelled", "web3": "cancelled"})
	if got := hosts(h.fake.Calls()); !slices.Equal(got, []string{"web1"}) {
		t.Errorf("transport ran on %v; want only web1", got)
	}
	if job.State != model.JobDone {
		t.Errorf("job state = %q; want done", job.State)
	}
}

func TestDryRun(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	h.addMinion("p1", "127.0.0.7:4510", false, nil)
	want := []wire.DryRunHost{
		{Host: "ghost", State: "unknown"},
		{Host: "p1", Address: "127.0.0.7:4510", State: "not_accepted"},
		{Host: "web1", Address: "127.0.0.9:4510", State: "would run"},
	}
	tests := []struct {
		name  string
		query string
		req   wire.ExecRequest
	}{
		{"query", "?dry_run=true", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web*", "p1", "ghost"}}, CmdLine: "hostname"}},
		{"body", "", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1", "p1", "ghost"}, DryRun: true}, CmdLine: "hostname"}},
		{"query with wait", "?dry_run=1&wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1", "p1", "ghost"}}, CmdLine: "hostname"}},
		{"script", "", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1", "p1", "ghost"}, DryRun: true, CallbackURL: "https://receiver.example/cb"}, CmdLine: "./x.sh", CmdType: "script", File: "echo hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.dump()
			var got wire.DryRun
			h.adminDo("POST", "/api/v1/exec"+tt.query, tt.req, &got, http.StatusOK)
			if !slices.Equal(got.Targets, tt.req.Targets) {
				t.Errorf("dry run targets = %q; want %q", got.Targets, tt.req.Targets)
			}
			if len(got.Hosts) != len(want) {
				t.Fatalf("dry run hosts = %+v; want %+v", got.Hosts, want)
			}
			for i, w := range want {
				g := got.Hosts[i]
				if g.Host != w.Host || g.Address != w.Address || g.State != w.State {
					t.Errorf("dry run host %d = %+v; want %+v", i, g, w)
				}
				if (g.State == "would run") != (g.Error == "") {
					t.Errorf("dry run host %s: state %q, error %q; want an error exactly when it would not run", g.Host, g.State, g.Error)
				}
			}
			h.wantUnchanged("dry run", before)
		})
	}
	if got := h.fake.Calls(); len(got) != 0 {
		t.Errorf("transport called %d times by dry runs; want 0", len(got))
	}
	status, body := h.do(h.client(nil), "POST", "/api/v1/exec?dry_run=true", "Bearer "+h.admin,
		wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"db*"}}, CmdLine: "hostname"})
	if status != http.StatusNotFound {
		t.Errorf("dry run matching nothing = %d %s; want 404", status, body)
	}
	wantError(t, "dry run matching nothing", body, "db*", "1 accepted minions")
}

// nextMillisecond waits until a job created now would get an id after id's,
// so jobs sort by creation (ids carry a millisecond time prefix).
func nextMillisecond(t *testing.T, id string) {
	prefix, _, _ := strings.Cut(id, "-")
	eventually(t, "the clock passes "+prefix, func() bool {
		now, _, _ := strings.Cut(jobs.NewJobID(time.Now()), "-")
		return now > prefix
	})
}

func TestListJobs(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	var ids []string // oldest first
	for _, req := range []wire.ExecRequest{
		{JobOptions: wire.JobOptions{ID: "abc", Targets: []string{"web1"}}, CmdLine: "hostname"},
		{JobOptions: wire.JobOptions{Targets: []string{"web1", "ghost"}}, CmdLine: "fail"},
		{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdLine: "hostname"},
	} {
		if len(ids) > 0 {
			nextMillisecond(t, ids[len(ids)-1])
		}
		var j wire.Job
		h.adminDo("POST", "/api/v1/exec?wait=10s", req, &j, http.StatusOK)
		ids = append(ids, j.JobID)
	}

	var list wire.JobList
	h.adminDo("GET", "/api/v1/jobs", nil, &list, http.StatusOK)
	var got []string
	for _, j := range list.Jobs {
		got = append(got, j.JobID)
		if j.Results != nil {
			t.Errorf("listed job %s has results; want only its summary", j.JobID)
		}
	}
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(got, want) || list.Next != "" {
		t.Fatalf("GET /api/v1/jobs = %q next %q; want %q newest first, no next", got, list.Next, want)
	}
	if s := list.Jobs[1].Summary; s["failed"] != 1 || s["unknown"] != 1 || len(s) != 2 {
		t.Errorf("summary of %s = %v; want failed 1, unknown 1", ids[1], s)
	}
	if s := list.Jobs[0].Summary; s["ok"] != 1 || len(s) != 1 || list.Jobs[0].Total != 1 {
		t.Errorf("summary of %s = %v (total %d); want ok 1 of 1", ids[2], s, list.Jobs[0].Total)
	}

	// Paging one at a time walks back through every job, then stops.
	var paged []string
	path := "/api/v1/jobs?limit=1"
	for range 4 {
		var page wire.JobList
		h.adminDo("GET", path, nil, &page, http.StatusOK)
		if len(page.Jobs) != 1 {
			t.Fatalf("GET %s = %d jobs; want 1", path, len(page.Jobs))
		}
		paged = append(paged, page.Jobs[0].JobID)
		if page.Next == "" {
			break
		}
		if page.Next != page.Jobs[0].JobID {
			t.Errorf("GET %s next = %q; want the last job listed, %q", path, page.Next, page.Jobs[0].JobID)
		}
		path = "/api/v1/jobs?limit=1&before=" + page.Next
	}
	if want := []string{ids[2], ids[1], ids[0]}; !slices.Equal(paged, want) {
		t.Errorf("pages = %q; want %q", paged, want)
	}

	filters := []struct {
		query string
		want  []string
	}{
		{"state=done", []string{ids[2], ids[1], ids[0]}},
		{"state=cancelled", nil},
		{"id=abc", []string{ids[0]}},
		{"before=" + ids[1], []string{ids[0]}},
		{"limit=2", []string{ids[2], ids[1]}},
	}
	for _, f := range filters {
		var l wire.JobList
		h.adminDo("GET", "/api/v1/jobs?"+f.query, nil, &l, http.StatusOK)
		var got []string
		for _, j := range l.Jobs {
			got = append(got, j.JobID)
		}
		if !slices.Equal(got, f.want) {
			t.Errorf("GET /api/v1/jobs?%s = %q; want %q", f.query, got, f.want)
		}
	}

	for _, q := range []string{"limit=0", "limit=-1", "limit=abc", "limit=1001", "state=bogus"} {
		status, body := h.do(h.client(nil), "GET", "/api/v1/jobs?"+q, "Bearer "+h.admin, nil)
		if status != http.StatusBadRequest {
			t.Errorf("GET /api/v1/jobs?%s = %d %s; want 400", q, status, body)
		}
		name, _, _ := strings.Cut(q, "=")
		wantError(t, "GET /api/v1/jobs?"+q, body, name)
	}
}

func TestJobEvents(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	id := h.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"web1"}}, CmdLine: "stream"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := h.events(ctx, id)

	// The first chunk arrives while the transport still blocks: live.
	lastSeq := 0
	seq := func(e sseEvent) {
		t.Helper()
		n, err := strconv.Atoi(e.ID)
		if err != nil || n <= lastSeq {
			t.Errorf("event %s id %q; want a number above %d", e.Type, e.ID, lastSeq)
		}
		lastSeq = n
	}
	for {
		e := nextEvent(t, ch)
		seq(e)
		ev := e.event(t)
		if string(ev.Type) != e.Type {
			t.Errorf("event %q carries type %q", e.Type, ev.Type)
		}
		if e.Type == "job" && ev.State != string(model.JobRunning) {
			t.Fatalf("job event %+v before the first chunk; want only running", ev)
		}
		if e.Type == "output" {
			if ev.Host != "web1" || ev.Stream != "stdout" || ev.Data != "chunk-1\n" {
				t.Errorf("first output = %+v; want web1 stdout %q", ev, "chunk-1\n")
			}
			break
		}
	}
	var mid wire.Job
	h.adminDo("GET", "/api/v1/jobs/"+id, nil, &mid, http.StatusOK)
	if mid.State != model.JobRunning {
		t.Fatalf("job state when the first chunk arrived = %q; want running", mid.State)
	}

	h.fake.Release()
	var rest []string
	for e := range ch {
		if e.Type == "end" {
			rest = append(rest, "end")
			continue
		}
		seq(e)
		ev := e.event(t)
		switch e.Type {
		case "output":
			rest = append(rest, "output "+ev.Data)
		case "host":
			rest = append(rest, "host "+ev.Host+" "+ev.State)
		case "job":
			rest = append(rest, "job "+ev.State)
		default:
			rest = append(rest, e.Type)
		}
	}
	if want := []string{"output chunk-2\n", "host web1 ok", "job done", "end"}; !slices.Equal(rest, want) {
		t.Errorf("events after release = %q; want %q", rest, want)
	}

	// A client that connects after the end gets the stored outcome.
	var late []string
	for e := range h.events(ctx, id) {
		if e.Type == "end" {
			late = append(late, "end")
			continue
		}
		ev := e.event(t)
		switch e.Type {
		case "output":
			late = append(late, "output "+ev.Host+" "+ev.Stream+" "+ev.Data)
		case "host":
			late = append(late, "host "+ev.Host+" "+ev.State)
		case "job":
			late = append(late, "job "+ev.State)
		default:
			late = append(late, e.Type)
		}
	}
	if len(late) == 0 || late[len(late)-1] != "end" {
		t.Fatalf("late events = %q; want them to finish with end", late)
	}
	for _, w := range []string{"output web1 stdout chunk-1\nchunk-2\n", "host web1 ok", "job done"} {
		if !slices.Contains(late, w) {
			t.Errorf("late events = %q; want %q among them", late, w)
		}
	}
	if i, j := slices.Index(late, "host web1 ok"), len(late)-2; late[j] != "job done" || i > j {
		t.Errorf("late events = %q; want the host's state, then the job's end, then end", late)
	}
}

func TestScriptAndFile(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	binary := make([]byte, 3*256+1) // every byte value, and a length that needs padding
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	big := bytes.Repeat([]byte("#"), maxFileSize) // exactly the limit
	tests := []struct {
		name     string
		req      wire.ExecRequest
		content  []byte
		fileName string
	}{
		{"script, text, quoted argument",
			wire.ExecRequest{CmdType: "script", CmdLine: "./x.sh 'a b'", File: "#!/bin/sh\nprintf '%s\\n' \"$@\"\n"},
			[]byte("#!/bin/sh\nprintf '%s\\n' \"$@\"\n"), "x.sh"},
		{"file, base64 binary",
			wire.ExecRequest{CmdType: "file", CmdLine: "sha256sum blob.bin", File: base64.StdEncoding.EncodeToString(binary),
				FileEncoding: "base64", FileName: "blob.bin"},
			binary, "blob.bin"},
		{"file, base64 with line breaks",
			wire.ExecRequest{CmdType: "file", CmdLine: "cat blob", File: wrap76(base64.StdEncoding.EncodeToString(binary)),
				FileEncoding: "base64", FileName: "blob"},
			binary, "blob"},
		{"script at exactly the size limit", wire.ExecRequest{CmdType: "script", CmdLine: "./big.sh", File: string(big)}, big, "big.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.Targets = []string{"web1"}
			calls := len(h.fake.Calls())
			var job wire.Job
			h.adminDo("POST", "/api/v1/exec?wait=10s", tt.req, &job, http.StatusOK)
			if job.State != model.JobDone || job.CmdType != tt.req.CmdType || len(job.Results) != 1 || job.Results[0].State != "ok" {
				t.Fatalf("job = %+v; want a done %s job, web1 ok", job, tt.req.CmdType)
			}
			got := h.fake.Calls()[calls:]
			if len(got) != 1 {
				t.Fatalf("transport calls = %d; want 1", len(got))
			}
			c := got[0]
			if c.Cmd.Line != tt.req.CmdLine {
				t.Errorf("command line = %q; want %q unchanged", c.Cmd.Line, tt.req.CmdLine)
			}
			if c.Cmd.File == nil || c.Cmd.File.Name != tt.fileName || c.Cmd.File.Size != int64(len(tt.content)) {
				t.Fatalf("cmd.File = %+v; want name %q, size %d", c.Cmd.File, tt.fileName, len(tt.content))
			}
			if !bytes.Equal(c.Content, tt.content) {
				t.Errorf("content the transport read = %d bytes %.40q; want %d bytes %.40q", len(c.Content), c.Content,
					len(tt.content), tt.content)
			}
			kept, err := os.ReadFile(filepath.Join(h.payloadDir, job.JobID))
			if err != nil || !bytes.Equal(kept, tt.content) {
				t.Errorf("payload kept for job %s: %d bytes, %v; want the content", job.JobID, len(kept), err)
			}

			// A rerun sends the same content again.
			var acc wire.ExecAccepted
			h.adminDo("POST", "/api/v1/jobs/"+job.JobID+"/rerun", nil, &acc, http.StatusAccepted)
			if again := h.waitJob(acc.JobID); again.State != model.JobDone || resultStates(again)["web1"] != "ok" {
				t.Errorf("rerun = %+v; want done, web1 ok", again)
			}
			re := h.fake.Calls()[calls+1:]
			if len(re) != 1 || !bytes.Equal(re[0].Content, tt.content) || re[0].Cmd.File.Name != tt.fileName {
				t.Errorf("rerun transport calls = %d; want one with the same file", len(re))
			}
		})
	}
	// One payload per job, named by it; no temporary files left.
	var list wire.JobList
	h.adminDo("GET", "/api/v1/jobs", nil, &list, http.StatusOK)
	var want []string
	for _, j := range list.Jobs {
		want = append(want, j.JobID)
	}
	slices.Sort(want)
	if got := h.payloads(); !slices.Equal(got, want) {
		t.Errorf("payload directory = %q; want one file per job %q", got, want)
	}
}

// wrap76 breaks s into lines of 76 characters, as MIME encoders do.
func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func TestLabels(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.11:4510", true, nil)
	h.addMinion("web2", "127.0.0.12:4510", true, nil)

	var m wire.Minion
	h.adminDo("PUT", "/api/v1/minions/web1/labels", wire.Labels{Set: map[string]string{"role": "web", "tier": "1"}}, &m, http.StatusOK)
	if len(m.Labels) != 2 || m.Labels["role"] != "web" || m.Labels["tier"] != "1" {
		t.Errorf("labels after set = %v; want role=web tier=1", m.Labels)
	}
	h.adminDo("PUT", "/api/v1/minions/web1/labels", wire.Labels{Remove: []string{"tier"}}, nil, http.StatusOK)
	h.adminDo("PUT", "/api/v1/minions/web2/labels", wire.Labels{Set: map[string]string{"role": "db"}}, nil, http.StatusOK)
	m = wire.Minion{}
	h.adminDo("GET", "/api/v1/minions/web1", nil, &m, http.StatusOK)
	if len(m.Labels) != 1 || m.Labels["role"] != "web" {
		t.Errorf("GET minion web1 labels = %v; want role=web", m.Labels)
	}

	for _, targets := range [][]string{{"role=web"}, {"web*", "role=web"}, {"role=web", "os=debian"}, {"127.0.0.0/24", "role=w*"}} {
		calls := len(h.fake.Calls())
		var job wire.Job
		h.adminDo("POST", "/api/v1/exec?wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: targets}, CmdLine: "hostname"}, &job, http.StatusOK)
		wantStates(t, strings.Join(targets, " "), job, map[string]string{"web1": "ok"})
		if got := hosts(h.fake.Calls()[calls:]); !slices.Equal(got, []string{"web1"}) {
			t.Errorf("targets %q ran on %v; want [web1]", targets, got)
		}
	}

	bad := []struct {
		name   string
		path   string
		body   wire.Labels
		status int
		want   []string
	}{
		{"bad key", "/api/v1/minions/web1/labels", wire.Labels{Set: map[string]string{"a=b": "x"}}, 400, []string{"label key", "a=b"}},
		{"empty key", "/api/v1/minions/web1/labels", wire.Labels{Set: map[string]string{"": "x"}}, 400, []string{"label key"}},
		{"bad key to remove", "/api/v1/minions/web1/labels", wire.Labels{Remove: []string{"-x"}}, 400, []string{"label key", "-x"}},
		{"control character in value", "/api/v1/minions/web1/labels", wire.Labels{Set: map[string]string{"role": "a\x1bb"}}, 400,
			[]string{"label role"}},
		{"nothing to do", "/api/v1/minions/web1/labels", wire.Labels{}, 400, []string{"nothing to do"}},
		{"unknown minion", "/api/v1/minions/nope/labels", wire.Labels{Set: map[string]string{"role": "web"}}, 404, []string{"nope"}},
	}
	for _, tt := range bad {
		before := h.dump()
		status, body := h.do(h.client(nil), "PUT", tt.path, "Bearer "+h.admin, tt.body)
		if status != tt.status {
			t.Errorf("%s: PUT %s = %d %s; want %d", tt.name, tt.path, status, body, tt.status)
		}
		wantError(t, tt.name, body, tt.want...)
		h.wantUnchanged(tt.name, before)
	}
}

func TestCallbackDelivery(t *testing.T) {
	h := newHarness(t)
	h.addMinion("web1", "127.0.0.9:4510", true, nil)
	var job wire.Job
	h.adminDo("POST", "/api/v1/exec?wait=10s", wire.ExecRequest{JobOptions: wire.JobOptions{ID: "abc", Targets: []string{"web1"}, CallbackURL: "https://receiver.example/cb?x=1"}, CmdLine: "hostname"}, &job, http.StatusOK)
	if len(job.Deliveries) != 1 {
		t.Fatalf("job deliveries = %+v; want one callback", job.Deliveries)
	}
	d := job.Deliveries[0]
	if d.Kind != inventory.KindCallback || d.JobID != job.JobID || d.URL != "https://receiver.example/cb?x=1" ||
		d.State != model.DeliveryPending || d.NextAt == nil || d.EventID == "" {
		t.Errorf("delivery = %+v; want a pending callback to the job's URL", d)
	}

	var list wire.DeliveryList
	h.adminDo("GET", "/api/v1/deliveries?state=pending", nil, &list, http.StatusOK)
	if len(list.Deliveries) != 1 || list.Deliveries[0].EventID != d.EventID {
		t.Errorf("pending deliveries = %+v; want %s", list.Deliveries, d.EventID)
	}
	list = wire.DeliveryList{}
	h.adminDo("GET", "/api/v1/deliveries?state=delivered", nil, &list, http.StatusOK)
	if len(list.Deliveries) != 0 {
		t.Errorf("delivered deliveries = %+v; want none", list.Deliveries)
	}
	var body wire.Callback
	items, err := h.store.Outbox(context.Background(), inventory.OutboxFilter{JobID: job.JobID, WithBody: true})
	if err != nil || len(items) != 1 {
		t.Fatalf("outbox of %s = %d items, %v; want 1", job.JobID, len(items), err)
	}
	if err := json.Unmarshal(items[0].Body, &body); err != nil || body.ID != "abc" || body.JobID != job.JobID {
		t.Errorf("callback body = %s (%v); want the seed's id abc echoed with job %s", items[0].Body, err, job.JobID)
	}

	status, out := h.do(h.client(nil), "GET", "/api/v1/deliveries?state=bogus", "Bearer "+h.admin, nil)
	if status != http.StatusBadRequest {
		t.Errorf("GET deliveries?state=bogus = %d %s; want 400", status, out)
	}
	wantError(t, "deliveries?state=bogus", out, "state", "bogus")
}
