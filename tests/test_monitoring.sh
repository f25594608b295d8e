#!/usr/bin/env bash
# deploy/prometheus and deploy/grafana: the alert rules pass promtool
# (syntax and their unit tests), every dashboard query is valid PromQL,
# every metric the rules and the dashboard name is one shmstat exports,
# and doc/operating.md describes every panel.
# usage: test_monitoring.sh SHMSTAT (source from $SHMSTAT_SOURCE_ROOT)
set -euo pipefail
src=${SHMSTAT_SOURCE_ROOT:?}
tool=$1
py=/usr/bin/python3
command -v promtool >/dev/null || { echo "promtool not installed"; exit 77; }
tmp=$(mktemp -d)
seg="tmon$$"
trap '"$tool" -n "$seg" destroy 2>/dev/null || true; rm -rf "$tmp"' EXIT

promtool check rules "$src/deploy/prometheus/shmstat.rules.yml"
(cd "$src/deploy/prometheus" && promtool test rules shmstat.rules.test.yml)

# What shmstat exports: the tool's textfile, and the bridge's own /metrics
# families (its push histogram), named in bridge/http.c.
"$tool" -n "$seg" create >/dev/null
"$tool" -n "$seg" incr req:served >/dev/null
"$tool" -n "$seg" list -p -o "$tmp/expo.prom"
{
	sed -n 's/^# TYPE \([a-z_0-9]*\) \(.*\)/\1 \2/p' "$tmp/expo.prom"
	grep -oE 'shmstat_bridge_[a-z_]+' "$src/bridge/http.c" | sed 's/$/ bridge/'
} >"$tmp/families"

$py - "$src" "$tmp" <<'PY'
import json, re, sys
src, tmp = sys.argv[1], sys.argv[2]
fams = {}
for line in open(tmp + "/families"):
    name, kind = line.split()
    fams[name] = kind
def known(m):
    if m in fams:
        return True
    # histogram and summary series
    base = re.sub(r"_(bucket|sum|count)$", "", m)
    return base in fams

d = json.load(open(src + "/deploy/grafana/shmstat.json"))
doc = open(src + "/doc/operating.md").read()
exprs, bad = [], []
for p in d["panels"]:
    assert p.get("title") and p.get("description"), p
    if p["title"] not in doc:
        bad.append("doc/operating.md does not describe panel '%s'" % p["title"])
    for t in p["targets"]:
        e = t["expr"]
        e = e.replace("$__rate_interval", "5m")
        e = re.sub(r"\$[a-z]+", ".*", e)
        exprs.append(e)
        for m in re.findall(r"\bshmstat_[a-z0-9_]+", e):
            if not known(m):
                bad.append("panel '%s' uses %s, which shmstat does not export" % (p["title"], m))
rules = open(src + "/deploy/prometheus/shmstat.rules.yml").read()
for m in set(re.findall(r"\bshmstat_[a-z0-9_]+(?=[{ )\[]|$)", rules, re.M)):
    if not known(m):
        bad.append("rules use %s, which shmstat does not export" % m)
# The queries as recording rules, for promtool to parse.
with open(tmp + "/queries.yml", "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, e in enumerate(exprs):
        f.write("      - record: dashboard:q%d\n        expr: %s\n" % (i, json.dumps(e)))
if bad:
    print("\n".join(bad))
    sys.exit(1)
print("%d panels, %d queries, all metrics known" % (len(d["panels"]), len(exprs)))
PY
promtool check rules "$tmp/queries.yml"
