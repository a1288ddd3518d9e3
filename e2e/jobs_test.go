package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/notify"
	"github.com/felix-ops/felix/pki"
)

const e2eSecret = "e2e-callback-secret"

// receiver is a third party's callback endpoint: it checks signatures,
// deduplicates on the event id like a careful receiver would, and can be
// told to fail its first answers.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	fail   int                      // answer 500 to this many more requests; protected by mu
	tries  int                      // requests seen; protected by mu
	events map[string]int           // deliveries accepted per event id; protected by mu
	bodies map[string]wire.Callback // by job id; protected by mu
	bad    []string                 // signature failures; protected by mu
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{t: t, fail: failFirst, events: map[string]int{}, bodies: map[string]wire.Callback{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.tries++
		if err := notify.Verify(e2eSecret, req.Header, body, time.Hour); err != nil {
			r.bad = append(r.bad, err.Error())
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if r.fail > 0 {
			r.fail--
			http.Error(w, "not yet", http.StatusInternalServerError)
			return
		}
		var cb wire.Callback
		if err := json.Unmarshal(body, &cb); err != nil {
			r.bad = append(r.bad, "bad JSON: "+err.Error())
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		if cb.EventID != req.Header.Get("X-Felix-Event-Id") {
			r.bad = append(r.bad, "event id header and body differ")
		}
		r.events[cb.EventID]++
		r.bodies[cb.JobID] = cb
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) callback(jobID string) (wire.Callback, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cb, ok := r.bodies[jobID]
	return cb, ok
}

// slackReceiver counts messages per job id found in their text.
type slackReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	msgs []string // protected by mu
}

func newSlackReceiver(t *testing.T) *slackReceiver {
	s := &slackReceiver{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var m struct {
			Text string `json:"text"`
		}
		json.NewDecoder(req.Body).Decode(&m)
		s.mu.Lock()
		s.msgs = append(s.msgs, m.Text)
		s.mu.Unlock()
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slackReceiver) count(jobID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if strings.Contains(m, jobID) {
			n++
		}
	}
	return n
}

// joinAll starts minions with an auto-accept token and waits until they
// are accepted and healthy.
func (c *cluster) joinAll(ids ...string) map[string]*proc {
	c.t.Helper()
	tok, errOut, code := c.felix("token", "join", "--auto-accept", "--uses", "-1", "--ttl", "10m")
	if code != 0 {
		c.t.Fatalf("felix token join: %s", errOut)
	}
	ps := map[string]*proc{}
	for i, id := range ids {
		ps[id] = c.startMinion(id, fmt.Sprintf("127.0.0.%d", 10+i), strings.TrimSpace(tok))
	}
	waitFor(c.t, "minions accepted and healthy", 60*time.Second, func() bool {
		ms := c.minions()
		for _, id := range ids {
			if ms[id].State != "accepted" || ms[id].Health != "ok" {
				return false
			}
		}
		return true
	})
	return ps
}

func (c *cluster) job(id string) wire.Job {
	c.t.Helper()
	var j wire.Job
	if status := c.api("GET", "/api/v1/jobs/"+id, nil, &j); status != http.StatusOK {
		c.t.Fatalf("GET job %s: %d", id, status)
	}
	return j
}

func (c *cluster) submit(req wire.ExecRequest) string {
	c.t.Helper()
	var acc wire.ExecAccepted
	if status := c.api("POST", "/api/v1/exec", req, &acc); status != http.StatusAccepted || acc.JobID == "" {
		c.t.Fatalf("POST exec %+v: %d %+v", req, status, acc)
	}
	return acc.JobID
}

// events opens a job's Server-Sent Events and returns their parsed frames
// on a channel, closed at the end of the stream.
func (c *cluster) events(jobID string) <-chan map[string]any {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.url+"/api/v1/jobs/"+jobID+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, c.fingerprint)}}
	resp, err := cl.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET events: %v %v", err, resp)
	}
	ch := make(chan map[string]any, 1024)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				event = v
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(v), &m)
				if m == nil {
					m = map[string]any{}
				}
				m["event"] = event
				ch <- m
			}
		}
	}()
	return ch
}

