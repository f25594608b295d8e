#!/usr/bin/env bash
# README.md's "From Python" example, run as written: the ```python block
# under "## From Python", with only the segment name replaced by one of
# this run's own.
# usage: test_readme_python.sh (env: SHMSTAT_SOURCE_ROOT, SHMSTAT_BUILD_ROOT)
set -euo pipefail
src=${SHMSTAT_SOURCE_ROOT:?}
build=${SHMSTAT_BUILD_ROOT:?}
export PYTHONPATH=$build/python PYTHONDONTWRITEBYTECODE=1
/usr/bin/python3 -c 'import shmstat' 2>/dev/null ||
	{ echo "the Python package is not built: skipped"; exit 77; }
tmp=$(mktemp -d /tmp/shmstat-readme-py-XXXXXX)
name="readmepy$$"
trap '"$build/tools/shmstat" -n "$name" destroy 2>/dev/null || true; rm -rf "$tmp"' EXIT
awk '
	/^## / { inpy = ($0 ~ /^## From Python/) }
	inpy && /^```python$/ { inblock = 1; next }
	inpy && inblock && /^```$/ { inblock = 0; next }
	inpy && inblock { print }
' "$src/README.md" >"$tmp/example.py"
grep -qF 'shmstat.open("web", create=True)' "$tmp/example.py" ||
	{ echo "the example no longer opens \"web\": update this test"; cat "$tmp/example.py"; exit 1; }
sed -i "s|shmstat.open(\"web\"|shmstat.open(\"$name\"|" "$tmp/example.py"
/usr/bin/python3 "$tmp/example.py"
# It counted what it says, and the cache holds what fetch computed.
[ "$("$build/tools/shmstat" -n "$name" get filter_stats:ml_confident)" = 6 ]
[ "$("$build/tools/shmstat" -n "$name" cache get llm:42)" = 42 ]
echo "the README's Python example runs"
