# Shared by the bench scripts (sourced, not run): a local apt repository of
# one test package, a master, and a swarm of minions, all on this machine
# and on loopback addresses. The caller sets W (a work directory), BIN and
# the pids array, and removes what these make in its EXIT trap.

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.2f", ns / 1e9 }'; }

# bench_apt_repo PKG LIST: builds PKG 1.0 under $W/repo and makes it apt's
# only source through the list file LIST.
bench_apt_repo() {
	local pkg=$1 list=$2
	mkdir -p "$W/deb/DEBIAN" "$W/repo"
	printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: felix bench <felix@example.invalid>\nDescription: felix bench package\n' "$pkg" >"$W/deb/DEBIAN/control"
	dpkg-deb --root-owner-group --build "$W/deb" "$W/repo/${pkg}_1.0_all.deb" >/dev/null
	(cd "$W/repo" && dpkg-scanpackages . >Packages 2>/dev/null && chmod 644 Packages ./*.deb && chmod 755 .)
	echo "deb [trusted=yes] file:$W/repo ./" >"$list"
	apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
}

# bench_master PORT: starts a master on 127.0.0.1:PORT with its data in
# $W/m and exports the CLI's FELIX_* settings for it.
bench_master() {
	local port=$1
	printf 'listen = "127.0.0.1:%s"\n' "$port" >"$W/master.toml"
	[ -z "${MASTER_EXTRA:-}" ] || printf '%s\n' "$MASTER_EXTRA" >>"$W/master.toml" # extra TOML tables
	"$BIN/master" start --config "$W/master.toml" --data-dir "$W/m" >"$W/master.out" 2>"$W/master.log" &
	pids+=($!)
	for _ in $(seq 300); do grep -q '^master fingerprint' "$W/master.out" 2>/dev/null && break; sleep 0.1; done
	export FELIX_MASTER=https://127.0.0.1:$port FELIX_TOKEN=$(cat "$W/m/admin.token") FELIX_CONFIG=$W/felix.toml
	export FELIX_MASTER_FINGERPRINT=$(sed -n 's/^master fingerprint: //p' "$W/master.out")
}

# bench_swarm HOSTS FIRST_IP: starts HOSTS minions that run commands for
# real (one process, each on its own address from FIRST_IP) and waits for
# all to be accepted and healthy.
bench_swarm() {
	local hosts=$1 first=$2 join
	join=$("$BIN/felix" token join --auto-accept --uses "$hosts" --ttl 1h)
	"$BIN/minion" swarm --count "$hosts" --base-dir "$W/swarm" --first-ip "$first" --port 4510 --master "$FELIX_MASTER" \
		--join-token "$join" --master-fingerprint "$FELIX_MASTER_FINGERPRINT" --exec fork >"$W/swarm.out" 2>"$W/swarm.log" &
	pids+=($!)
	for _ in $(seq 600); do
		[ "$("$BIN/felix" minions -o json | jq '[.minions[] | select(.state == "accepted" and .health == "ok")] | length')" -eq "$hosts" ] && break
		sleep 1
	done
}
