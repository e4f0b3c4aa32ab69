"""What the batched Coin Game's memory work must not change or break: a large batch is stepped
in chunks of games with the same numbers as in one piece, the tensors a step returns are new
(a caller may keep them), and one million games stay within the issue's memory target."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import social_dilemmas
from social_dilemmas import coin_game

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(b: int, obs_dtype: str, steps: int = 20, **kwargs):
    """A seeded run of the batched view (episodes of 7 steps): every tensor it returned (the
    observations, rewards, both flags and the final observations), the state after each step,
    and the view."""
    vec = social_dilemmas.make_vec("coin_game", b, validate=False, obs_dtype=obs_dtype, max_steps=7, **kwargs)
    obs, _ = vec.reset(seed=3)
    gen = torch.Generator().manual_seed(4)
    returned, states = [obs], []
    for _ in range(steps):
        obs, rewards, terminated, truncated, info = vec.step(torch.randint(4, (b, 2), generator=gen))
        returned += [obs, rewards, terminated, truncated] + ([info["final_obs"]] if "final_obs" in info else [])
        states += [getattr(vec.state, f) for f in ("t", "pos", "coin", "owner")]
    return returned, states, vec


@pytest.mark.parametrize("obs_dtype", ["float32", "uint8"])
@pytest.mark.parametrize("size", [3, 4])
@pytest.mark.parametrize("chunk", [1, 5, 36])
def test_a_batch_stepped_in_chunks_gives_the_numbers_of_one_piece(monkeypatch, obs_dtype, size, chunk):
    # 37 games: chunks of 1, of 5 (the last one of 2) and of 36 (the last one of 1), episode ends included
    returned, states, _ = run(37, obs_dtype, size=size)
    monkeypatch.setattr(coin_game, "_CHUNK", chunk)
    returned_c, states_c, _ = run(37, obs_dtype, size=size)
    assert len(returned_c) == len(returned) and len(states_c) == len(states)
    for a, b in zip(returned_c + states_c, returned + states):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("chunk", [5, None])  # None: the default, one chunk here
def test_the_tensors_a_step_returns_are_new_and_keep_their_values(monkeypatch, chunk):
    if chunk is not None:
        monkeypatch.setattr(coin_game, "_CHUNK", chunk)
    returned, states, vec = run(23, "uint8", steps=16)  # two episode ends
    copies = [t.clone() for t in returned + states]
    gen = torch.Generator().manual_seed(9)
    later = []
    for _ in range(9):  # one more episode end
        later += list(vec.step(torch.randint(4, (23, 2), generator=gen))[:4])
    for t, c in zip(returned + states, copies):
        assert torch.equal(t, c), "a later step overwrote a tensor returned earlier"
    # no two returned tensors share memory, nor any with the view's current state
    current = [getattr(vec.state, f) for f in ("t", "pos", "coin", "owner")]
    ptrs = [t.untyped_storage().data_ptr() for t in returned + later] + [current[0].untyped_storage().data_ptr()]
    assert len(set(ptrs)) == len(ptrs)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="VmHWM is read from /proc")
def test_one_million_coin_games_peak_at_most_0_35_gib_above_python_and_torch():
    """``benchmarks/memory.py``'s measurement once (two fresh processes, about 15 s): the uint8
    peak above the baseline within the issue's target. Measured: 0.309 GiB (0.308-0.314 over 5
    repeats; 0.37-0.40 before the step worked in chunks of games)."""
    spec = importlib.util.spec_from_file_location("memory_benchmark", BENCHMARKS / "memory.py")
    memory = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = memory
    spec.loader.exec_module(memory)
    base = memory.measure(1_000_000, 32, "none")["peak"]
    peak = memory.measure(1_000_000, 32, "uint8")["peak"]
    assert (peak - base) / memory.GiB <= memory.TARGET_GIB
