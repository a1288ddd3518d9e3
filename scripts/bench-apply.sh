#!/usr/bin/env bash
# make bench-apply: a 20-resource state (15 templated files, an init script,
# a directory, a package from a local apt repository, an init.d service and
# a command run on change) applied with felix to HOSTS minions — first,
# again (all unchanged) and as a dry run — beside ansible-playbook of the
# equivalent playbook on the same number of hosts over SSH (one local sshd
# reached at HOSTS loopback addresses): first, again, --check --diff.
# Every host is this machine: paths carry the host's name. Root only (it
# installs a package and an init script; both removed at the end).
# Loopback only. HOSTS, PORT, SSH_PORT, SWARM_IP, SSH_NET; PARTS="felix" or
# "ansible" runs one side; ANSIBLE_LOG=FILE keeps ansible-playbook's output;
# FORKS: ansible's forks (default HOSTS); SSH_USER: who ansible logs in as
# (default a uid-0 user made for the run, shell /bin/sh; "root" for root).
set -euo pipefail
cd "$(dirname "$0")/.."
HOSTS=${HOSTS:-50}
PORT=${PORT:-18746}
SSH_PORT=${SSH_PORT:-2246}
SWARM_IP=${SWARM_IP:-127.5.0.1} # the first minion's address
SSH_NET=${SSH_NET:-127.6.0} # the SSH hosts are SSH_NET.1 … SSH_NET.HOSTS
PARTS=${PARTS:-felix ansible} # which side(s) to run
ANSIBLE_LOG=${ANSIBLE_LOG:-} # a file to keep ansible-playbook's output in
[ "$(id -u)" -eq 0 ] || { echo "bench-apply installs a package: run it as root" >&2; exit 1; }
# ansible-core, and python3-apt for its apt module on the managed host (this
# machine; without it every host's apt task tries to install it, and 50 of
# them fight over dpkg's lock). Tools, left installed.
if ! command -v ansible-playbook >/dev/null || ! /usr/bin/python3 -c 'import apt' 2>/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ansible-core python3-apt >/dev/null
fi
for t in dpkg-deb dpkg-scanpackages apt-get jq ssh-keygen ansible-playbook; do
	command -v "$t" >/dev/null || { echo "bench-apply needs $t" >&2; exit 1; }
