#!/usr/bin/env bash
# The demo: a prefork master and its workers count filter decisions in a
# shared-memory segment; shmstat shows the live numbers. When the bridge is
# built and redis-server is installed, a private Redis is started on a unix
# socket and the bridge syncs the counters to it; without Redis the demo
# runs on the local segment alone.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
scripts/build.sh build

seg=demo
workers=${WORKERS:-4}
decisions=${DECISIONS:-250000}
shmstat=build/tools/shmstat
export SHMSTAT_NAME=$seg

$shmstat destroy 2>/dev/null || true
$shmstat create
echo
echo "== prefork: $workers workers x $decisions decisions"
build/examples/prefork -w "$workers" -m "$decisions"
echo
echo "== shmstat list -f 'filter_stats:*'"
$shmstat list -f 'filter_stats:*'
echo
echo "== shmstat list -j"
$shmstat list -j
echo
echo "== shmstat info"
$shmstat info
$shmstat destroy
