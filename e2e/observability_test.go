package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/felix-ops/felix/pki"
)

// parseMetrics reads a scrape with the Prometheus text parser.
func parseMetrics(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

// metricValue sums the series of family name that carry every label pair
// in labels (counters and gauges: their values; histograms: their counts).
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.Metric {
		match := 0
		for _, lp := range m.Label {
			if v, ok := labels[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match != len(labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// scrapeAPI gets the master's /metrics over its API (pinned TLS) with
// token ("": none) and returns the status and body.
func (c *cluster) scrapeAPI(token string) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.url+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, c.fingerprint)}, Timeout: 30 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		c.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestMetrics: a real master's /metrics needs the API token, parses as
// the Prometheus text format, and its job, host and latency series move
// when a job runs on a real minion.
func TestMetrics(t *testing.T) {
	c := startMaster(t)
	if status, body := c.scrapeAPI(""); status != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token = %d %s; want 401", status, body)
	}
	join, errOut, code := c.felix("token", "join", "--auto-accept", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	c.startMinion("m1", "127.0.0.2", strings.TrimSpace(join))
	waitFor(t, "m1 accepted and healthy", 60*time.Second, func() bool {
		m, ok := c.minions()["m1"]
		return ok && m.State == "accepted" && m.Health == "ok"
	})
	status, body := c.scrapeAPI(c.token)
	if status != http.StatusOK {
		t.Fatalf("GET /metrics = %d %s", status, body)
	}
	before := parseMetrics(t, body)
	if got := metricValue(before, "felix_minions", map[string]string{"state": "accepted", "health": "ok"}); got != 1 {
		t.Errorf("felix_minions{accepted,ok} = %v; want 1", got)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "felix_jobs_running", "felix_content_bytes", "felix_ssh_pool_connections"} {
		if before[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	out, errOut, code := c.felix("exec", "-t", "m1", "--", "echo hi")
	if code != 0 {
		t.Fatalf("felix exec: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = c.felix("exec", "-t", "m1", "--", "exit 3")
	if code != 1 {
		t.Fatalf("felix exec exit 3: exit %d; want 1\n%s%s", code, out, errOut)
	}
	_, after := c.scrapeAPI(c.token)
	fams := parseMetrics(t, after)
	moved := []struct {
		name   string
		labels map[string]string
		by     float64
	}{
		{"felix_jobs_finished_total", map[string]string{"type": "line", "state": "done"}, 2},
		{"felix_hosts_finished_total", map[string]string{"type": "line", "state": "ok"}, 1},
		{"felix_hosts_finished_total", map[string]string{"type": "line", "state": "failed"}, 1},
		{"felix_host_duration_seconds", map[string]string{"type": "line", "transport": "agent"}, 2},
		{"felix_api_requests_total", map[string]string{"method": "POST", "route": "/api/v1/exec", "code": "2xx"}, 2},
	}
	for _, m := range moved {
		if d := metricValue(fams, m.name, m.labels) - metricValue(before, m.name, m.labels); d != m.by {
			t.Errorf("%s%v moved by %v; want %v", m.name, m.labels, d, m.by)
		}
	}
	if got := metricValue(fams, "felix_minions_connected", nil); got != 1 {
		t.Errorf("felix_minions_connected = %v; want 1", got)
	}
	if strings.Contains(string(after), `route="/api/v1/jobs/`) && !strings.Contains(string(after), `route="/api/v1/jobs/:id`) {
		t.Errorf("a raw job path is a route label:\n%s", after)
	}
}

// TestObservabilityConfig: a master with log_format = "json" logs JSON
// lines on stderr; metrics_listen serves /metrics there without a token
// (and the API no longer does); debug_listen answers Go's profiles; with
// health checks 10 minutes apart, a minion's health is known soon after it
// is accepted, and after an auto-accepted registration, which only the
// check right after accept and registration can do.
func TestObservabilityConfig(t *testing.T) {
	dir := t.TempDir()
	addr, metricsAddr, debugAddr := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	cfg := filepath.Join(dir, "master.toml")
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\nlog_format = \"json\"\nlog_level = \"debug\"\n"+
		"metrics_listen = \""+metricsAddr+"\"\ndebug_listen = \""+debugAddr+"\"\n"+
		"[health]\ninterval = \"10m\"\ntimeout = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, url: "https://" + addr, config: cfg}
	stderr := &proc{name: "master's stderr"} // a buffer the process writes and the test reads
	c.master = startSplit(t, "master", stderr, filepath.Join(binDir, "master"), "start", "--config", cfg, "--data-dir", filepath.Join(dir, "master"))
	waitFor(t, "the master's token and fingerprint", 60*time.Second, func() bool {
		if b, err := os.ReadFile(filepath.Join(dir, "master", "admin.token")); err == nil {
			c.token = strings.TrimSpace(string(b))
		}
		for _, line := range strings.Split(c.master.output(), "\n") {
			if fp, ok := strings.CutPrefix(line, "master fingerprint: "); ok {
				c.fingerprint = fp
			}
		}
		return c.token != "" && c.fingerprint != ""
	})
	c.env = []string{"FELIX_MASTER=" + c.url, "FELIX_TOKEN=" + c.token, "FELIX_MASTER_FINGERPRINT=" + c.fingerprint,
		"FELIX_CONFIG=" + filepath.Join(dir, "felix.toml")}

	join, errOut, code := c.felix("token", "join", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	auto, errOut, code := c.felix("token", "join", "--auto-accept", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join --auto-accept: exit %d: %s", code, errOut)
	}
	c.startMinion("m1", "127.0.0.2", strings.TrimSpace(join))
	c.startMinion("m2", "127.0.0.3", strings.TrimSpace(auto))
	waitFor(t, "m1 pending", 60*time.Second, func() bool { return c.minions()["m1"].State == "pending" })
	if out, errOut, code := c.felix("keys", "accept", "m1"); code != 0 {
		t.Fatalf("felix keys accept m1: exit %d: %s%s", code, out, errOut)
	}
	// Generous: no timing is asserted; the 10-minute health round cannot
	// come within it.
	waitFor(t, "m1 (accepted) and m2 (auto-accepted) healthy", 60*time.Second, func() bool {
		ms := c.minions()
		return ms["m1"].Health == "ok" && ms["m2"].Health == "ok"
	})
	for id, m := range c.minions() {
		if m.LastSeen.IsZero() {
			t.Errorf("%s is healthy but never seen", id)
		}
	}

	// metrics_listen: plain HTTP, no token; the API keeps its tokens and
	// no longer serves /metrics.
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET metrics_listen: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET http://%s/metrics = %d %s", metricsAddr, resp.StatusCode, body)
	}
	if got := metricValue(parseMetrics(t, body), "felix_minions", map[string]string{"state": "accepted", "health": "ok"}); got != 2 {
		t.Errorf("felix_minions{accepted,ok} on metrics_listen = %v; want 2", got)
	}
	if status, _ := c.scrapeAPI(c.token); status != http.StatusNotFound {
		t.Errorf("GET /metrics on the API with metrics_listen set = %d; want 404", status)
	}

	// debug_listen: Go's profiles, on loopback only.
	resp, err = http.Get("http://" + debugAddr + "/debug/pprof/")
	if err != nil {
		t.Fatalf("GET debug_listen: %v", err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("GET /debug/pprof/ = %d\n%s", resp.StatusCode, body)
	}
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("listen = \"127.0.0.1:0\"\ndebug_listen = \"0.0.0.0:6060\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "master"), "start", "--config", bad, "--data-dir", filepath.Join(dir, "bad"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), `debug_listen "0.0.0.0:6060": want a loopback address`) {
		t.Errorf("master start with debug_listen on all addresses: %v\n%s; want a config error naming debug_listen", err, out)
	}

	// Every line the master wrote on stderr is a JSON log record.
	c.master.cmd.Process.Signal(syscall.SIGTERM)
	<-c.master.done
	lines, msgs := 0, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(stderr.output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("stderr line is not JSON: %v: %q", err, sc.Text())
			continue
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log record lacks time, level or msg: %q", sc.Text())
		}
		lines++
		msg, _ := rec["msg"].(string)
		msgs[msg] = true
	}
	for _, want := range []string{"minion registered", "metrics listener", "draining"} {
		if !msgs[want] {
			t.Errorf("no JSON log record %q among %d lines", want, lines)
		}
	}
}

// startSplit starts the binary at bin, its output kept for the test log,
// stderr apart in errOut unless that is nil; the process is ended (SIGTERM)
// when the test ends.
func startSplit(t *testing.T, name string, errOut io.Writer, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, errOut
	if errOut == nil {
		p.cmd.Stderr = p
	}
	p.cmd.Env = append(os.Environ(), "GORACE=halt_on_error=1")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(40 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, p.output())
			if e, ok := errOut.(*proc); ok {
				t.Logf("--- stderr of %s ---\n%s", name, e.output())
			}
		}
	})
	return p
}
