"""A Flask blueprint serving a segment's /stats, /metrics and /health.

    from shmstat.flask import blueprint
    app.register_blueprint(blueprint(seg, pattern="filter_stats:*"))
"""

import flask as _flask


def blueprint(seg, *, pattern=None, require_bridge=False, name="shmstat",
              url_prefix=None):
    """GET /stats: seg.live_stats(pattern) as JSON (?pattern= overrides);
    GET /metrics: the Prometheus exposition; GET /health: seg.health() as
    JSON, 200 when healthy or degraded, 503 when broken. require_bridge:
    whether a missing or failing shmstat-bridge makes the health degraded
    (default False, unlike Segment.health(): a worker whose Redis is down
    still counts exactly, so a load balancer need not take it out; the
    bridge's state is in checks.bridge either way)."""
    bp = _flask.Blueprint(name, __name__, url_prefix=url_prefix)

    @bp.get("/stats")
    def stats():
        return _flask.jsonify(
            seg.live_stats(_flask.request.args.get("pattern", pattern)))

    @bp.get("/metrics")
    def metrics():
        return _flask.Response(seg.prometheus(),
                               content_type="text/plain; version=0.0.4; "
                                            "charset=utf-8")

    @bp.get("/health")
    def health():
        h = seg.health(require_bridge=require_bridge)
        return _flask.jsonify(h), 503 if h["status"] == "broken" else 200

    return bp
