package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/internal/testenv"
)

// winePath is the Windows name Wine gives the Linux path p (drive Z: is
// the Linux root).
func winePath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// startWine makes a Wine prefix under t.TempDir() and returns its
// drive C: directory. It sets WINEPREFIX and WINEDEBUG for the test (the
// minion and every wine command run in that prefix) and kills the
// prefix's processes at the end.
//
// Wine 8 (Debian 12) has no bcryptprimitives.dll, whose ProcessPrng every
// Go program since Go 1.22 loads at start; the prefix gets one that holds
// no code, only an export forwarding ProcessPrng to advapi32's
// SystemFunction036 (RtlGenRandom: same arguments, non-zero on success).
func startWine(t *testing.T) string {
	t.Helper()
	wine, err := exec.LookPath("wine")
	if err != nil {
		testenv.Missing(t, "wine is not installed (scripts/deps.sh installs it)")
	}
	prefix := filepath.Join(t.TempDir(), "wineprefix")
	t.Setenv("WINEPREFIX", prefix)
	t.Setenv("WINEDEBUG", "-all")
	t.Setenv("WINEDLLOVERRIDES", "mscoree,mshtml=") // no Mono/Gecko installer dialogs
	t.Cleanup(func() { exec.Command("wineserver", "-k").Run() })
	boot := exec.Command(wine, "wineboot", "-i")
	if out, err := boot.CombinedOutput(); err != nil {
		t.Fatalf("wineboot -i: %v\n%s", err, out)
	}
	sys32 := filepath.Join(prefix, "drive_c", "windows", "system32")
	dll := forwarderDLL("bcryptprimitives.dll", map[string]string{"ProcessPrng": "advapi32.SystemFunction036"})
	if err := os.WriteFile(filepath.Join(sys32, "bcryptprimitives.dll"), dll, 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(prefix, "drive_c")
}

// buildWindowsMinion cross-compiles the minion for windows/amd64 into dir.
func buildWindowsMinion(t *testing.T, dir string) string {
	t.Helper()
	return buildWindows(t, dir, "minion")
}

// buildWindows cross-compiles ../cmd/NAME for windows/amd64 into dir.
func buildWindows(t *testing.T, dir, name string) string {
	t.Helper()
	exe := filepath.Join(dir, name+".exe")
	cmd := exec.Command("go", "build", "-o", exe, "../cmd/"+name)
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the windows %s: %v\n%s", name, err, out)
	}
	return exe
}

// wineProcessRunning reports whether a process whose command line holds
// marker runs (Wine's Windows processes are Linux processes).
func wineProcessRunning(marker string) bool {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), marker) {
			return true
		}
	}
	return false
}

