"""Cache.fetch / Cache.afetch and the @shmstat.cached decorator.

The library elects one computing caller per key among every thread of
every process (a lease held by one thread): the other threads of this
process wait inside the library (the GIL released) or take the expired
value, as other processes do. What the library cannot see is added here:
  - the threads of this process that waited on a computation of this
    process which raised get that exception, rather than each computing
    again in turn;
  - coroutines of one event loop run on one thread, so one lease holder
    is one coroutine: the others of the loop wait for its result (or take
    the expired value, read by a thread of the default executor), are
    never cancelled with it, and one of them takes over when it is
    cancelled.
Waiting never holds the GIL, and never blocks an event loop.
"""

import asyncio
import functools
import hashlib
import inspect
import logging
import os
import pickle
import re
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


def ttl_arg(ttl):
    """A TTL in seconds as the library's calls take it: None for none (0
    and None: never expires, as in C and the tool); ValueError for a
    negative or NaN TTL."""
    if ttl is None:
        return None
    if isinstance(ttl, bool):
        raise TypeError("ttl must be a number of seconds, not a bool")
    if ttl > 0:
        return ttl
    if ttl == 0:
        return None
    raise ValueError(f"ttl must be >= 0 seconds (0 or None: never "
                     f"expires), not {ttl!r}")


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


class _Key:
    """The callers of this process using one key now: the failures of
    its computations (count, last exception)."""

    __slots__ = ("users", "failures", "error")

    def __init__(self):
        self.users = 0
        self.failures = 0
        self.error = None


class _Keys:
    """Per-key records of this process (created on demand, dropped when
    no caller uses them)."""

    def __init__(self):
        self._mu = threading.Lock()
        self._keys = {}

    def enter(self, fkey):
        with self._mu:
            ent = self._keys.get(fkey)
            if ent is None:
                ent = self._keys[fkey] = _Key()
            ent.users += 1
            return ent

    def leave(self, fkey, ent):
        with self._mu:
            ent.users -= 1
            if ent.users == 0 and self._keys.get(fkey) is ent:
                del self._keys[fkey]


_keys = _Keys()
# Per event loop: {key: _Flight of the coroutine computing it}.
_loop_flights = weakref.WeakKeyDictionary()
# A flight's result when its coroutine gave up (cancelled): a waiter
# takes over.
_ABANDONED = object()


def _after_fork():
    # A child starts with no computation in flight.
    global _keys, _loop_flights
    _keys = _Keys()
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
    ttl = ttl_arg(ttl)
    lease_ms = _ms(lease, "lease") or 10000
    wait_s = lease_ms / 1000.0 if wait is None else max(wait, 0.0)
    fkey = (cache._segment_name, _kbytes(key))
    ent = _keys.enter(fkey)
    try:
        failures = ent.failures
        # The library waits (the GIL released), or gives this thread the
        # lease, or the expired value while another thread or process
        # holds the lease.
        outcome, value = cache._fetch(key, lease_ms, _ms(wait_s, "wait"))
        if outcome != LEASED:
            return value
        if ent.failures != failures:
            # A thread of this process computed it while this one waited,
            # and failed: its waiters get its exception (one call of a
            # failing backend per round, not one per waiter).
            error = ent.error
            cache._lease_release(key)
            raise error
        try:
            value = _as_bytes(compute())
        except Exception as e:
            ent.error = e
            ent.failures += 1  # before the release wakes the waiters
            cache._lease_release(key)
            raise
        except BaseException:
            cache._lease_release(key)
            raise
        _store(cache, key, value, ttl, keep_going)
        return value
    finally:
        _keys.leave(fkey, ent)


class _Flight:
    """The computation of a key by one coroutine of a loop: done (a
    future: the value, compute's exception, or _ABANDONED) and whether it
    holds the lease (else it waits for another thread or process)."""

    __slots__ = ("done", "leased")

    def __init__(self, loop):
        self.done = loop.create_future()
        self.leased = False


def _peek(cache, key, lease_ms):
    """From a thread other than the loop's (which holds the lease): the
    expired value while the lease is held, or a fresh one; else None."""
    try:
        outcome, value = cache._fetch(key, lease_ms, 0)
    except Exception:
        return None
    if outcome == LEASED:  # nobody held it any more: give it back
        cache._lease_release(key)
        return None
    return value


