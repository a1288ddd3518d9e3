#!/usr/bin/env bash
# make bench-restart: reconnect storms. One master and a swarm of N minions
# (minion swarm: own key, registration, mutual TLS and gRPC server each, on
# 127.x.y.z), then two measurements, each printed as a markdown row:
#   restart  the master restarted (SIGTERM, start) with every minion up:
#            seconds until every minion is healthy again, registrations seen
#   outage   the master stopped, the whole swarm restarted meanwhile (its
#            minions retry registering, backing off), the master started
#            again OUTAGE seconds later: seconds until every minion is
#            healthy (the master pings them) and until every one has
#            registered again, the peak of registrations a second
#            (from the master's log) and the 429s it answered
# With OLD=REV (a git revision, e.g. main) the same runs again with master and
# minion built from REV, for a before/after. Loopback only; everything
# started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}                      # minions in the swarm
OUTAGE=${OUTAGE:-20}              # seconds the master stays down while the swarm restarts
PORT=${PORT:-18843}               # the master's API on 127.0.0.1
FIRST_IP=${FIRST_IP:-127.2.0.1}   # the first minion's address
HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
TIMEOUT=${TIMEOUT:-600}           # seconds one wait may take
OLD=${OLD:-}                      # a git revision to compare with
source scripts/bench-lib.sh

make -s build
W=$(mktemp -d /tmp/felix-bench-restart.XXXXXX)
mpid= spids=()
stop() { # stop PID: SIGTERM, then SIGKILL after 60 s
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill "$p" 2>/dev/null || true
	for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
cleanup() { stop_swarm; stop "$mpid"; [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -Sn "$(ulimit -Hn)"

api() { # api METHOD PATH [BODY]: the answer on stdout
	curl -sS --max-time 60 --cacert "$D/m/master.crt" -H "Authorization: Bearer $TOKEN" \
		-X "$1" ${3:+-d "$3"} "https://127.0.0.1:$PORT$2" 2>/dev/null || true
}
# healthy SINCE: every minion accepted, healthy and seen since SINCE (RFC 3339):
# the health stored before a restart does not count.
healthy() { [ "$(api GET /api/v1/minions | jq --arg since "$1" '[.minions[] | select(.state == "accepted" and .health == "ok" and .last_seen > $since)] | length' 2>/dev/null || echo 0)" -eq "$N" ]; }
wait_healthy() { # seconds from T0 (ns) until every minion is healthy again, or "-"
	local t0=$1 since deadline
	since=$(date -u -d "@$((t0 / 1000000000))" +%Y-%m-%dT%H:%M:%S)
	deadline=$((t0 + TIMEOUT * 1000000000))
	until healthy "$since"; do
		[ "$(now)" -lt "$deadline" ] || { echo -; return; }
		for p in "${spids[@]}"; do
			kill -0 "$p" 2>/dev/null || { echo "a swarm process ended: $(tail -1 "$D/swarm.log")" >&2; exit 1; }
		done
		sleep 0.5
	done
	secs $(($(now) - t0))
}
start_master() { # start_master BINDIR LOG
	"$1/master" start --config "$D/master.toml" --data-dir "$D/m" >>"$D/master.out" 2>"$2" &
	mpid=$!
	for _ in $(seq 600); do curl -sk --max-time 1 "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}
# Minions per swarm process: as many as its descriptors hold (a listener and
# the master's connection each); a larger N is split over processes
# (--offset), each with its own descriptor table, as each host would have.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
CHUNK=$(((NOFILE - 1024) / 3))
start_swarm() { # start_swarm BINDIR
	local off=0 k=0 c
	spids=()
	while [ "$off" -lt "$N" ]; do
		c=$((N - off < CHUNK ? N - off : CHUNK))
		"$1/minion" swarm --count "$c" --offset "$off" --base-dir "$D/swarm$k" --first-ip "$FIRST_IP" --port 4510 \
			--master "https://127.0.0.1:$PORT" --join-token "$JOIN" --master-fingerprint "$FP" --exec noop \
			--register-parallel "$c" >>"$D/swarm.out" 2>>"$D/swarm.log" &
		spids+=($!)
		off=$((off + c))
		k=$((k + 1))
	done
}
stop_swarm() { for p in "${spids[@]}"; do stop "$p"; done; }
# peak LOG: the most registrations the master logged in one second; total
peak() { # an empty log: 0
	grep -o 'time=[^ ]*Z level=INFO msg="minion registered"' "$1" | cut -c6-24 | uniq -c | sort -n | tail -1 | awk '{print $1} END { if (NR == 0) print 0 }'; }
total() { grep -c 'msg="minion registered"' "$1" || true; }
refused() { grep -c 'path=/api/v1/minions/register status=429' "$1" || true; }

rows=()
run() { # run LABEL BINDIR
	local label=$1 bin=$2
	D=$W/$label
	mkdir -p "$D"
	printf 'listen = "127.0.0.1:%s"\n[health]\ninterval = "%s"\n' "$PORT" "$HEALTH_INTERVAL" >"$D/master.toml"
	start_master "$bin" "$D/master0.log"
	TOKEN=$(cat "$D/m/admin.token")
	FP=$(sed -n 's/^master fingerprint: //p' "$D/master.out" | head -1)
	JOIN=$(api POST /api/v1/tokens/join '{"auto_accept":true,"ttl":"2h","uses":-1}' | jq -r .token)
	start_swarm "$bin"
	local first
	first=$(wait_healthy "$(now)")

	# restart: every minion up.
	stop "$mpid"
	local t0
	t0=$(now)
	start_master "$bin" "$D/master1.log"
	local t1
	t1=$(wait_healthy "$t0")
	rows+=("| $label | restart | $N | $t1 | - | $(peak "$D/master1.log") | $(total "$D/master1.log") | $(refused "$D/master1.log") |")

	# outage: the master down while the whole swarm restarts.
	stop "$mpid"
	stop_swarm
	start_swarm "$bin"
	sleep "$OUTAGE"
	t0=$(now)
	start_master "$bin" "$D/master2.log"
	local t2
	t2=$(wait_healthy "$t0")
	local deadline=$((t0 + TIMEOUT * 1000000000))
	until [ "$(total "$D/master2.log")" -ge "$N" ] || [ "$(now)" -gt "$deadline" ]; do sleep 0.2; done
	local treg
	treg=$(secs $(($(now) - t0)))
	rows+=("| $label | outage ${OUTAGE}s | $N | $t2 | $treg | $(peak "$D/master2.log") | $(total "$D/master2.log") | $(refused "$D/master2.log") |")
	stop_swarm
	stop "$mpid"
	echo "$label: first join healthy in ${first}s" >&2
}

run new "$PWD/bin"
if [ -n "$OLD" ]; then
	mkdir -p "$W/old-src" "$W/old-bin"
	git archive "$OLD" | tar -x -C "$W/old-src"
	(cd "$W/old-src" && go build -o "$W/old-bin/master" ./cmd/master && go build -o "$W/old-bin/minion" ./cmd/minion)
	run "old ($OLD)" "$W/old-bin"
fi
echo "| build | case | minions | s until all healthy | s until all registered | peak registrations/s | registrations | 429s |"
echo "|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
