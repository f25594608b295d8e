"""Benchmark: shmstat from Python against what Python services use today.

    python3 -m shmstat.bench [--quick] [--repeat N]

One run, side by side: Counter.inc() against prometheus_client's
multiprocess Counter.inc() (PROMETHEUS_MULTIPROC_DIR set, as under gunicorn)
and redis-py INCR on a local redis-server over a unix socket (started here,
in a temporary directory, and stopped); Cache.get() of a hit against
redis-py GET and a dict lookup. Each figure is the median over the repeats
of the time per call, loop included (a bare loop's time is printed too).
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

VALUE = b"x" * 256  # an LLM-style answer of a few sentences


def _per_call_ns(loop, n, repeat):
    """Median ns per call of loop(n) over `repeat` runs (one warm-up)."""
    loop(max(n // 10, 1))
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        loop(n)
        runs.append((time.perf_counter_ns() - t0) / n)
    return statistics.median(runs)


def _calls(fn, *args):
    """A loop of n calls of fn(*args), with the lookups done once."""
    if args:
        def loop(n):
            for _ in range(n):
                fn(*args)
    else:
        def loop(n):
            for _ in range(n):
                fn()
    return loop


class _Redis:
    """A private redis-server on a unix socket in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="shmstat-bench-")
        self.sock = os.path.join(self.dir, "redis.sock")
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed")
        self.proc = subprocess.Popen(
            [exe, "--port", "0", "--unixsocket", self.sock, "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # The socket file appears at bind(), before listen(): wait for
        # an answer to PING, not for the file.
        deadline = time.monotonic() + 10
        while not self._pong():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def _pong(self):
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(1)
                c.connect(self.sock)
                c.sendall(b"PING\r\n")
                return c.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(quick=False, repeat=None, out=sys.stdout):
    repeat = repeat or (3 if quick else 9)
    n_fast = 20_000 if quick else 500_000   # in-process calls
    n_prom = 5_000 if quick else 100_000
    n_net = 500 if quick else 10_000        # round trips to Redis
    # prometheus_client picks its multiprocess value class at import.
    prom_dir = tempfile.mkdtemp(prefix="shmstat-bench-prom-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
    import prometheus_client
    import redis

    import shmstat

    name = "bench-" + uuid.uuid4().hex[:8]
    seg = shmstat.open(name, create=True)
    rds = _Redis()
    try:
        r = redis.Redis(unix_socket_path=rds.sock)
        r.ping()

        def bare_loop(n):
            for _ in range(n):
                pass
        bare = _per_call_ns(bare_loop, n_fast, repeat)

        c = seg.counter("bench:requests")
        shm_inc = _per_call_ns(_calls(c.inc), n_fast, repeat)
        # Every call counted (warm-up included).
        assert c.value == n_fast // 10 + repeat * n_fast, c.value
        pc = prometheus_client.Counter("bench_requests", "requests",
                                       registry=None)
        prom_inc = _per_call_ns(_calls(pc.inc), n_prom, repeat)
        redis_incr = _per_call_ns(_calls(r.incr, "bench:requests"), n_net,
                                  repeat)
        g = seg.gauge("bench:depth")
        shm_gauge = _per_call_ns(_calls(g.set, 3), n_fast, repeat)

        key = "llm:answer:42"
        seg.cache.set(key, VALUE)
        r.set(key, VALUE)
        d = {key: VALUE}
        assert seg.cache.get(key) == VALUE and r.get(key) == VALUE
        shm_get = _per_call_ns(_calls(seg.cache.get, key), n_fast, repeat)
        redis_get = _per_call_ns(_calls(r.get, key), n_net, repeat)
        dict_get = _per_call_ns(_calls(d.get, key), n_fast, repeat)
        shm_set = _per_call_ns(_calls(seg.cache.set, key, VALUE), n_fast // 5,
                               repeat)
        redis_set = _per_call_ns(_calls(r.set, key, VALUE), n_net, repeat)
        r.close()
    finally:
        rds.close()
        seg.close()
        shmstat.unlink(name)
        shutil.rmtree(prom_dir, ignore_errors=True)

    rows = [
        ("Counter.inc()", shm_inc, ""),
        ("prometheus_client multiprocess Counter.inc()", prom_inc,
         f"{prom_inc / shm_inc:.1f}x slower than Counter.inc()"),
        ("redis-py INCR (unix socket)", redis_incr,
         f"{redis_incr / shm_inc:.0f}x slower than Counter.inc()"),
        ("Gauge.set(3)", shm_gauge, ""),
        ("cache.get() hit, 256 B", shm_get, ""),
        ("redis-py GET, 256 B", redis_get,
         f"{redis_get / shm_get:.0f}x slower than cache.get()"),
        ("dict.get(), 256 B", dict_get,
         f"cache.get() is {shm_get / dict_get:.1f}x a dict lookup"),
        ("cache.set(), 256 B", shm_set, ""),
        ("redis-py SET, 256 B", redis_set,
         f"{redis_set / shm_set:.0f}x slower than cache.set()"),
        ("empty loop (included in each)", bare, ""),
    ]
    print(f"shmstat {shmstat.__version__}, Python {sys.version.split()[0]}, "
          f"median of {repeat} runs, ns per call", file=out)
    print("", file=out)
    print("| operation | ns/call | ratio |", file=out)
    print("| --- | ---: | --- |", file=out)
    for label, ns, ratio in rows:
        print(f"| {label} | {ns:,.0f} | {ratio} |", file=out)
    print("", file=out)
    checks = [
        ("Counter.inc() <= 150 ns", shm_inc <= 150),
        (">= 5x faster than prometheus_client multiprocess",
         prom_inc / shm_inc >= 5),
        (">= 100x faster than redis-py INCR", redis_incr / shm_inc >= 100),
    ]
    for label, ok in checks:
        print(f"{'met' if ok else 'NOT MET'}: {label}", file=out)
    return dict(shm_inc=shm_inc, prom_inc=prom_inc, redis_incr=redis_incr,
                shm_get=shm_get, redis_get=redis_get, dict_get=dict_get,
                ok=all(ok for _, ok in checks))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m shmstat.bench",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="few iterations (a smoke run, not a measurement)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs per figure (default 9; 3 with --quick)")
    args = ap.parse_args(argv)
    run(quick=args.quick, repeat=args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
