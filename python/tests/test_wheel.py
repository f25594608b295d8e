"""`pip install ./python` works: the standalone build (python/meson.build
through meson-python) makes a self-contained wheel that imports and
counts. Runs where SHMSTAT_PY_TEST_WHEEL=1 (one build of test.sh: the
wheel does not depend on how the build tree was configured)."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import SOURCE_ROOT

pytestmark = pytest.mark.skipif(os.environ.get("SHMSTAT_PY_TEST_WHEEL") != "1",
                                reason="wheel build runs in one build only")


def test_pip_builds_a_wheel_that_imports_and_counts(tmp_path):
    # A copy of the parts of the tree it needs, so the source tree stays
    # clean (meson-python builds in the source directory).
    src = tmp_path / "src"
    for d in ("python", "shm", "include"):
        shutil.copytree(os.path.join(SOURCE_ROOT, d), src / d,
                        ignore=shutil.ignore_patterns("tests", "__pycache__",
                                                      ".mesonpy*"))
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q",
                        "--no-build-isolation", "--no-deps", "-w",
                        str(tmp_path / "wheels"), str(src / "python")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    wheels = list((tmp_path / "wheels").glob("shmstat-*.whl"))
    assert len(wheels) == 1
    site = tmp_path / "site"
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        z.extractall(site)
    for f in ("shmstat/__init__.py", "shmstat/_cached.py", "shmstat/flask.py",
              "shmstat/starlette.py", "shmstat/bench.py"):
        assert f in names
    code = ("import shmstat, uuid; n = 'wheel-' + uuid.uuid4().hex[:8]; "
            "s = shmstat.open(n, create=True); c = s.counter('a'); c.inc(3); "
            "assert c.value == 3; s.close(); shmstat.unlink(n); "
            "print(shmstat.__file__)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LD_PRELOAD")}
    env["PYTHONPATH"] = str(site)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=30, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(site))
