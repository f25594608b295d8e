"""Cache.fetch / Cache.afetch and the @shmstat.cached decorator.

The library elects one computing caller per key among processes (a lease).
Threads of one process take turns on a key here first, so that exactly one
caller of the whole host computes whatever the library's lease is held by
(a process or a thread); coroutines of one event loop share the one
computation in flight. Waiting never holds the GIL, and never blocks an
event loop.
"""

import asyncio
import functools
import hashlib
import inspect
import logging
import os
import pickle
import threading
import time
import weakref

from . import _shmstat

_K = _shmstat.CONSTANTS
HIT, LEASED, STALE = _K["HIT"], _K["LEASED"], _K["STALE"]
_ELEASE = _shmstat.ERRORS["ELEASE"]
_KEY_MAX = _K["KEY_MAX"]
# How often an async waiter looks for the value another caller computes,
# and how often it asks for the lease again (its holder may have died or
# given up).
_POLL_S = 0.002
_RETRY_S = 0.05

log = logging.getLogger("shmstat")


def _ms(seconds, what):
    if seconds is None or seconds <= 0:
        return 0
    return min(int(seconds * 1000.0 + 0.999), 0xFFFFFFFF)


def _kbytes(key):
    return key.encode() if isinstance(key, str) else bytes(key)


