// Package e2e tests felix end to end: the real master, minion and felix
// binaries as processes on loopback addresses, real TLS and a real SQLite file.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/transport/agent"
)

var (
	binDir string
	// distDir holds a static minion-linux-GOARCH (CGO_ENABLED=0, no race
	// detector), as make dist builds it, for bootstrap.
	distDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "felix-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// Built with the race detector: a race in a real process fails its test.
	for _, b := range []string{"master", "minion", "felix"} {
		cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, b), "../cmd/"+b)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	distDir = filepath.Join(dir, "dist")
	cmd := exec.Command("go", "build", "-o", filepath.Join(distDir, "minion-linux-"+runtime.GOARCH), "../cmd/minion")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build static minion: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	testenv.CleanBuilds()
	os.Exit(code)
}

// proc is a started binary whose output is kept for the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startBin(t, name, filepath.Join(binDir, strings.Fields(name)[0]), args...)
}

// startBin is start with the binary at path bin.
func startBin(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	return startSplit(t, name, nil, bin, args...)
}

// stop ends p with SIGTERM and checks it drained and exited 0 (and so had
// no data race).
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM", p.name)
	}
	if p.err != nil {
		t.Errorf("%s exited with %v\n%s", p.name, p.err, p.output())
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freePort(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("find a free port on %s: %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cluster is a running master with the CLI's environment.
type cluster struct {
	t           *testing.T
	dir         string
	config      string
	master      *proc
	url         string
	token       string
	fingerprint string
	env         []string
	masterBin   string // the master binary; "": binDir's
}

func startMaster(t *testing.T) *cluster { return startMasterWith(t, "") }

// startMasterWith starts a master whose config ends with extra (TOML tables).
func startMasterWith(t *testing.T, extra string) *cluster {
	t.Helper()
	return startMasterBin(t, "", extra)
}

// startMasterBin is startMasterWith running the master binary at bin
// ("": the one built for the tests).
func startMasterBin(t *testing.T, bin, extra string) *cluster {
	t.Helper()
	dir := t.TempDir()
	addr := freePort(t, "127.0.0.1")
	cfg := filepath.Join(dir, "master.toml")
	// Fast health checks so the test sees a killed minion marked unreachable.
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\n[exec]\nmax_parallel = 100\noutput_cap = 4096\n"+
		"default_timeout = \"30s\"\nmax_timeout = \"1h\"\n[health]\ninterval = \"500ms\"\ntimeout = \"2s\"\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, url: "https://" + addr, config: cfg, masterBin: bin}
	c.startMasterProc()
	return c
}

// startMasterProc starts (or restarts) the master process of c.
func (c *cluster) startMasterProc() {
	t := c.t
	t.Helper()
	bin := c.masterBin
	if bin == "" {
		bin = filepath.Join(binDir, "master")
	}
	m := startBin(t, "master", bin, "start", "--config", c.config, "--data-dir", filepath.Join(c.dir, "master"))
	c.master = m
	waitFor(t, "the master to listen", 60*time.Second, func() bool {
		conn, err := net.Dial("tcp", strings.TrimPrefix(c.url, "https://"))
		if err == nil {
			conn.Close()
		}
		return err == nil && strings.Contains(m.output(), "master fingerprint:")
	})
	if c.token != "" {
		return // a restart: the token was printed by the first start only
	}
	waitFor(t, "the master to write its token and print its fingerprint", 60*time.Second, func() bool {
		if b, err := os.ReadFile(filepath.Join(c.dir, "master", "admin.token")); err == nil {
			c.token = strings.TrimSpace(string(b))
		}
		sc := bufio.NewScanner(strings.NewReader(m.output()))
		for sc.Scan() {
			line := sc.Text()
			if fp, ok := strings.CutPrefix(line, "master fingerprint: "); ok {
				c.fingerprint = fp
			}
		}
		return c.token != "" && c.fingerprint != ""
	})
	c.env = []string{"FELIX_MASTER=" + c.url, "FELIX_TOKEN=" + c.token, "FELIX_MASTER_FINGERPRINT=" + c.fingerprint,
		"FELIX_CONFIG=" + filepath.Join(c.dir, "felix.toml")}
}

// felix runs the CLI and returns stdout, stderr and the exit status.
func (c *cluster) felix(args ...string) (string, string, int) {
	c.t.Helper()
	return c.felixEnv(nil, args...)
}

// felixAs runs the CLI with another API token.
func (c *cluster) felixAs(token string, args ...string) (string, string, int) {
	c.t.Helper()
	return c.felixEnv([]string{"FELIX_TOKEN=" + token}, args...)
}

// felixEnv runs the CLI with extra environment variables, which win.
func (c *cluster) felixEnv(extra []string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "felix"), args...)
	cmd.Env = append(append(os.Environ(), c.env...), extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run felix %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (c *cluster) startMinion(id, ip, joinToken string) *proc {
	c.t.Helper()
	dir := filepath.Join(c.dir, id)
	return start(c.t, "minion "+id, "start", "--config", filepath.Join(dir, "minion.toml"), "--data-dir", dir,
		"--id", id, "--listen", ip+":0", "--master", c.url, "--master-fingerprint", c.fingerprint,
		"--join-token", joinToken, "--log-level", "debug")
}

func (c *cluster) minions() map[string]wire.Minion {
	c.t.Helper()
	out, errOut, code := c.felix("minions", "-o", "json")
	if code != 0 {
		c.t.Fatalf("felix minions: exit %d: %s", code, errOut)
	}
	var list wire.MinionList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		c.t.Fatalf("felix minions -o json: %v\n%s", err, out)
	}
	byID := map[string]wire.Minion{}
	for _, m := range list.Minions {
		byID[m.ID] = m
	}
	return byID
}

// api calls the REST API the way a third party would: pinned TLS, bearer
// token, a JSON body; the answer is decoded into out when it is not nil.
func (c *cluster) api(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	status, data := c.apiRaw(method, path, "application/json", r)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: %v\n%s", method, path, err, data)
		}
	}
	return status
}

