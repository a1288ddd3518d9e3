package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/felix-ops/felix/internal/testenv"
	"time"

	"github.com/felix-ops/felix/model"
)

// run runs c and returns its exit and output.
func runWin(t *testing.T, c model.Command) (model.Exit, string) {
	t.Helper()
	var out strings.Builder
	ex, err := Run(context.Background(), c, func(_ model.Stream, p []byte) { out.Write(p) })
	if err != nil {
		t.Fatalf("Run(%q): %v", c.Line, err)
	}
	return ex, out.String()
}

func TestWindowsRun(t *testing.T) {
	ex, out := runWin(t, model.Command{Line: "echo one & exit 5"})
	if ex.Code != 5 || !strings.Contains(out, "one") {
		t.Errorf("cmd line: %+v %q; want exit 5 and one", ex, out)
	}
	dir := testenv.RemovableTempDir(t)
	bat := "a.bat"
	if err := os.WriteFile(filepath.Join(dir, bat), []byte("@echo off\r\necho [%~1] [%2]\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ex, out = runWin(t, model.Command{Line: "./a.bat 'x y' 'p&q|r'", Dir: dir, FileName: bat})
	if ex.Code != 0 || strings.TrimSpace(out) != `[x y] ["p&q|r"]` {
		t.Errorf(".bat: %+v %q", ex, out)
	}
}

func TestWindowsTimeoutKillsTree(t *testing.T) {
	// cmd.exe starts a second cmd.exe that waits; the deadline ends both.
	ex, out := runWin(t, model.Command{Line: "cmd /c ping -n 60 127.0.0.1 >nul & echo not reached", Timeout: 2 * time.Second})
	if !ex.TimedOut || ex.Code != killedExitCode || strings.Contains(out, "not reached") {
		t.Errorf("timeout: %+v %q; want timed out with exit %d", ex, out, killedExitCode)
	}
}
