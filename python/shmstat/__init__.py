"""shmstat: counters, gauges and a TTL cache in shared memory, for every
process of a host at once (gunicorn, uvicorn, Flask, FastAPI workers).

    import shmstat
    seg = shmstat.open("web", create=True)
    c = seg.counter("filter_stats:ml_confident")
    c.inc(); c.inc(5); c.value
    seg.gauge("queue:depth").set(3)
    seg.cache.set("user:1", b"...", ttl=60.0)
    seg.cache.get("user:1")                       # bytes or None
    seg.cache.fetch("llm:42", compute, ttl=3600.0)

    @shmstat.cached(seg, ttl=300.0)
    def answer(prompt): ...

    seg.live_stats("filter_stats:*"); seg.prometheus(); seg.health()

Counts are exact across processes and threads with no hooks: a process
forked from one that opened the segment (gunicorn --preload) counts into
a row of its own, and a worker killed with SIGKILL loses nothing it
counted. Values are bytes; str keys and names are UTF-8. Errors raise
subclasses of shmstat.Error carrying the library's reason.
"""

import functools as _functools
import inspect as _inspect
import json as _json
import time as _time
import math as _math
import os as _os

from . import _shmstat
from ._shmstat import Counter, Gauge, strerror, unlink

__version__ = _shmstat.__version__

__all__ = [
    "open", "unlink", "cached", "Segment", "Cache", "Counter", "Gauge",
    "Histogram", "labelled", "DEFAULT_BUCKETS", "exponential_buckets",
    "Error", "InvalidArgument", "NotFound", "Exists", "Full", "Busy",
    "TooBig", "WrongKind", "Corrupt", "PermissionDenied", "ReadOnly",
    "NotSupported",
    "OutOfMemory", "SystemCallError", "strerror",
]


# ------------------------------------------------------------------ errors

class Error(Exception):
    """A failure reported by libshmstat.

    code: the library's negative SHMSTAT_E* code; name: its name
    ("EFULL"); reason: the library's human-readable reason (also str(e)).
    """

    def __init__(self, code=None, reason=None):
        super().__init__(code, reason)
        self.code = code
        self.name = _CODE_NAMES.get(code, "EUNKNOWN")
        self.reason = reason if reason is not None else (
            strerror(code) if code is not None else "")

    def __str__(self):
        return self.reason


class InvalidArgument(Error, ValueError):
    """EINVAL, ENAME: a bad name, key, size or option."""


class NotFound(Error, LookupError):
    """ENOTFOUND, ENOENT: no such entry, counter or segment."""


class Exists(Error):
    """EEXIST (the segment, with exclusive=True) or a key that exists."""


class Full(Error):
    """EFULL, ENOSPC: a table, the rows or /dev/shm is full."""


class Busy(Error):
    """EBUSY, ELEASE: a lock or a lease was not had within the bound."""


class TooBig(Error, ValueError):
    """ETOOBIG: a value above the cache's maximum."""


class WrongKind(Error, TypeError):
    """EKIND: the name exists with another kind (counter vs gauge)."""


class Corrupt(Error):
    """ECORRUPT, ETRUNC, EMAGIC, EVERSION, EINIT: not a usable segment."""


class PermissionDenied(Error):
    """EPERM."""


class ReadOnly(PermissionDenied):
    """ERDONLY: a write through a segment opened with readonly=True."""


class NotSupported(Error):
    """ENOTSUP."""


class OutOfMemory(Error, MemoryError):
    """ENOMEM."""


class SystemCallError(Error, OSError):
    """ESYS: a system call failed."""


_ERRORS = _shmstat.ERRORS  # {"EFULL": -12, ...} from the library's table
_CODE_NAMES = {v: k for k, v in _ERRORS.items()}
_CLASSES = {
    "EINVAL": InvalidArgument, "ENAME": InvalidArgument,
    "ENOENT": NotFound, "ENOTFOUND": NotFound,
    "EEXIST": Exists, "EEXISTS": Exists, "EKEYEXISTS": Exists,
    "ENOMEM": OutOfMemory, "ENOSPC": Full, "EFULL": Full,
    "ETRUNC": Corrupt, "EMAGIC": Corrupt, "EVERSION": Corrupt,
    "ECORRUPT": Corrupt, "EINIT": Corrupt,
    "EKIND": WrongKind, "ETOOBIG": TooBig,
    "EBUSY": Busy, "ELEASE": Busy,
    "EPERM": PermissionDenied, "ERDONLY": ReadOnly, "ESYS": SystemCallError,
    "ENOTSUP": NotSupported,
}
_shmstat._set_errors(Error, {code: _CLASSES.get(name, Error)
                             for name, code in _ERRORS.items()})

