package master

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/version"
)

// ReloadableKeys are the config keys a SIGHUP applies to the running
// master ("table.*": every key of the table). The others (listen,
// data_dir, callbacks, slack, ssh, exec.max_parallel, …) are built into
// running parts; a reload that changes them logs a warning naming each and
// keeps their running values until a restart.
var ReloadableKeys = []string{"log_level", "trusted_proxies", "exec.default_timeout", "exec.max_timeout",
	"exec.max_file_size", "files.timeout", "limits.*"}

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
// others keep their running values with a warning. It returns the keys
// it changed. Called from one goroutine at a time (daemon.OnHangup).
func (m *Master) Reload(next Config) []string {
	cur := m.applied
	eff := cur
	eff.LogLevel = next.LogLevel
	eff.TrustedProxies = next.TrustedProxies
	eff.Exec.DefaultTimeout, eff.Exec.MaxTimeout = next.Exec.DefaultTimeout, next.Exec.MaxTimeout
	eff.Exec.MaxFileSize = next.Exec.MaxFileSize
	eff.Files.Timeout = next.Files.Timeout
	eff.Limits = next.Limits
	if kept := config.Diff(eff, next); len(kept) > 0 {
		m.log.Warn("config reload: these keys need a restart; their running values are kept", "keys", strings.Join(kept, ","))
	}
	changed := config.Diff(cur, eff)
	if len(changed) == 0 {
		m.log.Info("config reloaded", "changed", "nothing")
		return nil
	}
	if m.level != nil {
		config.SetLevel(m.level, eff.LogLevel) // validated by next's Validate
	}
	a := *m.api
	a.Config = apiConfig(eff)
	var h http.Handler = a.Handler()
	m.handler.Store(&h)
	m.applied = eff
	m.log.Info("config reloaded", "changed", strings.Join(changed, ","))
	return changed
}

// SetLevelVar hands the master the level of its logger, for reloads.
func (m *Master) SetLevelVar(lv *slog.LevelVar) { m.level = lv }

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
