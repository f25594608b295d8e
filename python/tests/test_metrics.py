"""Histograms, labels and help text from Python: what a prometheus_client
user needs before switching."""

import asyncio
import math
import os
import threading

import pytest

import shmstat


def test_labels_in_any_order_are_one_counter(seg):
    a = seg.counter("http_requests_total", route="/", code="200")
    b = seg.counter("http_requests_total", code="200", route="/")
    a.inc(2)
    b.inc(3)
    assert a.value == 5
    assert a.name == 'http_requests_total{code="200",route="/"}'
    assert seg.values() == {'http_requests_total{code="200",route="/"}': 5}
    # The same in the string form, written by hand.
    c = seg.counter('http_requests_total{ route="/",code="200",}')
    assert c.value == 5


def test_label_values_are_escaped_as_in_the_exposition(seg):
    c = seg.counter("req_total", path='/a"b\\c\nd')
    c.inc()
    assert c.name == 'req_total{path="/a\\"b\\\\c\\nd"}'
    assert 'path="/a\\"b\\\\c\\nd"} 1\n' in seg.prometheus()


def test_bad_labels_are_refused_with_the_reason(seg):
    with pytest.raises(shmstat.InvalidArgument, match="reserved"):
        seg.counter('x{__a="b"}')
    with pytest.raises(shmstat.InvalidArgument, match="twice"):
        seg.counter('x{a="1",a="2"}')
    with pytest.raises(shmstat.InvalidArgument):
        seg.counter('x{a=1}')


def test_histogram_observe_value_and_quantile(seg):
    h = seg.histogram("latency_seconds", buckets=(0.1, 0.2, 0.4, 0.8))
    for i in range(100):
        h.observe(i / 100 * 0.4)   # 0 .. 0.396, uniform
    v = h.value
    assert v["count"] == 100
    assert v["sum"] == pytest.approx(sum(i / 100 * 0.4 for i in range(100)),
                                     abs=1e-4)
    les = [le for le, _ in v["buckets"]]
    assert les == [0.1, 0.2, 0.4, 0.8, math.inf]
    assert [c for _, c in v["buckets"]] == [26, 51, 100, 100, 100]
    # Linear interpolation within the bucket, as histogram_quantile().
    assert h.quantile(0.5) == pytest.approx(0.1 + 0.1 * (50 - 26) / 25)
    assert seg.histogram_value("latency_seconds")["count"] == 100


def test_histogram_time_as_context_manager_and_decorator(seg):
    h = seg.histogram("work_seconds", route="/")
    with h.time():
        pass

    @h.time()
    def f(x):
        return x * 2

    @h.time()
    async def g():
        return 7

    assert f(21) == 42
    assert asyncio.run(g()) == 7
    v = h.value
    assert v["count"] == 3
    assert 0 <= v["sum"] < 5
    assert h.name == 'work_seconds{route="/"}'


def test_histogram_with_other_buckets_is_refused(seg):
    seg.histogram("h", buckets=(1, 2))
    with pytest.raises(shmstat.WrongKind, match="other bucket bounds"):
        seg.histogram("h", buckets=(1, 3))
    assert seg.histogram("h", buckets=None).value["count"] == 0
    with pytest.raises(shmstat.WrongKind):
        seg.counter("h")


def test_histogram_threads_lose_no_observation(seg):
    h = seg.histogram("t_seconds", buckets=(1, 2))

    def run():
        for _ in range(2000):
            h.observe(1.5)

    ts = [threading.Thread(target=run) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    v = h.value
    assert v["count"] == 8000
    assert v["buckets"][1][1] == 8000 and v["buckets"][0][1] == 0
    assert v["sum"] == pytest.approx(12000)


def test_histogram_in_the_exposition_and_help(seg):
    h = seg.histogram("http_request_duration_seconds",
                      buckets=shmstat.exponential_buckets(0.01, 10, 3),
                      route="/")
    h.observe(0.05)
    seg.help("http_request_duration_seconds", "Request latency.")
    assert seg.help("http_request_duration_seconds") == "Request latency."
    assert seg.help("nothing_here") is None
    doc = seg.prometheus()
    assert ("# HELP shmstat_http_request_duration_seconds Request latency.\n"
            in doc)
    assert "# TYPE shmstat_http_request_duration_seconds histogram\n" in doc
    assert 'route="/",le="0.1"} 1\n' in doc
    assert 'route="/",le="+Inf"} 1\n' in doc
    assert "shmstat_http_request_duration_seconds_count{" in doc


def test_reset_clears_a_histogram(seg):
    h = seg.histogram("r_seconds", buckets=(1,))
    h.observe(0.5)
    h.observe(3)
    assert seg.reset("r_seconds") == 1
    v = h.value
    assert v["count"] == 0 and v["sum"] == 0
    h.observe(0.5)
    assert h.value["count"] == 1


def test_forked_children_observe_into_their_own_rows(seg):
    h = seg.histogram("fork_seconds", buckets=(1,))
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(500):
                    h.observe(0.5)
            finally:
                os._exit(0)
        pids.append(pid)
    for pid in pids:
        assert os.waitpid(pid, 0)[1] == 0
    assert h.value["count"] == 2000