_K = _shmstat.CONSTANTS
KEY_MAX = _K["KEY_MAX"]
NAME_MAX = _K["NAME_MAX"]


def _ms(seconds, what):
    if seconds is None:
        return 0
    if not seconds > 0 or _math.isnan(seconds):
        raise ValueError(f"{what} must be > 0 seconds")
    return min(int(_math.ceil(seconds * 1000.0)), 0xFFFFFFFF)


# ------------------------------------------------------------------- cache

class Cache(_shmstat._Cache):
    """The TTL cache of a segment, shared by every process that opens it.

    Keys are str (UTF-8) or bytes, 1 to 250 bytes; values are bytes; TTLs
    are seconds (float), 0 or None for no expiry. get/set/delete/exists/ttl/
    expire/clear/keys/stats/fetch; see each method's docstring.
    """

    def __init__(self, seg):
        super().__init__(seg)
        self._segment_name = seg.name

    def fetch(self, key, compute, ttl=None, *, lease=10.0, wait=None):
        """The value of key, computed by compute() (returning bytes) when
        missing, by one caller among every process and thread; the others
        wait for it (up to `wait` seconds, default `lease`), or get the
        expired value while it is recomputed: other threads of this
        process too, as other processes do. `lease` bounds how long a
        computing caller may hold the others off. Busy when no value came
        within `wait`. ttl as set() (checked before compute runs).
        compute's exceptions propagate (the lease is released); the
        threads of this process that were waiting for that computation
        get the same exception (compute is not called again by each of
        them); a waiting caller of another process computes again."""
        from ._cached import fetch_sync
        return fetch_sync(self, key, compute, ttl, lease, wait)

    async def afetch(self, key, compute, ttl=None, *, lease=10.0, wait=None):
        """fetch() for asyncio: compute is an async callable returning
        bytes; waiting for another caller never blocks the event loop.
        The coroutines of this loop waiting for one computing coroutine
        get the expired value while there is one, else its result or its
        exception (the same exception object). A waiter cancelled or timed
        out (asyncio.wait_for) is alone in that; when the computing
        coroutine is cancelled, a waiter computes instead."""
        from ._cached import fetch_async
        return await fetch_async(self, key, compute, ttl, lease, wait)

    def __contains__(self, key):
        return self.exists(key)

    def __repr__(self):
        return f"<shmstat.Cache of {self._segment_name!r}>"


# ----------------------------------------------------------------- metrics

def _escape(value):
    return (str(value).replace("\\", "\\\\").replace('"', '\\"')
            .replace("\n", "\\n"))


def labelled(name, **labels):
    """The name of a metric with labels, in canonical form:
    labelled("http_requests_total", route="/", code="200") is
    'http_requests_total{code="200",route="/"}' (keys sorted, values
    escaped as in the Prometheus text format)."""
    if not labels:
        return name
    return name + "{" + ",".join(
        f'{k}="{_escape(labels[k])}"' for k in sorted(labels)) + "}"


#: prometheus_client's default buckets: request latency in seconds.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
                   1.0, 2.5, 5.0, 7.5, 10.0)


def exponential_buckets(start, factor, count):
    """start, start*factor, ... (count bounds), as Prometheus'
    ExponentialBuckets."""
    if not (start > 0 and factor > 1 and 1 <= count <= 32):
        raise InvalidArgument(reason="exponential buckets need start > 0, "
                              "factor > 1 and 1 to 32 buckets")
    return tuple(start * factor ** i for i in range(count))


class _Timer:
    """Histogram.time(): a context manager and a decorator."""

    __slots__ = ("_observe", "_t0")

    def __init__(self, observe):
        self._observe = observe
        self._t0 = None

    def __enter__(self):
        self._t0 = _time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._observe(_time.perf_counter() - self._t0)

    def __call__(self, fn):
        observe = self._observe

        if _inspect.iscoroutinefunction(fn):
            @_functools.wraps(fn)
            async def timed_async(*a, **kw):
                t0 = _time.perf_counter()
                try:
                    return await fn(*a, **kw)
                finally:
                    observe(_time.perf_counter() - t0)
            return timed_async

        @_functools.wraps(fn)
        def timed(*a, **kw):
            t0 = _time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                observe(_time.perf_counter() - t0)
        return timed


class Histogram:
    """A histogram of a segment: seg.histogram(name, buckets=..., **labels).
    .observe(v) counts v (a number >= 0 and below 9.2e12; anything else is
    a ValueError) into its bucket and the sum, lock-free into this process's
    row; .time() times a block or a function in seconds;
    .value is {"name", "count", "sum", "buckets": [(le, cumulative), ...]};
    .quantile(q) estimates as Prometheus' histogram_quantile()."""

    __slots__ = ("_h", "observe", "name")

    def __init__(self, h):
        self._h = h
        self.observe = h.observe
        self.name = h.name

    def time(self):
        return _Timer(self.observe)

    @property
    def value(self):
        return self._h.value

    def quantile(self, q):
        return self._h.quantile(q)

    def __repr__(self):
        return f"<shmstat.Histogram {self.name!r}>"


