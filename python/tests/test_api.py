"""The package's API: segments, counters, gauges, the cache, documents,
and the errors that carry the library's reason."""

import asyncio
import math
import os
import threading
import time
import warnings

import pytest

import shmstat
from conftest import wait_for


def test_open_attaches_to_an_existing_segment(seg, segname):
    seg.counter("a").inc(3)
    with shmstat.open(segname) as other:
        assert other.counter("a").value == 3
        assert other.name == segname
    assert other.closed


def test_open_of_a_missing_segment_raises_not_found_with_the_reason(segname):
    with pytest.raises(shmstat.NotFound) as e:
        shmstat.open(segname)
    assert segname in e.value.reason
    assert e.value.name == "ENOENT"
    assert e.value.code == shmstat._shmstat.ERRORS["ENOENT"]
    assert isinstance(e.value, LookupError)


def test_open_exclusive_of_an_existing_segment_raises_exists(seg, segname):
    with pytest.raises(shmstat.Exists):
        shmstat.open(segname, create=True, exclusive=True)


def test_open_with_a_bad_name_raises_invalid_argument():
    with pytest.raises(shmstat.InvalidArgument):
        shmstat.open("../etc", create=True)
    with pytest.raises(ValueError):
        shmstat.open("a\0b", create=True)


def test_counter_counts_and_rejects_negative_increments(seg):
    c = seg.counter("filter_stats:ml_confident")
    c.inc()
    c.inc(5)
    c.inc(0)
    assert c.value == 6
    assert seg.counter("filter_stats:ml_confident").value == 6
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(TypeError):
        c.inc(1.5)
    assert c.value == 6
    assert c.name == "filter_stats:ml_confident"


def test_utf8_names_are_one_counter_as_str_and_bytes(seg):
    seg.counter("größe").inc(2)
    assert seg.counter("größe".encode()).value == 2
    assert seg.values() == {"größe": 2}


def test_gauge_sets_increments_and_decrements(seg):
    g = seg.gauge("queue:depth")
    g.set(3)
    g.inc()
    g.inc(4)
    g.dec()
    g.dec(10)
    assert g.value == -3
    assert seg.stat("queue:depth")["kind"] == "gauge"


def test_a_name_of_another_kind_raises_wrong_kind(seg):
    seg.gauge("x")
    with pytest.raises(shmstat.WrongKind) as e:
        seg.counter("x")
    assert "gauge" in str(e.value)


def test_a_full_directory_raises_full_and_existing_counters_keep_working(
        segname):
    with shmstat.open(segname, create=True, max_counters=4) as s:
        cs = [s.counter(f"c{i}") for i in range(4)]
        with pytest.raises(shmstat.Full):
            s.counter("one-too-many")
        cs[0].inc()
        assert cs[0].value == 1


def test_stat_of_a_missing_name_raises_not_found(seg):
    with pytest.raises(shmstat.NotFound):
        seg.stat("nope")


def test_reset_by_pattern_returns_how_many(seg):
    seg.counter("a:1").inc(5)
    seg.counter("a:2").inc(5)
    seg.counter("b:1").inc(5)
    assert seg.reset("a:*") == 2
    assert seg.values() == {"a:1": 0, "a:2": 0, "b:1": 5}


def test_closed_segment_raises_and_close_is_idempotent(segname):
    s = shmstat.open(segname, create=True)
    c = s.counter("a")
    s.close()
    s.close()
    with pytest.raises(shmstat.Error, match="closed"):
        c.inc()
    with pytest.raises(shmstat.Error):
        s.cache.get("k")


# ------------------------------------------------------------------- cache

