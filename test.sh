#!/usr/bin/env bash
# Install what is missing, build, and run every test twice: in the normal
# build and under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh
for variant in build:false build-sanitize:true; do
	dir=${variant%%:*}
	san=${variant##*:}
	echo "== $dir (sanitize=$san)"
	scripts/build.sh "$dir" -Dsanitize="$san"
	meson test -C "$dir" --print-errorlogs --num-processes 2
done
