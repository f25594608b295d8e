#!/usr/bin/env bash
# Configure (once) and build a build directory: scripts/build.sh DIR [meson options]
# Quiet when all goes well; on a failure it prints what meson or ninja said.
set -euo pipefail
dir=$1
shift
mkdir -p "$dir"
log="$dir/build-script.log"
if [ -f "$dir/build.ninja" ]; then
	meson configure "$dir" "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
else
	meson setup "$dir" "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
fi
ninja -C "$dir" >"$log" 2>&1 || { cat "$log"; exit 1; }