def test_cache_set_get_and_default(seg):
    cache = seg.cache
    assert cache.get("user:1") is None
    assert cache.get("user:1", b"dflt") == b"dflt"
    assert cache.set("user:1", b'{"name": "a"}', ttl=60.0) is True
    assert cache.get("user:1") == b'{"name": "a"}'
    assert cache.get(b"user:1") == b'{"name": "a"}'
    assert cache.set("bin\0key", bytearray(b"\0\1\2")) is True
    assert cache.get(b"bin\0key") == b"\0\1\2"
    assert cache.set("empty", b"") and cache.get("empty") == b""
    assert "user:1" in cache and "nope" not in cache


def test_cache_large_values_round_trip(seg):
    v = os.urandom(200_000)
    seg.cache.set("big", v)
    assert seg.cache.get("big") == v


def test_cache_rejects_str_values_and_bad_ttls(seg):
    with pytest.raises(TypeError):
        seg.cache.set("k", "text")
    with pytest.raises(ValueError):
        seg.cache.set("k", b"v", ttl=math.nan)
    with pytest.raises(ValueError):
        seg.cache.set("k", b"v", ttl=-1.0)
    with pytest.raises(ValueError):
        seg.cache.set("k", b"v", nx=True, xx=True)
    with pytest.raises(TypeError):
        seg.cache.set("k", b"v", ttl=True)
    seg.cache.set("k0", b"v")
    with pytest.raises(TypeError):
        seg.cache.expire("k0", False)
    assert seg.cache.ttl("k0") == math.inf
    assert seg.cache.get("k") is None


def test_cache_a_huge_finite_ttl_is_the_maximum_not_never(seg):
    # Past the library's maximum (2**63 - 1 ms), a finite TTL is that
    # maximum, as in C; only math.inf (or 0, None) never expires.
    for ttl in (1e20, 1e300):
        seg.cache.set("k", b"v", ttl=ttl)
        left = seg.cache.ttl("k")
        assert left != math.inf and left > 9e15
        assert seg.cache.expire("k", ttl) is True
        assert seg.cache.ttl("k") != math.inf
    seg.cache.set("k", b"v", ttl=math.inf)
    assert seg.cache.ttl("k") == math.inf


def test_cache_key_errors_carry_the_library_reason(seg):
    with pytest.raises(shmstat.InvalidArgument) as e:
        seg.cache.set("k" * 251, b"v")
    assert "250" in e.value.reason
    with pytest.raises(shmstat.InvalidArgument):
        seg.cache.get("")


def test_cache_value_above_the_maximum_raises_too_big(segname):
    with shmstat.open(segname, create=True, cache_max_value=1024) as s:
        with pytest.raises(shmstat.TooBig):
            s.cache.set("k", b"x" * 1025)
        assert s.cache.get("k") is None


def test_cache_ttl_expiry(seg):
    cache = seg.cache
    cache.set("short", b"v", ttl=0.05)
    cache.set("forever", b"v")
    assert 0 < cache.ttl("short") <= 0.05
    assert cache.ttl("forever") == math.inf
    assert cache.ttl("absent") is None
    assert wait_for(lambda: cache.get("short") is None, timeout=5)
    assert not cache.exists("short")
    assert cache.ttl("short") is None
    assert cache.get("forever") == b"v"


def test_cache_expire_gives_a_new_ttl(seg):
    seg.cache.set("k", b"v")
    assert seg.cache.expire("k", 30.0) is True
    assert 29 < seg.cache.ttl("k") <= 30
    assert seg.cache.expire("k", None) is True
    assert seg.cache.ttl("k") == math.inf
    assert seg.cache.expire("absent", 1.0) is False


def test_cache_nx_and_xx_like_redis(seg):
    cache = seg.cache
    assert cache.set("k", b"1", xx=True) is False
    assert cache.get("k") is None
    assert cache.set("k", b"1", nx=True) is True
    assert cache.set("k", b"2", nx=True) is False
    assert cache.get("k") == b"1"
    assert cache.set("k", b"3", xx=True) is True
    assert cache.get("k") == b"3"
    cache.set("old", b"v", ttl=0.02)
    assert wait_for(lambda: not cache.exists("old"))
    assert cache.set("old", b"new", nx=True) is True  # expired is absent


