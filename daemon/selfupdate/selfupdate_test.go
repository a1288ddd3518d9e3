//go:build !windows

package selfupdate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/felix-ops/felix/internal/testenv"
)

// killAtEnv makes the test binary a child that installs and kills itself
// with SIGKILL at the named step (see TestInstallKilled).
const killAtEnv = "FELIX_SELFUPDATE_KILL_AT"

func TestMain(m *testing.M) {
	if stepName := os.Getenv(killAtEnv); stepName != "" {
		os.Exit(crashChild(stepName))
	}
	code := m.Run()
	testenv.CleanBuilds()
	os.Exit(code)
}

// crashChild installs os.Args' FELIX_NEW over FELIX_CURRENT and kills
// itself at step stepName; it returns only when the step never came.
func crashChild(stepName string) int {
	step = func(name string) error {
		if name == stepName {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour)
		}
		return nil
	}
	c, err := Check(context.Background(), os.Getenv("FELIX_NEW"), runtime.GOOS, runtime.GOARCH, "")
	if err == nil {
		err = Install(os.Getenv("FELIX_CURRENT"), c)
	}
	fmt.Fprintln(os.Stderr, "child: step", stepName, "never reached:", err)
	return 3
}

func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

func hash(t *testing.T, path string) string {
	t.Helper()
	h, err := HashFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := testenv.Fake(t, "v1.2.3", "exit")
	goodSHA := hash(t, good)
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho v9\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated")
	b, _ := os.ReadFile(good)
	if err := os.WriteFile(truncated, b[:len(b)/2], 0o755); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o755)
	tests := []struct {
		name    string
		path    string
		arch    string
		sha     string
		ctxWait time.Duration
		wantErr error  // errors.Is
		wantMsg string // in the message
		version string
	}{
		{name: "good", path: good, version: "v1.2.3"},
		{name: "good, sha256 given", path: good, sha: "sha256:" + strings.ToUpper(goodSHA), version: "v1.2.3"},
		{name: "wrong arch", path: testenv.Fake(t, "v1.2.3", "exit", "GOARCH="+otherArch()), wantErr: ErrNotExecutable, wantMsg: "is for linux/" + otherArch()},
		{name: "asked for another arch", path: good, arch: otherArch(), wantErr: ErrNotExecutable},
		{name: "shell script", path: script, wantErr: ErrNotExecutable, wantMsg: "no ELF, Mach-O or PE header"},
		{name: "truncated ELF", path: truncated, wantErr: ErrNotExecutable, wantMsg: "truncated"},
		{name: "empty file", path: empty, wantErr: ErrNotExecutable},
		{name: "directory", path: dir, wantErr: ErrNotExecutable, wantMsg: "not a regular file"},
		{name: "missing", path: filepath.Join(dir, "nope"), wantErr: os.ErrNotExist},
		{name: "sha256 mismatch", path: good, sha: strings.Repeat("ab", 32), wantErr: ErrChecksum},
		{name: "bad sha256", path: good, sha: "abc", wantMsg: "want 64 hex digits"},
		{name: "version hangs", path: testenv.Fake(t, "v1", "hang-version"), ctxWait: time.Second, wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if runtime.GOOS != "linux" {
				t.Skip("the fixtures are ELF binaries")
			}
			ctx := context.Background()
			if tt.ctxWait > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctxWait)
				defer cancel()
			}
			arch := tt.arch
			if arch == "" {
				arch = runtime.GOARCH
			}
			c, err := Check(ctx, tt.path, runtime.GOOS, arch, tt.sha)
			if tt.wantErr == nil && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v; want no error", tt.name, err)
				}
				if c.Version != tt.version || c.SHA256 != goodSHA || c.GOARCH != runtime.GOARCH {
					t.Errorf("Check(%s) = %+v; want version %s, sha256 %s", tt.name, c, tt.version, goodSHA)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) = %+v, nil; want an error", tt.name, c)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Check(%s) = %v; want one wrapping %v", tt.name, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Check(%s) = %v; want it to say %q", tt.name, err, tt.wantMsg)
			}
		})
	}
}

// A version that exits non-zero or prints nothing usable is refused.
func TestVersionBad(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"fails":   "#!/bin/sh\nexit 1\n",
		"silent":  "#!/bin/sh\n",
		"control": "#!/bin/sh\nprintf 'v1\\033[2J\\n'\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o755)
		if v, err := Version(context.Background(), p); err == nil {
			t.Errorf("Version(%s) = %q, nil; want an error", name, v)
		}
	}
}

