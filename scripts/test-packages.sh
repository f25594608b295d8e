#!/usr/bin/env bash
# Build the Debian packages from this tree (dpkg-buildpackage -us -uc -b),
# check them with lintian (no errors), unpack them into a throwaway root
# and run shmstat create, incr, list from there. Slow (a full build), so
# .ci/run calls it, not every local test run. Bounded: each step has a
# timeout. Needs dpkg-dev, debhelper, lintian (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=$(mktemp -d /tmp/shmstat-deb-XXXXXX)
seg="debtest$$"
root=$work/root
cleanup() {
	"$root/usr/bin/shmstat" -n "$seg" destroy >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# The tree as it is (committed or not), without build directories.
mkdir "$work/shmstat"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude='./debian/.debhelper' \
	-cf - . | tar -C "$work/shmstat" -xf -
echo "== dpkg-buildpackage -us -uc -b"
(cd "$work/shmstat" && timeout 1200 dpkg-buildpackage -us -uc -b) \
	>"$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
ls "$work"/*.deb
echo "== lintian"
timeout 600 lintian --fail-on error --tag-display-limit 0 "$work"/*.changes

echo "== install into $root"
mkdir "$root"
for d in "$work"/*.deb; do
	dpkg-deb -x "$d" "$root"
done
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
export LD_LIBRARY_PATH="$root/usr/lib/$arch"
sh=$root/usr/bin/shmstat
"$sh" -V
"$sh" -n "$seg" create
[ "$("$sh" -n "$seg" incr pkg:requests 41)" = 41 ]
[ "$("$sh" -n "$seg" incr pkg:requests)" = 42 ]
"$sh" -n "$seg" list | grep -E '^pkg:requests +42 +counter$'
# A program built against libshmstat-dev (pkg-config) and run on
# libshmstat0 counts into the same segment.
cat >"$work/user.c" <<'C'
#include <shmstat.h>
#include <stdio.h>
int main(int argc, char **argv)
{
	shmstat_t *h;
	shmstat_counter_t c;
	(void)argc;
	if (shmstat_open(argv[1], NULL, &h) < 0 ||
	    shmstat_counter_open(h, "pkg:requests", &c) < 0) {
		fprintf(stderr, "%s\n", shmstat_errstr(NULL));
		return 1;
	}
	shmstat_counter_add(c, 8);
	shmstat_close(&h);
	return 0;
}
C
# (libxxhash.pc, which shmstat.pc requires privately, is the system's.)
export PKG_CONFIG_SYSROOT_DIR=$root
export PKG_CONFIG_LIBDIR=$root/usr/lib/$arch/pkgconfig:/usr/lib/$arch/pkgconfig:/usr/share/pkgconfig
# shellcheck disable=SC2046
cc -o "$work/user" "$work/user.c" $(pkg-config --cflags --libs shmstat)
ldd "$work/user" | grep -q "$root/usr/lib/$arch/libshmstat.so.0" ||
	{ echo "the program does not run on the packaged libshmstat0"; exit 1; }
"$work/user" "$seg"
[ "$("$sh" -n "$seg" get pkg:requests)" = 50 ]
"$root/usr/sbin/shmstat-bridge" --help >/dev/null
unit=$root/lib/systemd/system/shmstat-bridge@.service
grep -qx 'ExecStart=/usr/sbin/shmstat-bridge -n %i --wait-segment' "$unit"
[ -f "$root/usr/share/doc/shmstat-bridge/examples/bridge.env" ]
[ -f "$root/usr/share/doc/shmstat-bridge/examples/redis.conf" ]
[ -f "$root/usr/share/shmstat/grafana/shmstat.json" ]
# Installed, not enabled, not started.
ctl=$(dpkg-deb -e "$work"/shmstat-bridge_*.deb "$work/ctl" && cat "$work/ctl/postinst")
if grep -qE 'deb-systemd-helper (--quiet )?enable|deb-systemd-invoke start' <<<"$ctl"; then
	echo "shmstat-bridge's postinst enables or starts the unit"; exit 1
fi
echo "packages: built, lintian clean, installed and run"
