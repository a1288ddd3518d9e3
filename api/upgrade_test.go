package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
)

// fakeUpgrader stands for the agent transport's upgrade: minions at v1
// whose upgrade brings them back at v2, except those in rollBack, which
// come back (a new process) at v1.
type fakeUpgrader struct {
	mu       sync.Mutex
	version  map[string]string
	sha      map[string]string
	rollBack map[string]bool
	sent     []string
}

func (f *fakeUpgrader) Info(_ context.Context, t model.Target) (model.MinionInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.version[t.ID]
	if v == "" {
		v = "v1"
	}
	return model.MinionInfo{Version: v, BinarySHA256: f.sha[t.ID]}, nil
}

func (f *fakeUpgrader) Upgrade(_ context.Context, t model.Target, bin model.UpgradeBinary) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, t.ID)
	if !f.rollBack[t.ID] {
		f.version[t.ID] = "v2"
	}
	return "v2", false, nil
}

// upgradeHarness is a harness with a content store, minions whose facts
// give this machine's arch, a dist directory and a fake upgrader.
func upgradeHarness(t *testing.T, ids ...string) (*harness, *fakeUpgrader, string) {
	t.Helper()
	h := newHarnessContent(t, nil, &content.Options{MaxFileSize: 512 << 20}) // a test binary
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	for _, id := range ids {
		tok := h.joinToken(inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
		if _, _, err := h.store.Register(context.Background(), inventory.Registration{
			Minion: inventory.Minion{ID: id, Hostname: id, Addr: "127.0.0.9:4510", CertPEM: "x", Fingerprint: "sha256:" + id,
				Facts: `{"arch":"` + arch + `"}`},
			JoinTokenHash: inventory.HashToken(tok)}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dist := t.TempDir()
	if err := os.WriteFile(filepath.Join(dist, "minion-linux-"+runtime.GOARCH), b, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	f := &fakeUpgrader{version: map[string]string{}, sha: map[string]string{}, rollBack: map[string]bool{}}
	svc := h.server.Jobs.(*jobs.Service)
	svc.Upgrader, svc.DistDir = f, dist
	return h, f, hex.EncodeToString(sum[:])
}

// TestUpgradeMinions runs fleet upgrades through POST /api/v1/minions/upgrade
// against a fake upgrader: outcomes per host, the canary stopping the
// rollout, a binary already running sent nowhere, and the refusals.
func TestUpgradeMinions(t *testing.T) {
	h, f, distSHA := upgradeHarness(t, "a1", "b1", "b2", "c1", "same")
	f.rollBack["a1"] = true
	f.sha["same"] = distSHA

	outcome := func(r wire.HostResult) string { return strings.Fields(r.Stdout + " -")[0] }
	var job wire.Job
	h.adminDo("POST", "/api/v1/minions/upgrade?wait=20s", wire.UpgradeRequest{JobOptions: wire.JobOptions{
		Targets: []string{"b*", "c1", "same"}, Batch: "50%"}, Canary: 1}, &job, http.StatusOK)
	if job.CmdType != model.CmdUpgrade || job.CmdLine != "minions upgrade --canary 1 --batch 50%" || job.State != model.JobDone {
		t.Fatalf("job = %+v; want a done upgrade job", job)
	}
	want := map[string]string{"b1": "upgraded", "b2": "upgraded", "c1": "upgraded", "same": "unchanged"}
	for _, r := range job.Results {
		if r.State != model.StateOK || outcome(r) != want[r.Host] {
			t.Errorf("%s: %s %q %s; want ok, %s", r.Host, r.State, r.Stdout, r.Error, want[r.Host])
		}
	}
	if strings.Contains(strings.Join(f.sent, " "), "same") {
		t.Errorf("sent to %v; want nothing sent to a minion running the binary", f.sent)
	}

	// A canary that rolls back stops the rollout: the rest never start.
	h.adminDo("POST", "/api/v1/minions/upgrade?wait=20s", wire.UpgradeRequest{JobOptions: wire.JobOptions{
		Targets: []string{"a1", "b1", "c1"}, Timeout: "5s"}, Canary: 1}, &job, http.StatusOK)
	for _, r := range job.Results {
		switch {
		case r.Host == "a1" && (r.State != model.StateFailed || outcome(r) != model.OutcomeRolledBack || !strings.Contains(r.Error, "rolled back")):
			t.Errorf("canary a1: %s %q %q; want failed, rolled_back", r.State, r.Stdout, r.Error)
		case r.Host != "a1" && (r.State != model.StateCancelled || !strings.Contains(r.Error, "canary host a1 failed")):
			t.Errorf("%s: %s %q; want cancelled, not started after the canary", r.Host, r.State, r.Error)
		}
	}

	// Rerun of the failed hosts: the same upgrade on the canary and the
	// hosts it stopped.
	f.rollBack["a1"] = false
	var acc wire.ExecAccepted
	h.adminDo("POST", "/api/v1/jobs/"+job.JobID+"/rerun?only=failed", nil, &acc, http.StatusAccepted)
	if re := h.waitJob(acc.JobID); re.CmdType != model.CmdUpgrade || len(re.Results) != 3 || re.Results[0].State != model.StateOK {
		t.Errorf("rerun of the failed hosts = %+v; want the upgrade on 3 hosts, a1 ok", re)
	}

	// An agentless host is upgraded over SSH; this master has no SSH
	// transport: unreachable, nothing changed.
	if _, err := h.store.AddHost(context.Background(), inventory.Host{ID: "ssh1", Address: "127.0.0.8"}, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.adminDo("POST", "/api/v1/minions/upgrade?wait=20s", wire.UpgradeRequest{JobOptions: wire.JobOptions{
		Targets: []string{"ssh1"}}}, &job, http.StatusOK)
	if r := job.Results[0]; r.State != model.StateUnreachable || r.Transport != "ssh" || !strings.Contains(r.Error, "without an ssh transport") {
		t.Errorf("agentless host: %s over %s %q; want unreachable over ssh, without an ssh transport", r.State, r.Transport, r.Error)
	}

	// Asynchronous: 202, and a dry run resolves the targets only.
	h.adminDo("POST", "/api/v1/minions/upgrade", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}}}, &acc, http.StatusAccepted)
	if done := h.waitJob(acc.JobID); done.Results[0].State != model.StateOK {
		t.Errorf("async upgrade: %+v; want ok", done.Results[0])
	}
	var dry wire.DryRun
	h.adminDo("POST", "/api/v1/minions/upgrade?dry_run=true", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"b*"}}}, &dry, http.StatusOK)

	// An uploaded binary: checked from its header before anything is stored.
	exe, _ := os.Executable()
	b, _ := os.ReadFile(exe)
	fh := &filesHarness{harness: h, content: h.content}
	text, self := fh.upload([]byte("#!/bin/sh\necho not a minion\n")), fh.upload(b)
	other := map[string]string{"amd64": "arm64"}[runtime.GOARCH]
	if other == "" {
		other = "amd64"
	}
	before, _ := h.store.Jobs(context.Background(), inventory.JobFilter{})
	for _, tc := range []struct {
		name string
		req  wire.UpgradeRequest
		code int
		msg  string
	}{
		{"not an executable", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}}, Binary: text}, http.StatusBadRequest, "no ELF, Mach-O or PE header"},
		{"wrong arch", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}}, Binary: self, OS: "linux", Arch: other}, http.StatusBadRequest, "built for linux/" + runtime.GOARCH},
		{"bad canary", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}}, Canary: -1}, http.StatusBadRequest, "canary"},
		{"binary not stored", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"c1"}}, Binary: strings.Repeat("ab", 32)}, http.StatusNotFound, "binary"},
		{"no such host", wire.UpgradeRequest{JobOptions: wire.JobOptions{Targets: []string{"nosuch*"}}}, http.StatusNotFound, "no"},
	} {
		status, out := h.do(h.client(nil), "POST", "/api/v1/minions/upgrade", "Bearer "+h.admin, tc.req)
		if status != tc.code || !strings.Contains(string(out), tc.msg) {
			t.Errorf("%s: %d %s; want %d naming %q", tc.name, status, out, tc.code, tc.msg)
		}
	}
	if after, _ := h.store.Jobs(context.Background(), inventory.JobFilter{}); len(after) != len(before) {
		t.Errorf("jobs %d after refused requests; want %d (nothing stored)", len(after), len(before))
	}

	// A host whose os/arch has no dist binary fails naming the file; the
	// others go on.
	tok := h.joinToken(inventory.JoinTokenSpec{AutoAccept: true}, time.Now())
	if _, _, err := h.store.Register(context.Background(), inventory.Registration{
		Minion: inventory.Minion{ID: "rv1", Hostname: "rv1", Addr: "127.0.0.9:4510", CertPEM: "x", Fingerprint: "sha256:rv1",
			Facts: `{"arch":"riscv64"}`},
		JoinTokenHash: inventory.HashToken(tok)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	h.adminDo("POST", "/api/v1/minions/upgrade?wait=20s", wire.UpgradeRequest{JobOptions: wire.JobOptions{
		Targets: []string{"rv1", "same"}}}, &job, http.StatusOK)
	for _, r := range job.Results {
		if r.Host == "rv1" && (r.State != model.StateFailed || !strings.Contains(r.Error, "minion-linux-riscv64")) {
			t.Errorf("rv1: %s %q; want failed naming minion-linux-riscv64", r.State, r.Error)
		}
		if r.Host == "same" && r.State != model.StateOK {
			t.Errorf("same: %s %q; want ok beside the host without a binary", r.State, r.Error)
		}
	}

	// The uploaded binary for this arch goes to every host.
	f.version["c1"] = ""
	h.adminDo("POST", "/api/v1/minions/upgrade?wait=20s", wire.UpgradeRequest{JobOptions: wire.JobOptions{
		Targets: []string{"c1"}}, Binary: self, OS: "linux", Arch: runtime.GOARCH}, &job, http.StatusOK)
	if r := job.Results[0]; r.State != model.StateOK || outcome(r) != "upgraded" {
		t.Errorf("upload: %s %q %s; want upgraded", r.State, r.Stdout, r.Error)
	}
}
