"""Properties of the rules that hold for every game: batched = one by one, torch = numpy,
observations in their spaces, rewards within their bounds (hypothesis)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import social_dilemmas
from social_dilemmas import CoinGame, Negotiation
from social_dilemmas.ipd import IPD

GAMES = ["ipd", "coin_game", "negotiation"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def random_actions(game, rng: np.random.Generator, b: int) -> np.ndarray:
    """Joint actions ``[b, n_players, *action_shape]``; Negotiation mixes in exact 0s and 5s."""
    if game.action_kind == "discrete":
        return rng.integers(0, game.action_space().n, (b, game.n_players))
    a = rng.uniform(0, game.max_proposal, (b, game.n_players, game.n_items)).astype(np.float32)
    edge = rng.random(a.shape)
    a[edge < 0.15] = 0.0
    a[edge > 0.85] = game.max_proposal
    return a


def as_torch_actions(game, a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(a, dtype=game.action_dtype)


def assert_same_state(a, b, context=""):
    for f in dataclasses.fields(a):
        x, y = np.asarray(getattr(a, f.name)), np.asarray(getattr(b, f.name))
        assert x.shape == y.shape, (context, f.name)
        if np.issubdtype(x.dtype, np.floating):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=f"{context} {f.name}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{context} {f.name}")


def to_np(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# -- parity -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_batched_games_equal_games_stepped_one_by_one(name):
    game = social_dilemmas.make_game(name)
    rng = np.random.default_rng(7)
    b, steps = 8, 120
    noise = rng.random((b, game.reset_noise_size), dtype=np.float32)
    batch = game.init(torch.from_numpy(noise))
    singles = [game.init(torch.from_numpy(noise[i : i + 1])) for i in range(b)]
    for t in range(steps):
        if t and t % game.max_steps == 0:  # new episodes, from fresh noise
            noise = rng.random((b, game.reset_noise_size), dtype=np.float32)
            batch = game.init(torch.from_numpy(noise))
            singles = [game.init(torch.from_numpy(noise[i : i + 1])) for i in range(b)]
        acts = random_actions(game, rng, b)
        noise = rng.random((b, game.step_noise_size), dtype=np.float32)
        batch, rewards = game.transition(batch, as_torch_actions(game, acts), torch.from_numpy(noise))
        obs = game.observe(batch)
        for i in range(b):
            singles[i], r_i = game.transition(
                singles[i], as_torch_actions(game, acts[i : i + 1]), torch.from_numpy(noise[i : i + 1])
            )
            assert_same_state(batch.index(slice(i, i + 1)), singles[i], f"step {t} game {i}")
            np.testing.assert_allclose(rewards[i : i + 1].numpy(), r_i.numpy(), rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(obs[i : i + 1].numpy(), game.observe(singles[i]).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", GAMES)
def test_torch_rules_equal_numpy_rules(name):
    game = social_dilemmas.make_game(name)
    rng = np.random.default_rng(11)
    b, steps = 64, 120
    noise = rng.random((b, game.reset_noise_size), dtype=np.float32)
    st_torch = game.init(torch.from_numpy(noise))
    st_np = game.init(noise)
    assert isinstance(st_np.t, np.ndarray) and isinstance(st_torch.t, torch.Tensor)
    assert_same_state(st_torch.numpy(), st_np)
    for t in range(steps):
        if t == steps // 2:
            # hand the states across libraries: conversion keeps the game going identically
            st_torch, st_np = st_np.torch(), st_torch.numpy()
            assert isinstance(st_torch.t, torch.Tensor) and isinstance(st_np.t, np.ndarray)
        acts = random_actions(game, rng, b)
        noise = rng.random((b, game.step_noise_size), dtype=np.float32)
        st_torch, r_torch = game.transition(st_torch, as_torch_actions(game, acts), torch.from_numpy(noise))
        st_np, r_np = game.transition(st_np, acts, noise)
        assert isinstance(r_np, np.ndarray) and r_np.dtype == np.float32
        assert r_torch.dtype == torch.float32
        assert_same_state(st_torch.numpy(), st_np, f"step {t}")
        np.testing.assert_allclose(r_torch.numpy(), r_np, rtol=1e-6, atol=1e-7)
        obs_np = game.observe(st_np)
        assert isinstance(obs_np, np.ndarray) and obs_np.dtype == np.float32
        np.testing.assert_allclose(game.observe(st_torch).numpy(), obs_np, rtol=1e-6, atol=1e-7)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", GAMES)
def test_cuda_rules_equal_cpu_rules(name):
    game = social_dilemmas.make_game(name)
    rng = np.random.default_rng(5)
    b = 256
    noise = rng.random((b, game.reset_noise_size), dtype=np.float32)
    cpu = game.init(torch.from_numpy(noise))
    gpu = game.init(torch.from_numpy(noise).cuda())
    assert gpu.t.is_cuda
    for t in range(60):
        acts = random_actions(game, rng, b)
        noise = rng.random((b, game.step_noise_size), dtype=np.float32)
        cpu, r_cpu = game.transition(cpu, as_torch_actions(game, acts), torch.from_numpy(noise))
        gpu, r_gpu = game.transition(gpu, as_torch_actions(game, acts).cuda(), torch.from_numpy(noise).cuda())
        assert r_gpu.is_cuda
        assert_same_state(cpu.numpy(), gpu.numpy(), f"step {t}")
        np.testing.assert_allclose(r_cpu.numpy(), r_gpu.cpu().numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(game.observe(cpu).numpy(), game.observe(gpu).cpu().numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", GAMES)
def test_rules_do_not_modify_their_inputs(name):
    game = social_dilemmas.make_game(name)
    rng = np.random.default_rng(0)
    state = game.reset(16, torch.Generator().manual_seed(0))
    before = dataclasses.replace(state, **{f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)})
    acts = as_torch_actions(game, random_actions(game, rng, 16))
    acts_before = acts.clone()
    game.transition(state, acts, torch.rand(16, game.step_noise_size))
    game.observe(state)
    assert_same_state(state, before)
    assert torch.equal(acts, acts_before)


# -- observations in their spaces (PettingZoo view, hypothesis) ---------------------------
def action_strategy(name: str):
    if name == "ipd":
        return st.integers(0, 1)
    if name == "coin_game":
        return st.integers(0, 3)
    component = st.one_of(st.floats(0.0, 5.0), st.sampled_from([0.0, 5.0]))
    return st.lists(component, min_size=3, max_size=3).map(lambda x: np.asarray(x, dtype=np.float32))


def joint_strategy(name: str, max_len: int = 40):
    a = action_strategy(name)
    return st.lists(st.tuples(a, a), min_size=1, max_size=max_len)


def run_parallel(env, seed: int, joint_actions):
    """Yields ``(obs, rewards, truncations)`` of every step, resetting when the episode ends."""
    obs, _ = env.reset(seed=seed)
    yield obs, None, None
    for a0, a1 in joint_actions:
        if not env.agents:
            obs, _ = env.reset()
            yield obs, None, None
        obs, rewards, _, truncs, _ = env.step({"player_0": a0, "player_1": a1})
        yield obs, rewards, truncs


def _check_obs_in_space(name, kwargs, seed, joint_actions):
    env = social_dilemmas.parallel_env(name, **kwargs)
    for obs, _, _ in run_parallel(env, seed, joint_actions):
        assert set(obs) == {"player_0", "player_1"}
        for agent, o in obs.items():
            space = env.observation_space(agent)
            assert o.dtype == np.float32
            assert space.contains(o), (agent, o)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), joint_actions=joint_strategy("ipd"))
def test_ipd_observations_lie_in_their_space(seed, joint_actions):
    _check_obs_in_space("ipd", {"max_steps": 7}, seed, joint_actions)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(2, 5), joint_actions=joint_strategy("coin_game"))
def test_coin_game_observations_lie_in_their_space(seed, size, joint_actions):
    _check_obs_in_space("coin_game", {"size": size, "max_steps": 7}, seed, joint_actions)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), joint_actions=joint_strategy("negotiation"))
def test_negotiation_observations_lie_in_their_space(seed, joint_actions):
    _check_obs_in_space("negotiation", {"max_steps": 7}, seed, joint_actions)


# -- rewards within their bounds ----------------------------------------------------------
@SETTINGS
@given(
    payoff=st.lists(st.floats(-10, 10, width=32), min_size=4, max_size=4),
    seed=st.integers(0, 2**32 - 1),
    joint_actions=joint_strategy("ipd"),
)
def test_ipd_rewards_lie_within_the_payoff_range(payoff, seed, joint_actions):
    matrix = [payoff[:2], payoff[2:]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # most random matrices are not dilemmas
        env = social_dilemmas.parallel_env("ipd", payoff=matrix)
    lo, hi = min(payoff), max(payoff)
    for _, rewards, _ in run_parallel(env, seed, joint_actions):
        if rewards is not None:
            for r in rewards.values():
                assert lo <= r <= hi
                assert r in payoff  # a reward is one of the matrix's entries


@SETTINGS
@given(
    penalty=st.floats(-5, 0, width=32),
    size=st.integers(2, 4),
    seed=st.integers(0, 2**32 - 1),
    joint_actions=joint_strategy("coin_game"),
)
def test_coin_game_rewards_lie_within_penalty_and_one(penalty, size, seed, joint_actions):
    env = social_dilemmas.parallel_env("coin_game", size=size, penalty=penalty)
    for _, rewards, _ in run_parallel(env, seed, joint_actions):
        if rewards is not None:
            for r in rewards.values():
                assert min(penalty, 0.0) - 1e-6 <= r <= 1.0 + 1e-6


proposals = hnp.arrays(
    np.float32,
    (2, 3),
    elements=st.one_of(st.floats(0, 5, width=32), st.sampled_from([0.0, 5.0])),
)


@SETTINGS
@given(batch=st.lists(proposals, min_size=1, max_size=16), noise=st.integers(0, 2**32 - 1))
def test_negotiation_rewards_lie_in_unit_interval_and_sum_to_at_most_one(batch, noise):
    game = Negotiation()
    actions = np.stack(batch)
    b = len(batch)
    values_noise = np.random.default_rng(noise).random((b, 3), dtype=np.float32)
    state = game.init(values_noise)
    for library in ("numpy", "torch"):
        if library == "torch":
            _, r = game.transition(state.torch(), torch.from_numpy(actions), torch.rand(b, 3))
            r = r.numpy()
        else:
            _, r = game.transition(state, actions, values_noise)
        assert np.all(np.isfinite(r))
        assert np.all(r >= 0) and np.all(r <= 1)
        assert np.all(r.sum(1) <= 1 + 1e-6)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), joint_actions=joint_strategy("negotiation"))
def test_negotiation_rewards_through_the_parallel_view_are_bounded(seed, joint_actions):
    env = social_dilemmas.parallel_env("negotiation")
    for _, rewards, _ in run_parallel(env, seed, joint_actions):
        if rewards is not None:
            assert all(0.0 <= r <= 1.0 for r in rewards.values())
            assert sum(rewards.values()) <= 1 + 1e-6


def test_declared_reward_ranges_match_the_rules():
    assert IPD().reward_range == (-3.0, 0.0)
    assert CoinGame().reward_range[0] == -2.0
    assert CoinGame(penalty=-3).reward_range[0] == -3.0
    assert Negotiation().reward_range == (0.0, 1.0)