def _as_bytes(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("compute() must return bytes, not "
                    f"{type(value).__name__}")


def _busy(reason):
    from . import Busy
    return Busy(_ELEASE, reason)


class _Flights:
    """Per-key locks of this process (created on demand, dropped when
    nobody holds or waits for them)."""

    def __init__(self):
        self._mu = threading.Lock()
        self._locks = {}

    def acquire(self, fkey, timeout):
        with self._mu:
            ent = self._locks.get(fkey)
            if ent is None:
                ent = self._locks[fkey] = [threading.Lock(), 0]
            ent[1] += 1
        if ent[0].acquire(timeout=max(timeout, 0.0)):
            return ent
        self._drop(fkey, ent)
        return None

    def release(self, fkey, ent):
        ent[0].release()
        self._drop(fkey, ent)

    def _drop(self, fkey, ent):
        with self._mu:
            ent[1] -= 1
            if ent[1] == 0 and self._locks.get(fkey) is ent:
                del self._locks[fkey]


_flights = _Flights()
# Per event loop: {key: future of the computation in flight}.
_loop_flights = weakref.WeakKeyDictionary()


def _after_fork():
    # A child starts with no lock held and no computation in flight.
    global _flights, _loop_flights
    _flights = _Flights()
    _loop_flights = weakref.WeakKeyDictionary()


os.register_at_fork(after_in_child=_after_fork)


def _store(cache, key, value, ttl, keep_going):
    try:
        cache.set(key, value, ttl)  # also releases the lease
    except Exception:
        cache._lease_release(key)
        if not keep_going:
            raise
        log.warning("shmstat: could not cache %r", key, exc_info=True)


def fetch_sync(cache, key, compute, ttl, lease, wait, keep_going=False):
    lease_ms = _ms(lease, "lease") or 10000
    wait_s = lease_ms / 1000.0 if wait is None else max(wait, 0.0)
    deadline = time.monotonic() + wait_s
    fkey = (cache._segment_name, _kbytes(key))
    ent = _flights.acquire(fkey, wait_s)
    if ent is None:
        raise _busy(f"cache fetch: another thread computes {key!r}; no "
                    f"value within {wait_s:g} s")
    try:
        left = max(deadline - time.monotonic(), 0.0)
        outcome, value = cache._fetch(key, lease_ms, _ms(left, "wait"))
        if outcome != LEASED:
            return value
        try:
            value = _as_bytes(compute())
        except BaseException:
            cache._lease_release(key)
            raise
        _store(cache, key, value, ttl, keep_going)
        return value
    finally:
        _flights.release(fkey, ent)


async def fetch_async(cache, key, compute, ttl, lease, wait,
                      keep_going=False):
    loop = asyncio.get_running_loop()
    lease_ms = _ms(lease, "lease") or 10000
    wait_s = lease_ms / 1000.0 if wait is None else max(wait, 0.0)
    deadline = time.monotonic() + wait_s
    flights = _loop_flights.setdefault(loop, {})
    fkey = (cache._segment_name, _kbytes(key))
    fut = flights.get(fkey)
    if fut is not None:  # a coroutine of this loop computes it already
        try:
            return await asyncio.wait_for(asyncio.shield(fut), wait_s)
        except asyncio.TimeoutError:
            raise _busy(f"cache fetch: {key!r} is being computed; no "
                        f"value within {wait_s:g} s") from None
    fut = flights[fkey] = loop.create_future()
    try:
        value = await _fetch_async(cache, key, compute, ttl, lease_ms,
                                   deadline, wait_s, keep_going)
    except BaseException as e:
        if isinstance(e, asyncio.CancelledError):
            fut.cancel()
        else:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters, if any, get it too
        raise
    else:
        fut.set_result(value)
        return value
    finally:
        if flights.get(fkey) is fut:
            del flights[fkey]


async def _fetch_async(cache, key, compute, ttl, lease_ms, deadline, wait_s,
                       keep_going):
    from . import Busy
    retry_at = 0.0
    while True:
        now = time.monotonic()
        if now >= retry_at:
            # Never waits inside the library: wait_ms 0.
            try:
                outcome, value = cache._fetch(key, lease_ms, 0)
            except Busy as e:
                if e.code != _ELEASE:
                    raise
            else:
                if outcome != LEASED:
                    return value
                try:
                    value = _as_bytes(await compute())
                except BaseException:
                    cache._lease_release(key)
                    raise
                _store(cache, key, value, ttl, keep_going)
                return value
            retry_at = now + _RETRY_S
        elif cache.exists(key):  # counts no hit or miss
            value = cache.get(key)
            if value is not None:
                return value
        if now >= deadline:
            raise _busy(f"cache fetch: another caller holds the lease of "
                        f"{key!r}; no value within {wait_s:g} s")
        await asyncio.sleep(_POLL_S)


def _default_key(name, args, kwargs):
    body = ",".join([repr(a) for a in args] +
                    [f"{k}={v!r}" for k, v in sorted(kwargs.items())])
    k = name + body
    if len(k.encode()) <= _KEY_MAX:
        return k
    digest = hashlib.sha256(body.encode()).hexdigest()
    if len(name.encode()) + 1 + len(digest) > _KEY_MAX:
        name = hashlib.sha256(name.encode()).hexdigest()[:32] + ":"
    return name + "#" + digest


def cached(target, ttl=None, *, key=None, prefix=None, lease=10.0,
           wait=None, dumps=pickle.dumps, loads=pickle.loads):
    """Cache a function's results in the segment's cache, for every process
    of the host; on a miss one caller computes, the others wait for it.

        @shmstat.cached(seg, ttl=300.0)
        def answer(prompt): ...

        @shmstat.cached(seg, ttl=300.0)
        async def answer(prompt): ...

    target: a Segment or its Cache. ttl: seconds (None: no expiry).
    key: a function of the arguments returning the key; by default the
    prefix (default "<module>.<qualname>:") and the repr of the arguments
    (hashed when longer than 250 bytes) — give key= for arguments whose
    repr differs between processes (objects, methods' self).
    dumps/loads: the encoding of results (pickle by default: the segment
    is readable and writable by its owner only, mode 0600; use json for
    values shared with other programs). lease, wait: as Cache.fetch.
    A result that cannot be stored (too big, busy) is returned anyway and
    logged. The wrapper has .key(*args, **kwargs) and
    .invalidate(*args, **kwargs).
    """
    from . import Segment
    cache = target.cache if isinstance(target, Segment) else target

    def deco(fn):
        name = (prefix if prefix is not None
                else f"{fn.__module__}.{fn.__qualname__}:")

        def make_key(*args, **kwargs):
            if key is not None:
                return key(*args, **kwargs)
            return _default_key(name, args, kwargs)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def wrapper(*args, **kwargs):
                async def compute():
                    return dumps(await fn(*args, **kwargs))
                raw = await fetch_async(cache, make_key(*args, **kwargs),
                                        compute, ttl, lease, wait, True)
                return loads(raw)
        else:
            @functools.wraps(fn)
            def wrapper(*args, **kwargs):
                raw = fetch_sync(cache, make_key(*args, **kwargs),
                                 lambda: dumps(fn(*args, **kwargs)), ttl,
                                 lease, wait, True)
                return loads(raw)

        wrapper.key = make_key
        wrapper.invalidate = lambda *a, **kw: cache.delete(make_key(*a, **kw))
        return wrapper

    return deco
