package minion

import (
	"slices"
	"strings"

	"github.com/felix-ops/felix/config"
	"github.com/felix-ops/felix/daemon"
)

// ReloadableKeys are the config keys a SIGHUP applies to the running
// minion. The others (master, id, listen, data_dir, file_roots, …) are
// built into running parts: a reload that changes them logs a warning
// naming each and keeps the running values until a restart. join_token
// and join_token_file are read at each registration and never warned about
// (a registered minion blanks its join token in the file).
var ReloadableKeys = []string{"log_level", "log_format"}

// Reload applies next, the config read again and validated, to the
// running minion and returns the keys it changed. Called from one
// goroutine at a time (daemon.OnHangup).
func (m *Minion) Reload(next config.Minion) []string {
	eff := m.applied
	eff.LogLevel, eff.LogFormat = next.LogLevel, next.LogFormat
	eff.JoinToken, eff.JoinTokenFile = next.JoinToken, next.JoinTokenFile
	if kept := config.Diff(eff, next); len(kept) > 0 {
		m.log.Warn("config reload: these keys need a restart; their running values are kept", "keys", strings.Join(kept, ","))
	}
	changed := slices.DeleteFunc(config.Diff(m.applied, eff), func(k string) bool { return !config.Reloadable(k, ReloadableKeys) })
	if m.logVar != nil {
		m.logVar.Set(eff.LogLevel, eff.LogFormat)
	}
	m.applied = eff
	if len(changed) == 0 {
		m.log.Info("config reloaded", "changed", "nothing")
		return nil
	}
	m.log.Info("config reloaded", "changed", strings.Join(changed, ","))
	return changed
}

// reloader returns what a SIGHUP runs: the config file at path read again
// with start's flags on top, validated, then applied with Reload
// (daemon.ReloadFunc).
func (m *Minion) reloader(args []string, path string) func() {
	return daemon.ReloadFunc(m.log, func() (config.Minion, string, error) {
		next, _, err := load("reload", args, nil)
		return next, path, err
	}, func(next config.Minion) { m.Reload(next) })
}
