"""Shared set-up of the test suite: no window ever opens (pygame uses its dummy driver), and
every test process uses one torch thread (two workers with two torch threads each on a
2-core machine make small tensor operations hundreds of times slower)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the subprocesses tests start

import torch  # noqa: E402

# the tests' networks are tiny: more threads only cost time, with or without xdist
torch.set_num_threads(1)


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def example():
    """``example(name)`` imports ``examples/<name>.py`` as a module (the examples are scripts, not a package)."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
