"""The filter-stats service of examples/python/app.py for FastAPI, in the
seeds' own stack (FastAPI under uvicorn workers):

    gunicorn -w 4 -k uvicorn.workers.UvicornWorker --preload \\
        -b 127.0.0.1:8000 fastapi_app:app

The LLM-style answer is an async function cached with @shmstat.cached:
one worker computes it, the others wait without blocking their loop.

GET /filter?text=...           classify and count
GET /llm?prompt=...            cached answer
GET /logging/filter-stats      the seeds' live-stats dict (also /filter-stats)
GET /stats /metrics /health    from shmstat.starlette.router
"""

import asyncio
import os
import random

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

import shmstat
from shmstat.starlette import router

SEGMENT = os.environ.get("SHMSTAT_SEGMENT", "filter-stats")
LLM_TTL = float(os.environ.get("LLM_TTL", "3600"))
LLM_LATENCY = float(os.environ.get("LLM_LATENCY", "0.05"))
MAX_WORKERS = int(os.environ.get("SHMSTAT_MAX_WORKERS", "0")) or None

seg = shmstat.open(SEGMENT, create=True, max_workers=MAX_WORKERS)
DECISIONS = ("ml_confident", "llm_fallback", "rejected")
total = seg.counter("filter_stats:total_samples")
decided = {d: seg.counter(f"filter_stats:{d}") for d in DECISIONS}
llm_computed = seg.counter("llm:computed")
processes = seg.counter("http:worker_processes")
_serving_pid = None

app = FastAPI()
app.include_router(router(seg, pattern="filter_stats:*"))


@shmstat.cached(seg, ttl=LLM_TTL, prefix="llm:")
async def llm_answer(prompt):
    llm_computed.inc()
    await asyncio.sleep(LLM_LATENCY)
    return {"prompt": prompt, "answer": prompt[::-1]}


@app.get("/filter", response_class=PlainTextResponse)
async def filter_sample(text: str = ""):
    global _serving_pid
    if _serving_pid != os.getpid():
        _serving_pid = os.getpid()
        processes.inc()
    r = random.random()
    decision = ("ml_confident" if r < 0.7 else
                "llm_fallback" if r < 0.95 else "rejected")
    decided[decision].inc()
    total.inc()
    return f"{decision:<16}\n"


@app.get("/llm")
async def llm(prompt: str = ""):
    return await llm_answer(prompt)


@app.get("/logging/filter-stats")
@app.get("/filter-stats")
def filter_stats():
    return seg.live_stats("filter_stats:*")