def test_cache_delete_exists_and_clear_by_pattern(seg):
    cache = seg.cache
    for i in range(10):
        cache.set(f"user:{i}", b"u")
    for i in range(3):
        cache.set(f"llm:{i}", b"l")
    assert cache.delete("user:0", "user:1", "absent") == 2
    assert not cache.exists("user:0")
    assert cache.clear("user:*") == 8
    assert sorted(cache.keys()) == [b"llm:0", b"llm:1", b"llm:2"]
    assert cache.clear() == 3
    assert cache.keys() == []


def test_cache_stats_count_every_call(seg):
    cache = seg.cache
    cache.set("a", b"1")
    cache.set("b", b"2")
    cache.get("a")
    cache.get("a")
    cache.get("zz")
    cache.delete("b")
    st = cache.stats()
    assert (st["hits"], st["misses"], st["sets"], st["deletes"]) == (2, 1, 2, 1)
    assert st["hit_rate"] == pytest.approx(2 / 3)
    assert st["entries"] == 1
    assert st["errors"] == 0
    for k in ("evictions", "expirations", "bytes_used", "bytes_free",
              "max_value"):
        assert k in st


def test_fetch_computes_once_then_hits(seg):
    calls = []

    def compute():
        calls.append(1)
        return b"answer"

    assert seg.cache.fetch("llm:42", compute, ttl=60.0) == b"answer"
    assert seg.cache.fetch("llm:42", compute, ttl=60.0) == b"answer"
    assert len(calls) == 1
    assert 59 < seg.cache.ttl("llm:42") <= 60


def test_fetch_whose_compute_raises_releases_the_lease(seg):
    def boom():
        raise RuntimeError("model down")

    with pytest.raises(RuntimeError):
        seg.cache.fetch("k", boom, lease=30.0)
    # Nobody holds the lease now: the next caller computes at once.
    t0 = time.monotonic()
    assert seg.cache.fetch("k", lambda: b"ok", wait=0.5) == b"ok"
    assert time.monotonic() - t0 < 0.5


def test_fetch_rejects_a_compute_that_returns_str(seg):
    with pytest.raises(TypeError):
        seg.cache.fetch("k", lambda: "text")
    assert seg.cache.fetch("k", lambda: b"bytes") == b"bytes"