// apiRaw sends a body as is and returns the status and the answer.
func (c *cluster) apiRaw(method, path, contentType string, body io.Reader) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, body)
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", contentType)
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: pki.ClientConfig(nil, c.fingerprint)}}
	resp, err := cl.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func resultsByHost(j wire.Job) map[string]wire.HostResult {
	m := map[string]wire.HostResult{}
	for _, r := range j.Results {
		m[r.Host] = r
	}
	return m
}

func TestEndToEnd(t *testing.T) {
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	join = strings.TrimSpace(join)

	ids := []string{"m1", "m2", "m3"}
	minions := map[string]*proc{}
	for i, id := range ids {
		minions[id] = c.startMinion(id, fmt.Sprintf("127.0.0.%d", i+2), join)
	}
	waitFor(t, "three pending minions", 60*time.Second, func() bool {
		n := 0
		for _, m := range c.minions() {
			if m.State == "pending" {
				n++
			}
		}
		return n == 3
	})

	// A pending minion is reported as such, never silently dropped.
	out, _, code := c.felix("exec", "-t", "m1", "-o", "json", "--", "true")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("exec on pending: %v\n%s", err, out)
	}
	if code != 1 || len(job.Results) != 1 || job.Results[0].State != "not_accepted" {
		t.Errorf("exec on a pending minion: exit %d, results %+v; want exit 1 and state not_accepted", code, job.Results)
	}

	keys, _, code := c.felix("keys")
	if code != 0 || !strings.Contains(keys, "pending") || !strings.Contains(keys, "sha256:") {
		t.Errorf("felix keys: exit %d\n%s", code, keys)
	}
	out, errOut, code = c.felix(append([]string{"keys", "accept"}, ids...)...)
	if code != 0 {
		t.Fatalf("felix keys accept: exit %d: %s%s", code, out, errOut)
	}
	for id, m := range c.minions() {
		if m.State != "accepted" {
			t.Errorf("minion %s is %s after accept", id, m.State)
		}
	}

	// Exec through the CLI: the same output on every host, folded into
	// one group, stderr apart; --no-fold: a table row per host.
	out, errOut, code = c.felix("exec", "-t", "*", "--", "echo hello from $(id -un); echo warn >&2")
	if code != 0 {
		t.Fatalf("felix exec: exit %d\n%s%s", code, out, errOut)
	}
	if want := "m[1-3] (3 hosts): ok, exit 0\n  | hello from "; strings.Count(out, want) != 1 || strings.Count(out, "hello from") != 1 ||
		!strings.Contains(out, "\n  ! warn\n") || !strings.Contains(out, "3 hosts: 3 ok") {
		t.Errorf("exec folded:\n%s", out)
	}
	out, errOut, code = c.felix("exec", "-t", "*", "--no-fold", "--", "echo hello from $(id -un); echo warn >&2")
	if code != 0 {
		t.Fatalf("felix exec --no-fold: exit %d\n%s%s", code, out, errOut)
	}
	for _, id := range ids {
		if !strings.Contains(out, "│ "+id+" ") {
			t.Errorf("exec table lacks %s:\n%s", id, out)
		}
	}
	if strings.Count(out, "hello from") != 3 || !strings.Contains(out, "3 hosts: 3 ok") {
		t.Errorf("exec table:\n%s", out)
	}
	// --diff: the one host whose mkdir wins prints a line more, shown as
	// a diff against the other two.
	first := filepath.Join(t.TempDir(), "first")
	out, errOut, code = c.felix("exec", "-t", "*", "--diff", "--", "echo same; mkdir "+first+" 2>/dev/null && echo first; true")
	if code != 0 || strings.Count(out, " (2 hosts): ok, exit 0\n  | same\n") != 1 || strings.Count(out, " (1 host): ok, exit 0\n  --- m") != 1 ||
		strings.Count(out, "\n     | same\n  +  | first\n") != 1 {
		t.Errorf("felix exec --diff: exit %d\n%s%s", code, out, errOut)
	}

	// A failing command: exit code kept, CLI exits 1.
	out, _, code = c.felix("exec", "-t", "m1,m2", "-o", "json", "--", "exit 7")
	job = wire.Job{}
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("exec exit 7: %v\n%s", err, out)
	}
	if code != 1 {
		t.Errorf("felix exec of a failing command exited %d; want 1", code)
	}
	for _, r := range job.Results {
		if r.State != "failed" || r.ExitCode != 7 || r.Transport != "agent" {
			t.Errorf("host %s: state %s exit %d transport %q; want failed 7 agent", r.Host, r.State, r.ExitCode, r.Transport)
		}
	}

	// The seed's request through the REST API, targeting by IP.
	var seed wire.Job
	status := c.api("POST", "/api/v1/exec?wait=30s", map[string]string{
		"id": "abc", "cmd_line": "echo $FELIX_E2E_UNSET-ok; hostname", "cmd_type": "line", "minion_ip": "127.0.0.3"}, &seed)
	if status != http.StatusOK || seed.ID != "abc" || len(seed.Results) != 1 {
		t.Fatalf("seed exec: status %d, job %+v", status, seed)
	}
	host, _ := os.Hostname()
	if r := seed.Results[0]; r.Host != "m2" || r.State != "ok" || r.Stdout != "-ok\n"+host+"\n" {
		t.Errorf("seed exec result: %+v; want m2 ok with -ok and %q", r, host)
	}
	// And the results are stored.
	var stored wire.Job
	if status := c.api("GET", "/api/v1/jobs/"+seed.JobID, nil, &stored); status != http.StatusOK {
		t.Fatalf("GET job: %d", status)
	}
	if stored.ID != "abc" || stored.State != "done" || len(stored.Results) != 1 || stored.Results[0].Stdout != seed.Results[0].Stdout {
		t.Errorf("stored job %+v; want what exec answered: %+v", stored, seed)
	}

	// Output over the cap is truncated, head and tail kept.
	out, _, _ = c.felix("exec", "-t", "m1", "-o", "json", "--", "echo HEAD; head -c 20000 /dev/zero | tr '\\0' x; echo; echo TAIL")
	job = wire.Job{}
	json.Unmarshal([]byte(out), &job)
	if r := job.Results[0]; !r.Truncated || !strings.HasPrefix(r.Stdout, "HEAD") || !strings.HasSuffix(r.Stdout, "TAIL\n") || len(r.Stdout) > 4200 {
		t.Errorf("big output: truncated=%v len=%d; want head and tail of at most ~4096 bytes", r.Truncated, len(r.Stdout))
	}

	// A deadline kills the command's whole process group on the minion.
	pidFile := filepath.Join(c.dir, "child.pid")
	out, _, code = c.felix("exec", "-t", "m1", "--timeout", "1s", "-o", "json", "--", "sleep 300 & echo $! > "+pidFile+"; wait")
	job = wire.Job{}
	json.Unmarshal([]byte(out), &job)
	if code != 1 || job.Results[0].State != "timeout" {
		t.Errorf("exec past its deadline: exit %d, %+v; want timeout", code, job.Results)
	}
	if b, err := os.ReadFile(pidFile); err != nil {
		t.Errorf("child pid: %v", err)
	} else {
		var pid int
		fmt.Sscan(string(b), &pid)
		waitFor(t, "the timed-out child to be gone", 10*time.Second, func() bool { return gone(pid) })
	}

	// A gRPC client with any certificate but the master's is refused at the
	// handshake and nothing runs.
	intruder, err := pki.LoadOrCreate(t.TempDir(), "intruder", "intruder", nil)
	if err != nil {
		t.Fatal(err)
	}
	m1 := c.minions()["m1"]
	marker := filepath.Join(c.dir, "intruder-ran")
	pool := agent.NewPool(intruder)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = pool.Exec(ctx, model.Target{ID: "m1", Addr: m1.Address, Fingerprint: m1.Fingerprint},
		model.Command{Line: "touch " + marker}, func(model.Stream, []byte) {})
	cancel()
	pool.Close()
	if err == nil {
		t.Errorf("exec with an intruder's certificate succeeded")
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the intruder's command ran")
	}

	// SIGKILL one minion: it is reported unreachable, the others succeed.
	minions["m3"].cmd.Process.Kill()
	<-minions["m3"].done
	out, _, code = c.felix("exec", "-t", "*", "-o", "json", "--", "echo alive")
	job = wire.Job{}
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("exec after kill: %v\n%s", err, out)
	}
	rs := resultsByHost(job)
	if code != 1 || rs["m1"].State != "ok" || rs["m2"].State != "ok" || rs["m3"].State != "unreachable" {
		t.Errorf("after SIGKILL of m3: exit %d, states m1=%s m2=%s m3=%s; want 1, ok ok unreachable",
			code, rs["m1"].State, rs["m2"].State, rs["m3"].State)
	}
	// Unknown ids are reported too.
	out, _, code = c.felix("exec", "-t", "m1,nosuch", "-o", "json", "--", "true")
	job = wire.Job{}
	json.Unmarshal([]byte(out), &job)
	if rs := resultsByHost(job); code != 1 || rs["nosuch"].State != "unknown" || rs["m1"].State != "ok" {
		t.Errorf("exec on an unknown id: exit %d, %+v", code, job.Results)
	}
	// Health: the master's pings mark m3 unreachable and see the others.
	waitFor(t, "health: m3 unreachable, m1 and m2 ok", 20*time.Second, func() bool {
		ms := c.minions()
		return ms["m3"].Health == "unreachable" && ms["m1"].Health == "ok" && ms["m2"].Health == "ok" &&
			!ms["m1"].LastSeen.IsZero()
	})

	// m3 comes back with the same key: it re-registers without a token
	// (proof of possession) and runs commands again.
	c.startMinion("m3", "127.0.0.4", "")
	waitFor(t, "m3 to come back", 30*time.Second, func() bool {
		out, _, code := c.felix("exec", "-t", "m3", "--", "true")
		_ = out
		return code == 0
	})

	c.master.stop(t)
	for id, p := range minions {
		if id != "m3" {
			p.stop(t)
		}
	}
}

// gone reports whether pid no longer runs (a zombie counts as gone).
func gone(pid int) bool {
	if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
}
