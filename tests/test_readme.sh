#!/usr/bin/env bash
# README.md's five-minute tour, run as written: every ```sh block between
# "## A five-minute tour" and the next "## " heading, in order, in one
# shell with -e, from the top of the source tree. Only what ties the tour
# to one machine is replaced: the build directory under test for
# $PWD/build, a segment name, an HTTP port and an output file of this run's
# own (so runs in parallel do not meet).
# usage: test_readme.sh (env: SHMSTAT_SOURCE_ROOT, SHMSTAT_BUILD_ROOT)
set -euo pipefail
src=${SHMSTAT_SOURCE_ROOT:?}
build=${SHMSTAT_BUILD_ROOT:?}
for p in redis-server redis-cli curl; do
	command -v $p >/dev/null || { echo "$p not installed: skipped"; exit 77; }
done
[ -x "$build/bridge/shmstat-bridge" ] || { echo "no bridge built: skipped"; exit 77; }
tmp=$(mktemp -d /tmp/shmstat-readme-XXXXXX)
name="readme$$"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
	pkill -P $$ 2>/dev/null || true
	"$build/tools/shmstat" -n "$name" destroy 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

awk '
	/^## / { intour = ($0 ~ /^## A five-minute tour/) }
	intour && /^```sh$/ { inblock = 1; next }
	intour && inblock && /^```$/ { inblock = 0; print ""; next }
	intour && inblock { print }
' "$src/README.md" >"$tmp/tour.sh"
[ "$(grep -c . "$tmp/tour.sh")" -ge 20 ] || { echo "the tour has too few commands"; cat "$tmp/tour.sh"; exit 1; }
for want in 'export PATH=$PWD/build/' 'SHMSTAT_NAME=web' '127.0.0.1:9187' '/tmp/shmstat-web.prom'; do
	grep -qF "$want" "$tmp/tour.sh" || { echo "the tour no longer says $want: update this test"; exit 1; }
done
sed -i -e "s|\$PWD/build/|$build/|g" -e "s|SHMSTAT_NAME=web|SHMSTAT_NAME=$name|" \
	-e "s|127.0.0.1:9187|127.0.0.1:$port|g" -e "s|/tmp/shmstat-web.prom|$tmp/web.prom|g" \
	"$tmp/tour.sh"
unset REDIS_URL REDIS_HOST REDIS_PORT REDIS_DB REDIS_USERNAME REDIS_PASSWORD SHMSTAT_NAME
cd "$src"
rc=0
timeout 120 bash -euo pipefail "$tmp/tour.sh" >"$tmp/out" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
	echo "the tour failed (exit $rc); it ran:"
	cat -n "$tmp/tour.sh"
	echo "--- and said:"
	cat "$tmp/out"
	exit 1
fi
# What the tour shows: live rates, the counters in Redis equal to the
# cluster-wide value, the bridge's metrics, health.
grep -q 'RATE/s' "$tmp/out"
grep -q '^shmstat_bridge_up{segment="'"$name"'"} 1' "$tmp/out"
grep -q "healthy: segment '$name', bridge connected" "$tmp/out"
echo "the README's tour runs as written"
