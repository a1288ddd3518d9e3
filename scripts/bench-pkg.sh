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
now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
dpkg_lines() { wc -l </var/log/dpkg.log 2>/dev/null || echo 0; }

# The package and its local source.
mkdir -p "$W/deb/DEBIAN" "$W/repo"
printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: felix bench <felix@example.invalid>\nDescription: felix bench package\n' "$PKG" >"$W/deb/DEBIAN/control"
dpkg-deb --root-owner-group --build "$W/deb" "$W/repo/${PKG}_1.0_all.deb" >/dev/null
(cd "$W/repo" && dpkg-scanpackages . >Packages 2>/dev/null && chmod 644 Packages ./*.deb && chmod 755 .)
echo "deb [trusted=yes] file:$W/repo ./" >"$LIST"
apt-get update -qq -o Dir::Etc::sourcelist="$LIST" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0

# A master and a swarm of HOSTS minions that run commands for real.
printf 'listen = "127.0.0.1:%s"\n' "$PORT" >"$W/master.toml"
"$BIN/master" start --config "$W/master.toml" --data-dir "$W/m" >"$W/master.out" 2>"$W/master.log" &
pids+=($!)
for _ in $(seq 300); do grep -q '^master fingerprint' "$W/master.out" 2>/dev/null && break; sleep 0.1; done
export FELIX_MASTER=https://127.0.0.1:$PORT FELIX_TOKEN=$(cat "$W/m/admin.token") FELIX_CONFIG=$W/felix.toml
export FELIX_MASTER_FINGERPRINT=$(sed -n 's/^master fingerprint: //p' "$W/master.out")
join=$("$BIN/felix" token join --auto-accept --uses "$HOSTS" --ttl 1h)
"$BIN/minion" swarm --count "$HOSTS" --base-dir "$W/swarm" --first-ip 127.3.0.1 --port 4510 --master "$FELIX_MASTER" \
	--join-token "$join" --master-fingerprint "$FELIX_MASTER_FINGERPRINT" --exec fork >"$W/swarm.out" 2>"$W/swarm.log" &
pids+=($!)
for _ in $(seq 600); do
	[ "$("$BIN/felix" minions -o json | jq '[.minions[] | select(.state == "accepted" and .health == "ok")] | length')" -eq "$HOSTS" ] && break
	sleep 1
done

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
