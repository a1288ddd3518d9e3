package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
)

// TestHungMinionIsLost: a minion that stops answering (SIGSTOP: its TCP
// connection stays up, nothing more comes) while its command runs ends
// the host lost within seconds — the job does not wait for the command's
// hour — and the other host's result is unaffected. The time it took is
// logged; make bench-scale measures it.
func TestHungMinionIsLost(t *testing.T) {
	c := startMaster(t)
	ps := c.joinAll("h1", "h2")
	out, errOut, code := c.felix("exec", "-t", "h1,h2", "--async", "--timeout", "1h", "--", "sleep 3; echo done")
	if code != 0 {
		t.Fatalf("felix exec --async = %d %s", code, errOut)
	}
	jobID := strings.TrimSpace(out)
	time.Sleep(time.Second) // both commands run
	stopped := ps["h1"].cmd.Process
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopped.Signal(syscall.SIGCONT) })
	begin := time.Now()
	var job wire.Job
	waitFor(t, "the job to end with h1 lost", 60*time.Second, func() bool { // a hang bound, not a timing assertion
		out, _, _ := c.felix("job", jobID, "-o", "json")
		return json.Unmarshal([]byte(out), &job) == nil && job.State == "done"
	})
	t.Logf("the job ended %s after h1 was stopped", time.Since(begin))
	got := map[string]wire.HostResult{}
	for _, r := range job.Results {
		got[r.Host] = r
	}
	if h1 := got["h1"]; h1.State != "lost" || !strings.Contains(h1.Error, "may still be running") {
		t.Errorf("h1 = %s %q; want lost, saying the command may still be running", h1.State, h1.Error)
	}
	if h2 := got["h2"]; h2.State != "ok" || h2.Stdout != "done\n" {
		t.Errorf("h2 = %s %q; want ok, done", h2.State, h2.Stdout)
	}
}
