package minion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/version"
)

const usage = `minion: the felix minion (runs what the master asks, over gRPC with mutual TLS).

Usage:
  minion start [flags]     run in the foreground (systemd-friendly)
  minion start --supervise [flags]
                           run it as a child and start it again whenever it
                           exits (1 s doubling to 30 s); SIGTERM stops both.
                           For hosts without systemd (rc.local, OpenRC)
  minion stop [flags]      stop a running minion, letting running commands finish
  minion status [flags]    say whether the minion runs, and its fingerprint
  minion restart [flags] [--wait D]
                           drain and start again (same pid; under systemd:
                           systemctl restart), wait until it registered again
  minion update FILE [--sha256 HEX] [--wait D] [flags]
                           check FILE, install it (the old binary kept as
                           BINARY.prev), restart, roll back if it does not come back
  minion swarm [flags]     run many minions in one process to load a master
                           (minion swarm --help)
  minion config check [--config PATH]
                           validate the config file, writing nothing
  minion version           print the version
  minion help              print this

Flags (each also FELIX_MINION_<NAME>, e.g. FELIX_MINION_JOIN_TOKEN):
  --config PATH               config file (default /etc/felix/minion.toml for root,
                              else ~/.config/felix/minion.toml; written on first run)
  --master URL                master API URL, https://HOST:8443
  --master-fingerprint FP     pin the master's certificate (sha256:HEX)
  --join-token TOKEN          join token for the first registration (visible in ps)
  --join-token-file PATH      read the join token from a file instead
  --id ID                     minion id (default: host name)
  --listen ADDR               gRPC listen address (default :4510)
  --advertise HOST:PORT       address the master should dial
  --data-dir DIR              data directory
  --log-level L               debug, info, warn, error
  --log-format F              text or json
`

// Main runs the minion command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return daemon.Dispatch("minion", usage, version.String(), map[string]daemon.Command{
		"start":   func(a []string) error { return cmdStart(ctx, a, stdout) },
		"stop":    func(a []string) error { return cmdStop(a, stdout) },
		"status":  func(a []string) error { return cmdStatus(a, stdout) },
		"swarm":   func(a []string) error { return cmdSwarm(ctx, a, stdout) },
		"restart": func(a []string) error { return cmdRestart(ctx, a, stdout) },
		"update":  func(a []string) error { return cmdUpdate(ctx, a, stdout) },
		"config": func(a []string) error {
			return daemon.ConfigCheck("minion", minionConfigPath(), a, stdout, config.CheckMinion)
		},
	}, args, stdout, stderr)
}