# ----------------------------------------------------------------- segment

class Segment(_shmstat._Segment):
    """An open segment. Use shmstat.open(); also a context manager."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cache = Cache(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self.closed else "open"
        return f"<shmstat.Segment {self.name!r} {state}>"

    def counter(self, name, **labels):
        """The counter `name` (with labels: counter("http_requests_total",
        route="/", code="200")), created when missing."""
        return super().counter(labelled(name, **labels) if labels else name)

    def gauge(self, name, **labels):
        """The gauge `name` (with labels as for counter()), created (at 0)
        when missing."""
        return super().gauge(labelled(name, **labels) if labels else name)

    def histogram(self, name, buckets=DEFAULT_BUCKETS, **labels):
        """The histogram `name` with these bucket upper bounds (+Inf is
        implied; default: request latency in seconds), created when
        missing; buckets=None: the existing histogram's bounds."""
        n = labelled(name, **labels) if labels else name
        return Histogram(self._histogram(
            n, None if buckets is None else tuple(buckets)))

    def help(self, name, text=None):
        """Set the help text of name's family (the # HELP line), or, with
        no text, return it (None when none is set)."""
        return self._help(name, text)

    def live_stats(self, pattern=None, *, prefix=None, scope="local"):
        """The live-stats dict of the seeds' filter-stats services:
        {"timestamp": ISO 8601, "source": ..., "segment": name,
        <name>: value, ...} for every counter and gauge matching the glob.
        Names lose `prefix` (default: the literal part of pattern before
        its first wildcard, up to its last ':', '.' or '/', e.g.
        "filter_stats:"), so "filter_stats:*" (and "filter_stats:ml_*")
        gives "total_samples", "ml_confident", ... A name whose short form
        would be "timestamp", "source" or "segment" keeps its full name.
        scope="local" (the default): this host's values, "source" is
        "local". scope="global": the cluster-wide values the bridge last
        read from Redis (None where never read), "source" is "redis" while
        they are fresh, else "stale"."""
        if scope not in ("local", "global"):
            raise ValueError('scope must be "local" or "global"')
        doc = _json.loads(self.export_json_global(pattern) if scope == "global"
                          else self.export_json(pattern))
        if prefix is None:
            prefix = _literal_prefix(pattern)
        out = {"timestamp": doc["timestamp"], "source": doc["source"],
               "segment": doc["segment"]}
        for kind in ("counters", "gauges"):
            for name, value in doc[kind].items():
                short = name[len(prefix):] if (
                    prefix and name.startswith(prefix)) else name
                if not short or short in ("timestamp", "source", "segment"):
                    short = name
                out[short] = value
        return out

    def reset_global(self, pattern, timeout=10.0):
        """Reset, in Redis, every counter whose name matches the glob, for
        every host (what `shmstat reset --global` does): this segment's
        shmstat-bridge runs it, ordered by Redis, and each host's later
        increments count from there. Returns how many keys were reset.
        timeout: seconds to wait for the bridge (None: the default 10).
        NotFound when no bridge runs for this segment (nothing changed);
        Busy when it did not run the reset within timeout seconds (it
        stays queued and runs when the bridge reconnects) or another
        reset request is still pending. seg.reset() is this host's only."""
        if pattern is None:
            raise ValueError("reset_global() needs a pattern ('*': all)")
        return self._reset_global(
            pattern, _ms(10.0 if timeout is None else timeout, "timeout"))

    def prometheus(self, pattern=None):
        """The Prometheus text exposition (format 0.0.4) of the matching
        counters and gauges, then the segment's, cache's and bridge's own
        metrics."""
        return self.export_prometheus(pattern)

    def health(self, require_bridge=True):
        """{"status": "healthy"|"degraded"|"broken", "timestamp",
        "segment", "reason", "checks": {...}}. With require_bridge=False a
        missing or failing shmstat-bridge does not make it degraded (its
        state is still in checks["bridge"], "not required: ...")."""
        return _json.loads(self.health_json(require_bridge=require_bridge))


def _literal_prefix(pattern):
    """The literal part of pattern before its first wildcard, up to its
    last ':', '.' or '/' (so "filter_stats:re*" strips "filter_stats:",
    not "filter_stats:re")."""
    if not pattern:
        return ""
    lit = ""
    for i, ch in enumerate(pattern):
        if ch in "*?[\\":
            lit = pattern[:i]
            break
    cut = max(lit.rfind(":"), lit.rfind("."), lit.rfind("/"))
    return lit[:cut + 1] if cut >= 0 else ""


