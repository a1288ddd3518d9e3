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
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
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

step "felix exec -t '*' -- 'uname -a; id -un'"
"$BIN/felix" exec -t '*' -- 'uname -a; id -un'

step "felix cp README.md -t minion1 $DEMO/pushed/README.md --mkdir  (twice: the second finds it unchanged)"
"$BIN/felix" cp README.md -t minion1 "$DEMO/pushed/README.md" --mkdir
"$BIN/felix" cp README.md -t minion1 "$DEMO/pushed/README.md"

step "felix fetch -t '*' /etc/hostname $DEMO/fetched"
"$BIN/felix" fetch -t '*' /etc/hostname "$DEMO/fetched"
