"""The benchmark runs end to end (a smoke run: its timings are not
judged here; benchmarks are judged by their own runs)."""

import subprocess
import sys


def test_bench_quick_run_prints_the_table():
    p = subprocess.run([sys.executable, "-m", "shmstat.bench", "--quick"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    for row in ("| Counter.inc() |",
                "| prometheus_client multiprocess Counter.inc() |",
                "| redis-py INCR (unix socket) |", "| cache.get() hit",
                "| redis-py GET", "| dict.get()"):
        assert row in p.stdout, p.stdout
