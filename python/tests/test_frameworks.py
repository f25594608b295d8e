"""The Flask blueprint and the Starlette / FastAPI routes."""

import pytest
from prometheus_client.parser import text_string_to_metric_families


def _check(status, body_json, metrics_text, health_status, seg):
    assert status == 200
    assert body_json["total"] == 5
    assert body_json["source"] == "local"
    fams = {f.name: f for f in text_string_to_metric_families(metrics_text)}
    # "req:total" exports as shmstat_req_total (one _total); the parser
    # names a counter family without its _total.
    assert fams["shmstat_req"].samples[0].value == 5
    assert health_status == 200


def test_flask_blueprint_serves_stats_metrics_and_health(seg):
    flask = pytest.importorskip("flask")
    from shmstat.flask import blueprint
    seg.counter("req:total").inc(5)
    app = flask.Flask("t")
    app.register_blueprint(blueprint(seg, pattern="req:*"))
    client = app.test_client()
    r = client.get("/stats")
    m = client.get("/metrics")
    h = client.get("/health")
    assert m.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    _check(r.status_code, r.get_json(), m.get_data(as_text=True),
           h.status_code, seg)
    assert h.get_json()["status"] == "healthy"
    assert client.get("/stats?pattern=nomatch*").get_json().get("total") \
        is None


def test_flask_blueprint_under_a_prefix(seg):
    flask = pytest.importorskip("flask")
    from shmstat.flask import blueprint
    app = flask.Flask("t")
    app.register_blueprint(blueprint(seg, url_prefix="/internal"))
    assert app.test_client().get("/internal/health").status_code == 200


def test_starlette_routes_serve_stats_metrics_and_health(seg):
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.testclient import TestClient
    from shmstat.starlette import routes
    seg.counter("req:total").inc(5)
    with TestClient(Starlette(routes=routes(seg, pattern="req:*"))) as c:
        r, m, h = c.get("/stats"), c.get("/metrics"), c.get("/health")
    _check(r.status_code, r.json(), m.text, h.status_code, seg)


def test_fastapi_include_router_serves_stats_metrics_and_health(seg):
    fastapi = pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient
    from shmstat.starlette import router
    import shmstat
    seg.counter("req:total").inc(5)
    app = fastapi.FastAPI()
    app.include_router(router(seg, pattern="req:*"), prefix="/ops")

    calls = []

    @shmstat.cached(seg, ttl=60.0)
    async def answer(q):
        calls.append(q)
        return {"q": q}

    @app.get("/answer")
    async def get_answer(q: str):
        return await answer(q)

    with TestClient(app) as c:
        r, m, h = c.get("/ops/stats"), c.get("/ops/metrics"), \
            c.get("/ops/health")
        assert c.get("/answer?q=x").json() == {"q": "x"}
        assert c.get("/answer?q=x").json() == {"q": "x"}
    _check(r.status_code, r.json(), m.text, h.status_code, seg)
    assert calls == ["x"]
