#!/usr/bin/env bash
# make bench-files: one SIZE_MIB file pushed to TARGETS minions (felix cp
# --transport agent) and to TARGETS agentless hosts (felix cp --transport
# ssh), side by side with parallel-scp to the same SSH hosts, all on this
# machine over loopback. Reports each tool's median wall time of RUNS runs,
# the aggregate MiB/s (SIZE_MIB x TARGETS / seconds), the master's peak RSS
# (VmHWM) during the pushes, and a sequential local cp as the machine's copy
# bandwidth for reference.
#
# Every target is its own "machine" as far as files go: each minion and each
# sshd (one per SSH address) runs in a private mount namespace in which its
# own directory $W/out/NAME is bind-mounted on the same path $W/dest, so one
# DEST path lands in TARGETS different files. Each run pushes to a fresh
# file name (a host that already has the content would report unchanged and
# get nothing) and the outputs are deleted right after they are checked.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MIB=${SIZE_MIB:-100}
TARGETS=${TARGETS:-50}
RUNS=${RUNS:-3}
SCP=${SCP:-1} # 1: also plain scp to every target at once (parallel-scp without its -C); 0: not
VERIFY=${VERIFY:-all} # destinations whose sha256 is checked per run: all, or a number picked at random
PORT=${PORT:-22122}
API_PORT=${API_PORT:-18743}
BIN=$PWD/bin
export DEBIAN_FRONTEND=noninteractive
need=()
command -v parallel-scp >/dev/null || need+=(pssh)
command -v jq >/dev/null || need+=(jq)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "missing: ${need[*]}" >&2; exit 1; }
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ "$(id -u)" -eq 0 ] || { echo "bench-files needs root (mount namespaces, sshd)" >&2; exit 1; }
[ "$TARGETS" -ge 1 ] && [ "$TARGETS" -le 250 ] || { echo "TARGETS=$TARGETS: want 1-250" >&2; exit 1; }
make -s build
W=$(mktemp -d /tmp/felix-bench-files.XXXXXX)
pids=() mpid=
cleanup() {
	for p in $mpid "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }

# Disk: one tool's outputs (TARGETS copies) exist at a time, plus the
# source, the master's content store copy and slack. Lower TARGETS (down to
# 10), then SIZE_MIB, until it fits; fail when even 1 MiB does not.
avail=$(df -Pm "$W" | awk 'NR == 2 { print $4 }')
fits() { [ $(($1 * ($2 + 3) + 1024)) -le "$avail" ]; }
if ! fits "$SIZE_MIB" "$TARGETS"; then
	want="$SIZE_MIB MiB x $TARGETS targets"
	while ! fits "$SIZE_MIB" "$TARGETS" && [ "$TARGETS" -gt 10 ]; do TARGETS=$((TARGETS - 1)); done
	while ! fits "$SIZE_MIB" "$TARGETS" && [ "$SIZE_MIB" -gt 1 ]; do SIZE_MIB=$((SIZE_MIB / 2)); done
	fits "$SIZE_MIB" "$TARGETS" || { echo "only $avail MiB free under $W: not enough for any run" >&2; exit 1; }
	log "only $avail MiB free under $W: $want lowered to $SIZE_MIB MiB x $TARGETS targets"
fi
log "$SIZE_MIB MiB to $TARGETS targets, $RUNS runs; $avail MiB free under $W"
TOTAL_MIB=$((SIZE_MIB * TARGETS))

mkdir -p "$W/dest" "$W/out" /run/sshd
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$W/src.bin"
SUM=$(sha256sum "$W/src.bin" | cut -d' ' -f1)
# root's login shell may be a bash with a costly .bashrc; the sshds see /bin/sh.
sed 's#^\(root:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:\).*#\1/bin/sh#' /etc/passwd >"$W/passwd"

# felix: a master on 127.0.0.1 with its data dir and content store in $W.
cat >"$W/master.toml" <<CFG
listen = "127.0.0.1:$API_PORT"
[exec]
max_parallel = 1000
[ssh]
known_hosts = "$W/known_hosts"
key_files = ["$W/client_key"]
agent = false
max_conns = 1000
[files]
max_size = $(((SIZE_MIB + 1) << 20))
CFG
ssh-keygen -q -t ed25519 -N '' -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
hostkey=$(cut -d' ' -f1,2 "$W/host_key.pub")
: >"$W/known_hosts"
for i in $(seq "$TARGETS"); do echo "[127.0.2.$i]:$PORT $hostkey" >>"$W/known_hosts"; done

# start_master starts the master (again: its data dir is kept) and waits
# until it prints its fingerprint.
start_master() {
	"$BIN/master" start --config "$W/master.toml" --data-dir "$W/master" >"$W/master.out" 2>>"$W/master.log" &
	mpid=$!
	for _ in $(seq 100); do grep -q '^master fingerprint' "$W/master.out" 2>/dev/null && break; sleep 0.1; done
	grep -q '^master fingerprint' "$W/master.out" || { cat "$W/master.log" >&2; exit 1; }
}
stop_master() { kill "$mpid"; wait "$mpid" 2>/dev/null || true; mpid=; }
log "master on 127.0.0.1:$API_PORT"
start_master
export FELIX_MASTER=https://127.0.0.1:$API_PORT FELIX_CONFIG=$W/felix.toml
export FELIX_MASTER_FINGERPRINT=$(sed -n 's/^master fingerprint: //p' "$W/master.out")
export FELIX_TOKEN=$(cat "$W/master/admin.token")

log "$TARGETS minions on 127.0.1.1-$TARGETS"
JOIN=$("$BIN/felix" token join --ttl 30m --uses "$TARGETS")
for i in $(seq "$TARGETS"); do
	mkdir -p "$W/out/m$i"
	# file_roots stays empty (any path); $W/dest is this minion's $W/out/m$i.
	unshare -m /bin/sh -c 'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$W/out/m$i" "$W/dest" \
		"$BIN/minion" start --config "$W/minion$i.toml" --data-dir "$W/minion$i" --id "fm$i" \
		--listen "127.0.1.$i:4510" --master "$FELIX_MASTER" \
		--master-fingerprint "$FELIX_MASTER_FINGERPRINT" --join-token "$JOIN" \
		>"$W/minion$i.out" 2>"$W/minion$i.log" &
	pids+=($!)
done
pending=0
for _ in $(seq 300); do
	pending=$("$BIN/felix" keys -o json | grep -c '"state": "pending"' || true)
	[ "$pending" -eq "$TARGETS" ] && break
	sleep 0.1
done
[ "$pending" -eq "$TARGETS" ] || { echo "only $pending of $TARGETS minions registered" >&2; tail -n 5 "$W"/minion*.log >&2; exit 1; }
"$BIN/felix" keys accept $(seq -f 'fm%g' "$TARGETS") >/dev/null

log "$TARGETS sshds on 127.0.2.1-$TARGETS:$PORT"
cat >"$W/sshd_config" <<CFG
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PermitRootLogin yes
UsePAM no
StrictModes no
PasswordAuthentication no
MaxStartups 200
MaxSessions 100
Subsystem sftp internal-sftp
LogLevel ERROR
CFG
: >"$W/hosts"
: >"$W/addrs"
for i in $(seq "$TARGETS"); do
	mkdir -p "$W/out/s$i"
	unshare -m /bin/sh -c 'mount --bind "$1" /etc/passwd && mount --bind "$2" "$3" && shift 3 && exec "$@"' sh \
		"$W/passwd" "$W/out/s$i" "$W/dest" \
		/usr/sbin/sshd -D -e -f "$W/sshd_config" -o "ListenAddress=127.0.2.$i:$PORT" -o "PidFile=$W/sshd$i.pid" \
		2>>"$W/sshd.log" &
	pids+=($!)
	echo "127.0.2.$i:$PORT" >>"$W/hosts"
	echo "127.0.2.$i" >>"$W/addrs"
done
for i in $(seq "$TARGETS"); do
	for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.2.$i/$PORT") 2>/dev/null && break; sleep 0.1; done
done
sed 's/^/root@/' "$W/hosts" | "$BIN/felix" hosts import - >/dev/null

# The content reaches the master once, before any measured run: every run
# then costs what pushes cost (plus the CLI hashing SRC, which it always does).
"$BIN/felix" cp "$W/src.bin" -t fm1 --transport agent "$W/dest/warmup.bin" >/dev/null
rm -f "$W/out/m1/warmup.bin"

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
mibs() { awk -v mib="$TOTAL_MIB" -v s="$1" 'BEGIN { printf "%.0f", mib / s }'; }
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$mpid/status"; }

# verify NAME PREFIX: every (or VERIFY random) $W/out/PREFIXi/NAME has the
# source's sha256; a missing file counts as a mismatch.
verify() {
	local name=$1 prefix=$2 files
	files=$(for i in $(seq "$TARGETS"); do echo "$W/out/$prefix$i/$name"; done)
	[ "$VERIFY" = all ] || files=$(shuf -n "$VERIFY" <<<"$files")
	local bad
	bad=$(xargs -P 2 -n 8 sha256sum 2>&1 <<<"$files" | awk -v s="$SUM" '$1 != s' || true)
	[ -z "$bad" ] || { echo "$name: content differs on some targets:" >&2; echo "$bad" >&2; return 1; }
}

# felix_cp TRANSPORT CIDR NAME: push to every target, check that each host
# ended ok with the file changed, and record the time and the master's RSS
# before and peak RSS during the push. The master is restarted first (its
# VmHWM counts from its start; a Go heap, once grown, is not given back at
# once), and its connections to the targets are opened by an exec of
# `true`, so the push is measured on warm connections.
felix_cp() {
	local transport=$1 cidr=$2 name=$3 s e n
	stop_master
	start_master
	"$BIN/felix" exec -t "$cidr" --transport "$transport" -o json -- true >"$W/warm.json" ||
		{ echo "felix exec --transport $transport failed:" >&2; cat "$W/warm.json" >&2; return 1; }
	rss0=$(status_kib VmRSS)
	sync
	s=$(now)
	"$BIN/felix" cp "$W/src.bin" -t "$cidr" --transport "$transport" -o json "$W/dest/$name" >"$W/cp.json" 2>"$W/cp.err" || {
		echo "felix cp --transport $transport failed:" >&2
		cat "$W/cp.err" >&2
		jq -r '.results[] | select(.state != "ok") | "\(.host) \(.state) \(.error)"' "$W/cp.json" >&2 || cat "$W/cp.json" >&2
		return 1
	}
	e=$(now)
	n=$(jq '[.results[] | select(.state == "ok" and .files.changed == 1)] | length' "$W/cp.json")
	[ "$n" -eq "$TARGETS" ] || { echo "felix cp --transport $transport: $n of $TARGETS hosts changed" >&2; jq . "$W/cp.json" >&2; return 1; }
	t=$(secs $((e - s)))
	hwm=$(status_kib VmHWM)
}

# pscp NAME: parallel-scp to every SSH target.
pscp() {
	local name=$1 s e
	sync
	s=$(now)
	parallel-scp -h "$W/hosts" -l root -p "$TARGETS" -t 0 -e "$W/pscp.err" \
		-O "IdentityFile=$W/client_key" -O "UserKnownHostsFile=$W/known_hosts" \
		-O StrictHostKeyChecking=yes -O BatchMode=yes -O IdentitiesOnly=yes \
		"$W/src.bin" "$W/dest/$name" >"$W/pscp.out" || {
		echo "parallel-scp failed:" >&2
		cat "$W/pscp.out" "$W"/pscp.err/* >&2
		return 1
	}
	e=$(now)
	t=$(secs $((e - s)))
	# Also the time until the copies are on disk: felix fsyncs each file
	# before its rename, scp does not.
	sync -f "$W/out"
	e=$(now)
	tsync=$(secs $((e - s)))
}

# scp_plain NAME: what parallel-scp runs, `scp -qC`, but without -C, one
# scp per target, all at once. parallel-scp always passes -C (zlib level 6,
# which random content only makes slower), and -O Compression=no cannot
# undo it: ssh keeps the first value it is given.
scp_plain() {
	local name=$1 s e
	sync
	s=$(now)
	xargs -P "$TARGETS" -I{} scp -q -P "$PORT" -i "$W/client_key" -o "UserKnownHostsFile=$W/known_hosts" \
		-o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes \
		"$W/src.bin" "root@{}:$W/dest/$name" <"$W/addrs" 2>"$W/scp.err" || {
		echo "scp failed:" >&2
		cat "$W/scp.err" >&2
		return 1
	}
	e=$(now)
	t=$(secs $((e - s)))
}

# Reference: this machine's copy bandwidth, the same bytes copied one file
# after another by cp, without and with an fsync of each copy.
baseline() {
	local s e i
	mkdir -p "$W/out/base"
	sync
	s=$(now)
	for i in $(seq "$TARGETS"); do cp "$W/src.bin" "$W/out/base/$i"; done
	e=$(now)
	base_t+=("$(secs $((e - s)))")
	rm -rf "$W/out/base"
	mkdir -p "$W/out/base"
	sync
	s=$(now)
	for i in $(seq "$TARGETS"); do dd if="$W/src.bin" of="$W/out/base/$i" bs=1M conv=fsync status=none; done
	e=$(now)
	base_sync_t+=("$(secs $((e - s)))")
	rm -rf "$W/out/base"
}

agent_t=() ssh_t=() pscp_t=() pscp_sync_t=() scp_t=() base_t=() base_sync_t=()
agent_hwm=0 ssh_hwm=0
for r in $(seq "$RUNS"); do
	log "run $r/$RUNS: felix cp --transport agent to $TARGETS minions"
	felix_cp agent 127.0.1.0/24 "agent-$r.bin"
	verify "agent-$r.bin" m
	rm -f "$W"/out/m*/"agent-$r.bin"
	agent_t+=("$t")
	[ "$hwm" -gt "$agent_hwm" ] && agent_hwm=$hwm
	log "  $t s; master RSS $((rss0 / 1024)) MiB before, peak $((hwm / 1024)) MiB"

	log "run $r/$RUNS: felix cp --transport ssh to $TARGETS sshds"
	felix_cp ssh 127.0.2.0/24 "ssh-$r.bin"
	verify "ssh-$r.bin" s
	rm -f "$W"/out/s*/"ssh-$r.bin"
	ssh_t+=("$t")
	[ "$hwm" -gt "$ssh_hwm" ] && ssh_hwm=$hwm
	log "  $t s; master RSS $((rss0 / 1024)) MiB before, peak $((hwm / 1024)) MiB"

	log "run $r/$RUNS: parallel-scp -p $TARGETS to the same sshds"
	pscp "pscp-$r.bin"
	verify "pscp-$r.bin" s
	rm -f "$W"/out/s*/"pscp-$r.bin"
	pscp_t+=("$t")
	pscp_sync_t+=("$tsync")
	log "  $t s ($tsync s with sync)"

	if [ "$SCP" = 1 ]; then
		log "run $r/$RUNS: $TARGETS x scp (no -C) at once to the same sshds"
		scp_plain "scp-$r.bin"
		verify "scp-$r.bin" s
		rm -f "$W"/out/s*/"scp-$r.bin"
		scp_t+=("$t")
		log "  $t s"
	fi

	log "run $r/$RUNS: cp x $TARGETS, one after another"
	baseline
	log "  ${base_t[-1]} s (${base_sync_t[-1]} s with fsync)"
done

printf '\n%d MiB file to %d targets (median of %d runs; aggregate = %d MiB / wall time)\n\n' "$SIZE_MIB" "$TARGETS" "$RUNS" "$TOTAL_MIB"
printf '| tool | targets | wall time (s) | aggregate MiB/s | runs (s) |\n|---|---|---|---|---|\n'
row() { local name=$1 tg=$2; shift 2; local m; m=$(median "$@"); printf '| %s | %s | %.3f | %s | %s |\n' "$name" "$tg" "$m" "$(mibs "$m")" "$*"; }
row "felix cp --transport agent (minions, fsync)" "$TARGETS" "${agent_t[@]}"
row "felix cp --transport ssh (sshd, SFTP, fsync)" "$TARGETS" "${ssh_t[@]}"
row "parallel-scp -p $TARGETS (no fsync)" "$TARGETS" "${pscp_t[@]}"
row "parallel-scp -p $TARGETS, then sync" "$TARGETS" "${pscp_sync_t[@]}"
[ "$SCP" != 1 ] || row "$TARGETS x scp at once, without parallel-scp's -C (no fsync)" "$TARGETS" "${scp_t[@]}"
row "baseline: cp x $TARGETS, sequential (page cache)" "$TARGETS (local)" "${base_t[@]}"
row "baseline: dd conv=fsync x $TARGETS, sequential" "$TARGETS (local)" "${base_sync_t[@]}"
printf '\nmaster peak RSS (VmHWM of a master restarted before each push; highest of %d runs): agent %d MiB, ssh %d MiB\n' \
	"$RUNS" $((agent_hwm / 1024)) $((ssh_hwm / 1024))
printf 'content size x targets would be %d MiB; gRPC chunk (32 KiB) x targets is %d KiB, SFTP write buffer (256 KiB) x targets %d KiB\n' "$TOTAL_MIB" $((32 * TARGETS)) $((256 * TARGETS))