done
make -s build
BIN=$PWD/bin
W=$(mktemp -d "/tmp/${NAME:-felix-bench-apply}.XXXXXX")
chmod 755 "$W"
NAME=${NAME:-felix-bench-apply} # names the package, service, apt list and output dir
LIST=/etc/apt/sources.list.d/$NAME.list
PKG=$NAME
SVC=$NAME-svc
OUT=/tmp/$NAME
pids=()
made_user=
# stop_svc: ends the service's sleeps (hosts racing to start it can start
# more than one); this run's mark is in their command line (GNU sleep adds
# its arguments up).
MARK=0.$$
stop_svc() { pkill -f "^sleep 2117 $MARK\$" 2>/dev/null || true; }
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	stop_svc
	dpkg --purge "$PKG" >/dev/null 2>&1 || true
	rm -f "$LIST" /var/lib/apt/lists/*"$NAME"* "/etc/init.d/$SVC" "/run/$SVC.pid"
	[ -z "$made_user" ] || userdel -f "$SSH_USER" >/dev/null 2>&1 || true
	rm -rf "$W" "$OUT"
}
trap cleanup EXIT
trap "exit 143" TERM INT # so that a timeout or ^C cleans up too
source scripts/bench-lib.sh

bench_apt_repo "$PKG" "$LIST"
if [[ " $PARTS " == *" felix "* ]]; then
	bench_master "$PORT"
	bench_swarm "$HOSTS" "$SWARM_IP"
fi

# The init script both tools install: a sleep in a session of its own.
cat >"$W/svc" <<EOF
#!/bin/sh
P=/run/$SVC.pid
case "\$1" in
start) setsid sleep 2117 $MARK >/dev/null 2>&1 & echo \$! > \$P;;
stop) [ -f \$P ] && kill "\$(cat \$P)"; rm -f \$P;;
status) [ -f \$P ] && kill -0 "\$(cat \$P)" 2>/dev/null;;
reload|restart) [ -f \$P ] && kill -0 "\$(cat \$P)" 2>/dev/null;;
*) exit 3;;
esac
EOF

# The felix state.
{
	echo "vars:"
	echo "  - match: '*'"
	echo "    vars: {workers: 4, listen_port: 8080}"
	echo "resources:"
	echo "  - {id: pkg, type: pkg, names: [$PKG]}"
	echo "  - {id: dir, type: dir, path: '$OUT/{{ .Host.ID }}', mode: '0755'}"
	for i in $(seq 15); do
		echo "  - id: f$i"
		echo "    type: file"
		echo "    path: $OUT/{{ .Host.ID }}/f$i.conf"
		echo "    template: \"# {{ .Host.ID }} file $i\\nworkers = {{ .Vars.workers }}\\nport = {{ .Vars.listen_port }}\\nos = {{ .Facts.os_name }}\\n\""
		echo "    mode: '0644'"
		echo "    require: [dir]"
	done
	echo "  - id: initscript"
	echo "    type: file"
	echo "    path: /etc/init.d/$SVC"
	echo "    content: $(jq -Rs . <"$W/svc")"
	echo "    mode: '0755'"
	echo "  - {id: svc, type: service, name: $SVC, state: running, require: [initscript]}"
	echo "  - {id: reload, type: cmd, run: 'echo reloaded >> $OUT/{{ .Host.ID }}.reloads', onchange: [f1]}"
} >"$W/state.yaml"
# The run line is not templated: the cmd writes one shared file; fine for a benchmark.
sed -i "s|$OUT/{{ .Host.ID }}.reloads|$OUT/reloads|" "$W/state.yaml"

# The equivalent playbook.
echo 'DPkg::Lock::Timeout "600";' >"$W/apt.conf"
{
	echo "- hosts: all"
	echo "  gather_facts: true"
	echo "  vars: {workers: 4, listen_port: 8080}"
	echo "  tasks:"
	# One dpkg database for all hosts: wait for its lock as felix does.
	echo "    - {name: pkg, apt: {name: $PKG, state: present}, environment: {APT_CONFIG: '$W/apt.conf'}}"
	echo "    - {name: dir, file: {path: '$OUT/{{ inventory_hostname }}', state: directory, mode: '0755'}}"
	for i in $(seq 15); do
		echo "    - name: f$i"
		echo "      copy:"
		echo "        dest: '$OUT/{{ inventory_hostname }}/f$i.conf'"
		echo "        content: \"# {{ inventory_hostname }} file $i\\nworkers = {{ workers }}\\nport = {{ listen_port }}\\nos = {{ ansible_distribution }}\\n\""
		echo "        mode: '0644'"
		[ "$i" = 1 ] && echo "      notify: reload"
	done
	echo "    - {name: initscript, copy: {src: '$W/svc', dest: /etc/init.d/$SVC, mode: '0755'}}"
	echo "    - {name: svc, service: {name: $SVC, state: started}}"
	echo "  handlers:"
	echo "    - {name: reload, shell: 'echo reloaded >> $OUT/reloads'}"
} >"$W/play.yml"

# sshds (one per 16 addresses: sshd takes at most 16 ListenAddress lines,
# and 0.0.0.0 would not be loopback only) reached at HOSTS loopback
# addresses with one host key, and ansible's inventory.
ssh-keygen -q -t ed25519 -N '' -f "$W/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$W/client"
mkdir -p /run/sshd
# ansible logs in as a uid-0 user of the bench's own with /bin/sh and an
# empty home, as on a fresh server: a root whose .bashrc does work (pyenv
# init on this machine: seconds per ssh command, several per task) would
# measure the shell, not ansible.
SSH_USER=${SSH_USER:-fxbench$$}
if [ "$SSH_USER" != root ]; then
	useradd -o -u 0 -g 0 -M -d "$W/home" -s /bin/sh -p '*' "$SSH_USER" # '*': no password, not locked (sshd refuses a locked one)
	made_user=1
fi
for first in $(seq 1 16 "$HOSTS"); do
	{
		echo "Port $SSH_PORT"
		for i in $(seq "$first" $((first + 15 < HOSTS ? first + 15 : HOSTS))); do echo "ListenAddress $SSH_NET.$i"; done
		echo "HostKey $W/hostkey"
		echo "AuthorizedKeysFile $W/client.pub"
		echo "PidFile $W/sshd$first.pid"
		echo "PermitRootLogin yes"
		echo "StrictModes no"
		echo "UsePAM no"
		echo "MaxStartups 200"
		echo "MaxSessions 100"
		echo "Subsystem sftp internal-sftp" # ansible copies files over sftp
	} >"$W/sshd$first.conf"
	/usr/sbin/sshd -f "$W/sshd$first.conf" -D -e 2>"$W/sshd$first.log" &
	pids+=($!)
done
{
	for i in $(seq "$HOSTS"); do echo "[$SSH_NET.$i]:$SSH_PORT $(cat "$W/hostkey.pub")"; done
} >"$W/known_hosts"
{
	echo "[all]"
	for i in $(seq "$HOSTS"); do echo "a$i ansible_host=$SSH_NET.$i"; done
	echo "[all:vars]"
	echo "ansible_port=$SSH_PORT"
	echo "ansible_user=$SSH_USER"
	echo "ansible_ssh_private_key_file=$W/client"
	echo "ansible_ssh_common_args='-o UserKnownHostsFile=$W/known_hosts -o StrictHostKeyChecking=yes'"
	echo "ansible_python_interpreter=/usr/bin/python3"
} >"$W/inventory"
printf '[defaults]\n' >"$W/ansible.cfg"
export ANSIBLE_PIPELINING=True ANSIBLE_FORKS=${FORKS:-$HOSTS} ANSIBLE_CONFIG=$W/ansible.cfg ANSIBLE_LOCAL_TEMP=$W/ansible-tmp \
	ANSIBLE_REMOTE_TEMP=/tmp/felix-bench-ansible ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=False
sleep 0.5

felix_run() { # felix_run LABEL ARGS...
	local label=$1
	shift
	local s e out ok changed
	s=$(now)
	out=$("$BIN/felix" apply "$W/state.yaml" -t '*' --timeout 10m -o json "$@" 2>/dev/null || true)
	e=$(now)
	ok=$(echo "$out" | jq '.summary.ok // 0')
	changed=$(echo "$out" | jq '[.results[].apply.changed // 0] | add // 0')
	printf '| felix apply %s | %s | %s / %s | %s |\n' "$label" "$(secs $((e - s)))" "$ok" "$HOSTS" "$changed"
}
ansible_run() { # ansible_run LABEL ARGS...
	local label=$1
	shift
	local s e out ok changed
	s=$(now)
	out=$(ansible-playbook -i "$W/inventory" "$W/play.yml" "$@" 2>&1 | tee -a "${ANSIBLE_LOG:-/dev/null}" || true)
	e=$(now)
	ok=$(echo "$out" | grep -cE '^a[0-9]+ +: ok=[0-9]+ +changed=[0-9]+ +unreachable=0 +failed=0' || true)
	[ "$ok" -gt 0 ] || echo "$out" | tail -20 >&2
	changed=$(echo "$out" | sed -n 's/^a[0-9]* *: ok=[0-9]* *changed=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
	printf '| ansible-playbook %s | %s | %s / %s | %s |\n' "$label" "$(secs $((e - s)))" "$ok" "$HOSTS" "$changed"
}

echo
echo "A 20-resource state on $HOSTS hosts of one machine (2 cores), seconds"
echo
echo '| run | wall | hosts ok | resources changed |'
echo '|---|---|---|---|'
if [[ " $PARTS " == *" felix "* ]]; then
	felix_run "(first: installs, writes, starts)"
	felix_run "(again: all unchanged)"
	felix_run "--dry-run" --dry-run
fi
[[ " $PARTS " == *" ansible "* ]] || exit 0
# The same starting point for ansible: nothing of it in place.
stop_svc
dpkg --purge "$PKG" >/dev/null 2>&1 || true
rm -rf "$OUT" "/etc/init.d/$SVC" "/run/$SVC.pid"
ansible_run "(first)"
ansible_run "(again)"
ansible_run "--check --diff" --check --diff
