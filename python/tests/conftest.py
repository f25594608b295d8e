"""Fixtures of the Python suite: a fresh segment per test, removed after."""

import os
import uuid

import pytest

import shmstat


@pytest.fixture
def segname():
    name = "pytest-" + uuid.uuid4().hex[:12]
    yield name
    try:
        shmstat.unlink(name)
    except shmstat.NotFound:
        pass


@pytest.fixture
def seg(segname):
    s = shmstat.open(segname, create=True, size=8 << 20, max_counters=256,
                     max_workers=64)
    yield s
    s.close()


def wait_for(cond, timeout=5.0, step=0.005):
    """Poll cond() until it is true or timeout seconds passed (bounded)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)


SOURCE_ROOT = os.environ.get(
    "SHMSTAT_SOURCE_ROOT",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
