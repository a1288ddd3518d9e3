#!/usr/bin/env bash
# felix on one machine: a master on 127.0.0.1 and three minions on 127.0.0.2-4,
# each with its own data directory. The minions register with a join token,
# the operator accepts them with the CLI, and one command runs on all three.
# Everything lives in a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
DEMO=$(mktemp -d /tmp/felix-demo.XXXXXX)
PORT=${FELIX_DEMO_PORT:-18443}
pids=()
APT_LIST=/etc/apt/sources.list.d/felix-demo.list
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -f "$APT_LIST" ]; then # the demo package and its source go with the demo
		dpkg --purge felix-demo-hello >/dev/null 2>&1 || true
		rm -f "$APT_LIST" /var/lib/apt/lists/*felix-demo*
	fi
	rm -rf "$DEMO"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start the master on https://127.0.0.1:$PORT"
"$BIN/master" start --config "$DEMO/master.toml" --data-dir "$DEMO/master" --listen "127.0.0.1:$PORT" \
	>"$DEMO/master.out" 2>"$DEMO/master.log" &
pids+=($!)
for _ in $(seq 100); do grep -q '^master fingerprint' "$DEMO/master.out" 2>/dev/null && break; sleep 0.1; done
cat "$DEMO/master.out"
export FELIX_MASTER=https://127.0.0.1:$PORT
export FELIX_TOKEN=$(cat "$DEMO/master/admin.token")
export FELIX_MASTER_FINGERPRINT=$(sed -n 's/^master fingerprint: //p' "$DEMO/master.out")
export FELIX_CONFIG=$DEMO/felix.toml

step "issue a join token"
JOIN=$("$BIN/felix" token join --ttl 10m)
echo "$JOIN"

step "start three minions on 127.0.0.2-4"
for i in 1 2 3; do
	"$BIN/minion" start --config "$DEMO/minion$i.toml" --data-dir "$DEMO/minion$i" --id "minion$i" \
		--listen "127.0.0.$((i + 1)):4510" --master "$FELIX_MASTER" \
		--master-fingerprint "$FELIX_MASTER_FINGERPRINT" --join-token "$JOIN" \
		>"$DEMO/minion$i.out" 2>"$DEMO/minion$i.log" &
	pids+=($!)
done
for _ in $(seq 100); do
	[ "$("$BIN/felix" keys -o json | grep -c '"state": "pending"')" -eq 3 ] && break
	sleep 0.1
done
"$BIN/felix" keys

step "accept them"
"$BIN/felix" keys accept minion1 minion2 minion3
"$BIN/felix" minions

step "felix exec -t '*' -- 'uname -a; id -un'  (folded: hosts with the same output print once)"
"$BIN/felix" exec -t '*' -- 'uname -a; id -un'
step "felix exec -t '*' --no-fold -- 'uname -a; id -un'  (the table: a row per host)"
"$BIN/felix" exec -t '*' --no-fold -- 'uname -a; id -un'

step "felix cp README.md -t minion1 $DEMO/pushed/README.md --mkdir  (twice: the second finds it unchanged)"
"$BIN/felix" cp README.md -t minion1 "$DEMO/pushed/README.md" --mkdir
"$BIN/felix" cp README.md -t minion1 "$DEMO/pushed/README.md"

step "felix fetch -t '*' /etc/hostname $DEMO/fetched"
"$BIN/felix" fetch -t '*' /etc/hostname "$DEMO/fetched"

# Packages: a local test package (built here, served as a local apt source)
# installed on all three minions — all three are this machine, so they share
# its dpkg database — then asked again: unchanged, apt not run. Only as root
# on a Debian-like machine with dpkg-dev; otherwise the step says why not.
if [ "$(id -u)" -eq 0 ] && command -v dpkg-deb >/dev/null && command -v dpkg-scanpackages >/dev/null &&
	command -v apt-get >/dev/null && ! dpkg -s felix-demo-hello >/dev/null 2>&1; then
	step "felix pkg install -t '*' felix-demo-hello  (twice: the second finds it installed and runs no apt)"
	repo=$(mktemp -d /tmp/felix-demo-apt.XXXXXX)
	chmod 755 "$repo"
	mkdir -p "$DEMO/deb/DEBIAN" "$DEMO/deb/usr/share/doc/felix-demo-hello"
	printf 'Package: felix-demo-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: felix demo <felix@example.invalid>\nDescription: the felix demo package\n' \
		>"$DEMO/deb/DEBIAN/control"
	echo 1.0 >"$DEMO/deb/usr/share/doc/felix-demo-hello/version"
	dpkg-deb --root-owner-group --build "$DEMO/deb" "$repo/felix-demo-hello_1.0_all.deb" >/dev/null
	(cd "$repo" && dpkg-scanpackages . >Packages 2>/dev/null && chmod 644 Packages ./*.deb)
	echo "deb [trusted=yes] file:$repo ./" >"$APT_LIST"
	apt-get update -qq -o Dir::Etc::sourcelist="$APT_LIST" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
	"$BIN/felix" pkg install -t '*' --batch 1 felix-demo-hello
	"$BIN/felix" pkg install -t '*' felix-demo-hello
	rm -rf "$repo"
else
	step "felix pkg: skipped (needs root, dpkg-deb, dpkg-scanpackages and apt-get, and no felix-demo-hello installed)"
fi

# Managed configuration: a small state — a directory and a config file per
# minion, rendered from its id, facts and a variable, and a command run only
# when the config changed — applied twice: changed, then all unchanged.
cat >"$DEMO/demo-state.yaml" <<STATE
vars:
  - match: '*'
    vars: {workers: 4}
resources:
  - id: confdir
    type: dir
    path: $DEMO/applied/{{ .Host.ID }}
  - id: conf
    type: file
    path: $DEMO/applied/{{ .Host.ID }}/app.conf
    template: |
      # {{ .Host.ID }} on {{ .Facts.os_name }}
      workers = {{ .Vars.workers }}
    mode: "0640"
    require: [confdir]
  - id: reload
    type: cmd
    run: echo reloaded >> $DEMO/applied/reloads
    onchange: [conf]
STATE
step "felix apply demo-state.yaml -t '*'  (twice: the second finds everything as the state says)"
"$BIN/felix" apply "$DEMO/demo-state.yaml" -t '*'
"$BIN/felix" apply "$DEMO/demo-state.yaml" -t '*'

