#!/usr/bin/env bash
# make bench-scale: one master against a swarm of real minions (minion swarm:
# own key, registration, mutual TLS, gRPC server each, on 127.x.y.z) at each
# size in SIZES, and `true` through POST /api/v1/exec?wait= on every host
# (targets ["*"]) RUNS times: the first cold, the rest warm. Prints a markdown
# table: registration time, walls, hosts by state, the master's RSS and CPU,
# the swarm's RSS. Each size gets a fresh master (temp data dir on
# 127.0.0.1) and swarm, and at most SIZE_TIMEOUT seconds. Loopback only;
# everything started is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"1000 2000 5000 10000"}
EXECS=${EXECS:-noop}              # exec modes of the swarm, each size runs each: noop, fork, output
OUTPUT_BYTES=${OUTPUT_BYTES:-1048576} # output mode: bytes of stdout each host prints (a noop exec, no process)
OUTPUT_MEMORY=${OUTPUT_MEMORY:-}  # the master's exec.output_memory; empty: its default
LOST_AFTER=${LOST_AFTER:-}        # the master's health.lost_after; empty: its default
DEBUG_LISTEN=${DEBUG_LISTEN:-}    # the master's debug_listen (pprof), e.g. 127.0.0.1:6061; empty: off
IDLE_WAIT=${IDLE_WAIT:-}          # seconds to wait after the execs (past exec.idle_timeout: set FELIX_MASTER_EXEC_IDLE_TIMEOUT=60s to measure idle closing) before reading the master's RSS again: an extra column; empty: none
PROFILES=${PROFILES:-}            # with DEBUG_LISTEN: a directory for the idle master's heap and goroutine profiles (N-MODE.heap, .goroutine)
RUNS=${RUNS:-3}                   # execs per size: one cold, RUNS-1 warm
PORT=${PORT:-18743}               # the master's API on 127.0.0.1
MINION_PORT=${MINION_PORT:-4510}  # every minion's gRPC port, each on its own address
FIRST_IP=${FIRST_IP:-127.1.0.1}   # the first minion's address
HEALTH_INTERVAL=${HEALTH_INTERVAL:-10s}
WAIT=${WAIT:-120}                 # seconds one exec may take (?wait=)
SIZE_TIMEOUT=${SIZE_TIMEOUT:-900} # seconds one size may take, start to stop
BIN=$PWD/bin
TICK=$(getconf CLK_TCK)

