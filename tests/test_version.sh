#!/usr/bin/env bash
# One version everywhere: meson.build's project() version is what
# `shmstat -V`, shmstat.pc, the man pages and debian/changelog say.
# usage: test_version.sh SHMSTAT VERSION PC_FILE
set -u
src=${SHMSTAT_SOURCE_ROOT:?}
tool=$1 want=$2 pc=$3
fail=0
say() { echo "$*"; fail=1; }
got=$("$tool" -V)
[ "$got" = "shmstat $want" ] || say "shmstat -V: '$got', want 'shmstat $want'"
v=$(sed -n 's/^Version: //p' "$pc")
[ "$v" = "$want" ] || say "$pc: Version '$v', want '$want'"
for m in "$src"/man/*.[0-9]; do
	grep -q "^\.TH .*\"shmstat $want\"" "$m" || say "$m: .TH does not say \"shmstat $want\""
done
# debian/changelog: the upstream part of the top entry's version.
top=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$src/debian/changelog")
up=${top%-*}
up=${up#*:}
[ "$up" = "$want" ] || say "debian/changelog: '$top' is not $want-N"
[ $fail -eq 0 ] && echo "version $want everywhere"
exit $fail
