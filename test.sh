#!/usr/bin/env bash
# Install what is missing, build, and run every test three times: in the
# normal build (gcc), under AddressSanitizer + UndefinedBehaviorSanitizer,
# and in an optimized clang build (other warnings, other optimizer).
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
passed=0
failed=0
pytests=0
run() { # dir compiler meson-options...
	local dir=$1 cc=$2
	shift 2
	echo "== $dir ($cc $*)"
	CC=$cc scripts/build.sh "$dir" "$@"
	local rc=0
	meson test -C "$dir" --print-errorlogs --num-processes 2 || rc=$?
	# One JSON object per test in meson's log.
	local log="$dir/meson-logs/testlog.json"
	passed=$((passed + $(grep -c '"result": "OK"' "$log" || true)))
	failed=$((failed + $(grep -vc '"result": "OK"' "$log" || true)))
	# The python tests are pytest runs; their cases, for the summary.
	pytests=$((pytests + $(grep -ho '[0-9]* passed[,a-z0-9 ]* in [0-9.]*s' "$dir/meson-logs/testlog.txt" | awk '{ s += $1 } END { print s + 0 }')))
	if [ "$rc" -ne 0 ]; then
		echo "pytest cases passed: $pytests"
		echo "tests: $passed passed, $failed failed"
		exit "$rc"
	fi
}
run build gcc -Dsanitize=false
run build-sanitize gcc -Dsanitize=true
run build-clang clang -Dsanitize=false --buildtype=release
echo "pytest cases passed: $pytests"
echo "tests: $passed passed, $failed failed"
