#!/usr/bin/python3
"""python/bench.py: the same as `python3 -m shmstat.bench` (see there), for
the package as installed or as built (PYTHONPATH=build/python)."""
import os
import sys

# This directory holds the package's sources, not the built extension.
here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != here]

from shmstat.bench import main  # noqa: E402

sys.exit(main())
