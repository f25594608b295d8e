#!/usr/bin/env bash
# The man pages say what --help says: every command and every long option
# the programs' help texts name is in the matching man page.
# usage: test_man.sh SHMSTAT [SHMSTAT_BRIDGE] (man pages from $SOURCE/man)
set -u
src=${SHMSTAT_SOURCE_ROOT:?}
fail=0
check() { # man-page help-text...
	local page=$1 text=$2 word
	# troff writes '-' as '\-'; compare on the plain text.
	local plain
	plain=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$page")
	for word in $(grep -oE -- '--[a-z][a-z-]+' <<<"$text" | sort -u); do
		grep -qF -- "$word" <<<"$plain" || { echo "$page: no $word"; fail=1; }
	done
}
tool=$1
help=$("$tool" --help)
cmds=$(sed -n '/^commands:/,/^$/p' <<<"$help" | grep -oE '^  [a-z]+' | tr -d ' ')
all=$help
for c in $cmds; do
	all+=$'\n'$("$tool" "$c" --help)
	plain=$(sed 's/\\-/-/g; s/\\f[BIRP]//g' "$src/man/shmstat.1")
	grep -qE "^\.B $c( |$)|^\.B cache $c" <<<"$plain" || { echo "shmstat.1: no command $c"; fail=1; }
done
check "$src/man/shmstat.1" "$all"
if [ $# -ge 2 ]; then
	check "$src/man/shmstat-bridge.8" "$("$2" --help)"
fi
[ $fail -eq 0 ] && echo "man pages match --help"
exit $fail
