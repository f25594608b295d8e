"""A filter-stats service in the style of the seeds: every request is
classified (ml_confident / llm_fallback / rejected), each decision is
counted, and the LLM-style answer is cached for every worker with a TTL.

    gunicorn -w 4 --preload -b 127.0.0.1:8000 app:app           # sync
    gunicorn -w 4 -k gthread --threads 4 -b 127.0.0.1:8000 app:app

No gunicorn hook is needed: workers forked from a master that opened the
segment (--preload) count into rows of their own, and a worker killed or
recycled (--max-requests) loses nothing it counted.

GET /filter?text=...    classify and count; fixed-length text answer
GET /llm?prompt=...     an answer computed once per TTL for all workers
GET /filter-stats       the live-stats dict of filter_stats:*
GET /stats /metrics /health   from shmstat.flask.blueprint
"""

import os
import random
import time

from flask import Flask, request

import shmstat
from shmstat.flask import blueprint

SEGMENT = os.environ.get("SHMSTAT_SEGMENT", "filter-stats")
LLM_TTL = float(os.environ.get("LLM_TTL", "3600"))
LLM_LATENCY = float(os.environ.get("LLM_LATENCY", "0.05"))

# Rows for concurrent processes: the workers, the master (with --preload)
# and whatever inspects the segment; a dead worker's row is reused.
MAX_WORKERS = int(os.environ.get("SHMSTAT_MAX_WORKERS", "0")) or None

seg = shmstat.open(SEGMENT, create=True, max_workers=MAX_WORKERS)
DECISIONS = ("ml_confident", "llm_fallback", "rejected")
total = seg.counter("filter_stats:total_samples")
decided = {d: seg.counter(f"filter_stats:{d}") for d in DECISIONS}
llm_computed = seg.counter("llm:computed")
inflight = seg.gauge("http:inflight")
# Processes that served requests: more than the 4 workers once gunicorn
# recycled some (--max-requests) or replaced a killed one.
processes = seg.counter("http:worker_processes")
_serving_pid = None

app = Flask(__name__)
app.register_blueprint(blueprint(seg, pattern="filter_stats:*"))


def classify(text):
    """A stand-in for the model: confident most of the time."""
    r = random.random()
    if r < 0.7:
        return "ml_confident"
    return "llm_fallback" if r < 0.95 else "rejected"


@shmstat.cached(seg, ttl=LLM_TTL, prefix="llm:")
def llm_answer(prompt):
    """A stand-in for a slow LLM call: one worker computes, all share."""
    llm_computed.inc()
    time.sleep(LLM_LATENCY)
    return {"prompt": prompt, "answer": prompt[::-1]}


@app.get("/filter")
def filter_sample():
    global _serving_pid
    if _serving_pid != os.getpid():
        _serving_pid = os.getpid()
        processes.inc()
    inflight.inc()
    try:
        decision = classify(request.args.get("text", ""))
        decided[decision].inc()
        total.inc()
        return f"{decision:<16}\n", 200, {"Content-Type": "text/plain"}
    finally:
        inflight.dec()


@app.get("/llm")
def llm():
    return llm_answer(request.args.get("prompt", ""))


@app.get("/filter-stats")
def filter_stats():
    return seg.live_stats("filter_stats:*")
