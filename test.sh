#!/usr/bin/env bash
# Install what is missing, build, and run every test twice: in the normal
# build and under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
passed=0
failed=0
for variant in build:false build-sanitize:true; do
	dir=${variant%%:*}
	san=${variant##*:}
	echo "== $dir (sanitize=$san)"
	scripts/build.sh "$dir" -Dsanitize="$san"
	rc=0
	meson test -C "$dir" --print-errorlogs --num-processes 2 || rc=$?
	# One JSON object per test in meson's log.
	log="$dir/meson-logs/testlog.json"
	passed=$((passed + $(grep -c '"result": "OK"' "$log" || true)))
	failed=$((failed + $(grep -vc '"result": "OK"' "$log" || true)))
	[ "$rc" -eq 0 ] || { echo "tests: $passed passed, $failed failed"; exit "$rc"; }
done
echo "tests: $passed passed, $failed failed"
