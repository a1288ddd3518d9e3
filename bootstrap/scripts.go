package bootstrap

import (
	"bufio"
	"strings"

	"github.com/felix-ops/felix/model"
)

// The install paths on a host, without an install root.
const (
	BinPath    = "/usr/local/bin/felix-minion"
	ConfigPath = "/etc/felix/minion.toml"
	DataDir    = "/var/lib/felix/minion"
	UnitPath   = "/etc/systemd/system/felix-minion.service"
	InitdPath  = "/etc/init.d/felix-minion" // the OpenRC service script
	LogPath    = "/var/log/felix-minion.log"
	RCLocal    = "/etc/rc.local"
	unitName   = "felix-minion.service"
	certFile   = "minion.crt" // in DataDir, written by the minion
	pidFile    = "minion.pid" // in DataDir, written by the minion
)

// Script markers: the first line of each script says what it is (and lets a
// test's fake host tell them apart).
const (
	markProbe   = "# felix bootstrap: probe"
	markPrepare = "# felix bootstrap: prepare"
	markStart   = "# felix bootstrap: start"
	markLogs    = "# felix bootstrap: logs"
	markReach   = "# felix bootstrap: reach"
	markKeep    = "# felix bootstrap: keep previous"
	markRestore = "# felix bootstrap: restore previous"
)

// paths are the install paths under an install root.
type paths struct {
	bin, conf, data, unit, initd, log, rc string
}

func pathsUnder(root string) paths {
	return paths{bin: root + BinPath, conf: root + ConfigPath, data: root + DataDir, unit: root + UnitPath,
		initd: root + InitdPath, log: root + LogPath, rc: root + RCLocal}
}

// shellQuote quotes s as one shell word.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// script returns a script: its marker line, then one brace group (so the
// shell has read all of it before anything runs, and no command can eat
// the rest of the script from stdin) setting the variables and running
// body. Only the install paths (checked plain by ValidInstallRoot, and
// quoted anyway) and fixed flags are set here; ids, tokens and URLs never
// reach a shell: they travel in the config file.
func (p paths) script(mark, body string, vars ...string) string {
	var b strings.Builder
	b.WriteString(mark + "\n{\n")
	for _, kv := range [][2]string{{"BIN", p.bin}, {"CONF", p.conf}, {"DATA", p.data}, {"UNIT", p.unit},
		{"INITD", p.initd}, {"LOG", p.log}, {"RC", p.rc}} {
		b.WriteString(kv[0] + "=" + shellQuote(kv[1]) + "\n")
	}
	for i := 0; i+1 < len(vars); i += 2 {
		b.WriteString(vars[i] + "=" + shellQuote(vars[i+1]) + "\n")
	}
	b.WriteString(body)
	b.WriteString("} </dev/null\n")
	return b.String()
}

// alive reports whether the process of a pid file runs; a zombie (exited,
// never reaped where PID 1 reaps no orphans, as in some containers) does not.
const alive = `alive() {
	[ -f "$1" ] || return 1
	pid=$(cat "$1")
	case "$pid" in ''|*[!0-9]*) return 1;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	[ -r "/proc/$pid/stat" ] || return 0
	st=$(sed 's/.*) //' "/proc/$pid/stat" | cut -c1)
	[ "$st" != Z ] && [ "$st" != X ]
}
`

// reachBody checks the host can open a TCP connection to the master
// ($HOST $PORT): with bash's /dev/tcp, else nc, each attempt within 5 s
// where timeout exists, up to 3 attempts a second apart (a loaded host or
// network has hiccups; a master that is not there fails all three). It
// prints reach=ok, reach=fail or reach=unknown (no tool to check with),
// and after a failure reach_error= with what the tool said ("timed out"
// when timeout stopped it). It changes nothing.
const reachBody = `if command -v timeout >/dev/null 2>&1; then T="timeout 5"; else T=; fi
if command -v bash >/dev/null 2>&1; then tool=bash
elif command -v nc >/dev/null 2>&1; then tool=nc
else echo reach=unknown; exit 0
fi
for i in 1 2 3; do
	if [ $tool = bash ]; then
		err=$($T bash -c 'exec 3<>"/dev/tcp/$1/$2"' felix-reach "$HOST" "$PORT" 2>&1)
	else
		err=$($T nc -z -w 5 "$HOST" "$PORT" 2>&1 </dev/null)
	fi
	st=$?
	if [ $st = 0 ]; then echo reach=ok; exit 0; fi
	if [ $st = 124 ]; then err="timed out"; fi
	[ $i = 3 ] || sleep 1
done
echo reach=fail
printf 'reach_error=%s\n' "$(printf '%s\n' "$err" | tail -n 1 | cut -c1-200)"
exit 0
`

