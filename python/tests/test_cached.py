"""fetch, afetch and @shmstat.cached: keys that cannot mix two calls' results,
cancelled and failing computations, stale values within one process, ttl 0."""

import asyncio
import math
import threading

import pytest

import shmstat

from conftest import wait_for


# ------------------------------------------------------------ default keys

def test_closures_of_one_factory_do_not_share_results(seg):
    def make(n):
        @shmstat.cached(seg, ttl=30.0)
        def mul(x):
            return x * n
        return mul

    m2, m3 = make(2), make(3)
    assert m2(5) == 10
    assert m3(5) == 15
    assert m2(5) == 10
    assert m2.key(5) != m3.key(5)
    assert "[n=2]" in m2.key(5)


def test_a_closure_over_a_value_without_a_stable_repr_is_refused(seg):
    class Client:
        pass

    def make(client):
        @shmstat.cached(seg, ttl=30.0)
        def ask(q):
            return (id(client), q)
        return ask

    with pytest.raises(TypeError, match=r"'client'.*key=.*prefix="):
        make(Client())  # at decoration
    # prefix= says the name alone identifies the function: then it caches.
    def make2(client):
        @shmstat.cached(seg, ttl=30.0, prefix="ask:")
        def ask(q):
            return q.upper()
        return ask
    assert make2(Client())("q") == "Q"
    assert seg.cache.exists("ask:'q'")


def test_a_recursive_closure_keys_by_its_arguments(seg):
    def make():
        @shmstat.cached(seg, ttl=30.0)
        def fib(k):
            return k if k < 2 else fib(k - 1) + fib(k - 2)
        return fib
    assert make()(20) == 6765


def test_a_method_whose_self_has_the_default_repr_is_refused(seg):
    class Price:
        __slots__ = ("base",)

        def __init__(self, base):
            self.base = base

        @shmstat.cached(seg, ttl=60.0)
        def total(self, qty):
            return self.base * qty

    with pytest.raises(TypeError, match=r"self.*default repr.*key="):
        Price(1).total(2)


def test_a_method_with_key_or_a_repr_gets_its_own_results(seg):
    class Price:
        __slots__ = ("base",)

        def __init__(self, base):
            self.base = base

        @shmstat.cached(seg, ttl=60.0,
                        key=lambda self, qty: f"price:{self.base}:{qty}")
        def total(self, qty):
            return self.base * qty

    class Named:
        def __init__(self, base):
            self.base = base

        def __repr__(self):
            return f"Named({self.base})"

        @shmstat.cached(seg, ttl=60.0)
        def total(self, qty):
            return self.base * qty

    for base in range(1, 50):
        p = Price(base)
        assert p.total(2) == 2 * base
        del p
        n = Named(base)
        assert n.total(2) == 2 * base
        del n


def test_arguments_whose_repr_shows_an_address_are_refused(seg):
    class Plain:
        pass

    @shmstat.cached(seg, ttl=60.0)
    def f(*args, **kwargs):
        return 1

    with pytest.raises(TypeError, match=r"argument 0.*Plain.*default repr"):
        f(Plain())
    with pytest.raises(TypeError, match=r"argument 1"):
        f(1, (2, [Plain()]))
    with pytest.raises(TypeError, match=r"argument opt"):
        f(opt={"k": Plain()})
    with pytest.raises(TypeError, match=r"address"):
        f(lambda: 1)  # <function <lambda> at 0x...>
    # Plain values, and strings that merely look like an address, are keys.
    assert f(1, "x", (2.5, None), [b"y"], {"a": 1}, s="<X at 0x1f>") == 1
    assert seg.cache.exists(f.key(1, "x", (2.5, None), [b"y"], {"a": 1},
                                  s="<X at 0x1f>"))


def test_a_function_without_closure_keeps_its_key(seg):
    @shmstat.cached(seg, ttl=60.0)
    def answer(prompt):
        return prompt

    assert answer.key("hi") == (f"{answer.__module__}."
                                "test_a_function_without_closure_keeps_"
                                "its_key.<locals>.answer:'hi'")


# ------------------------------------------------------------- cancelling

