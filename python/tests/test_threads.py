"""Counting from threads and from forked children (gunicorn --preload,
gthread workers, FastAPI's threadpool): exact, with no hooks."""

import os
import threading

import shmstat


def test_eight_threads_times_100000_increments_are_exact(seg):
    c = seg.counter("hits")
    g = seg.gauge("inflight")
    n, per = 8, 100_000
    start = threading.Barrier(n)

    def run():
        start.wait()
        inc = c.inc
        for _ in range(per):
            inc()
        g.inc()

    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not any(t.is_alive() for t in ts)
    assert c.value == n * per
    assert g.value == n


def test_threads_mixing_counters_and_cache_calls_are_exact(seg):
    c = seg.counter("mixed")
    n, per = 4, 5_000

    def run(i):
        for j in range(per):
            c.inc(2)
            seg.cache.set(f"k{i}", b"%d" % j)
            seg.cache.get(f"k{i}")

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert c.value == 2 * n * per
    st = seg.cache.stats()
    assert st["sets"] == n * per and st["hits"] == n * per


def test_counters_taken_before_fork_count_in_each_child(seg):
    # As with gunicorn --preload: the master opens and takes the handles.
    c = seg.counter("preload")
    c.inc(1)
    pids = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                ts = [threading.Thread(
                    target=lambda: [c.inc() for _ in range(10_000)])
                    for _ in range(4)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(60)
                os._exit(0)
            except BaseException:
                os._exit(1)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    assert c.value == 1 + 4 * 4 * 10_000
    assert seg.info()["row_overflows"] == 0


def test_a_child_killed_with_sigkill_loses_nothing_it_counted(seg, segname):
    import signal
    c = seg.counter("killed")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        c.inc(12345)
        os.write(w, b"1")
        signal.pause()
        os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(r)
    assert c.value == 12345
    assert seg.reap() == 1
    assert c.value == 12345
    with shmstat.open(segname) as other:
        assert other.counter("killed").value == 12345


def test_a_fetch_waiting_for_another_process_does_not_stall_other_threads(seg):
    # A child holds the lease of "slow" for 0.3 s; a thread of ours waits
    # for it inside the library; meanwhile the main thread keeps running.
    import time
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            outcome, _ = seg.cache._fetch("slow", 10_000, 0)
            os.write(w, b"1")
            time.sleep(0.3)
            seg.cache.set("slow", b"theirs")
            os._exit(0 if outcome == 1 else 1)
        except BaseException:
            os._exit(2)
    os.close(w)
    assert os.read(r, 1) == b"1"
    os.close(r)
    got = []
    t = threading.Thread(target=lambda: got.append(
        seg.cache.fetch("slow", lambda: b"mine", wait=5.0)))
    t.start()
    c = seg.counter("progress")
    while t.is_alive():
        c.inc()
        time.sleep(0.001)
    t.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert got == [b"theirs"]
    assert c.value >= 50  # ~0.3 s of 1 ms steps while the thread waited
