#!/usr/bin/env bash
# The demo: a prefork master and its workers count filter decisions in a
# shared-memory segment while `shmstat list -w` shows them live. When the
# bridge is built and redis-server is installed, a private Redis is started
# on a unix socket and shmstat-bridge syncs the counters to it; without
# Redis the demo runs on the local segment alone.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
scripts/build.sh build

# A segment of its own, made here and removed at the end: never one the
# host already has (nor the one $SHMSTAT_NAME names).
export SHMSTAT_NAME=demo-$$
workers=${WORKERS:-4}
seconds=${SECONDS_TO_RUN:-4}
shmstat=build/tools/shmstat
bridge=build/bridge/shmstat-bridge
tmp=$(mktemp -d /tmp/shmstat-demo-XXXXXX)
redis_pid= bridge_pid= workers_pid= created=

cleanup() {
	[ -n "$workers_pid" ] && kill "$workers_pid" 2>/dev/null
	[ -n "$bridge_pid" ] && kill "$bridge_pid" 2>/dev/null && wait "$bridge_pid" 2>/dev/null
	[ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
	[ -n "$created" ] && $shmstat destroy 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "shmstat create (segment $SHMSTAT_NAME)"
$shmstat create
created=1

redis=
if command -v redis-server >/dev/null && [ -x "$bridge" ]; then
	step "a private Redis on $tmp/redis.sock, and shmstat-bridge"
	redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
		--dir "$tmp" --save '' --appendonly no --logfile "$tmp/redis.log" &
	redis_pid=$!
	for _ in $(seq 100); do
		[ -S "$tmp/redis.sock" ] && break
		sleep 0.05
	done
	"$bridge" -u "unix://$tmp/redis.sock" -i 200ms --http 127.0.0.1:0 \
		--pidfile "$tmp/bridge.pid" 2>"$tmp/bridge.log" &
	bridge_pid=$!
	redis="unix://$tmp/redis.sock"
	sleep 0.5
	cat "$tmp/bridge.log"
else
	step "no redis-server or bridge here: the demo runs on the local segment"
fi

step "prefork: $workers workers deciding for $seconds s; shmstat list -w shows them"
build/examples/prefork -w "$workers" -d "$seconds" >"$tmp/prefork.out" &
workers_pid=$!
$shmstat list -w 1 -c "$((seconds + 1))" -f 'filter_stats:*'
wait "$workers_pid"
workers_pid=
cat "$tmp/prefork.out"

if [ -n "$redis" ]; then
	# Wait (bounded) until the bridge has pushed what the workers did.
	for _ in $(seq 50); do
		$shmstat list -j --global | grep -q '"source": "redis"' && break
		sleep 0.1
	done
	sleep 0.5
	step "the same numbers in Redis (redis-cli GET), and as the cluster sees them"
	for k in total_samples ml_confident llm_fallback rejected; do
		printf '%-28s %s\n' "filter_stats:$k" \
			"$(redis-cli -s "$tmp/redis.sock" GET "filter_stats:$k")"
	done
	echo "shmstat get --global filter_stats:total_samples: $($shmstat get --global filter_stats:total_samples)"
fi

step "shmstat list -j (the live-stats document)"
$shmstat list -j
step "shmstat list -p -o FILE (Prometheus, replaced atomically for node_exporter)"
$shmstat list -p -o "$tmp/shmstat.prom"
head -6 "$tmp/shmstat.prom"
step "shmstat health"
$shmstat health || true
step "shmstat info"
$shmstat info
step "shmstat ls (the segments of this host)"
$shmstat ls
