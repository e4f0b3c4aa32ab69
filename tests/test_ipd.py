"""Rules of the Iterated Prisoner's Dilemma (SPEC section 1), on the batched functions."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
import torch

from social_dilemmas.ipd import DEFAULT_PAYOFF, IPD, IPDState

C, D = 0, 1


def make_state(last: list[tuple[int, int]], t: int = 0) -> IPDState:
    """A batch of IPD states whose previous rounds were ``last`` (``-1`` for no round)."""
    last_t = torch.tensor(last, dtype=torch.int64).reshape(-1, 2)
    return IPDState(t=torch.full((last_t.shape[0],), t, dtype=torch.int64), last=last_t)


def play_round(game: IPD, joint: list[tuple[int, int]]) -> tuple[IPDState, torch.Tensor]:
    """One round of ``len(joint)`` games from the start, with the joint actions ``joint``."""
    state = make_state([(-1, -1)] * len(joint))
    return game.transition(state, torch.tensor(joint, dtype=torch.int64), torch.zeros(len(joint), 0))


# -- payoffs ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "joint, expected",
    [((C, C), (-1.0, -1.0)), ((C, D), (-3.0, 0.0)), ((D, C), (0.0, -3.0)), ((D, D), (-2.0, -2.0))],
    ids=["CC", "CD", "DC", "DD"],
)
def test_default_payoff_of_each_joint_action_seen_from_both_players(joint, expected):
    _, rewards = play_round(IPD(), [joint])
    assert rewards.dtype == torch.float32
    assert rewards[0].tolist() == list(expected)


def test_default_payoff_is_the_lola_matrix():
    assert np.asarray(DEFAULT_PAYOFF).tolist() == [[-1.0, -3.0], [0.0, -2.0]]


def test_custom_payoff_is_used_for_every_joint_action():
    game = IPD(payoff=[[3.0, 0.0], [5.0, 1.0]])
    _, rewards = play_round(game, [(C, C), (C, D), (D, C), (D, D)])
    assert rewards.tolist() == [[3.0, 3.0], [0.0, 5.0], [5.0, 0.0], [1.0, 1.0]]


def test_rewards_of_a_batch_follow_each_games_own_actions():
    # the same joint action at different batch positions gives the same payoff
    joint = [(D, C), (C, C), (D, C), (D, D), (C, D), (C, D)]
    _, rewards = play_round(IPD(), joint)
    table = {(C, C): [-1, -1], (C, D): [-3, 0], (D, C): [0, -3], (D, D): [-2, -2]}
    assert rewards.tolist() == [table[j] for j in joint]


def test_dilemma_payoff_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        IPD()
        IPD(payoff=[[3, 0], [5, 1]])


@pytest.mark.parametrize(
    "payoff",
    [[[3, 0], [2, 1]], [[1, 0], [5, 3]], [[0, 0], [0, 0]], [[-1, 0], [-3, -2]]],
    ids=["T<R", "P>R", "all-equal", "rows-swapped"],
)
def test_payoff_that_is_not_a_dilemma_warns(payoff):
    with pytest.warns(UserWarning, match="Prisoner"):
        game = IPD(payoff=payoff)
    # accepted all the same: the matrix is used as given
    _, rewards = play_round(game, [(D, C)])
    assert rewards[0].tolist() == [float(payoff[1][0]), float(payoff[0][1])]


@pytest.mark.parametrize(
    "payoff",
    [[[1, 2, 3]], [1, 2, 3, 4], [[1, 2], [3, 4], [5, 6]], [[[1, 2], [3, 4]]], 1.0],
    ids=["1x3", "flat4", "3x2", "1x2x2", "scalar"],
)
def test_payoff_of_wrong_shape_raises_naming_payoff(payoff):
    with pytest.raises(ValueError, match="payoff"):
        IPD(payoff=payoff)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_payoff_with_nan_or_inf_raises_naming_payoff(bad):
    with pytest.raises(ValueError, match="payoff"):
        IPD(payoff=[[-1, -3], [bad, -2]])


@pytest.mark.parametrize("max_steps", [0, -1, 2.5, "16", True, None])
def test_bad_max_steps_raises_naming_max_steps(max_steps):
    with pytest.raises(ValueError, match="max_steps"):
        IPD(max_steps=max_steps)


def test_default_max_steps_is_16():
    assert IPD().max_steps == 16


# -- observations -------------------------------------------------------------------------
def test_spaces():
    game = IPD()
    assert game.observation_space() == gymnasium.spaces.Box(0.0, 1.0, (4,), np.float32)
    assert game.action_space() == gymnasium.spaces.Discrete(2)


@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_observation_is_all_zeros_at_reset(library):
    gen = torch.Generator().manual_seed(0) if library == "torch" else np.random.default_rng(0)
    game = IPD()
    state = game.reset(5, gen)
    obs = game.observe(state)
    assert tuple(obs.shape) == (5, 2, 4)
    assert obs.dtype in (torch.float32, np.float32)
    assert not np.asarray(obs).any()
    assert np.asarray(state.t).tolist() == [0] * 5


@pytest.mark.parametrize(
    "joint, seen_by_0, seen_by_1",
    [
        ((C, C), [1, 0, 1, 0], [1, 0, 1, 0]),
        ((C, D), [1, 0, 0, 1], [0, 1, 1, 0]),
        ((D, C), [0, 1, 1, 0], [1, 0, 0, 1]),
        ((D, D), [0, 1, 0, 1], [0, 1, 0, 1]),
    ],
    ids=["CC", "CD", "DC", "DD"],
)
def test_observation_is_one_hot_of_last_round_from_own_side(joint, seen_by_0, seen_by_1):
    # [I cooperated, I defected, other cooperated, other defected]
    game = IPD()
    state, _ = play_round(game, [joint])
    obs = game.observe(state)
    assert obs.dtype == torch.float32
    assert obs[0, 0].tolist() == seen_by_0
    assert obs[0, 1].tolist() == seen_by_1


def test_observation_shows_only_the_last_round():
    game = IPD()
    state, _ = play_round(game, [(D, D)])
    state, _ = game.transition(state, torch.tensor([[C, D]]), torch.zeros(1, 0))
    assert game.observe(state)[0].tolist() == [[1, 0, 0, 1], [0, 1, 1, 0]]


def test_transition_counts_steps_and_records_actions():
    game = IPD()
    state = make_state([(C, D), (D, D)], t=7)
    new, _ = game.transition(state, torch.tensor([[D, C], [C, C]]), torch.zeros(2, 0))
    assert new.t.tolist() == [8, 8]
    assert new.last.tolist() == [[D, C], [C, C]]
    # the input state is not modified
    assert state.t.tolist() == [7, 7] and state.last.tolist() == [[C, D], [D, D]]


def test_reward_does_not_depend_on_history():
    game = IPD()
    histories = [(-1, -1), (C, C), (C, D), (D, C), (D, D)]
    state = make_state(histories, t=3)
    _, rewards = game.transition(state, torch.tensor([[C, D]] * len(histories)), torch.zeros(len(histories), 0))
    assert rewards.tolist() == [[-3.0, 0.0]] * len(histories)
