"""Starlette / FastAPI routes serving a segment's /stats, /metrics and
/health.

    from shmstat.starlette import router
    app.include_router(router(seg))            # FastAPI
    app = Starlette(routes=routes(seg))        # Starlette
"""

from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, Router


def routes(seg, *, pattern=None, require_bridge=False):
    """The three routes (plain functions: Starlette runs them in its
    threadpool, and the segment's calls release the GIL while they wait).
    GET /stats: seg.live_stats(pattern) (?pattern= overrides);
    GET /metrics: the Prometheus exposition; GET /health: seg.health(),
    200 when healthy or degraded, 503 when broken. require_bridge: as for
    shmstat.flask.blueprint() (default False: a failing bridge is said in
    checks.bridge, not made a degraded verdict)."""

    def stats(request):
        return JSONResponse(
            seg.live_stats(request.query_params.get("pattern", pattern)))

    def metrics(request):
        return PlainTextResponse(seg.prometheus(),
                                 media_type="text/plain; version=0.0.4")

    def health(request):
        h = seg.health(require_bridge=require_bridge)
        return JSONResponse(h, status_code=503
                            if h["status"] == "broken" else 200)

    return [Route("/stats", stats, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/health", health, methods=["GET"])]


def router(seg, *, pattern=None, require_bridge=False):
    """A fastapi.APIRouter with routes() when FastAPI is installed (for
    app.include_router), else a starlette Router (for Mount)."""
    r = routes(seg, pattern=pattern, require_bridge=require_bridge)
    try:
        from fastapi import APIRouter
    except ImportError:
        return Router(routes=r)
    return APIRouter(routes=r)
