#!/usr/bin/env bash
# make bench-ssh: `true` on N agentless hosts (127.0.0.1 .. 127.0.0.N, one
# local sshd listening on each address) with felix's SSH transport through a
# real master, side by side with parallel-ssh, pdsh -R ssh and clush, all
# against the same sshd. felix is measured cold (a fresh master: new
# connections) and warm (the same master again: pooled connections).
# Then the same hosts through one bastion (127.0.0.254, the same sshd):
# felix with an ssh.jump rule (one connection to the bastion, a tunnel per
# host) vs parallel-ssh with ssh -J (a bastion connection per host).
# Every run's wall time is the median of RUNS runs. All traffic is loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
RUNS=${RUNS:-5}
PORT=${PORT:-22022}
BIN=$PWD/bin
export DEBIAN_FRONTEND=noninteractive
need=()
command -v parallel-ssh >/dev/null || need+=(pssh)
command -v pdsh >/dev/null || need+=(pdsh)
command -v clush >/dev/null || need+=(clustershell)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "missing: ${need[*]}" >&2; exit 1; }
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
make -s build
W=$(mktemp -d /tmp/felix-bench-ssh.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}" ${mpid:-}; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$W/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$W/client_key"
cp "$W/client_key.pub" "$W/authorized_keys"
{
	# One sshd for every 127.0.0.x: sshd takes at most 16 ListenAddress lines.
	echo "ListenAddress 0.0.0.0:$PORT"
	cat <<CFG
HostKey $W/host_key
AuthorizedKeysFile $W/authorized_keys
PermitRootLogin yes
UsePAM no
StrictModes no
PasswordAuthentication no
MaxStartups 2000
MaxSessions 100
PidFile $W/sshd.pid
LogLevel ERROR
CFG
} >"$W/sshd_config"
# root's login shell here may be a bash whose .bashrc costs ~80 ms a session
# (pyenv and the like); every tool would pay it. The sshd runs in a private
# mount namespace that sees /bin/sh as root's shell; the system is untouched.
sed 's#^\(root:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:\).*#\1/bin/sh#' /etc/passwd >"$W/passwd"
unshare -m /bin/sh -c 'mount --bind "$1" /etc/passwd && exec /usr/sbin/sshd -D -e -f "$2"' sh "$W/passwd" "$W/sshd_config" 2>"$W/sshd.log" &
pids+=($!)
hostkey=$(cut -d' ' -f1,2 "$W/host_key.pub")
: >"$W/known_hosts"
: >"$W/hosts"
for i in $(seq 1 "$N"); do
	echo "[127.0.0.$i]:$PORT $hostkey" >>"$W/known_hosts"
	echo "127.0.0.$i" >>"$W/hosts"
