#!/usr/bin/env bash
# `meson install` into a throwaway DESTDIR puts the bridge's unit in the
# systemd unit directory, pointed at the installed bridge, and the
# environment file, redis.conf, the dashboard and the rules in
# share/shmstat/.
# usage: test_install.sh (env: SHMSTAT_BUILD_ROOT)
set -euo pipefail
build=${SHMSTAT_BUILD_ROOT:?}
dest=$(mktemp -d /tmp/shmstat-install-XXXXXX)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$dest.log" 2>&1 ||
	{ cat "$dest.log"; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"
eval "$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print("prefix=%s sbindir=%s datadir=%s bindir=%s unitdir=%s bridge=%s" % (o["prefix"], o["sbindir"],
      o["datadir"], o["bindir"], o["systemdsystemunitdir"], o["bridge"]))')"
[ -n "$unitdir" ] || unitdir=$prefix/lib/systemd/system
case $sbindir in /*) ;; *) sbindir=$prefix/$sbindir ;; esac
case $datadir in /*) ;; *) datadir=$prefix/$datadir ;; esac
case $bindir in /*) ;; *) bindir=$prefix/$bindir ;; esac
fail=0
need() { [ -f "$dest$1" ] || { echo "not installed: $1"; fail=1; }; }
need "$bindir/shmstat"
need "$datadir/shmstat/grafana/shmstat.json"
need "$datadir/shmstat/prometheus/shmstat.rules.yml"
if [ -f "$dest$sbindir/shmstat-bridge" ]; then
	need "$unitdir/shmstat-bridge@.service"
	need "$datadir/shmstat/bridge.env"
	need "$datadir/shmstat/redis.conf"
	grep -qx "ExecStart=$sbindir/shmstat-bridge -n %i --wait-segment" "$dest$unitdir/shmstat-bridge@.service" ||
		{ echo "the unit does not start $sbindir/shmstat-bridge"; fail=1; }
fi
[ $fail -eq 0 ] && echo "meson install: tools, unit, deploy files"
exit $fail