func TestInstallRollback(t *testing.T) {
	dir := t.TempDir()
	current := filepath.Join(dir, "minion")
	copyFile(t, testenv.Fake(t, "vA", "exit"), current, 0o755)
	oldSHA := hash(t, current)
	newBin := testenv.Fake(t, "vB", "exit")
	ctx := context.Background()
	c, err := Check(ctx, newBin, runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Install(current, c); err != nil {
		t.Fatalf("Install: %v", err)
	}
	if got := hash(t, current); got != c.SHA256 {
		t.Errorf("after Install: %s has sha256 %s; want the new %s", current, got, c.SHA256)
	}
	if got := hash(t, Prev(current)); got != oldSHA {
		t.Errorf("after Install: .prev has sha256 %s; want the old %s", got, oldSHA)
	}
	if v, err := Version(ctx, current); err != nil || v != "vB" {
		t.Errorf("after Install: version = %q, %v; want vB", v, err)
	}
	if st, _ := os.Stat(current); st.Mode().Perm() != 0o755 {
		t.Errorf("after Install: mode %v; want 0755", st.Mode().Perm())
	}
	assertNoTemp(t, dir)
	if err := Rollback(current); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if v, err := Version(ctx, current); err != nil || v != "vA" {
		t.Errorf("after Rollback: version = %q, %v; want vA", v, err)
	}
	if err := Rollback(current); err == nil {
		t.Error("a second Rollback (no .prev left) succeeded; want an error")
	}
	// A file changed between Check and Install is not installed.
	changed := filepath.Join(dir, "changed")
	copyFile(t, newBin, changed, 0o755)
	c, err = Check(ctx, changed, runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(changed, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("x")
	f.Close()
	if err := Install(current, c); !errors.Is(err, ErrChecksum) {
		t.Errorf("Install of a file changed since Check = %v; want ErrChecksum", err)
	}
	if got := hash(t, current); got != oldSHA {
		t.Errorf("after a refused Install, %s changed", current)
	}
	assertNoTemp(t, dir)
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".new-") {
			t.Errorf("temporary file %s left in %s", e.Name(), dir)
		}
	}
}

// A process killed at any step of Install leaves a complete binary, old
// or new, at the path, and the next Install succeeds and sweeps up.
func TestInstallKilled(t *testing.T) {
	oldBin, newBin := testenv.Fake(t, "vA", "exit"), testenv.Fake(t, "vB", "exit")
	oldSHA, newSHA := hash(t, oldBin), hash(t, newBin)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, stepName := range []string{"copied", "kept", "renamed"} {
		t.Run(stepName, func(t *testing.T) {
			dir := t.TempDir()
			current := filepath.Join(dir, "master")
			copyFile(t, oldBin, current, 0o755)
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), killAtEnv+"="+stepName, "FELIX_NEW="+newBin, "FELIX_CURRENT="+current)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child: %v; want it killed by SIGKILL\n%s", err, out)
			}
			got := hash(t, current)
			if got != oldSHA && got != newSHA {
				t.Fatalf("killed after %s: %s is neither the old nor the new binary (sha256 %s)", stepName, current, got)
			}
			if v, err := Version(context.Background(), current); err != nil || (v != "vA" && v != "vB") {
				t.Errorf("killed after %s: version = %q, %v; want vA or vB", stepName, v, err)
			}
			c, err := Check(context.Background(), newBin, runtime.GOOS, runtime.GOARCH, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := Install(current, c); err != nil {
				t.Fatalf("Install after the crash: %v", err)
			}
			if hash(t, current) != newSHA {
				t.Errorf("Install after the crash: %s is not the new binary", current)
			}
			assertNoTemp(t, dir)
		})
	}
}

// An injected failure at each step returns an error and leaves the old
// binary in place (steps before the rename) or the new one (after).
func TestInstallFails(t *testing.T) {
	oldBin, newBin := testenv.Fake(t, "vA", "exit"), testenv.Fake(t, "vB", "exit")
	oldSHA, newSHA := hash(t, oldBin), hash(t, newBin)
	tests := []struct {
		step string
		want string
	}{{"copied", oldSHA}, {"kept", oldSHA}, {"renamed", newSHA}}
	boom := errors.New("boom")
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			dir := t.TempDir()
			current := filepath.Join(dir, "minion")
			copyFile(t, oldBin, current, 0o755)
			step = func(name string) error {
				if name == tt.step {
					return boom
				}
				return nil
			}
			t.Cleanup(func() { step = nil })
			c, err := Check(context.Background(), newBin, runtime.GOOS, runtime.GOARCH, "")
			if err != nil {
				t.Fatal(err)
			}
			if err := Install(current, c); !errors.Is(err, boom) {
				t.Fatalf("Install = %v; want the injected error", err)
			}
			if got := hash(t, current); got != tt.want {
				t.Errorf("failed at %s: %s has sha256 %s; want %s", tt.step, current, got, tt.want)
			}
			assertNoTemp(t, dir)
		})
	}
}

// Platform reads Mach-O and PE headers too: what the master learns of a
// darwin or windows binary without running it.
func TestPlatformOtherOS(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH == "arm64" {
		t.Skip("the builds below are other platforms than linux/amd64")
	}
	for _, p := range []struct{ goos, goarch string }{{"darwin", "arm64"}, {"windows", "amd64"}, {"linux", "arm64"}} {
		bin := testenv.Fake(t, "v1", "exit", "GOOS="+p.goos, "GOARCH="+p.goarch)
		goos, goarch, err := Platform(bin)
		if err != nil || goos != p.goos || goarch != p.goarch {
			t.Errorf("Platform(a %s/%s build) = %s/%s, %v", p.goos, p.goarch, goos, goarch, err)
		}
		if _, err := Check(context.Background(), bin, runtime.GOOS, runtime.GOARCH, ""); !errors.Is(err, ErrNotExecutable) {
			t.Errorf("Check(a %s/%s build) on %s/%s = %v; want ErrNotExecutable", p.goos, p.goarch, runtime.GOOS, runtime.GOARCH, err)
		}
	}
}