done
for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
SSHOPTS=(-i "$W/client_key" -o UserKnownHostsFile="$W/known_hosts" -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 -p "$PORT" -l root)

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }
# median of the wall times of RUNS runs of "$@" (each must succeed)
median() {
	local ts=()
	for _ in $(seq "$RUNS"); do
		local s e
		s=$(now)
		"$@" >/dev/null 2>"$W/err" || { echo "failed: $*" >&2; cat "$W/err" >&2; return 1; }
		e=$(now)
		ts+=("$(secs $((e - s)))")
	done
	printf '%s\n' "${ts[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

# felix: a master whose SSH pool knows the hosts; the CLI adds them.
start_master() {
	rm -rf "$W/m"
	cat >"$W/master.toml" <<CFG
listen = "127.0.0.1:18643"
[exec]
max_parallel = 1000
[ssh]
known_hosts = "$W/known_hosts"
key_files = ["$W/client_key"]
agent = false
max_conns = 1000
connect_timeout = "60s"
$EXTRA
CFG
	"$BIN/master" start --config "$W/master.toml" --data-dir "$W/m" >"$W/master.out" 2>"$W/master.log" &
	mpid=$!
	for _ in $(seq 600); do grep -q '^master fingerprint' "$W/master.out" 2>/dev/null && break; sleep 0.1; done
	export FELIX_MASTER=https://127.0.0.1:18643 FELIX_CONFIG=$W/felix.toml
	export FELIX_MASTER_FINGERPRINT=$(sed -n 's/^master fingerprint: //p' "$W/master.out")
	export FELIX_TOKEN=$(cat "$W/m/admin.token")
}
stop_master() { kill "$mpid"; wait "$mpid" 2>/dev/null || true; }

felix_exec() { "$BIN/felix" exec -t '*' --transport ssh -o json -- true; }
# felix_cold_warm measures felix on the hosts of "$W/hosts.felix" with the
# [ssh] lines in $EXTRA: felix_cold and felix_warm.
felix_cold_warm() {
	start_master
	"$BIN/felix" hosts import "$W/hosts.felix" >/dev/null
	# cold: every run on a fresh master (the inventory is kept, the pool is not)
	local cold=()
	for _ in $(seq "$RUNS"); do
		stop_master
		"$BIN/master" start --config "$W/master.toml" --data-dir "$W/m" >"$W/master.out" 2>>"$W/master.log" &
		mpid=$!
		for _ in $(seq 600); do (exec 3<>/dev/tcp/127.0.0.1/18643) 2>/dev/null && break; sleep 0.1; done
		local s e
		s=$(now); felix_exec >"$W/felix.json" || { echo "felix failed:" >&2; grep -o '"error": *"[^"]*"' "$W/felix.json" | sort | uniq -c | head >&2; return 1; }; e=$(now)
		cold+=("$(secs $((e - s)))")
	done
	felix_cold=$(printf '%s\n' "${cold[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
	felix_warm=$(median felix_exec)
	stop_master
}
EXTRA=""
sed "s/\$/:$PORT/" "$W/hosts" >"$W/hosts.felix"
felix_cold_warm

pssh_t=$(median parallel-ssh -h "$W/hosts" -p "$N" -t 60 -x "${SSHOPTS[*]}" true)
export PDSH_SSH_ARGS_APPEND="${SSHOPTS[*]}"
pdsh_t=$(median pdsh -R ssh -f "$N" -w "^$W/hosts" true)
clush_t=$(median clush -f "$N" -w "$(paste -sd, "$W/hosts")" -o "${SSHOPTS[*]}" true)

printf '\n`true` on %d hosts over SSH (median of %d runs, seconds)\n\n' "$N" "$RUNS"
printf '| tool | wall time |\n|---|---|\n'
printf '| felix, cold (new connections) | %.3f |\n' "$felix_cold"
printf '| felix, warm (pooled connections) | %.3f |\n' "$felix_warm"
printf '| parallel-ssh -p %d | %.3f |\n' "$N" "$pssh_t"
printf '| pdsh -R ssh -f %d | %.3f |\n' "$N" "$pdsh_t"
printf '| clush -f %d | %.3f |\n' "$N" "$clush_t"

# Through one bastion, 127.0.0.254 (the same sshd): felix's hosts are in
# group lab, which an ssh.jump rule sends through it; parallel-ssh runs ssh -J.
echo "[127.0.0.254]:$PORT $hostkey" >>"$W/known_hosts"
EXTRA="jump = [\"group=lab root@127.0.0.254:$PORT\"]"
{ echo "[lab]"; cat "$W/hosts.felix"; } >"$W/hosts.lab"
mv "$W/hosts.lab" "$W/hosts.felix"
felix_cold_warm
# ssh -J runs a second ssh for the jump, which takes its options from -F only.
cat >"$W/ssh_config" <<CFG
Host *
    IdentityFile $W/client_key
    UserKnownHostsFile $W/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
    User root
CFG
pssh_j=$(median parallel-ssh -h "$W/hosts" -p "$N" -t 60 -x "-F $W/ssh_config -p $PORT -J root@127.0.0.254:$PORT" true)
printf '\n`true` on %d hosts through one bastion (median of %d runs, seconds)\n\n' "$N" "$RUNS"
printf '| tool | wall time |\n|---|---|\n'
printf '| felix, cold (one bastion connection, a tunnel per host) | %.3f |\n' "$felix_cold"
printf '| felix, warm (pooled connections) | %.3f |\n' "$felix_warm"
printf '| parallel-ssh -p %d, ssh -J (a bastion connection per host) | %.3f |\n' "$N" "$pssh_j"