def test_fetch_from_eight_threads_computes_once(seg):
    calls = []
    start = threading.Barrier(8)
    out = []

    def compute():
        calls.append(1)
        time.sleep(0.1)
        return b"v"

    def run():
        start.wait()
        out.append(seg.cache.fetch("cold", compute, ttl=60.0))

    ts = [threading.Thread(target=run) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(10)
    assert out == [b"v"] * 8
    assert len(calls) == 1


def test_fetch_from_four_processes_computes_once(seg, segname):
    computed = seg.counter("computed")
    pids = []
    r, w = os.pipe()
    for _ in range(4):
        pid = os.fork()
        if pid == 0:  # child: wait for the start byte, fetch, exit
            try:
                os.close(w)
                os.read(r, 1)

                def compute():
                    computed.inc()
                    time.sleep(0.2)
                    return b"v"
                ok = seg.cache.fetch("cold", compute, ttl=60.0) == b"v"
                os._exit(0 if ok else 1)
            except BaseException:
                os._exit(2)
        pids.append(pid)
    os.close(r)
    os.write(w, b"xxxx")
    os.close(w)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert computed.value == 1


def test_waiting_fetch_times_out_with_busy(seg):
    # This process holds the lease through the library directly; a child
    # (another process) waits for 0.2 s and gets Busy.
    outcome, _ = seg.cache._fetch("held", 10_000, 0)
    assert outcome == shmstat._shmstat.CONSTANTS["LEASED"]
    pid = os.fork()
    if pid == 0:
        try:
            seg.cache.fetch("held", lambda: b"x", wait=0.2)
            os._exit(1)
        except shmstat.Busy as e:
            os._exit(0 if e.name == "ELEASE" else 3)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    seg.cache._lease_release("held")


def test_cached_decorator_on_a_sync_function(seg):
    calls = []

    @shmstat.cached(seg, ttl=60.0)
    def answer(prompt, temperature=0.0):
        calls.append(prompt)
        return {"prompt": prompt, "answer": prompt.upper()}

    assert answer("hi") == {"prompt": "hi", "answer": "HI"}
    assert answer("hi") == {"prompt": "hi", "answer": "HI"}
    assert answer("ho", temperature=0.5)["answer"] == "HO"
    assert calls == ["hi", "ho"]
    # A closure (over calls): its variables' values when decorated.
    assert answer.key("hi").endswith("answer[calls=[]]:'hi'")
    assert seg.cache.exists(answer.key("hi"))
    answer.invalidate("hi")
    answer("hi")
    assert calls == ["hi", "ho", "hi"]
    assert answer.__name__ == "answer"


def test_cached_decorator_ttl_expiry_recomputes(seg):
    calls = []

    @shmstat.cached(seg.cache, ttl=0.05, prefix="t:")
    def f(x):
        calls.append(x)
        return x * 2

    assert f(2) == 4
    assert f(2) == 4
    assert len(calls) == 1
    assert wait_for(lambda: not seg.cache.exists("t:2"))
    assert f(2) == 4
    assert len(calls) == 2


def test_cached_decorator_long_arguments_are_hashed(seg):
    @shmstat.cached(seg, ttl=60.0)
    def f(text):
        return len(text)

    assert f("x" * 1000) == 1000
    k = f.key("x" * 1000)
    assert len(k.encode()) <= 250 and "#" in k
    assert seg.cache.exists(k)


def test_cached_decorator_on_an_async_function_computes_once(seg):
    calls = []

    @shmstat.cached(seg, ttl=60.0)
    async def answer(prompt):
        calls.append(prompt)
        await asyncio.sleep(0.05)
        return ["llm", prompt]

    async def main():
        ticks = 0

        async def ticker():  # the loop keeps running while they wait
            nonlocal ticks
            for _ in range(5):
                await asyncio.sleep(0.005)
                ticks += 1
        r = await asyncio.gather(ticker(), *[answer("p") for _ in range(10)])
        return r[1:], ticks

    results, ticks = asyncio.run(main())
    assert results == [["llm", "p"]] * 10
    assert calls == ["p"]
    assert ticks == 5
    assert asyncio.run(answer("p")) == ["llm", "p"]
    assert calls == ["p"]


def test_async_fetch_waits_for_another_process_without_blocking_the_loop(
        seg):
    # Another process holds the lease for 0.3 s, then sets the value.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            outcome, _ = seg.cache._fetch("slow", 10_000, 0)
            os.write(w, b"1")
            time.sleep(0.3)
            seg.cache.set("slow", b"theirs", ttl=60.0)
            os._exit(0 if outcome == 1 else 1)
        except BaseException:
            os._exit(2)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)

    async def compute():
        return b"mine"

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1
        t = asyncio.ensure_future(ticker())
        v = await seg.cache.afetch("slow", compute, ttl=60.0, wait=5.0)
        t.cancel()
        return v, ticks

    v, ticks = asyncio.run(main())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert v == b"theirs"
    assert ticks >= 5  # the loop ran while the value was computed


# --------------------------------------------------------------- documents

def test_live_stats_is_the_seeds_dict(seg):
    seg.counter("filter_stats:total_samples").inc(150)
    seg.counter("filter_stats:ml_confident").inc(120)
    seg.counter("other").inc()
    st = seg.live_stats("filter_stats:*")
    assert st["source"] == "local"
    assert st["segment"] == seg.name
    assert st["timestamp"].endswith("Z")
    assert st["total_samples"] == 150 and st["ml_confident"] == 120
    assert "other" not in st
    assert seg.live_stats()["filter_stats:total_samples"] == 150