func TestCallbacksSlackAndMasterRestart(t *testing.T) {
	rcv := newReceiver(t, 2)
	slack := newSlackReceiver(t)
	c := startMasterWith(t, fmt.Sprintf("[callbacks]\nsecret = %q\nallow = [\"127.0.0.0/8\"]\n[slack]\nwebhook_url = %q\n",
		e2eSecret, slack.srv.URL))
	c.joinAll("c1", "c2")

	// A job whose receiver fails twice still gets exactly one good callback.
	job1 := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{ID: "req-1", Targets: []string{"c*"}, CallbackURL: rcv.srv.URL + "/hook"}, CmdLine: "echo hello"})
	waitFor(t, "the callback of "+job1, 60*time.Second, func() bool { _, ok := rcv.callback(job1); return ok })
	cb, _ := rcv.callback(job1)
	if cb.ID != "req-1" || cb.JobID != job1 || cb.State != "done" || len(cb.Results) != 2 {
		t.Errorf("callback body: id %q job %q state %q %d results; want req-1 %s done 2", cb.ID, cb.JobID, cb.State, len(cb.Results), job1)
	}
	for _, r := range cb.Results {
		if r.State != "ok" || r.Stdout != "hello\n" {
			t.Errorf("callback result %s: %s %q", r.Host, r.State, r.Stdout)
		}
	}
	waitFor(t, "one Slack summary of "+job1, 30*time.Second, func() bool { return slack.count(job1) == 1 })
	j := c.job(job1)
	if len(j.Deliveries) == 0 {
		t.Errorf("job %s shows no deliveries", job1)
	}
	for _, d := range j.Deliveries {
		if d.Kind == "callback" && (d.State != "delivered" || d.Attempts < 3) {
			t.Errorf("callback delivery %+v; want delivered after 3 tries", d)
		}
	}

	// SIGKILL the master while a job runs; the restarted master resolves the
	// job (its hosts lost) and delivers its callback exactly once.
	job2 := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{ID: "req-2", Targets: []string{"c*"}, CallbackURL: rcv.srv.URL + "/hook"}, CmdLine: "sleep 30"})
	evs := c.events(job2)
	running := 0
	for e := range evs {
		if e["event"] == "host" && e["state"] == "running" {
			if running++; running == 2 {
				break
			}
		}
	}
	if running != 2 {
		t.Fatalf("saw %d hosts running before the stream ended", running)
	}
	c.master.cmd.Process.Kill()
	<-c.master.done
	c.startMasterProc()
	waitFor(t, "the callback of the interrupted "+job2, 60*time.Second, func() bool { _, ok := rcv.callback(job2); return ok })
	cb2, _ := rcv.callback(job2)
	if cb2.ID != "req-2" || cb2.State != "done" {
		t.Errorf("interrupted job's callback: id %q state %q", cb2.ID, cb2.State)
	}
	for _, r := range cb2.Results {
		if r.State != "lost" {
			t.Errorf("host %s of the interrupted job: %s; want lost", r.Host, r.State)
		}
	}
	waitFor(t, "the interrupted job stored as done", 30*time.Second, func() bool { return c.job(job2).State == "done" })
	// Give a duplicate a chance to show up, then check each event id was
	// accepted once (job1's must not be redelivered after the restart).
	job3 := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}, CallbackURL: rcv.srv.URL + "/hook"}, CmdLine: "true"})
	waitFor(t, "a later callback", 60*time.Second, func() bool { _, ok := rcv.callback(job3); return ok })
	rcv.mu.Lock()
	for id, n := range rcv.events {
		if n != 1 {
			t.Errorf("event %s accepted %d times; want 1", id, n)
		}
	}
	if len(rcv.bad) > 0 {
		t.Errorf("bad callbacks: %v", rcv.bad)
	}
	rcv.mu.Unlock()
	waitFor(t, "one Slack summary per job", 30*time.Second, func() bool {
		return slack.count(job2) == 1 && slack.count(job3) == 1
	})
	if n := slack.count(job1); n != 1 {
		t.Errorf("job %s has %d Slack messages; want 1", job1, n)
	}
}

