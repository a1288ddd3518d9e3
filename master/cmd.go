package master

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	"github.com/felix-ops/felix/version"
)

const usage = `master: the felix master (REST API, job engine, inventory).

Usage:
  master start [flags]          run in the foreground (systemd-friendly)
  master stop [flags]           stop a running master, draining in-flight work
  master status [flags]         say whether the master runs, and its fingerprint
  master restart [--wait D]     drain and start again (same pid; under systemd:
                                systemctl restart), wait until /healthz answers
  master update FILE [--sha256 HEX] [--wait D]
                                check FILE, install it (the old binary kept as
                                BINARY.prev), restart, roll back if it is not healthy
  master token join [--auto-accept] [--ttl 24h] [--uses N]
                                issue a join token for minions (uses: default 1 with
                                --auto-accept, else 1000; -1 for unlimited)
  master token api --name NAME [--role admin|operator|read] [--ttl D]
                                issue an API token (default role admin)
  master config check [--config PATH]
                                validate the config file, writing nothing
  master unit master|minion     print the systemd unit of a daemon (make dist ships them)
  master version                print the version
  master help                   print this

Flags of every command:
  --config PATH     config file (FELIX_MASTER_CONFIG; default /etc/felix/master.toml
                    for root, else ~/.config/felix/master.toml; written on first run)
  --data-dir DIR    data directory (FELIX_MASTER_DATA_DIR)
Flags of start:
  --listen ADDR     API address, host:port (FELIX_MASTER_LISTEN)
  --log-level L     debug, info, warn, error (FELIX_MASTER_LOG_LEVEL)
  --log-format F    text or json (FELIX_MASTER_LOG_FORMAT)
`

// Main runs the master command line and returns the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return daemon.Dispatch("master", usage, version.String(), map[string]daemon.Command{
		"start":   func(a []string) error { return cmdStart(ctx, a, stdout) },
		"stop":    func(a []string) error { return cmdStop(a, stdout) },
		"status":  func(a []string) error { return cmdStatus(a, stdout) },
		"token":   func(a []string) error { return cmdToken(ctx, a, stdout, stderr) },
		"restart": func(a []string) error { return cmdRestart(ctx, a, stdout) },
		"update":  func(a []string) error { return cmdUpdate(ctx, a, stdout) },
		"config": func(a []string) error {
			return daemon.ConfigCheck("master", masterConfigPath(), a, stdout, CheckConfig)
		},
		"unit": func(a []string) error { return cmdUnit(a, stdout) },
	}, args, stdout, stderr)
}

// load parses the common flags plus any extra ones, then applies the layers:
// defaults, the file, FELIX_MASTER_* environment variables, flags (Config's tags).
func load(name string, args []string, extra func(*pflag.FlagSet)) (Config, *pflag.FlagSet, bool, error) {
	fs := pflag.NewFlagSet("master "+name, pflag.ContinueOnError)
	fs.String("config", filepath.Join(config.DefaultDir("config", "master"), "master.toml"), "config file")
	config.AddFlags(fs, &Config{})
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, fs, false, err
	}
	if fs.NArg() > 0 {
		return Config{}, fs, false, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	path, _ := fs.GetString("config")
	config.Override(&path, fs, "config", "FELIX_MASTER_CONFIG")
	// Only start writes a first-run file, with what flags and the
	// environment set in it: a plain stop or status then finds the same
	// data directory.
	cfg, exists, err := ReadConfig(path)
	if err != nil {
		return cfg, fs, false, err
	}
	if err := config.Apply(&cfg, fs); err != nil {
		return cfg, fs, false, err
	}
	given := cfg // before Validate fills in defaults: what the first-run file shows
	if err := cfg.Validate(); err != nil {
		return cfg, fs, false, fmt.Errorf("config %s: %w", path, err)
	}
	created := false
	if !exists && name == "start" {
		if err := writeFirstRun(path, given); err != nil {
			return cfg, fs, false, err
		}
		created = true
	}
	return cfg, fs, created, nil
}