// TestWindowsMinionUnderWine runs the windows/amd64 minion under Wine
// against a real master over mTLS: it registers with Windows facts, runs
// cmd.exe /C lines (exit codes kept), a .bat script whose arguments hold
// cmd.exe's special characters, a line whose deadline kills the child it
// started, and receives a pushed file at a drive path (then skips the
// same push, sends the file back to felix fetch, and refuses device, UNC,
// drive-relative and trailing-dot destinations).
//
// Wine emulates neither the service control manager as Windows runs it
// nor NTFS ACLs, and its cmd.exe expands %VAR% where Windows's leaves
// ^%VAR^% alone: the service, the data directory's ACL and the %VAR%
// quoting are covered by unit tests (the quoting natively, the rest
// compiled and vetted for windows by make check), not here.
func TestWindowsMinionUnderWine(t *testing.T) {
	driveC := startWine(t)
	exe := buildWindowsMinion(t, t.TempDir())
	c := startMaster(t)
	join, errOut, code := c.felix("token", "join", "--ttl", "10m")
	if code != 0 {
		t.Fatalf("felix token join: exit %d: %s", code, errOut)
	}
	dir := filepath.Join(c.dir, "win1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	m := startBin(t, "minion win1 (wine)", "wine", exe, "start", "--config", winePath(filepath.Join(dir, "minion.toml")),
		"--data-dir", winePath(dir), "--id", "win1", "--listen", "127.0.0.61:0", "--master", c.url,
		"--master-fingerprint", c.fingerprint, "--join-token", strings.TrimSpace(join), "--log-level", "debug")
	waitFor(t, "the windows minion to register", 3*time.Minute, func() bool {
		_, ok := c.minions()["win1"]
		return ok
	})
	if out, errOut, code := c.felix("keys", "accept", "win1"); code != 0 {
		t.Fatalf("felix keys accept: exit %d: %s%s", code, out, errOut)
	}
	// Its facts: Windows's version (Wine says 6.1, Windows 7, by default).
	if w := c.minions()["win1"]; !strings.HasPrefix(w.OS, "windows ") {
		t.Errorf("windows minion: os %q; want windows and its version", w.OS)
	}

	exec1 := func(args ...string) (wire.HostResult, int) {
		t.Helper()
		out, errOut, code := c.felix(append([]string{"exec", "-t", "win1", "-o", "json"}, args...)...)
		var j wire.Job
		if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Results) != 1 {
			t.Fatalf("felix exec %q: exit %d: %v\n%s%s\n%s", args, code, err, out, errOut, m.output())
		}
		return j.Results[0], code
	}

	// cmd.exe /C: its operators work, output and exit code come back.
	r, code := exec1("--", "echo hello from cmd & echo warn 1>&2 & exit 3")
	if code != 1 || r.State != "failed" || r.ExitCode != 3 || !strings.Contains(r.Stdout, "hello from cmd") || !strings.Contains(r.Stderr, "warn") {
		t.Errorf("cmd line: exit %d, %+v; want failed with exit 3, stdout hello from cmd, stderr warn", code, r)
	}
	r, _ = exec1("--", "echo %OS%")
	if r.State != "ok" || !strings.Contains(r.Stdout, "Windows_NT") {
		t.Errorf("echo %%OS%%: %+v; want Windows_NT", r)
	}

	// A .bat script by its extension, its arguments quoted for cmd.exe.
	bat := filepath.Join(t.TempDir(), "args.bat")
	if err := os.WriteFile(bat, []byte("@echo off\r\necho [%~1]\r\necho [%2]\r\necho [%3]\r\necho [%4]\r\nexit /b 4\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, _ = exec1("--script", bat, "--", "a b", "x&y|z", "c^d", `say "hi"`)
	want := "[a b]\r\n[\"x&y|z\"]\r\n[\"c^d\"]\r\n[\"say \\\"hi\\\"\"]\r\n"
	if r.State != "failed" || r.ExitCode != 4 || r.Stdout != want {
		t.Errorf(".bat script: %+v;\nstdout %q\nwant exit 4 and %q", r, r.Stdout, want)
	}

	// The deadline kills the whole tree: cmd.exe and the ping it started.
	const marker = "-n 1177 127.0.0.1"
	done := make(chan wire.HostResult, 1)
	go func() {
		out, _, _ := c.felix("exec", "-t", "win1", "-o", "json", "--timeout", "8s", "--", "ping "+marker+" >nul & echo not reached")
		var j wire.Job
		json.Unmarshal([]byte(out), &j)
		if len(j.Results) != 1 {
			done <- wire.HostResult{Error: "no result: " + out}
			return
		}
		done <- j.Results[0]
	}()
	waitFor(t, "ping to run under the minion", time.Minute, func() bool { return wineProcessRunning(marker) })
	r = <-done
	if r.State != "timeout" || strings.Contains(r.Stdout, "not reached") {
		t.Errorf("timeout: %+v; want state timeout", r)
	}
	waitFor(t, "the ping child to be killed with its job", 30*time.Second, func() bool { return !wineProcessRunning(marker) })

	// A push to a drive path: lands atomically with the content, the same
	// push again changes nothing, a device name is refused at the door.
	src := filepath.Join(t.TempDir(), "app.conf")
	if err := os.WriteFile(src, []byte("port = 8080\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	j, code, errOut := c.cp(src, "-t", "win1", "--mkdir", `C:\felix-e2e\conf\app.conf`)
	if code != 0 || len(j.Results) != 1 || j.Results[0].State != "ok" {
		t.Fatalf("felix cp to windows: exit %d %s: %+v\n%s", code, errOut, j.Results, m.output())
	}
	if b, err := os.ReadFile(filepath.Join(driveC, "felix-e2e", "conf", "app.conf")); err != nil || string(b) != "port = 8080\r\n" {
		t.Errorf("pushed file: %q, %v", b, err)
	}
	j, code, _ = c.cp(src, "-t", "win1", `C:\felix-e2e\conf\app.conf`)
	if code != 0 || len(j.Results) != 1 || j.Results[0].Files == nil || j.Results[0].Files.Changed != 0 {
		t.Errorf("the same push again: exit %d: %+v; want nothing changed", code, j.Results)
	}
	// And back: felix fetch of the drive path.
	fetched := t.TempDir()
	if out, errOut, code := c.felix("fetch", "-t", "win1", `C:\felix-e2e\conf\app.conf`, fetched); code != 0 {
		t.Errorf("felix fetch from windows: exit %d\n%s%s", code, out, errOut)
	} else if b, err := os.ReadFile(filepath.Join(fetched, "win1", "app.conf")); err != nil || string(b) != "port = 8080\r\n" {
		t.Errorf("fetched file: %q, %v", b, err)
	}
	for _, bad := range []string{`C:\felix-e2e\NUL`, `\\server\share\x`, `C:..\x`, `C:\felix-e2e\x.`} {
		_, errOut, code := c.felix("cp", src, "-t", "win1", bad)
		if code == 0 || !strings.Contains(errOut, "dest") {
			t.Errorf("felix cp to %s: exit %d, %q; want refused", bad, code, errOut)
		}
	}

	// The CLI on an operator's Windows machine: felix.exe under Wine talks
	// to the master over TLS with the pinned fingerprint and prints tables.
	felixExe := buildWindows(t, t.TempDir(), "felix")
	cli := exec.Command("wine", felixExe, "minions", "-o", "json")
	cli.Env = append(os.Environ(), c.env...)
	if out, err := cli.Output(); err != nil || !strings.Contains(string(out), `"id": "win1"`) {
		t.Errorf("felix.exe minions under wine: %v\n%s", err, out)
	}
	cli = exec.Command("wine", felixExe, "exec", "-t", "win1", "--", "echo from felix.exe")
	cli.Env = append(os.Environ(), c.env...)
	if out, err := cli.Output(); err != nil || !strings.Contains(string(out), "from felix.exe") || !strings.Contains(string(out), "win1") {
		t.Errorf("felix.exe exec under wine: %v\n%s", err, out)
	}
}

// TestWindowsUnitTestsUnderWine cross-compiles the Windows-only unit
// tests (the Job Object runner, the drive-path file store, the data
// directory's lock and ACL) and runs them under Wine. TestRestrictDir
// skips itself there: Wine accepts a DACL without keeping it (it reports
// the entries it inherited), so the ACL is proved on Windows only.
func TestWindowsUnitTestsUnderWine(t *testing.T) {
	startWine(t)
	dir := t.TempDir()
	for _, pkg := range []string{"exec/local", "hostfile", "daemon"} {
		exe := filepath.Join(dir, filepath.Base(pkg)+".test.exe")
		build := exec.Command("go", "test", "-c", "-o", exe, "../"+pkg)
		build.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build the windows tests of %s: %v\n%s", pkg, err, out)
		}
		out, err := exec.Command("wine", exe, "-test.v", "-test.run", "Windows|RestrictDir").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "\nPASS") || !strings.Contains(string(out), "--- PASS: TestWindows") {
			t.Errorf("the windows tests of %s under wine: %v\n%s", pkg, err, out)
		}
	}
}