func TestScriptFileCancelAndEvents(t *testing.T) {
	c := startMaster(t)
	c.joinAll("s1")

	// script: quoted arguments reach the script; its private directory is
	// gone afterwards.
	var j wire.Job
	status := c.api("POST", "/api/v1/exec?wait=30s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"s1"}}, CmdType: "script", File: "#!/bin/sh\nprintf '[%s]' \"$@\"; echo; pwd; stat -c %a .\n", CmdLine: "./deploy.sh 'arg one' two"}, &j)
	if status != http.StatusOK || len(j.Results) != 1 || j.Results[0].State != "ok" {
		t.Fatalf("script: %d %+v", status, j)
	}
	lines := strings.Split(strings.TrimSpace(j.Results[0].Stdout), "\n")
	if len(lines) != 3 || lines[0] != "[arg one][two]" || lines[2] != "700" {
		t.Fatalf("script output %q; want [arg one][two], its directory, 700", j.Results[0].Stdout)
	}
	if _, err := os.Stat(lines[1]); !os.IsNotExist(err) {
		t.Errorf("the script's working directory %s is still there: %v", lines[1], err)
	}

	// file: binary content, base64, byte-exact.
	blob := make([]byte, 300<<10)
	rand.Read(blob)
	sum := sha256.Sum256(blob)
	j = wire.Job{}
	status = c.api("POST", "/api/v1/exec?wait=30s", wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"s1"}}, CmdType: "file", File: base64.StdEncoding.EncodeToString(blob), FileEncoding: "base64", FileName: "blob.bin", CmdLine: "sha256sum blob.bin"}, &j)
	if status != http.StatusOK || len(j.Results) != 1 || !strings.HasPrefix(j.Results[0].Stdout, hex.EncodeToString(sum[:])) {
		t.Errorf("file: %d %+v; want sha256 %x", status, j.Results, sum)
	}

	// Events: output arrives before the job ends.
	marker := filepath.Join(c.dir, "release")
	job := c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"s1"}}, CmdLine: "echo first; while [ ! -e " + marker + " ]; do sleep 0.1; done; echo second"})
	sawFirst := false
	for e := range c.events(job) {
		if e["event"] == "output" && strings.Contains(fmt.Sprint(e["data"]), "first") && !sawFirst {
			sawFirst = true
			if st := c.job(job).State; st != "running" {
				t.Errorf("job state when the first chunk arrived: %s; want running", st)
			}
			os.WriteFile(marker, nil, 0o600)
		}
		if e["event"] == "job" && e["state"] == "done" && !sawFirst {
			t.Errorf("job ended before its first output chunk was streamed")
		}
	}
	if !sawFirst {
		t.Errorf("never saw the output chunk")
	}

	// Cancel kills the command and its children on the minion.
	pidFile := filepath.Join(c.dir, "sleep.pid")
	job = c.submit(wire.ExecRequest{JobOptions: wire.JobOptions{Targets: []string{"s1"}}, CmdLine: "sleep 300 & echo $! > " + pidFile + "; wait"})
	var pid int
	waitFor(t, "the sleep to start", 30*time.Second, func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		_, err = fmt.Sscan(string(b), &pid)
		return err == nil && pid > 0
	})
	if status := c.api("POST", "/api/v1/jobs/"+job+"/cancel", nil, nil); status != http.StatusAccepted {
		t.Fatalf("cancel: %d", status)
	}
	waitFor(t, "the job to end cancelled", 30*time.Second, func() bool { return c.job(job).State == "cancelled" })
	if r := c.job(job).Results[0]; r.State != "cancelled" {
		t.Errorf("cancelled job's host: %s", r.State)
	}
	waitFor(t, "the sleep to be gone", 15*time.Second, func() bool { return gone(pid) })
	if status := c.api("POST", "/api/v1/jobs/"+job+"/cancel", nil, nil); status != http.StatusConflict {
		t.Errorf("cancelling a finished job: %d; want 409", status)
	}
	if gone(pid) && syscall.Kill(pid, 0) == nil {
		t.Logf("sleep %d is a zombie (this container's init does not reap)", pid)
	}
}