def test_a_cancelled_async_caller_does_not_cancel_the_others(seg):
    calls = []

    @shmstat.cached(seg, ttl=60.0)
    async def answer(p):
        calls.append(p)
        await asyncio.sleep(0.3)
        return p[::-1]

    async def main():
        impatient = asyncio.ensure_future(
            asyncio.wait_for(answer("hello"), 0.05))
        await asyncio.sleep(0.01)
        patient = [asyncio.ensure_future(answer("hello")) for _ in range(3)]
        return await asyncio.gather(impatient, *patient,
                                    return_exceptions=True)

    r = asyncio.run(main())
    assert isinstance(r[0], asyncio.TimeoutError)
    assert r[1:] == ["olleh"] * 3
    assert calls == ["hello", "hello"]  # the first, then one taker-over
    assert seg.cache.exists(answer.key("hello"))


def test_afetch_whose_computing_task_is_cancelled_lets_a_waiter_compute(seg):
    started = []

    async def slow():
        started.append(1)
        await asyncio.sleep(0.3)
        return b"v"

    async def main():
        first = asyncio.ensure_future(seg.cache.afetch("k", slow, ttl=60))
        while not started:
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(seg.cache.afetch("k", slow, ttl=60))
        await asyncio.sleep(0.01)
        first.cancel()
        return await asyncio.gather(first, second, return_exceptions=True)

    r = asyncio.run(main())
    assert isinstance(r[0], asyncio.CancelledError)
    assert r[1] == b"v"
    assert len(started) == 2
    assert seg.cache.get("k") == b"v"


# ---------------------------------------------------- failing computations

def _users(seg, key):
    ent = shmstat._cached._keys._keys.get((seg.name, key))
    return ent.users if ent else 0


def test_threads_waiting_on_a_failing_compute_get_its_exception(seg):
    calls = []
    start = threading.Barrier(4)
    out = []

    def boom():
        calls.append(1)
        # Every thread is a caller of this round (bounded wait); those
        # not yet in the library get the lease after the release below,
        # and the exception too.
        assert wait_for(lambda: _users(seg, b"k") == 4, timeout=10)
        raise RuntimeError("model down")

    def run():
        start.wait()
        try:
            seg.cache.fetch("k", boom, ttl=60.0)
            out.append("value")
        except RuntimeError as e:
            out.append(str(e))

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert out == ["model down"] * 4
    assert len(calls) == 1
    # The next round computes again.
    assert seg.cache.fetch("k", lambda: b"ok", wait=0.5) == b"ok"


def test_async_waiters_on_a_failing_compute_get_its_exception(seg):
    calls = []

    async def boom():
        calls.append(1)
        await asyncio.sleep(0.05)
        raise RuntimeError("model down")

    async def main():
        return await asyncio.gather(
            *[seg.cache.afetch("k", boom) for _ in range(4)],
            return_exceptions=True)

    r = asyncio.run(main())
    assert [str(e) for e in r] == ["model down"] * 4
    assert len(calls) == 1


# ------------------------------------------- stale values in one process

def test_a_thread_gets_the_stale_value_while_another_thread_recomputes(seg):
    seg.cache.set("f", b"old", ttl=0.05)
    assert wait_for(lambda: seg.cache.ttl("f") is None)
    computing = threading.Event()
    release = threading.Event()
    got = []

    def slow():
        computing.set()
        assert release.wait(10)
        return b"new"

    t = threading.Thread(target=lambda: got.append(
        seg.cache.fetch("f", slow, ttl=60.0)))
    t.start()
    assert computing.wait(10)
    try:
        assert seg.cache.fetch("f", lambda: b"mine", ttl=60.0,
                               wait=5.0) == b"old"
    finally:
        release.set()
        t.join(10)
    assert got == [b"new"]
    assert seg.cache.get("f") == b"new"


def test_a_coroutine_gets_the_stale_value_while_another_recomputes(seg):
    seg.cache.set("f", b"old", ttl=0.05)
    assert wait_for(lambda: seg.cache.ttl("f") is None)

    async def main():
        computing = asyncio.Event()
        release = asyncio.Event()

        async def slow():
            computing.set()
            await release.wait()
            return b"new"

        async def mine():
            return b"mine"
        first = asyncio.ensure_future(seg.cache.afetch("f", slow, ttl=60))
        await computing.wait()
        second = await asyncio.wait_for(
            seg.cache.afetch("f", mine, ttl=60, wait=5.0), 5.0)
        release.set()
        return second, await first

    assert asyncio.run(main()) == (b"old", b"new")
    assert seg.cache.get("f") == b"new"


