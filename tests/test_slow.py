"""Long training runs with published targets: `make slow`, not part of `make test` or CI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_adalign_self_play_on_the_ipd_learns_tit_for_tat(tmp_path):
    """Over 5 seeds: P(cooperate) >= 0.9 after the other cooperated, <= 0.2 after it defected."""
    result = load_example("ipd_tit_for_tat").main(["--seeds", "5", "--out", str(tmp_path), "--no-progress"])
    mean = result["mean"]
    assert min(mean["CC"], mean["DC"]) >= 0.9, mean
    assert max(mean["CD"], mean["DD"]) <= 0.2, mean
