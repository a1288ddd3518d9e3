package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds caches the binaries Build made, once per test process.
var builds struct {
	sync.Mutex
	dir  string            // made on first use; removed by CleanBuilds
	done map[string]string // name → path
}

// Build runs `go build -o BIN args...` once per test process with env
// added to the environment and returns BIN; later calls with the same name
// return the same file. A package whose tests call Build removes the files
// from its TestMain with CleanBuilds.
func Build(t testing.TB, name string, env []string, args ...string) string {
	t.Helper()
	return build(t, name, "", env, args)
}

// BuildSource builds a one-file Go program (package main, standard library
// only) from src, as Build does.
func BuildSource(t testing.TB, name, src string, env []string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return build(t, name, dir, env, append(args, "main.go"))
}

func build(t testing.TB, name, cwd string, env, args []string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.done[name]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "felix-test-bin")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.done = d, map[string]string{}
	}
	out := filepath.Join(builds.dir, name)
	cmd := exec.Command("go", append([]string{"build", "-o", out}, args...)...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: go build %v: %v\n%s", name, args, err, b)
	}
	builds.done[name] = out
	return out
}

// CleanBuilds removes what Build made; call it from TestMain after m.Run.
func CleanBuilds() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.done = "", nil
	}
}

// fakeSource is a stand-in for a felix binary: `version` prints main.version
// (or hangs, with mode hang-version); anything else exits 1 at once (mode
// exit, the default) or hangs without doing anything (mode hang).
const fakeSource = `package main

import (
	"fmt"
	"os"
	"time"
)

var version, mode = "v0", "exit"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		if mode == "hang-version" {
			time.Sleep(time.Hour)
		}
		fmt.Println(version)
		return
	}
	if mode == "hang" {
		time.Sleep(time.Hour)
	}
	fmt.Fprintln(os.Stderr, "fake felix binary: exiting 1")
	os.Exit(1)
}
`

// Fake builds (once per test process) a stand-in for a felix binary that
// answers `version` with version and otherwise, by mode: "exit" exits 1 at
// once, "hang" hangs without serving, "hang-version" hangs on `version`.
// env may set GOOS/GOARCH to build for another platform.
func Fake(t testing.TB, version, mode string, env ...string) string {
	t.Helper()
	name := "fake-" + version + "-" + mode
	for _, e := range env {
		name += "-" + filepath.Base(e)
	}
	return BuildSource(t, name, fakeSource, env, "-ldflags", "-X main.version="+version+" -X main.mode="+mode)
}