make -s build
W=$(mktemp -d /tmp/felix-bench-scale.XXXXXX)
mpid=
spids=()
stop() { # stop PID: SIGTERM, then SIGKILL after 60 s
	local p=$1
	[ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 0
	kill "$p" 2>/dev/null || true
	for _ in $(seq 600); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
cleanup() { for p in "${spids[@]}"; do stop "$p"; done; stop "$mpid"; [ -n "${KEEP:-}" ] && echo "kept $W" >&2 || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# File descriptors. The master holds one connection per minion; a swarm
# minion its listener and the master's connection, and with --exec=fork a
# running command's pipes (about 7 at once while it starts). Raise the hard
# limit of this shell's children when it is too low and we may (root with
# CAP_SYS_RESOURCE); the programs raise their soft limit to it. A size the
# limit cannot hold in one swarm process is split over several (--offset):
# each process has its own descriptor table, as each host would.
max=0
for n in $SIZES; do [ "$n" -gt "$max" ] && max=$n; done
need=$((7 * max + 1024))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$need" ]; then
	ulimit -Hn "$need" 2>/dev/null || true
fi
ulimit -Sn "$(ulimit -Hn)"
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }
kib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
status_kb() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
api() { # api METHOD PATH [BODY]: the answer on stdout, the HTTP status in $W/code
	curl -sS --max-time $((WAIT + 30)) --cacert "$D/m/master.crt" -H "Authorization: Bearer $TOKEN" \
		-X "$1" ${3:+-d "$3"} -o "$W/answer" -w '%{http_code}' "https://127.0.0.1:$PORT$2" >"$W/code" || echo 000 >"$W/code"
	cat "$W/answer" 2>/dev/null || true
}
# until DEADLINE_NS CMD...: run CMD every second until it succeeds; 1 past the deadline
until_ok() {
	local deadline=$1
	shift
	until "$@"; do
		[ "$(now)" -lt "$deadline" ] || return 1
		sleep 1
	done
}
count() { # count JQ-FILTER over the minions: how many match
	api GET /api/v1/minions | jq "[.minions[] | select($1)] | length" 2>/dev/null || echo 0
}
all_accepted() { [ "$(count '.state == "accepted"')" -eq "$n" ]; }
all_swarms_registered() { [ "$(cat "$D"/swarm*.out | grep -c '^swarm: all')" -eq "${#spids[@]}" ]; }
all_healthy() { [ "$(count '.state == "accepted" and .health == "ok"')" -eq "$n" ]; }
job_done() { # job_done ID: the job ended; its page without output is in $D/run$r.json
	api GET "/api/v1/jobs/$1?output=none&hosts_limit=1" >"$D/run$r.json"
	[ "$(jq -r .state "$D/run$r.json" 2>/dev/null)" = done ]
}

rows=()
run_size() { # run_size N MODE: one table row into rows
	local n=$1 mode=$2
	D=$W/$n-$mode
	mkdir -p "$D"
	local deadline=$(($(now) + SIZE_TIMEOUT * 1000000000))
	cat >"$D/master.toml" <<CFG
listen = "127.0.0.1:$PORT"
${DEBUG_LISTEN:+debug_listen = \"$DEBUG_LISTEN\"}
[health]
interval = "$HEALTH_INTERVAL"
CFG
	[ -n "$LOST_AFTER" ] && printf 'lost_after = "%s"\n' "$LOST_AFTER" >>"$D/master.toml"
	[ -n "$OUTPUT_MEMORY" ] && printf '[exec]\noutput_memory = %s\n' "$OUTPUT_MEMORY" >>"$D/master.toml"
	"$BIN/master" start --config "$D/master.toml" --data-dir "$D/m" >"$D/master.out" 2>"$D/master.log" &
	mpid=$!
	for _ in $(seq 300); do grep -q '^master fingerprint' "$D/master.out" 2>/dev/null && break; sleep 0.1; done
	local fp
	fp=$(sed -n 's/^master fingerprint: //p' "$D/master.out")
	[ -n "$fp" ] || { echo "master did not start:" >&2; cat "$D/master.log" >&2; return 1; }
	TOKEN=$(cat "$D/m/admin.token")
	local join
	join=$(api POST /api/v1/tokens/join "{\"auto_accept\":true,\"ttl\":\"2h\",\"uses\":$n}" | jq -r .token)

	# minions per swarm process: as many as its descriptors hold
	local chunk=$(((NOFILE - 1024) / 2))
	[ "$mode" = fork ] && chunk=$(((NOFILE - 1024) / 7))
	[ "$chunk" -gt "$n" ] && chunk=$n
	local treg thealthy off=0 k=0
	spids=()
	while [ "$off" -lt "$n" ]; do
		local c=$((n - off < chunk ? n - off : chunk))
		local how=(--exec "$mode")
		[ "$mode" = output ] && how=(--exec noop --noop-output "$OUTPUT_BYTES")
		"$BIN/minion" swarm --count "$c" --offset "$off" --base-dir "$D/swarm$k" --first-ip "$FIRST_IP" --port "$MINION_PORT" \
			--master "https://127.0.0.1:$PORT" --join-token "$join" --master-fingerprint "$fp" "${how[@]}" \
			>"$D/swarm$k.out" 2>"$D/swarm$k.log" &
		spids+=($!)
		off=$((off + c))
		k=$((k + 1))
	done
	local reg="-" healthy="-" cold="-" warm=() ok=0 notok=0 idle="-" cpu_reg="-" cpu_exec="-"
	: >"$D/states"
	if until_ok "$deadline" all_swarms_registered && until_ok "$deadline" all_accepted; then
		# the swarms start together: the slowest one's time
		reg=$(sed -n 's/^swarm: all [0-9]* minions registered in \([0-9.]*\)s$/\1/p' "$D"/swarm*.out | sort -n | tail -1)
		treg=$(now)
		if until_ok "$deadline" all_healthy; then
			thealthy=$(now)
			healthy=$(secs $((thealthy - treg)))
			idle=$(kib "$(status_kb "$mpid" VmRSS)")
			if [ -n "$PROFILES" ] && [ -n "$DEBUG_LISTEN" ]; then
				mkdir -p "$PROFILES"
				curl -sS -o "$PROFILES/$n-$mode.heap" "http://$DEBUG_LISTEN/debug/pprof/heap?gc=1" || true
				curl -sS -o "$PROFILES/$n-$mode.goroutine" "http://$DEBUG_LISTEN/debug/pprof/goroutine" || true
				curl -sS -o "$PROFILES/$n-$mode.goroutines.txt" "http://$DEBUG_LISTEN/debug/pprof/goroutine?debug=1" || true
				awk '$1 ~ /^(VmRSS|RssAnon|RssFile|VmHWM):$/' "/proc/$mpid/status" >"$PROFILES/$n-$mode.status" || true
			fi
			local c0 c1
			c0=$(cpu_ticks "$mpid")
			cpu_reg=$(awk -v t="$c0" -v hz="$TICK" 'BEGIN { printf "%.1f", t / hz }')
			for r in $(seq "$RUNS"); do
				[ "$(now)" -lt "$deadline" ] || break
				local s e
				s=$(now)
				if [ "$mode" = output ]; then
					# Megabytes a host: follow the job without its output.
					local id
					id=$(api POST /api/v1/exec '{"cmd_line":"true","targets":["*"]}' | jq -r .job_id)
					until_ok $(($(now) + WAIT * 1000000000)) job_done "$id" || true
				else
					api POST "/api/v1/exec?wait=${WAIT}s" '{"cmd_line":"true","targets":["*"]}' >"$D/run$r.json"
				fi
				e=$(now)
				local wall
				wall=$(secs $((e - s)))
				if [ "$(cat "$W/code")" != 200 ] || [ "$(jq -r .state "$D/run$r.json")" != done ]; then
					wall="$wall (HTTP $(cat "$W/code"), not done)"
				fi
				[ "$r" -eq 1 ] && cold=$wall || warm+=("$wall")
				ok=$((ok + $(jq '.summary.ok // 0' "$D/run$r.json" 2>/dev/null || echo 0)))
				notok=$((notok + $(jq '[.summary // {} | to_entries[] | select(.key != "ok") | .value] | add // 0' "$D/run$r.json" 2>/dev/null || echo 0)))
				jq -r '.summary // {} | to_entries[] | select(.key != "ok") | "\(.key) \(.value)"' "$D/run$r.json" >>"$D/states" 2>/dev/null || true
			done
			c1=$(cpu_ticks "$mpid")
			cpu_exec=$(awk -v t="$((c1 - c0))" -v hz="$TICK" 'BEGIN { printf "%.1f", t / hz }')
		fi
	fi
	local rss hwm srss
	rss=$(kib "$(status_kb "$mpid" VmRSS)")
	hwm=$(kib "$(status_kb "$mpid" VmHWM)")
	local later=""
	if [ -n "$IDLE_WAIT" ]; then
		sleep "$IDLE_WAIT"
		later=" $(kib "$(status_kb "$mpid" VmRSS)") MiB, $(awk '$1 == "Threads:" { print $2 }' "/proc/$mpid/status") threads"
		if [ -n "$DEBUG_LISTEN" ]; then
			later="$later, $(curl -sS "http://$DEBUG_LISTEN/debug/pprof/goroutine?debug=1" | sed -n 's/^goroutine profile: total //p') goroutines"
			[ -n "$PROFILES" ] && curl -sS -o "$PROFILES/$n-$mode.later.heap" "http://$DEBUG_LISTEN/debug/pprof/heap?gc=1"
		fi
		later="$later |"
	fi
	local p sk=0
	for p in "${spids[@]}"; do sk=$((sk + $(status_kb "$p" VmRSS))); done
	srss=$(kib "$sk")
	[ ${#spids[@]} -gt 1 ] && srss="$srss MiB in ${#spids[@]} processes" || srss="$srss MiB"
	local perminion="-"
	[ "$idle" != "-" ] && perminion=$(awk -v r="$idle" -v n="$n" 'BEGIN { printf "%.0f", r * 1024 / n }')
	local states
	states=$(awk '{ n[$1] += $2 } END { for (s in n) printf "%s%s %d", (i++ ? ", " : ""), s, n[s] }' "$D/states")
	[ -n "$states" ] && states=" ($states)"
	local warmcol="-"
	[ ${#warm[@]} -gt 0 ] && warmcol=$(
		IFS=,
		echo "${warm[*]}" | sed 's/,/, /g'
	)
	rows+=("| $n | $mode | $reg | $healthy | $cold | $warmcol | $ok / $notok$states | $idle / $rss / $hwm MiB ($perminion KiB/minion idle) | $cpu_reg / $cpu_exec | $srss |$later")
	printf '%s\n' "${rows[-1]}" >&2
	for p in "${spids[@]}"; do stop "$p"; done
	spids=()
	stop "$mpid"
	mpid=
	[ -n "${KEEP:-}" ] || rm -rf "$D"/swarm?*/
}

for n in $SIZES; do
	for mode in $EXECS; do
		run_size "$n" "$mode"
	done
done

printf '\n`true` on every minion of a swarm, POST /api/v1/exec?wait= (targets ["*"]), %d runs: cold, then warm (seconds)\n\n' "$RUNS"
if [ -n "$IDLE_WAIT" ]; then
	echo "| minions | exec | registration | then all healthy | cold | warm | hosts ok / not ok (all runs) | master RSS idle / after / peak (VmHWM) | master CPU s (start to healthy / execs) | swarm RSS | master $IDLE_WAIT s after the execs |"
	echo '|---|---|---|---|---|---|---|---|---|---|---|'
else
	echo '| minions | exec | registration | then all healthy | cold | warm | hosts ok / not ok (all runs) | master RSS idle / after / peak (VmHWM) | master CPU s (start to healthy / execs) | swarm RSS |'
	echo '|---|---|---|---|---|---|---|---|---|---|'
fi
printf '%s\n' "${rows[@]}"
