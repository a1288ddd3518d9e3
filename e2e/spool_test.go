package e2e

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
)

// TestOutputSpool runs an exec on a swarm of real minions that each print
// 1 MiB (minion swarm --noop-output) against a master whose
// exec.output_memory (512 KiB) is below one host's output, so every host's
// output starts in memory and is moved to the spool while it runs. Every
// host's stored output must be complete and byte for byte what the minion
// printed, and afterwards the spool directory must be empty and the master
// must hold no spool file open.
func TestOutputSpool(t *testing.T) {
	const hosts, size = 150, 1 << 20
	dir := t.TempDir()
	addr := freePort(t, "127.0.0.1")
	cfg := filepath.Join(dir, "master.toml")
	if err := os.WriteFile(cfg, []byte("listen = \""+addr+"\"\n[exec]\nmax_parallel = 100\noutput_cap = 2097152\n"+
		"output_memory = 524288\ndefault_timeout = \"60s\"\n[health]\ninterval = \"1s\"\ntimeout = \"5s\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, dir: dir, url: "https://" + addr, config: cfg}
	c.startMasterProc()
	join, errOut, code := c.felix("token", "join", "--auto-accept", "--uses", strconv.Itoa(hosts), "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	swarm := start(t, "minion swarm", "swarm", "--count", strconv.Itoa(hosts), "--base-dir", filepath.Join(dir, "swarm"),
		"--first-ip", "127.3.0.1", "--port", "0", "--master", c.url, "--join-token", strings.TrimSpace(join),
		"--master-fingerprint", c.fingerprint, "--exec", "noop", "--noop-output", strconv.Itoa(size), "--id-prefix", "out-")
	waitFor(t, "150 accepted and healthy minions", 90*time.Second, func() bool {
		n := 0
		for _, m := range c.minions() {
			if m.State == "accepted" && m.Health == "ok" {
				n++
			}
		}
		return n == hosts
	})

	// The job's page cuts each stream (16 MiB per page); only its ID,
	// summary and hosts are used here, the output is read per host below.
	out, errOut, code := c.felix("exec", "-t", "*", "-o", "json", "--", "print")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("felix exec: exit %d: %v\n%s%s", code, err, out, errOut)
	}
	if code != 0 || len(job.Results) != hosts || job.Summary["ok"] != hosts {
		t.Fatalf("felix exec on the swarm: exit %d, %d results, summary %v; want 0 and %d ok", code, len(job.Results), job.Summary, hosts)
	}

	want := noopOutput(size)
	for _, r := range job.Results {
		status, got := c.apiRaw("GET", "/api/v1/jobs/"+job.JobID+"/hosts/"+url.PathEscape(r.Host)+"/output?stream=stdout", "", nil)
		if status != 200 || !bytes.Equal(got, want) {
			t.Errorf("host %s: stored stdout = %d, %d bytes (%.80q); want 200 and the %d bytes printed",
				r.Host, status, len(got), got, len(want))
		}
	}

	spool := filepath.Join(dir, "master", "spool")
	if ents, err := os.ReadDir(spool); err != nil || len(ents) != 0 {
		t.Errorf("spool directory %s: %d entries, %v; want empty", spool, len(ents), err)
	}
	// Spool files are unlinked when made: one left open would only show in
	// the master's descriptors.
	fds := filepath.Join("/proc", strconv.Itoa(c.master.cmd.Process.Pid), "fd")
	ents, err := os.ReadDir(fds)
	if err != nil {
		t.Fatalf("list the master's descriptors: %v", err)
	}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, spool) {
			t.Errorf("the master still holds %s open after the job", target)
		}
	}
	swarm.stop(t)
}

// noopOutput is what a noop swarm minion prints with --noop-output size
// (minion/swarm.go noopRunner): a 64 KiB block of one line, repeated and cut.
func noopOutput(size int) []byte {
	block := bytes.Repeat([]byte("felix swarm output line, printed by a noop exec to load the master.\n"), 1024)[:64<<10]
	var b []byte
	for len(b) < size {
		b = append(b, block[:min(size-len(b), len(block))]...)
	}
	return b
}