def test_live_stats_global_scope_says_when_redis_never_answered(seg):
    seg.counter("filter_stats:total_samples").inc(3)
    st = seg.live_stats("filter_stats:*", scope="global")
    # No bridge has read anything back: no value, and not "redis".
    assert st["source"] == "stale"
    assert st["total_samples"] is None
    with pytest.raises(ValueError):
        seg.live_stats(scope="cluster")


def test_prometheus_exposition_parses(seg):
    from prometheus_client.parser import text_string_to_metric_families
    seg.counter("http:requests").inc(7)
    seg.gauge("queue:depth").set(3)
    fams = {f.name: f for f in
            text_string_to_metric_families(seg.prometheus())}
    req = fams["shmstat_http_requests"]
    assert req.type == "counter"
    assert req.samples[0].value == 7
    assert req.samples[0].labels["name"] == "http:requests"
    assert fams["shmstat_queue_depth"].samples[0].value == 3


def test_health_is_a_dict_with_status_and_checks(seg):
    h = seg.health(require_bridge=False)
    assert h["status"] == "healthy", h
    assert set(h["checks"]) >= {"segment", "bridge", "cache", "workers",
                                "directory"}
    h = seg.health()
    assert h["status"] == "degraded" and "bridge" in h["reason"]


def test_info_describes_the_segment(seg):
    info = seg.info()
    assert info["name"] == seg.name
    assert info["max_workers"] == 64
    assert info["row_overflows"] == 0
    assert "cache" in info["regions"]
    # the page of its memory: its file's (2 MiB on a huge-page tmpfs)
    st = os.stat("/dev/shm/shmstat." + seg.name)
    assert info["page_size"] == st.st_blksize


def test_help_documents_the_package():
    import pydoc
    text = pydoc.render_doc(shmstat, renderer=pydoc.plaintext)
    for word in ("open", "Segment", "Cache", "cached", "Counter", "NotFound"):
        assert word in text
    assert "stampede" in shmstat.Cache.fetch.__doc__ or \
        "one caller" in shmstat.Cache.fetch.__doc__


def test_the_extension_exports_only_its_init_function():
    import shutil
    import subprocess
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed")
    out = subprocess.run([nm, "-D", "--defined-only",
                          shmstat._shmstat.__file__], capture_output=True,
                         text=True, check=True).stdout
    syms = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert syms == {"PyInit__shmstat"}, syms