// parseReach is the reach script's answer: ok, fail or unknown, and what
// the failure said.
func parseReach(out []byte) (res, why string) {
	res = "unknown"
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "reach="); ok {
			res = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "reach_error="); ok {
			why = v
		}
	}
	return res, why
}

// probeBody reports what the host is and what of felix it already has, as
// key=value lines. It changes nothing.
const probeBody = alive + `echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "hostname=$(hostname 2>/dev/null || uname -n)"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then echo systemd=1; fi
if [ -x /sbin/openrc-run ] && command -v rc-update >/dev/null 2>&1 && command -v rc-service >/dev/null 2>&1; then echo openrc=1; fi
if command -v crontab >/dev/null 2>&1; then echo crontab=1; fi
if [ -f "$BIN" ]; then
	echo bin=1
	echo "bin_sha256=$(sha256sum "$BIN" 2>/dev/null | cut -d' ' -f1)"
	echo "bin_version=$("$BIN" version 2>/dev/null | head -n 1)"
fi
if [ -f "$CONF" ]; then echo config=1; fi
if [ -f "$DATA/minion.crt" ]; then echo cert=1; fi
if [ -f "$UNIT" ]; then echo "unit_sha256=$(sha256sum "$UNIT" 2>/dev/null | cut -d' ' -f1)"; fi
if [ -f "$INITD" ]; then echo "initd_sha256=$(sha256sum "$INITD" 2>/dev/null | cut -d' ' -f1)"; fi
if alive "$DATA/minion.pid"; then echo running=1; fi
if alive "$DATA/supervisor.pid"; then echo supervised=1; fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet felix-minion.service 2>/dev/null; then echo active=1; fi
exit 0
`

// prepareBody creates the directories the files go to.
const prepareBody = `set -e
umask 022
mkdir -p "$(dirname "$BIN")" "$(dirname "$CONF")" "$(dirname "$LOG")"
if [ "$SYSTEMD" = 1 ]; then mkdir -p "$(dirname "$UNIT")"; fi
if [ "$OPENRC" = 1 ]; then mkdir -p "$(dirname "$INITD")"; fi
mkdir -p "$DATA"
chmod 700 "$DATA"
# The config carries a join token: nobody else may even open it while it is
# written (the upload's temporary file starts with the server's umask).
chmod 700 "$(dirname "$CONF")"
`

// stopOld stops a minion started detached (by an earlier bootstrap without
// systemd): its supervisor first (which stops the minion; an older
// bootstrap's nohup minion has none), then the minion, each through its pid
// file: SIGTERM, up to 40 s to drain, then SIGKILL.
const stopOld = alive + `stop_pid() {
	alive "$1" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	i=0
	while alive "$1" && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done
	if alive "$1"; then kill -KILL "$pid" 2>/dev/null || true; fi
}
stop_old() {
	stop_pid "$DATA/supervisor.pid"
	stop_pid "$DATA/minion.pid"
}
`

// startSystemd installs nothing itself (the unit was uploaded) but makes
// systemd load, enable and (re)start it.
const startSystemd = stopOld + `set -e
systemctl daemon-reload
if ! systemctl is-enabled --quiet felix-minion.service 2>/dev/null; then
	systemctl enable --quiet felix-minion.service
	echo boot=1
fi
# A minion an earlier bootstrap started detached would hold the port.
systemctl is-active --quiet felix-minion.service || stop_old
if [ "$RESTART" = 1 ]; then
	systemctl restart felix-minion.service
	echo started=1
elif ! systemctl is-active --quiet felix-minion.service; then
	systemctl start felix-minion.service
	echo started=1
fi
`

// startOpenRC makes OpenRC start the service script (uploaded) at boot
// and (re)starts it, as startSystemd does with systemd.
const startOpenRC = stopOld + `set -e
if [ ! -e /etc/runlevels/default/felix-minion ]; then
	rc-update add felix-minion default >/dev/null
	echo boot=1
fi
# A minion an earlier bootstrap started detached would hold the port.
rc-service felix-minion status >/dev/null 2>&1 || stop_old
if [ "$RESTART" = 1 ]; then
	rc-service felix-minion restart >/dev/null
	echo started=1
elif ! rc-service felix-minion status >/dev/null 2>&1; then
	rc-service felix-minion start >/dev/null
	echo started=1
fi
`

