#!/usr/bin/env bash
# make bench-upgrade: a fleet upgrade of HOSTS separate minion processes
# (each its own binary file, all on this machine, each on its own loopback
# address) from version A to version B with felix minions upgrade --batch
# BATCH: the wall time from the request to every minion back with B over
# its pinned certificate, then the same again (all unchanged, nothing sent).
# Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-100}
BATCH=${BATCH:-10%}
PORT=${PORT:-18746}
command -v jq >/dev/null || { echo "bench-upgrade needs jq" >&2; exit 1; }
make -s build
BIN=$PWD/bin
W=$(mktemp -d /tmp/felix-bench-upgrade.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# minions an upgrade handed over to are not our children: their pid files
	for f in "$W"/m-*/minion.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true; done
	wait 2>/dev/null || true
	sleep 1
	rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
source scripts/bench-lib.sh

mkdir -p "$W/dist" "$W/a"
arch=$(go env GOARCH)
for v in A B; do
	CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/felix-ops/felix/version.Version=v$v" -o "$W/minion-v$v" ./cmd/minion
done
cp "$W/minion-vB" "$W/dist/minion-linux-$arch"
MASTER_EXTRA=$(printf '[bootstrap]\nminion_dir = "%s"\n[health]\ninterval = "2s"' "$W/dist")
bench_master "$PORT"
join=$("$BIN/felix" token join --auto-accept --uses "$HOSTS" --ttl 1h)
for i in $(seq "$HOSTS"); do
	d=$W/m-$i
	mkdir -p "$d"
	ln "$W/minion-vA" "$d/minion" # an upgrade renames over it: the other links keep A
	"$d/minion" start --config "$d/minion.toml" --data-dir "$d" --id "m$i" --listen "127.4.$((i / 250)).$((i % 250 + 1)):4510" \
		--master "$FELIX_MASTER" --master-fingerprint "$FELIX_MASTER_FINGERPRINT" --join-token "$join" \
		>"$d/out" 2>"$d/log" &
	pids+=($!)
done
healthy() { # healthy VERSION: minions accepted, healthy, at VERSION
	"$BIN/felix" minions -o json | jq --arg v "$1" '[.minions[] | select(.state == "accepted" and .health == "ok" and .version == $v)] | length'
}
for _ in $(seq 300); do [ "$(healthy vA)" -eq "$HOSTS" ] && break; sleep 1; done
echo "$HOSTS minion processes at vA: $(healthy vA) healthy"

run() { # run LABEL: one upgrade of every minion, its wall time and outcomes
	local label=$1 t0 t1 out
	t0=$(now)
	out=$("$BIN/felix" minions upgrade -t 'm*' --batch "$BATCH" -o json || true)
	t1=$(now)
	printf '%-28s %8ss  %s\n' "$label" "$(secs $((t1 - t0)))" \
		"$(jq -r '[.results[] | (.stdout | split(" ")[0]) // .state] | group_by(.) | map("\(.[0])=\(length)") | join(" ")' <<<"$out" 2>/dev/null || echo "$out" | tail -3)"
}
printf '%-28s %9s  %s\n' "run (batch $BATCH)" "wall" "outcomes"
run "A -> B"
echo "minions at vB afterwards: $(healthy vB)/$HOSTS"
run "again (unchanged)"