// load parses the flags and applies the layers: defaults, the file,
// FELIX_MINION_* environment variables, flags (config.Minion's tags).
func load(name string, args []string, stdout io.Writer) (config.Minion, string, error) {
	fs := pflag.NewFlagSet("minion "+name, pflag.ContinueOnError)
	fs.String("config", filepath.Join(config.DefaultDir("config", "minion"), "minion.toml"), "config file")
	config.AddFlags(fs, &config.Minion{})
	if err := fs.Parse(args); err != nil {
		return config.Minion{}, "", err
	}
	if fs.NArg() > 0 {
		return config.Minion{}, "", fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	path, _ := fs.GetString("config")
	config.Override(&path, fs, "config", "FELIX_MINION_CONFIG")
	// Only start writes a first-run file, with what flags and the
	// environment set in it: a plain stop or status then finds the same
	// data directory.
	cfg, exists, err := config.ReadMinion(path)
	if err != nil {
		return cfg, path, err
	}
	if err := config.Apply(&cfg, fs); err != nil {
		return cfg, path, err
	}
	given := cfg // before Validate fills in defaults: what the first-run file shows
	if err := cfg.Validate(); err != nil {
		return cfg, path, fmt.Errorf("config %s: %w", path, err)
	}
	if !exists && name == "start" {
		if err := config.WriteMinionFirstRun(path, given); err != nil {
			return cfg, path, err
		}
		if stdout != nil {
			fmt.Fprintf(stdout, "wrote default config %s\n", path)
		}
	}
	return cfg, path, nil
}

func cmdStart(ctx context.Context, args []string, stdout io.Writer) error {
	if rest, ok := cutBool(args, "supervise"); ok {
		return cmdSupervise(ctx, rest, stdout)
	}
	// Started by the Windows service control manager: run under it.
	if handled, err := runService(ctx, func(ctx context.Context) error { return startMinion(ctx, args, stdout) }); handled {
		return err
	}
	return startMinion(ctx, args, stdout)
}

// startMinion runs the minion in the foreground until ctx ends or a
// signal stops it (start's work, as a service or not).
func startMinion(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, path, err := load("start", args, stdout)
	if err != nil {
		return err
	}
	if cfg.Master == "" {
		return fmt.Errorf("master URL is not set (--master https://HOST:8443 or master in the config file)")
	}
	// The data directory's lock comes before anything touches it.
	unlock, err := daemon.LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	log, logVar, err := config.DaemonLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	m, err := New(cfg, log)
	if err != nil {
		return err
	}
	m.ConfigPath = path
	if m.exe, err = daemon.Executable(); err != nil {
		return err
	}
	m.args, m.handoverPipe = os.Args[1:], takeHandoverPipe()
	os.Remove(filepath.Join(cfg.DataDir, readyFile)) // written again once registered
	removePID, err := daemon.WritePID(filepath.Join(cfg.DataDir, pidFile))
	if err != nil {
		return err
	}
	defer removePID()
	fmt.Fprintf(stdout, "felix minion %s id %s fingerprint %s\n", version.String(), cfg.ID, m.Fingerprint())
	ctx, cancel := daemon.SignalContext(ctx)
	defer cancel()
	m.logVar = logVar
	daemon.OnHangup(ctx, m.reloader(args, path))
	ctx, restarting := daemon.RestartContext(ctx)
	m.restarting = restarting
	err = m.Run(ctx)
	switch {
	case m.Handover():
		// An upgrade: this process starts the new binary and watches it
		// (upgrade.go); it exits once the new one reached the master. What
		// the new process takes at start — the pid file, and the data
		// directory's lock where there is one — is released first.
		removePID()
		unlock()
		err = m.HandOver(ctx)
		if !errors.Is(err, ErrRolledBack) {
			return err
		}
		log.Error("upgrade rolled back: starting the old binary again", "err", err)
	case err != nil || !restarting():
		return err
	default:
		log.Info("restarting", "binary", m.exe)
	}
	removePID()
	return daemon.Reexec(m.exe)
}

func cmdStop(args []string, stdout io.Writer) error {
	// Installed as a Windows service: the service control manager stops it.
	if handled, err := stopService(stdout); handled {
		return err
	}
	cfg, _, err := load("stop", args, nil)
	if err != nil {
		return err
	}
	// Under the supervisor (start --supervise), stopping the minion alone
	// would only restart it: the supervisor is stopped, and stops it.
	if _, ok := daemon.Running(filepath.Join(cfg.DataDir, supervisorPID)); ok {
		if err := daemon.Stop(filepath.Join(cfg.DataDir, supervisorPID), drainLimit+10*time.Second); err != nil {
			return fmt.Errorf("stop the supervisor: %w", err)
		}
		fmt.Fprintln(stdout, "minion and its supervisor stopped")
		return nil
	}
	if err := daemon.Stop(filepath.Join(cfg.DataDir, pidFile), drainLimit+5*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "minion stopped")
	return nil
}

func cmdStatus(args []string, stdout io.Writer) error {
	cfg, _, err := load("status", args, nil)
	if err != nil {
		return err
	}
	pid, ok := daemon.Running(filepath.Join(cfg.DataDir, pidFile))
	if !ok {
		return fmt.Errorf("not running (data dir %s)", cfg.DataDir)
	}
	fmt.Fprintf(stdout, "minion %s running, pid %d, data dir %s\n", cfg.ID, pid, cfg.DataDir)
	if pem, err := os.ReadFile(filepath.Join(cfg.DataDir, certName+".crt")); err == nil {
		if _, fp, err := pki.ParseCertPEM(pem); err == nil {
			fmt.Fprintf(stdout, "minion fingerprint: %s\n", fp)
		}
	}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, pinFile)); err == nil {
		fmt.Fprintf(stdout, "pinned master fingerprint: %s", b)
	}
	return nil
}
