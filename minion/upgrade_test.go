package minion_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/daemon/selfupdate"
	"github.com/felix-ops/felix/internal/testenv"
	"github.com/felix-ops/felix/minion"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/version"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CleanBuilds()
	os.Exit(code)
}

// minionBinary builds cmd/minion stamped with version v, once per test run.
func minionBinary(t *testing.T, v string) string {
	t.Helper()
	return testenv.Build(t, "minion-"+v, nil, "-ldflags", "-X github.com/felix-ops/felix/version.Version="+v,
		"github.com/felix-ops/felix/cmd/minion")
}

func copyExe(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func sha(t *testing.T, path string) string {
	t.Helper()
	h, err := selfupdate.HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// stopPID ends a minion process started by a handover (this test's child,
// reaped by HandOver's goroutine) and waits until it is gone.
func stopPID(t *testing.T, pid int) {
	t.Helper()
	syscall.Kill(pid, syscall.SIGTERM)
	poll(t, "the new minion to exit", func() bool { return syscall.Kill(pid, 0) != nil })
}

// The old minion (this test, in-process) upgrades itself to a real minion
// B, to a binary that exits at once and to one that hangs: B takes over
// with the same id and certificate; the others are killed, the old binary
// restored, and the old binary started again reports the rollback.
func TestUpgradeHandover(t *testing.T) {
	ma := startMaster(t, time.Minute)
	binA := minionBinary(t, "vA")
	t.Setenv(minion.UpgradeDeadlineEnv, "5s")
	tests := []struct {
		name      string
		newBin    string
		wantState string
	}{
		{"upgraded", minionBinary(t, "vB"), model.UpgradeUpgraded},
		{"exits at once", testenv.Fake(t, "vB", "exit"), model.UpgradeRolledBack},
		{"hangs", testenv.Fake(t, "vB", "hang"), model.UpgradeRolledBack},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			// As under systemd (Type=notify): the old process must not say
			// STOPPING=1 and must name the new one MAINPID before it exits.
			ns := testenv.NotifySocket(t, false)
			id := "up" + string(rune('a'+i))
			cfg := minionConfig(t, ma, id, joinToken(t, ma, true))
			exe := filepath.Join(t.TempDir(), "bin", "minion")
			copyExe(t, binA, exe)
			args := []string{"start", "--config", filepath.Join(cfg.DataDir, "minion.toml"), "--data-dir", cfg.DataDir,
				"--id", id, "--listen", "127.0.0.1:0", "--master", cfg.Master, "--master-fingerprint", ma.Fingerprint()}
			mn := newMinion(t, cfg)
			mn.SetBinary(exe, args, testenv.Writer(t))
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- mn.Run(rctx) }()
			poll(t, "the minion to register", func() bool {
				_, err := ma.Store().Minion(ctx, id)
				return err == nil
			})

			staged := filepath.Join(cfg.DataDir, "staged")
			copyExe(t, tt.newBin, staged)
			if _, err := mn.Upgrade(ctx, staged, strings.Repeat("0", 64)); err == nil {
				t.Fatal("Upgrade with the wrong sha256 succeeded")
			}
			copyExe(t, tt.newBin, staged)
			v, err := mn.Upgrade(ctx, staged, sha(t, tt.newBin))
			if err != nil || v != "vB" {
				t.Fatalf("Upgrade = %q, %v; want vB", v, err)
			}
			if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the staged file is still there after Upgrade: %v", err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run after Upgrade: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("Run did not return after Upgrade")
			}
			if !mn.Handover() {
				t.Fatal("Handover() = false after Upgrade")
			}
			err = mn.HandOver(ctx)
			pidFile := filepath.Join(cfg.DataDir, "minion.pid")
			if tt.wantState == model.UpgradeUpgraded {
				if err != nil {
					t.Fatalf("HandOver = %v; want the new minion to take over", err)
				}
				pid, ok := daemon.Running(pidFile)
				if !ok || pid == os.Getpid() {
					t.Fatalf("after the handover the pid file names %d (running %v); want the new process", pid, ok)
				}
				defer stopPID(t, pid)
				poll(t, fmt.Sprintf("systemd to be told MAINPID=%d", pid), func() bool {
					return ns.Count(fmt.Sprintf("MAINPID=%d\n", pid)) == 1
				})
				if sha(t, exe) != sha(t, tt.newBin) {
					t.Errorf("%s is not the new binary after the handover", exe)
				}
			} else {
				if !errors.Is(err, minion.ErrRolledBack) {
					t.Fatalf("HandOver = %v; want ErrRolledBack", err)
				}
				if sha(t, exe) != sha(t, binA) {
					t.Fatalf("%s is not the old binary after the rollback", exe)
				}
				// What cmdStart does next: start the restored binary again
				// (here as a child, there by exec in place).
				p := startProc(t, exe, args)
				defer stopPID(t, p)
			}
			if n := ns.Count("STOPPING=1"); n != 0 {
				t.Errorf("systemd was told STOPPING=1 during the handover: %q", ns.All())
			}
			wantVersion := map[string]string{model.UpgradeUpgraded: "vB", model.UpgradeRolledBack: "vA"}[tt.wantState]
			poll(t, "the minion to register again at "+wantVersion+", reporting "+tt.wantState, func() bool {
				m, err := ma.Store().Minion(ctx, id)
				return err == nil && m.Version == wantVersion && strings.Contains(m.LastUpgrade, `"state":"`+tt.wantState+`"`)
			})
			m, _ := ma.Store().Minion(ctx, id)
			if m.Fingerprint != mn.Fingerprint() {
				t.Errorf("after the upgrade the master pins %s; want the same certificate %s", m.Fingerprint, mn.Fingerprint())
			}
			var rec model.LastUpgrade
			poll(t, "the upgrade record to say "+tt.wantState, func() bool {
				b, _ := os.ReadFile(filepath.Join(cfg.DataDir, "upgrade.json"))
				return json.Unmarshal(b, &rec) == nil && rec.State == tt.wantState
			})
			if rec.To != "vB" || (tt.wantState == model.UpgradeRolledBack) != (rec.Reason != "") {
				t.Errorf("upgrade record %+v; want to vB, a reason only when rolled back", rec)
			}
		})
	}
}

