"""The example services under a real gunicorn on 127.0.0.1: Flask on sync
and gthread workers, --preload and not, FastAPI on uvicorn workers;
workers recycled by --max-requests, one killed with SIGKILL in the middle
of the load (ab), then all replaced by SIGHUP. The counters equal the
requests served, the cached answer is computed once per TTL by all workers
together, and /metrics parses."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import shmstat
from conftest import SOURCE_ROOT, wait_for

EXAMPLE = os.path.join(SOURCE_ROOT, "examples", "python")
AB = shutil.which("ab")
FILTER_REQUESTS = 1000
LLM_REQUESTS = 200


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def _children(ppid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid and fields[0] != "Z":
                kids.append(int(d))
    return kids


def _ab(url, n, c):
    """Run ab (bounded: -s 10 per request, the whole run 90 s)."""
    return subprocess.Popen([AB, "-q", "-r", "-s", "10", "-n", str(n), "-c",
                             str(c), url], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _ab_result(p):
    """ab's figures, and `served`: the answers received whole. Every answer
    of a URL has the same length here, so that is the body bytes received
    over one answer's length (ab's failure counts are no substitute: one
    connection cut by a kill can count as a Receive and a Length failure
    both)."""
    out, _ = p.communicate(timeout=90)
    assert p.returncode == 0, out

    def field(name):
        m = re.search(rf"^{name}:\s+(\d+)", out, re.M)
        return int(m.group(1)) if m else 0
    complete, failed = field("Complete requests"), field("Failed requests")
    non2xx = field("Non-2xx responses")
    doclen, body = field("Document Length"), field("HTML transferred")
    assert doclen > 0, out
    served = body // doclen
    return {"complete": complete, "failed": failed, "non2xx": non2xx,
            "served": served, "broken": complete - served, "out": out}


class Gunicorn:
    def __init__(self, segname, worker_class, preload, module="app"):
        if AB is None:
            pytest.fail("ab (apache2-utils) is not installed: scripts/deps.sh")
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "gunicorn", "--chdir", EXAMPLE,
                "-b", f"127.0.0.1:{self.port}", "-w", "4",
                "--timeout", "30", "--graceful-timeout", "5",
                "--log-level", "warning"]
        # Uvicorn's worker, recycling itself, closes the connections it
        # accepted and has not read yet (uvicorn's Server.shutdown): those
        # requests fail in ab whatever the application does, so that
        # configuration is not recycled.
        if worker_class != "uvicorn":
            args += ["--max-requests", "100", "--max-requests-jitter", "30"]
        if worker_class == "gthread":
            args += ["-k", "gthread", "--threads", "4"]
        elif worker_class == "uvicorn":
            args += ["-k", "uvicorn.workers.UvicornWorker"]
        if preload:
            args += ["--preload"]
        # 16 rows: during a SIGHUP 4 old and 4 new workers live at once,
        # with the master and this test; recycled and killed workers'
        # rows are reused. (With fewer, a new worker that finds no free
        # row counts into a private fallback the segment never sees: the
        # engine's "rows running out" gap; row_overflows shows it.)
        # gthread: 64, room for a row per counting thread should the
        # engine give threads rows of their own.
        self.max_workers = 64 if worker_class == "gthread" else 16
        env = dict(os.environ, SHMSTAT_SEGMENT=segname, LLM_TTL="3600",
                   LLM_LATENCY="0.05",
                   SHMSTAT_MAX_WORKERS=str(self.max_workers))
        self.proc = subprocess.Popen(args + [f"{module}:app"], env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        if not wait_for(self._up, timeout=30, step=0.05):
            self.stop()
            pytest.fail("gunicorn did not answer within 30 s: " +
                        self.proc.stderr.read()[-2000:])

    def _up(self):
        if self.proc.poll() is not None:
            return True
        try:
            return _get(self.base + "/health", 1.0)[0] == 200
        except OSError:
            return False

    def workers(self):
        return _children(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc.stderr.close()


@pytest.mark.parametrize("worker_class,preload,module", [
    ("sync", False, "app"), ("sync", True, "app"), ("gthread", False, "app"),
    ("gthread", True, "app"), ("uvicorn", True, "fastapi_app")])
def test_gunicorn_counts_every_request_and_computes_once_per_ttl(
        segname, worker_class, preload, module):
    srv = Gunicorn(segname, worker_class, preload, module)
    try:
        seg = shmstat.open(segname)
        total = seg.counter("filter_stats:total_samples")
        computed = seg.counter("llm:computed")

        # Decisions under load; one worker gets SIGKILL in the middle.
        ab = _ab(srv.base + "/filter?text=sample", FILTER_REQUESTS, 8)
        assert wait_for(lambda: total.value >= FILTER_REQUESTS // 3 or
                        ab.poll() is not None, timeout=60)
        assert ab.poll() is None, "the load ended before the kill"
        victims = srv.workers()
        assert victims, "no gunicorn worker found"
        os.kill(victims[0], signal.SIGKILL)
        r = _ab_result(ab)
        n = total.value
        # Nothing counted is lost (the dead worker's row is adopted) and
        # nothing is counted twice: the counter is the requests served,
        # plus at most the ones the kill cut off after they were counted.
        assert r["served"] <= n <= r["served"] + r["broken"], r
        assert r["broken"] <= 8, r  # at most ab's concurrency
        assert r["non2xx"] == 0, r
        v = seg.values("filter_stats:*")
        assert sum(v[f"filter_stats:{d}"] for d in
                   ("ml_confident", "llm_fallback", "rejected")) == n
        # Workers were recycled: no lifetime serves more than 130 requests
        # (--max-requests 100 + jitter 30), so 1000 need 8 or more.
        if worker_class != "uvicorn":
            assert seg.counter("http:worker_processes").value >= 8
        # The killed worker was replaced.
        assert wait_for(lambda: victims[0] not in srv.workers() and
                        len(srv.workers()) == 4, timeout=30)
        print(f"{worker_class} preload={preload}: counted {n}, served "
              f"{r['served']}, cut off by the kill {r['broken']}")

        # The cached answer: one computation for all workers and threads.
        llm = srv.base + "/llm?prompt=hello"
        r1 = _ab_result(_ab(llm, LLM_REQUESTS, 16))
        assert r1["served"] == LLM_REQUESTS and r1["failed"] == 0, r1
        assert computed.value == 1
        # Its TTL runs out: the next load computes it once more.
        keys = seg.cache.keys("llm:*")
        assert len(keys) == 1, keys
        assert seg.cache.expire(keys[0], 0.05)
        assert wait_for(lambda: not seg.cache.exists(keys[0]))
        r2 = _ab_result(_ab(llm, LLM_REQUESTS, 16))
        assert r2["served"] == LLM_REQUESTS and r2["failed"] == 0, r2
        assert computed.value == 2
        status, body = _get(llm)
        assert status == 200 and '"answer":"olleh"' in body.replace(" ", "")

        # /metrics parses and agrees; so do /filter-stats and /health.
        status, text = _get(srv.base + "/metrics")
        assert status == 200
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        assert fams["shmstat_filter_stats_total_samples"].samples[0].value \
            == n
        status, body = _get(srv.base + "/filter-stats")
        assert status == 200 and f'"total_samples":{n}' in \
            body.replace(" ", "")
        assert _get(srv.base + "/health")[0] == 200

        # SIGHUP: gunicorn replaces every worker; what they counted stays,
        # and the new ones count on top.
        before = set(srv.workers())
        os.kill(srv.proc.pid, signal.SIGHUP)
        assert wait_for(lambda: len(set(srv.workers()) - before) == 4 and
                        not set(srv.workers()) & before, timeout=30)
        assert wait_for(srv._up, timeout=30, step=0.05)
        assert seg.info()["row_overflows"] == 0
        base = total.value
        r3 = _ab_result(_ab(srv.base + "/filter?text=sample", 200, 8))
        assert r3["served"] == 200 and r3["failed"] == 0, r3
        assert total.value == base + 200
        info = seg.info()
        assert info["max_workers"] == srv.max_workers
        assert info["row_overflows"] == 0
        assert seg.cache.stats()["errors"] == 0
        seg.close()
    finally:
        srv.stop()