def test_fetch_returns_the_expired_value_while_another_process_recomputes(
        seg):
    seg.cache.set("k", b"old", ttl=0.05)
    time.sleep(0.2)  # past the TTL (no call may meet the entry meanwhile)
    r, w = os.pipe()
    q, z = os.pipe()
    pid = os.fork()
    if pid == 0:  # takes the lease and holds it until told
        try:
            os.close(r)
            os.close(z)
            outcome, _ = seg.cache._fetch("k", 10_000, 0)
            os.write(w, b"%d" % outcome)
            os.read(q, 1)
            os._exit(0)
        except BaseException:
            os._exit(2)
    os.close(w)
    os.close(q)
    assert os.read(r, 1) == b"%d" % shmstat._shmstat.CONSTANTS["LEASED"]
    calls = []
    v = seg.cache.fetch("k", lambda: calls.append(1) or b"new", wait=1.0)
    os.write(z, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert v == b"old" and calls == []


def test_cached_result_too_big_to_store_is_returned_and_not_cached(segname):
    with shmstat.open(segname, create=True, cache_max_value=1024) as s:
        calls = []

        @shmstat.cached(s, ttl=60.0)
        def f(n):
            calls.append(n)
            return b"x" * n

        assert f(4096) == b"x" * 4096
        t0 = time.monotonic()
        assert f(4096) == b"x" * 4096  # computed again, at once: no lease
        assert time.monotonic() - t0 < 1.0
        assert calls == [4096, 4096]
        assert f(10) == b"x" * 10 and f(10) == b"x" * 10
        assert calls == [4096, 4096, 10]
        with pytest.raises(shmstat.TooBig):
            s.cache.fetch("direct", lambda: b"y" * 4096)


def test_a_read_only_open_reads_the_cache_and_refuses_writes(segname):
    with shmstat.open(segname, create=True) as s:
        s.cache.set("k", b"value")
        s.counter("c").inc(3)
        with shmstat.open(segname, readonly=True) as r:
            assert r.cache.get("k") == b"value"
            assert r.cache.exists("k")
            assert r.cache.ttl("k") == math.inf
            assert r.cache.get("absent") is None
            assert list(r.cache.keys()) == [b"k"]
            assert r.stat("c")["value"] == 3
            with pytest.raises(shmstat.ReadOnly):
                r.cache.set("k", b"other")
            with pytest.raises(shmstat.ReadOnly):
                r.counter("d")
            # It counted nothing and marked nothing: stats unchanged.
            assert r.cache.stats()["hits"] == 0
        assert s.cache.get("k") == b"value"
    with pytest.raises(ValueError):
        shmstat.open(segname, create=True, readonly=True)


def test_histogram_observe_refuses_what_the_tool_refuses(seg):
    h = seg.histogram("lat")
    h.observe(0.25)
    for bad in (-1, -0.5, float("nan"), float("inf"), float("-inf"), 1e13,
                9.2e12):
        with pytest.raises(ValueError, match="numbers >= 0 and below"):
            h.observe(bad)
    v = h.value
    assert v["count"] == 1 and v["sum"] == 0.25


def test_a_name_or_key_without_utf8_is_an_invalid_argument(seg):
    with pytest.raises(shmstat.InvalidArgument, match="lone surrogate"):
        seg.counter("bad\udcff")
    with pytest.raises(shmstat.InvalidArgument, match="cache key"):
        seg.cache.set("k\udcff", b"v")


@pytest.mark.parametrize("kw", [{"max_workers": -1}, {"max_counters": 0},
                                {"size": -5}, {"cache_max_value": 1.5},
                                {"max_workers": True}])
def test_open_refuses_sizes_that_are_no_whole_number(segname, kw):
    with pytest.raises(shmstat.InvalidArgument, match=f"{list(kw)[0]} must be"):
        shmstat.open(segname, create=True, **kw)
    with pytest.raises(shmstat.NotFound):
        shmstat.open(segname)  # nothing was created


@pytest.mark.parametrize("pct", [-1, 91, 1.5, True, "50"])
def test_open_refuses_a_home_share_out_of_range(segname, pct):
    with pytest.raises(shmstat.InvalidArgument, match="cache_home_pct must"):
        shmstat.open(segname, create=True, cache_home_pct=pct)
    with pytest.raises(shmstat.NotFound):
        shmstat.open(segname)


def test_home_blocks_serve_the_cache_as_before(segname):
    with shmstat.open(segname, create=True, size=16 << 20,
                      cache_home_pct=50) as s:
        blocks = s.info()["cache_home_blocks"]
        assert blocks > 0
        for i in range(300):
            s.cache.set(f"k{i}", f"v{i}".encode())
        assert all(s.cache.get(f"k{i}") == f"v{i}".encode()
                   for i in range(300))
        s.cache.delete("k5")
        assert s.cache.get("k5") is None
        assert s.cache.stats()["entries"] == 299
    with shmstat.open(segname, create=True, cache_home_pct=50) as s:
        # attached as made: the share matters only to the creator
        assert s.info()["cache_home_blocks"] == blocks
    with pytest.warns(RuntimeWarning, match="cache_home_blocks=[1-9]"):
        shmstat.open(segname, create=True, cache_home_pct=0).close()


def test_a_home_share_too_small_for_any_block_warns(segname):
    with pytest.warns(RuntimeWarning, match="cache_home_pct=1 gave no home "
                                            "blocks"):
        s = shmstat.open(segname, create=True, exclusive=True,
                         cache_home_pct=1)
    assert s.info()["cache_home_blocks"] == 0
    s.close()


def test_stat_global_is_none_until_reconciled(seg):
    seg.counter("jobs").inc(3)
    st = seg.stat("jobs")
    assert st["value"] == 3 and st["global"] is None and st["global_ns"] == 0


def test_live_stats_strips_the_prefix_up_to_its_last_separator(seg):
    seg.counter("filter_stats:rejected").inc(2)
    seg.counter("filter_stats:ml_confident").inc(1)
    seg.counter('x{route="5"}').inc()
    st = seg.live_stats("filter_stats:re*")
    assert st["rejected"] == 2 and "jected" not in st
    assert seg.live_stats("filter_stats:ml_*")["ml_confident"] == 1
    assert seg.live_stats("x*")['x{route="5"}'] == 1


def test_reset_global_without_a_bridge_changes_nothing(seg):
    seg.counter("jobs").inc(3)
    with pytest.raises(shmstat.NotFound, match="no shmstat-bridge"):
        seg.reset_global("jobs")
    with pytest.raises(ValueError):
        seg.reset_global(None)
    assert seg.stat("jobs")["value"] == 3


def test_reset_global_resets_the_key_in_redis_for_every_host(seg, tmp_path):
    import shutil
    import subprocess
    bridge = os.environ.get("SHMSTAT_BRIDGE")
    server = shutil.which("redis-server")
    if not bridge or not server:
        pytest.skip("needs shmstat-bridge and redis-server")
    sock = str(tmp_path / "redis.sock")
    redis = subprocess.Popen([server, "--port", "0", "--unixsocket", sock,
                              "--save", "", "--appendonly", "no",
                              "--dir", str(tmp_path)],
                             stdout=subprocess.DEVNULL)
    procs = [redis]
    try:
        assert wait_for(lambda: os.path.exists(sock), timeout=10)
        seg.counter("jobs").inc(7)
        seg.counter("other").inc(2)
        br = subprocess.Popen([bridge, "-n", seg.name, "-u", "unix://" + sock,
                               "-i", "50ms", "--pidfile",
                               str(tmp_path / "b.pid")],
                              stderr=subprocess.DEVNULL)
        procs.append(br)
        assert wait_for(lambda: seg.stat("jobs")["global"] == 7, timeout=20)
        assert seg.reset_global("jobs", timeout=20) == 1
        assert wait_for(lambda: seg.stat("jobs")["global"] == 0, timeout=20)
        seg.counter("jobs").inc(1)
        assert wait_for(lambda: seg.stat("jobs")["global"] == 1, timeout=20)
        assert seg.stat("other")["global"] == 2
        assert seg.stat("jobs")["value"] == 8  # this host's count stays
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_open_says_when_an_existing_segment_has_other_sizes(segname):
    with shmstat.open(segname, create=True, size=(8 << 20) + 1,
                      cache_max_value=65536) as s:
        # The same sizes again (the size as asked, rounded up to a page
        # by the creator): no warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with shmstat.open(segname, create=True, size=(8 << 20) + 1,
                              cache_max_value=65536):
                pass
            with shmstat.open(segname, create=True):
                pass
        with pytest.warns(RuntimeWarning) as w:
            with shmstat.open(segname, create=True,
                              cache_max_value=1 << 20) as t:
                assert t.cache.stats()["max_value"] == 65536
        msg = str(w[0].message)
        assert "cache_max_value=65536 (asked 1048576)" in msg
        assert "only when a segment is created" in msg
        with pytest.warns(RuntimeWarning) as w:
            shmstat.open(segname, create=True, size=16 << 20).close()
        assert f"size={s.info()['size']} (asked {16 << 20})" in str(w[0].message)
        assert s.cache.stats()["max_value"] == 65536