async def fetch_async(cache, key, compute, ttl, lease, wait,
                      keep_going=False):
    ttl = ttl_arg(ttl)
    loop = asyncio.get_running_loop()
    lease_ms = _ms(lease, "lease") or 10000
    wait_s = lease_ms / 1000.0 if wait is None else max(wait, 0.0)
    deadline = time.monotonic() + wait_s
    flights = _loop_flights.setdefault(loop, {})
    fkey = (cache._segment_name, _kbytes(key))
    peeked = False
    while True:
        flight = flights.get(fkey)
        if flight is None:
            break
        # A coroutine of this loop computes it. While it holds the lease,
        # the expired value (if any) is read from another thread: the
        # library gives it to any thread but the holder's.
        if flight.leased and not peeked:
            peeked = True
            try:
                value = await loop.run_in_executor(None, _peek, cache, key,
                                                   lease_ms)
            except RuntimeError:  # the loop's executor is shut down
                value = None
            if value is not None:
                return value
            continue
        left = deadline - time.monotonic()
        try:
            # shield: this caller's cancellation or timeout is its own.
            value = await asyncio.wait_for(asyncio.shield(flight.done),
                                           max(left, 0.0))
        except asyncio.TimeoutError:
            raise _busy(f"cache fetch: {key!r} is being computed; no "
                        f"value within {wait_s:g} s") from None
        if value is not _ABANDONED:
            return value
        # Its coroutine was cancelled: the first waiter to run computes.
    flight = flights[fkey] = _Flight(loop)
    try:
        value = await _fetch_async(cache, key, compute, ttl, lease_ms,
                                   deadline, wait_s, keep_going, flight)
    except Exception as e:
        if getattr(e, "code", None) == _ELEASE:
            # This caller's wait ran out: the others have their own.
            flight.done.set_result(_ABANDONED)
        else:
            # The waiters of this round get the same exception.
            flight.done.set_exception(e)
            flight.done.exception()  # retrieved: nobody may be waiting
        raise
    except BaseException:
        flight.done.set_result(_ABANDONED)
        raise
    else:
        flight.done.set_result(value)
        return value
    finally:
        if flights.get(fkey) is flight:
            del flights[fkey]


async def _fetch_async(cache, key, compute, ttl, lease_ms, deadline, wait_s,
                       keep_going, flight):
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
                flight.leased = True
                try:
                    value = _as_bytes(await compute())
                except BaseException:
                    flight.leased = False
                    cache._lease_release(key)
                    raise
                flight.leased = False
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


# Types whose repr is their value; containers of them are checked within.
_PLAIN = frozenset((str, bytes, int, float, complex, bool, type(None)))
_CONTAINERS = frozenset((tuple, list, set, frozenset))
# An address in a repr: "<X object at 0x7f...>", "<function f at 0x...>".
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


def _unstable(a, depth=0):
    """Why repr(a) does not identify a's value (None when it does): the
    default repr, or an address in it, which the next object of the
    process may have at once."""
    t = type(a)
    if t in _PLAIN:
        return None
    if depth < 16 and t in _CONTAINERS:
        for x in a:
            why = _unstable(x, depth + 1)
            if why:
                return why
        return None
    if depth < 16 and t is dict:
        for k, v in a.items():
            why = _unstable(k, depth + 1) or _unstable(v, depth + 1)
            if why:
                return why
        return None
    if t.__repr__ is object.__repr__:
        return f"a {t.__qualname__} with the default repr (its address)"
    if _ADDRESS.search(repr(a)):
        return f"a {t.__qualname__} whose repr shows an address"
    return None


def _refuse(fname, what, why, fix):
    raise TypeError(
        f"shmstat.cached: {what} of {fname} is {why}, which another object "
        f"may have next: its results could be another call's. {fix}")


def _arg_reprs(fname, params, args, kwargs):
    out = []
    for i, a in enumerate(args):
        why = _unstable(a)
        if why:
            what = (f"argument {i} ({params[i]})" if i < len(params)
                    else f"argument {i}")
            _refuse(fname, what, why, "Pass key= to cached() (a function "
                    "of the arguments returning the key), or give the "
                    "class a __repr__ that identifies its value.")
        out.append(repr(a))
    for k, v in sorted(kwargs.items()):
        why = _unstable(v)
        if why:
            _refuse(fname, f"argument {k}", why, "Pass key= to cached() "
                    "(a function of the arguments returning the key), or "
                    "give the class a __repr__ that identifies its value.")
        out.append(f"{k}={v!r}")
    return out


def _cells_part(fname, fn):
    """"[n=2,m='x']": the values of fn's closure variables when it is
    decorated, so that the closures of one factory (one qualname) get
    keys of their own. A variable not assigned yet (the function itself,
    in a recursive closure) is left out."""
    parts = []
    for var, cell in zip(fn.__code__.co_freevars, fn.__closure__):
        try:
            v = cell.cell_contents
        except ValueError:  # not assigned yet
            continue
        why = _unstable(v)
        if why:
            _refuse(fname, f"closure variable {var!r}", why,
                    "Pass key= to cached() (a function of the arguments "
                    "returning the key) or prefix= (a prefix naming this "
                    "closure alone).")
        parts.append(f"{var}={v!r}")
    return "[" + ",".join(parts) + "]"


