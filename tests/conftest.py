"""Shared set-up of the test suite: no window ever opens (pygame uses its dummy driver), and
every test process uses one torch thread (two workers with two torch threads each on a
2-core machine make small tensor operations hundreds of times slower)."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses tests start

import torch  # noqa: E402

# the tests' networks are tiny: more threads only cost time, with or without xdist
torch.set_num_threads(1)
