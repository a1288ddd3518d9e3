package minion

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/felix-ops/felix/daemon"
)

// restartWait is how long restart and update wait by default for the
// minion to be back (registered with the master).
const restartWait = 60 * time.Second

// cutFlag removes --name VALUE or --name=VALUE from args and returns the
// value (def when absent); these sub-commands' own flags, the rest being
// the common flags load parses.
func cutFlag(args []string, name, def string) ([]string, string, error) {
	out := args[:0:0]
	val := def
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--"+name:
			if i+1 == len(args) {
				return nil, "", fmt.Errorf("flag needs an argument: --%s", name)
			}
			val = args[i+1]
			i++
		case strings.HasPrefix(a, "--"+name+"="):
			val = strings.TrimPrefix(a, "--"+name+"=")
		default:
			out = append(out, a)
		}
	}
	return out, val, nil
}

func cutWait(args []string) ([]string, time.Duration, error) {
	args, s, err := cutFlag(args, "wait", restartWait.String())
	if err != nil {
		return nil, 0, err
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return nil, 0, fmt.Errorf("--wait %q: want a positive duration such as 60s", s)
	}
	return args, d, nil
}

// restarter restarts the minion of cfg's data directory and waits until
// it registered with the master again.
func restarter(dataDir string) daemon.Restart {
	return daemon.Restart{
		PIDFile: filepath.Join(dataDir, pidFile),
		Ready:   daemon.ReadyFile(filepath.Join(dataDir, readyFile)),
	}
}

func cmdRestart(ctx context.Context, args []string, stdout io.Writer) error {
	args, wait, err := cutWait(args)
	if err != nil {
		return err
	}
	// Installed as a Windows service: the service control manager restarts it.
	if handled, err := restartService(stdout); handled {
		return err
	}
	cfg, _, err := load("restart", args, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	pid, v, err := restarter(cfg.DataDir).Do(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "minion restarted: pid %d, version %s, registered with the master\n", pid, v)
	return nil
}

func cmdUpdate(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("want the new binary: minion update FILE [--sha256 HEX] [--wait 60s]")
	}
	file := args[0]
	args, wait, err := cutWait(args[1:])
	if err != nil {
		return err
	}
	args, sha, err := cutFlag(args, "sha256", "")
	if err != nil {
		return err
	}
	cfg, _, err := load("update", args, nil)
	if err != nil {
		return err
	}
	u := daemon.Update{Restart: restarter(cfg.DataDir), File: file, SHA256: sha, Wait: wait,
		LogFile: filepath.Join(cfg.DataDir, "minion.log"), Out: stdout}
	return u.Do(ctx)
}