// startDetached starts the minion under its supervisor (minion start
// --supervise, which starts it again whenever it exits) in its own session,
// its output appended to $LOG, after stopping the old one (a minion
// running without a supervisor, left by an older bootstrap, is replaced);
// then makes it start at boot: an @reboot crontab line where crontab exists
// (and $CRON is 1), else a line in rc.local, replacing older felix lines.
const startDetached = stopOld + `set -e
if [ "$RESTART" = 1 ] || ! alive "$DATA/supervisor.pid"; then
	stop_old
	rm -f "$DATA/minion.pid" "$DATA/supervisor.pid"
	cd /
	if command -v setsid >/dev/null 2>&1; then
		setsid "$BIN" start --supervise --config "$CONF" >>"$LOG" 2>&1 </dev/null &
	else
		nohup "$BIN" start --supervise --config "$CONF" >>"$LOG" 2>&1 </dev/null &
	fi
	echo started=1
fi
if [ "$CRON" = 1 ]; then
	line="@reboot $BIN start --supervise --config $CONF >>$LOG 2>&1"
	if ! crontab -l 2>/dev/null | grep -qxF "$line"; then
		{ crontab -l 2>/dev/null | grep -vF 'felix-minion start' || true; echo "$line"; } | crontab -
		echo boot=1
	fi
else
	line="$BIN start --supervise --config $CONF >>$LOG 2>&1 &"
	mkdir -p "$(dirname "$RC")"
	if [ ! -f "$RC" ]; then
		printf '#!/bin/sh\n%s\nexit 0\n' "$line" >"$RC"
		echo boot=1
	elif ! grep -qxF "$line" "$RC"; then
		echo boot=1
		# Older felix lines (without the supervisor) go; the new one goes
		# before the first "exit 0", else at the end.
		awk -v l="$line" -v old="$BIN start " '
			index($0, old) == 1 { next }
			!done && $0 == "exit 0" { print l; done = 1 }
			{ print }
			END { if (!done) print l }' "$RC" >"$RC.felix-tmp"
		cat "$RC.felix-tmp" >"$RC"
		rm -f "$RC.felix-tmp"
	fi
	chmod 755 "$RC"
fi
`

// keepBody keeps the installed binary as $BIN.prev before an upgrade
// replaces it, as a minion's self-update does: a copy renamed over an
// older .prev, so .prev is always complete.
const keepBody = `set -e
cp -p "$BIN" "$BIN.prev.felix-tmp"
mv -f "$BIN.prev.felix-tmp" "$BIN.prev"
`

// restoreBody puts $BIN.prev back at $BIN: a rename, atomic.
const restoreBody = `set -e
if [ ! -f "$BIN.prev" ]; then echo "no $BIN.prev to restore" >&2; exit 1; fi
mv -f "$BIN.prev" "$BIN"
`

// logsSystemd and logsDetached show the minion's last log lines, for the
// reason of a minion that did not register.
const (
	logsSystemd  = `journalctl -u felix-minion.service -n 5 --no-pager -o cat 2>/dev/null || true` + "\n"
	logsDetached = `tail -n 5 "$LOG" 2>/dev/null || true` + "\n"
)

// probe is what the probe script found.
type probe struct {
	OS, Arch, Hostname string
	Systemd, Crontab   bool
	Bin                bool
	BinSHA256          string
	BinVersion         string
	Config, Cert       bool
	UnitSHA256         string
	OpenRC             bool
	InitdSHA256        string
	Running, Active    bool
	Supervised         bool // minion start --supervise runs
}

func parseProbe(out []byte) probe {
	var p probe
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "os":
			p.OS = v
		case "arch":
			p.Arch = v
		case "hostname":
			p.Hostname = v
		case "systemd":
			p.Systemd = v == "1"
		case "crontab":
			p.Crontab = v == "1"
		case "bin":
			p.Bin = v == "1"
		case "bin_sha256":
			p.BinSHA256 = v
		case "bin_version":
			p.BinVersion = v
		case "config":
			p.Config = v == "1"
		case "cert":
			p.Cert = v == "1"
		case "unit_sha256":
			p.UnitSHA256 = v
		case "openrc":
			p.OpenRC = v == "1"
		case "initd_sha256":
			p.InitdSHA256 = v
		case "supervised":
			p.Supervised = v == "1"
		case "running":
			p.Running = v == "1"
		case "active":
			p.Active = v == "1"
		}
	}
	return p
}

// goArch maps `uname -m` to Go's architecture names (model.GoArch: x86_64
// is amd64, aarch64 arm64, i686 386, armv7l arm, ...); an unknown machine
// is returned as it is (lower case), and has no binary.
func goArch(machine string) string {
	m := strings.ToLower(strings.TrimSpace(machine))
	if a := model.GoArch(m); a != "" {
		return a
	}
	return m
}