def open(name, create=False, *, exclusive=False, readonly=False, mode=0o600,
         size=None, max_counters=None, max_workers=None,
         cache_max_value=None, cache_home_pct=None, wait=None):
    """Attach to the segment "/shmstat.<name>", or create it (create=True)
    when it does not exist; exclusive=True fails with Exists when it does.
    readonly=True maps it without write access (a segment another user
    lets you read): reading counters, stats, export and the cache's get,
    exists, ttl and keys work (the cache then marks nothing used and counts
    nothing); every write raises ReadOnly.
    Sizes (bytes) and counts matter only to the creator: size (32 MiB),
    max_counters (4096), max_workers (rows for concurrent processes, 128),
    cache_max_value (1 MiB); cache_home_pct (default 0, none: the percent
    of the cache's value memory, up to 90, made home blocks, where a hit on
    an entry of at most 128 bytes costs a memory access fewer;
    info()["cache_home_blocks"] says how many, and a share too small for
    any gives a RuntimeWarning); mode (0o600); wait: seconds to wait for a
    concurrent creator (2.0). With create=True, a segment that exists
    with other sizes than those given is attached as it is, with a
    RuntimeWarning naming them."""
    if isinstance(name, str):
        try:
            name.encode()
        except UnicodeEncodeError:
            raise InvalidArgument(_ERRORS["EINVAL"],
                                  "segment name is not valid UTF-8: it "
                                  "holds a lone surrogate") from None
    flags = 0
    if create:
        flags |= _K["O_CREATE"]
    if exclusive:
        if not create:
            raise ValueError("exclusive=True needs create=True")
        flags |= _K["O_EXCL"]
    if readonly:
        if create:
            raise ValueError("readonly=True cannot create")
        flags |= _K["O_RDONLY"]
    seg = Segment(name, flags, mode, _size(size, "size", 64),
                  _size(max_counters, "max_counters", 32),
                  _size(max_workers, "max_workers", 32),
                  _size(cache_max_value, "cache_max_value", 64),
                  _ms(wait, "wait"), _home_pct(cache_home_pct))
    if create:
        try:
            _warn_other_sizes(seg, size=size, max_counters=max_counters,
                              max_workers=max_workers,
                              cache_max_value=cache_max_value,
                              cache_home_pct=cache_home_pct)
        except BaseException:  # a warning made an error (-W error)
            seg.close()
            raise
    return seg


def _warn_other_sizes(seg, **asked):
    """A segment that existed keeps the sizes it was made with: say so
    (RuntimeWarning) when they are not the ones this open() asked for, so
    that a deploy that raised a limit learns it at start, not when a set
    fails. The size is rounded up to a page by the creator."""
    if all(v is None for v in asked.values()):
        return
    import mmap
    info = seg.info()
    page = mmap.PAGESIZE  # what the creator rounds the size up to
    other = []
    for what, want in asked.items():
        if want is None:
            continue
        if what == "cache_home_pct":  # a share: it has blocks or none
            blocks = info["cache_home_blocks"]
            if (want > 0) == (blocks > 0):
                continue
            if info["creator_pid"] == _os.getpid() and want > 0:
                import warnings
                warnings.warn(f"segment '{info['name']}': cache_home_pct="
                              f"{want} gave no home blocks: at its size "
                              f"that share is too small for one block per "
                              f"group of four buckets", RuntimeWarning,
                              stacklevel=3)
                continue
            other.append(f"cache_home_blocks={blocks} (asked "
                         f"cache_home_pct={want})")
            continue
        have = info[what]
        if what == "size" and want <= have < want + page:
            continue
        if have != want:
            other.append(f"{what}={have} (asked {want})")
    if other:
        import warnings
        warnings.warn(f"segment '{info['name']}' exists with "
                      f"{', '.join(other)}: sizes apply only when a "
                      f"segment is created; destroy and create it again to "
                      f"change them", RuntimeWarning, stacklevel=3)


def _home_pct(v):
    """cache_home_pct for open(): None (none) or a whole number 0 to 90."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 90:
        raise InvalidArgument(_ERRORS["EINVAL"],
                              f"cache_home_pct must be a whole number from "
                              f"0 to 90, not {v!r}")
    return v


def _size(v, what, bits):
    """A size or count for open(): None (the default) or a whole number
    from 1 (the library says the exact upper limit)."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 1 \
            or v >= 1 << bits:
        raise InvalidArgument(_ERRORS["EINVAL"],
                              f"{what} must be a whole number >= 1, not "
                              f"{v!r}")
    return v


from ._cached import cached  # noqa: E402  (needs Segment and Cache)