func cmdStart(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, fs, created, err := load("start", args, nil)
	if err != nil {
		return err
	}
	if created {
		path, _ := fs.GetString("config")
		config.Override(&path, fs, "config", "FELIX_MASTER_CONFIG")
		fmt.Fprintf(stdout, "wrote default config %s\n", path)
	}
	// The data directory's lock comes before anything touches it (the
	// inventory, jobs recovered, keys, the listener).
	unlock, err := daemon.LockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	log, logVar, err := config.DaemonLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	ctx, cancel := daemon.SignalContext(ctx)
	defer cancel()
	ctx, restarting := daemon.RestartContext(ctx)
	exe, err := daemon.Executable()
	if err != nil {
		return err
	}
	m, err := New(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	removePID, err := daemon.WritePID(filepath.Join(cfg.DataDir, pidFile))
	if err != nil {
		m.ln.Close()
		m.store.Close()
		return err
	}
	defer removePID()
	m.SetLogVar(logVar)
	daemon.OnHangup(ctx, m.reloader(args))
	m.restarting = restarting
	if err := m.Run(ctx); err != nil || !restarting() {
		return err
	}
	removePID()
	log.Info("restarting", "binary", exe)
	return daemon.Reexec(exe)
}

func cmdStop(args []string, stdout io.Writer) error {
	cfg, _, _, err := load("stop", args, nil)
	if err != nil {
		return err
	}
	if err := daemon.Stop(filepath.Join(cfg.DataDir, pidFile), drainLimit+5*time.Second); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "master stopped")
	return nil
}

func cmdStatus(args []string, stdout io.Writer) error {
	cfg, _, _, err := load("status", args, nil)
	if err != nil {
		return err
	}
	pid, ok := daemon.Running(filepath.Join(cfg.DataDir, pidFile))
	if !ok {
		return fmt.Errorf("not running (data dir %s)", cfg.DataDir)
	}
	fmt.Fprintf(stdout, "master running, pid %d, data dir %s\n", pid, cfg.DataDir)
	if pem, err := os.ReadFile(filepath.Join(cfg.DataDir, certName+".crt")); err == nil {
		if _, fp, err := pki.ParseCertPEM(pem); err == nil {
			fmt.Fprintf(stdout, "master fingerprint: %s\n", fp)
		}
	}
	return nil
}

func cmdToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "join" && args[0] != "api") {
		return fmt.Errorf("want token join or token api")
	}
	kind := args[0]
	var auto *bool
	var ttl *time.Duration
	var uses *int
	var name, role *string
	cfg, _, _, err := load("token "+kind, args[1:], func(fs *pflag.FlagSet) {
		auto = fs.Bool("auto-accept", false, "minions joining with this token are accepted at once")
		def := 24 * time.Hour
		if kind == "api" {
			def = 0
		}
		ttl = fs.Duration("ttl", def, "how long the token is valid (0: forever)")
		uses = fs.Int("uses", 0, "how many registrations the token allows (default 1 with --auto-accept, else 1000; -1: unlimited)")
		name = fs.String("name", "", "name of the API token")
		role = fs.String("role", model.RoleAdmin, "role of the API token: read, operator or admin")
	})
	if err != nil {
		return err
	}
	if kind == "api" && *name == "" {
		return fmt.Errorf("--name is required")
	}
	if *uses < -1 || *ttl < 0 {
		return fmt.Errorf("--uses must be -1 (unlimited) or more, --ttl must not be negative")
	}
	if err := privateDataDir(cfg.DataDir, slog.New(slog.NewTextHandler(stderr, nil))); err != nil {
		return err
	}
	store, err := inventory.Open(ctx, filepath.Join(cfg.DataDir, dbFile))
	if err != nil {
		return err
	}
	defer store.Close()
	if kind == "api" {
		tok, err := store.CreateAPIToken(ctx, *name, *role, *ttl, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, tok)
		return nil
	}
	tok, _, err := store.CreateJoinToken(ctx, inventory.JoinTokenSpec{AutoAccept: *auto, TTL: *ttl, Uses: *uses}, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok) // alone on stdout, for scripts
	joinHint(stderr, cfg)
	return nil
}

// joinHint tells the operator, on stderr, how a server joins safely: with
// the master's fingerprint pinned (no trust on first use, so no fake
// master can take the token) and the token in a 0600 file (not a flag
// that ps shows).
func joinHint(w io.Writer, cfg Config) {
	pem, err := os.ReadFile(filepath.Join(cfg.DataDir, certName+".crt"))
	if err != nil {
		return // no certificate yet: the master has not started
	}
	_, fp, err := pki.ParseCertPEM(pem)
	if err != nil {
		return
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "MASTER-HOST"
	}
	fmt.Fprintf(w, "on each server, with the token in a 0600 file:\n  minion start --master https://%s --master-fingerprint %s --join-token-file /etc/felix/join-token\n",
		net.JoinHostPort(host, port), fp)
}
