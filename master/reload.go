package master

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/version"
)

// ReloadableKeys are the config keys a SIGHUP applies to the running
// master ("table.*": every key of the table). The others are built into
// running parts — listen, debug_listen, metrics_listen and data_dir (listeners and files
// opened at start), cert_hosts (read when the certificate is made),
// exec.max_parallel, exec.output_cap and exec.output_memory (the job
// engine's fan-out and output budget, shared by running jobs), health.*
// (the health loop and the agent pool's heartbeats), files.max_size, files.max_store_size and files.keep_unused (the content
// store) and bootstrap.* — and a reload that changes them logs a warning
// naming each and keeps their running values until a restart. ssh.* is
// among them when the master runs without the SSH transport (it could not
// be built at start).
var ReloadableKeys = []string{"log_level", "log_format", "memory_limit", "trusted_proxies", "exec.default_timeout", "exec.max_timeout",
	"exec.max_file_size", "files.timeout", "limits.*", "callbacks.*", "slack.*", "ssh.*", "retention.*"}

// apiConfig is the REST API's share of the configuration.
func apiConfig(cfg Config) api.Config {
	return api.Config{DefaultTimeout: cfg.Exec.DefaultTimeout.Duration, MaxTimeout: cfg.Exec.MaxTimeout.Duration,
		MaxFileSize: cfg.Exec.MaxFileSize, FilesTimeout: cfg.Files.Timeout.Duration, Version: version.String(),
		TrustedProxies: cfg.TrustedProxies, Limits: api.Limits{
			AuthFailuresPerMinute: float64(cfg.Limits.AuthFailuresPerMinute), AuthFailureBurst: cfg.Limits.AuthFailureBurst,
			TokenRequestsPerSec: float64(cfg.Limits.TokenRequestsPerSec), TokenBurst: cfg.Limits.TokenBurst,
			RegistrationsInFlight: cfg.Limits.RegistrationsInFlight}}
}

// Reload applies next, a validated configuration read again from the file
// (flags and environment still on top), to the running master: the keys
// in ReloadableKeys take effect for new requests (requests and jobs in
// flight go on as they started; the rate limiters start afresh), the
// others keep their running values with a warning. callbacks.* and slack.*
// go to the notifier: jobs that end afterwards are announced with them,
// and every delivery attempt that starts afterwards is signed, guarded and
// bounded by them. ssh.* goes to the SSH pool: what starts afterwards dials
// under it, while sessions already open go on. If the notifier or the pool
// refuses its part (a bad callbacks.allow entry, a known_hosts file that
// cannot be opened), nothing is applied and the error is logged. It
// returns the keys it changed. Called from one goroutine at a time
// (daemon.OnHangup).
func (m *Master) Reload(next Config) []string {
	cur := m.applied
	eff := cur
	eff.LogLevel, eff.LogFormat = next.LogLevel, next.LogFormat
	eff.TrustedProxies = next.TrustedProxies
	eff.MemoryLimit = next.MemoryLimit
	eff.Exec.DefaultTimeout, eff.Exec.MaxTimeout = next.Exec.DefaultTimeout, next.Exec.MaxTimeout
	eff.Exec.MaxFileSize = next.Exec.MaxFileSize
	eff.Files.Timeout = next.Files.Timeout
	eff.Limits = next.Limits
	eff.Callbacks, eff.Slack = next.Callbacks, next.Slack
	eff.Retention = next.Retention
	if m.sshPool != nil {
		eff.SSH = next.SSH
	}
	if kept := config.Diff(eff, next); len(kept) > 0 {
		m.log.Warn("config reload: these keys need a restart; their running values are kept", "keys", strings.Join(kept, ","))
	}
	changed := config.Diff(cur, eff)
	if len(changed) == 0 {
		m.log.Info("config reloaded", "changed", "nothing")
		return nil
	}
	if err := m.reconfigure(cur, eff); err != nil {
		m.log.Error("config reload failed: the running config is kept", "err", err)
		return nil
	}
	if m.logVar != nil {
		m.logVar.Set(eff.LogLevel, eff.LogFormat) // validated by next's Validate
	}
	a := *m.api
	a.Config = apiConfig(eff)
	var h http.Handler = a.Handler()
	m.handler.Store(&h)
	m.retention.Store(retentionOf(eff))
	m.memLimit.set(eff.MemoryLimit, eff.Exec.OutputMemory)
	m.jobs.SetFactsTTL(eff.SSH.FactsTTL.Duration)
	m.applied = eff
	m.log.Info("config reloaded", "changed", strings.Join(changed, ","))
	return changed
}

// reconfigure hands the notifier and the SSH pool their shares of eff when
// they changed from cur's: all of it, or, on an error, none.
func (m *Master) reconfigure(cur, eff Config) error {
	prev := m.notifyCfg
	if len(config.Diff(cur.Callbacks, eff.Callbacks)) > 0 || len(config.Diff(cur.Slack, eff.Slack)) > 0 {
		secret, err := m.callbackSecret(eff.Callbacks.Secret)
		if err != nil {
			return err
		}
		nc := m.notifyConfig(eff, secret)
		if err := m.notifier.Reconfigure(nc); err != nil {
			return fmt.Errorf("callbacks, slack: %w", err)
		}
		m.notifyCfg = nc
	}
	if m.sshPool != nil && len(config.Diff(cur.SSH, eff.SSH)) > 0 {
		if err := m.sshPool.Reconfigure(sshConfig(eff)); err != nil {
			_ = m.notifier.Reconfigure(prev) // accepted before: cannot fail
			m.notifyCfg = prev
			return fmt.Errorf("ssh: %w", err)
		}
	}
	return nil
}

// SetLogVar hands the master the level and format of its logger, for
// reloads.
func (m *Master) SetLogVar(v *config.LogVar) { m.logVar = v }

// reloader returns what a SIGHUP runs: the config file read again with
// start's flags (and the environment) on top, validated, then applied
// with Reload (daemon.ReloadFunc).
func (m *Master) reloader(args []string) func() {
	return daemon.ReloadFunc(m.log, func() (Config, string, error) {
		next, fs, _, err := load("reload", args, nil)
		path, _ := fs.GetString("config")
		config.Override(&path, fs, "config", "FELIX_MASTER_CONFIG")
		return next, path, err
	}, func(next Config) { m.Reload(next) })
}
