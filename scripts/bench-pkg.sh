#!/usr/bin/env bash
# make bench-pkg: felix pkg install of a local test package on HOSTS
# minions (a swarm of real minions running commands, all on this machine,
# so they share its dpkg database), twice — the second run finds it
# installed everywhere and must not start apt at all — beside
# `felix exec -- apt-get install -y` of the same package on the same hosts.
# Root only (it installs a package; removed at the end). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-50}
PORT=${PORT:-18745}
[ "$(id -u)" -eq 0 ] || { echo "bench-pkg installs a package: run it as root" >&2; exit 1; }
for t in dpkg-deb dpkg-scanpackages apt-get jq curl; do
	command -v "$t" >/dev/null || { echo "bench-pkg needs $t" >&2; exit 1; }
done
make -s build
BIN=$PWD/bin
W=$(mktemp -d /tmp/felix-bench-pkg.XXXXXX)
chmod 755 "$W"
LIST=/etc/apt/sources.list.d/felix-bench-pkg.list
PKG=felix-bench-hello
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	dpkg --purge "$PKG" >/dev/null 2>&1 || true
	rm -f "$LIST" /var/lib/apt/lists/*felix-bench-pkg*
	rm -rf "$W"
}
trap cleanup EXIT
source scripts/bench-lib.sh
dpkg_lines() { wc -l </var/log/dpkg.log 2>/dev/null || echo 0; }

bench_apt_repo "$PKG" "$LIST"
# A master and a swarm of HOSTS minions that run commands for real.
bench_master "$PORT"
bench_swarm "$HOSTS" 127.3.0.1

run() { # run LABEL CMD...: one table row: wall, hosts ok, dpkg log lines written
	local label=$1
	shift
	local l0 s e l1 out ok
	l0=$(dpkg_lines)
	s=$(now)
	out=$("$@" 2>/dev/null || true)
	e=$(now)
	l1=$(dpkg_lines)
	ok=$(echo "$out" | jq '.summary.ok // 0')
	printf '| %s | %s | %s / %s | %s |\n' "$label" "$(secs $((e - s)))" "$ok" "$HOSTS" "$((l1 - l0))"
}
echo
echo "felix pkg on $HOSTS minions of one machine (shared dpkg database), seconds"
echo
echo '| run | wall | hosts ok | dpkg log lines written |'
echo '|---|---|---|---|'
run "felix pkg install (first: installs)" "$BIN/felix" pkg install -o json -t '*' --timeout 10m "$PKG"
run "felix pkg install (again: all unchanged)" "$BIN/felix" pkg install -o json -t '*' --timeout 10m "$PKG"
run "felix exec -- apt-get install -y (installed)" "$BIN/felix" exec -o json -t '*' --timeout 10m -- \
	"DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install $PKG"
dpkg --purge "$PKG" >/dev/null
run "felix exec -- apt-get install -y (not installed)" "$BIN/felix" exec -o json -t '*' --timeout 10m -- \
	"DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 install $PKG"