# ------------------------------------------------------------------- ttl 0

def test_ttl_0_never_expires_like_none(seg):
    c = seg.cache
    assert c.set("a", b"v", ttl=0)
    assert c.ttl("a") == math.inf
    c.set("b", b"v", ttl=30.0)
    assert c.expire("b", 0) is True
    assert c.ttl("b") == math.inf
    assert c.fetch("c", lambda: b"v", ttl=0) == b"v"
    assert c.ttl("c") == math.inf

    async def compute():
        return b"v"
    assert asyncio.run(c.afetch("d", compute, ttl=0)) == b"v"
    assert c.ttl("d") == math.inf

    calls = []

    @shmstat.cached(seg, ttl=0, prefix="z:")
    def z(x):
        calls.append(x)
        return x

    assert z(1) == 1 and z(1) == 1
    assert calls == [1]
    assert c.ttl("z:1") == math.inf


def test_a_bad_ttl_is_refused_before_compute_runs(seg):
    calls = []

    def compute():
        calls.append(1)
        return b"v"

    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="ttl"):
            seg.cache.fetch("k", compute, ttl=bad)
        with pytest.raises(ValueError, match="ttl"):
            seg.cache.set("k", b"v", ttl=bad)
        with pytest.raises(ValueError, match="ttl"):
            seg.cache.expire("k", bad)
        with pytest.raises(ValueError, match="ttl"):
            shmstat.cached(seg, ttl=bad)
    assert calls == []
    assert seg.cache.get("k") is None


def test_an_async_waiter_keeps_its_own_wait_when_another_ran_out(seg):
    # Another process holds the lease until the parent says so; the first
    # coroutine waits 0.1 s, the second 10 s.
    import os
    r, w = os.pipe()
    r2, w2 = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(w2)
            outcome, _ = seg.cache._fetch("held", 10_000, 0)
            os.write(w, b"1")
            os.read(r2, 1)
            seg.cache.set("held", b"theirs", ttl=60.0)
            os._exit(0 if outcome == 1 else 1)
        except BaseException:
            os._exit(2)
    os.close(w)
    os.close(r2)
    assert os.read(r, 1) == b"1"
    os.close(r)

    async def compute():
        return b"mine"

    async def main():
        short = asyncio.ensure_future(
            seg.cache.afetch("held", compute, wait=0.1))
        long = asyncio.ensure_future(
            seg.cache.afetch("held", compute, wait=10.0))
        with pytest.raises(shmstat.Busy):
            await short
        os.write(w2, b"1")
        return await long

    try:
        assert asyncio.run(main()) == b"theirs"
    finally:
        os.close(w2)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_self_containing_argument_is_keyed_by_its_repr(seg):
    @shmstat.cached(seg, ttl=60.0)
    def f(x):
        return len(x)

    a = [1]
    a.append(a)  # repr: [1, [...]]
    for _ in range(200):
        a = [a]
    assert f(a) == 1


def test_a_key_over_250_bytes_from_key_is_hashed_not_refused(seg):
    calls = []

    @shmstat.cached(seg, ttl=30.0, key=lambda q: "search:" + q)
    def search(q):
        calls.append(q)
        return q.upper()

    long_a, long_b = "a" * 400, "a" * 399 + "b"
    assert search(long_a) == long_a.upper()
    assert search(long_a) == long_a.upper()
    assert search(long_b) == long_b.upper()
    assert calls == [long_a, long_b]  # cached, and the two told apart
    k = search.key(long_a)
    assert len(k.encode()) <= 250 and k.startswith("search:aaa")
    assert search.key("short") == "search:short"


def test_json_instead_of_pickle_as_the_readme_gives_it(seg):
    import json
    calls = []

    @shmstat.cached(seg, ttl=60.0, prefix="jsonf:",
                    dumps=lambda v: json.dumps(v).encode(), loads=json.loads)
    def f(x):
        calls.append(x)
        return {"x": x, "list": [1, 2]}

    assert f(3) == {"x": 3, "list": [1, 2]}
    assert f(3) == {"x": 3, "list": [1, 2]}
    assert calls == [3]
    assert json.loads(seg.cache.get("jsonf:3")) == {"x": 3, "list": [1, 2]}


def test_a_bool_ttl_is_refused_at_decoration(seg):
    with pytest.raises(TypeError):
        shmstat.cached(seg, ttl=True)