// startProc starts exe as a child and returns its pid; it is reaped in the
// background.
func startProc(t *testing.T, exe string, args []string) int {
	t.Helper()
	p, err := os.StartProcess(exe, append([]string{exe}, args...), &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
	if err != nil {
		t.Fatal(err)
	}
	go p.Wait()
	return p.Pid
}

// Upgrade refuses, before swapping anything, a binary for another arch, a
// script, a sha256 mismatch, and answers ErrSameVersion for the running
// version; the staged file is removed every time and no handover follows.
func TestUpgradeRefused(t *testing.T) {
	ma := startMaster(t, time.Minute)
	cfg := minionConfig(t, ma, "refuse", joinToken(t, ma, true))
	mn := newMinion(t, cfg)
	exe := filepath.Join(t.TempDir(), "minion")
	copyExe(t, testenv.Fake(t, "vA", "exit"), exe)
	mn.SetBinary(exe, nil, nil)
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	script := filepath.Join(t.TempDir(), "script")
	os.WriteFile(script, []byte("#!/bin/sh\necho vB\n"), 0o755)
	good := testenv.Fake(t, "vB", "exit")
	tests := []struct {
		name string
		file string
		sha  string // "" the file's
		want error
	}{
		{"wrong arch", testenv.Fake(t, "vB", "exit", "GOARCH="+other), "", selfupdate.ErrNotExecutable},
		{"script", script, "", selfupdate.ErrNotExecutable},
		{"sha256 mismatch", good, strings.Repeat("1", 64), selfupdate.ErrChecksum},
		{"same version", testenv.Fake(t, version.String(), "exit"), "", minion.ErrSameVersion},
	}
	before := sha(t, exe)
	for _, tt := range tests {
		staged := filepath.Join(cfg.DataDir, "staged")
		copyExe(t, tt.file, staged)
		want := tt.sha
		if want == "" {
			want = sha(t, tt.file)
		}
		v, err := mn.Upgrade(context.Background(), staged, want)
		if !errors.Is(err, tt.want) {
			t.Errorf("Upgrade(%s) = %q, %v; want %v", tt.name, v, err, tt.want)
		}
		if tt.want == minion.ErrSameVersion && v != version.String() {
			t.Errorf("Upgrade(%s) = %q; want the running version %s", tt.name, v, version.String())
		}
		if _, err := os.Stat(staged); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Upgrade(%s) left the staged file: %v", tt.name, err)
		}
		if sha(t, exe) != before || mn.Handover() {
			t.Errorf("Upgrade(%s) changed the binary or set up a handover", tt.name)
		}
	}
}