def _default_key(name, args, kwargs, fname="", params=()):
    body = ",".join(_arg_reprs(fname, params, args, kwargs))
    k = name + body
    if len(k.encode()) <= _KEY_MAX:
        return k
    digest = hashlib.sha256(body.encode()).hexdigest()
    if len(name.encode()) + 1 + len(digest) > _KEY_MAX:
        name = hashlib.sha256(name.encode()).hexdigest()[:32] + ":"
    return name + "#" + digest


def _fit_key(k):
    """A key= result over 250 bytes: its first characters, "#" and the
    sha256 of the whole, as the default key is hashed (a query string a
    client sends must not make the call fail)."""
    if isinstance(k, str):
        b = k.encode()
    elif isinstance(k, (bytes, bytearray, memoryview)):
        b = bytes(k)
    else:
        return k  # the cache says what it takes
    if len(b) <= _KEY_MAX:
        return k
    digest = hashlib.sha256(b).hexdigest()
    if isinstance(k, str):
        head = k[:_KEY_MAX - 65]
        while len(head.encode()) > _KEY_MAX - 65:
            head = head[:-1]
        return head + "#" + digest
    return b[:_KEY_MAX - 65] + b"#" + digest.encode()


def _positional_names(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in sig.parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def cached(target, ttl=None, *, key=None, prefix=None, lease=10.0,
           wait=None, dumps=pickle.dumps, loads=pickle.loads):
    """Cache a function's results in the segment's cache, for every process
    of the host; on a miss one caller computes, the others wait for it
    (or take the expired value while it is recomputed).

        @shmstat.cached(seg, ttl=300.0)
        def answer(prompt): ...

        @shmstat.cached(seg, ttl=300.0)
        async def answer(prompt): ...

        @shmstat.cached(seg, ttl=60.0, key=lambda self, q: f"p:{self.id}:{q}")
        def price(self, q): ...                  # a method: key= names self

    target: a Segment or its Cache. ttl: seconds (0 or None: no expiry;
    negative: ValueError, here). lease, wait: as Cache.fetch.

    The key: key(*args, **kwargs) when key= is given (then nothing is
    checked: it must tell apart the calls whose results differ; one over
    250 bytes is cut and hashed: its first characters, "#", its sha256).
    Otherwise the prefix, then the repr of the positional arguments and
    of the keyword arguments (name=repr, sorted by name), joined with
    ",", hashed (sha256) when longer than 250 bytes. The prefix is
    prefix= when given, else "<module>.<qualname>:"; for a function with
    closure variables (a function made by a factory) it is
    "<module>.<qualname>[var=repr,...]:" with the variables' values when
    it is decorated, so that the closures of one factory get keys of
    their own (a variable not assigned yet, as the function itself in a
    recursive closure, is left out; like globals, later changes to the
    variables are not in the key). The default key refuses (TypeError)
    an argument or a method's self (at the call) or a closure variable
    (at decoration) whose repr does not identify its value: the default
    object repr, or any repr showing an address ("<... at 0x...>"), which
    the next object of the process may have.
    Values of str, bytes, int, float, complex, bool and None, tuples,
    lists, sets and dicts of them, and objects with their own repr are
    used as they are. Give key= (or a __repr__ to the class; for a
    closure variable, prefix=) where it refuses, for arguments whose
    repr differs between processes, and for those whose repr leaves out
    part of the value (numpy's of a large array: "...").

    dumps/loads: the encoding of results (pickle by default: the segment
    is readable and writable by its owner only, mode 0600; use json for
    values shared with other programs). A result that cannot be stored
    (too big, busy) is returned anyway and logged. The wrapper has
    .key(*args, **kwargs) and .invalidate(*args, **kwargs).
    """
    from . import Segment
    cache = target.cache if isinstance(target, Segment) else target
    ttl = ttl_arg(ttl)

    def deco(fn):
        fname = f"{fn.__module__}.{fn.__qualname__}"
        params = _positional_names(fn)
        if prefix is not None:
            name = prefix
        elif key is None and getattr(fn, "__closure__", None):
            name = fname + _cells_part(fname, fn) + ":"
        else:
            name = fname + ":"

        def make_key(*args, **kwargs):
            if key is not None:
                return _fit_key(key(*args, **kwargs))
            return _default_key(name, args, kwargs, fname, params)

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
