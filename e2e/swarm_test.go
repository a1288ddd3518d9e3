package e2e

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
)

// TestSwarm runs two swarms of real minions (minion swarm) against the real
// master: 400 that answer exec without starting a process and 5 that fork
// /bin/sh as the real minion does, each minion on its own loopback address
// with its own key, registration and gRPC server. The master must see 405
// distinct accepted minions and one exec must end ok on every one of them.
func TestSwarm(t *testing.T) {
	const noops, forks = 400, 5
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--auto-accept", "--uses", strconv.Itoa(noops+forks), "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	join = strings.TrimSpace(join)
	swarm := func(prefix, mode, firstIP string, n int) *proc {
		// Port 0: each minion takes a free port of its own address.
		return start(t, "minion swarm "+prefix, "swarm", "--count", strconv.Itoa(n), "--base-dir", filepath.Join(c.dir, prefix),
			"--first-ip", firstIP, "--port", "0", "--master", c.url, "--join-token", join,
			"--master-fingerprint", c.fingerprint, "--exec", mode, "--id-prefix", prefix+"-")
	}
	noop := swarm("noop", "noop", "127.1.0.1", noops)
	fork := swarm("fork", "fork", "127.2.0.1", forks)

	var ms map[string]wire.Minion
	waitFor(t, "405 accepted and healthy minions", 90*time.Second, func() bool {
		ms = c.minions()
		n := 0
		for _, m := range ms {
			if m.State == "accepted" && m.Health == "ok" {
				n++
			}
		}
		return n == noops+forks
	})
	if len(ms) != noops+forks {
		t.Errorf("the master knows %d minions; want %d", len(ms), noops+forks)
	}
	// Every minion has an address of its own, derived from its index: .0
	// and .255 are skipped, so the 255th is 127.1.1.1.
	seen := map[string]string{}
	for id, m := range ms {
		host, _, err := net.SplitHostPort(m.Address)
		if err != nil {
			t.Fatalf("minion %s address %q: %v", id, m.Address, err)
		}
		if other, dup := seen[host]; dup {
			t.Errorf("minions %s and %s share the address %s", id, other, host)
		}
		seen[host] = id
	}
	for id, want := range map[string]string{"noop-00001": "127.1.0.1", "noop-00254": "127.1.0.254",
		"noop-00255": "127.1.1.1", "noop-00400": "127.1.1.146", "fork-00005": "127.2.0.5"} {
		if host, _, _ := net.SplitHostPort(ms[id].Address); host != want {
			t.Errorf("minion %s at %q; want %s", id, ms[id].Address, want)
		}
	}

	// One exec on all: every host ok; only the forking minions ran a shell.
	out, errOut, code := c.felix("exec", "-t", "*", "-o", "json", "--", "echo forked")
	var job wire.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil {
		t.Fatalf("felix exec: exit %d: %v\n%s%s", code, err, out, errOut)
	}
	if code != 0 || len(job.Results) != noops+forks || job.Summary["ok"] != noops+forks {
		t.Errorf("felix exec on the swarm: exit %d, %d results, summary %v; want 0 and %d ok", code, len(job.Results), job.Summary, noops+forks)
	}
	for _, r := range job.Results {
		want := ""
		if strings.HasPrefix(r.Host, "fork-") {
			want = "forked\n"
		}
		if r.State != "ok" || r.Stdout != want {
			t.Errorf("host %s: %s, stdout %q; want ok and %q", r.Host, r.State, r.Stdout, want)
		}
	}

	// SIGTERM stops a swarm cleanly (exit 0, no race).
	noop.stop(t)
	fork.stop(t)
}
