"""Bad input to the PettingZoo parallel view (``social_dilemmas.parallel_env``): every case is
refused with an error that names the argument or the agent and the allowed values.

Issue 19, item 9: Negotiation actions of strings, bools or complex numbers, the IPD's
``payoff`` (float32 overflow, strings, ragged lists, dicts) and the Negotiation's
``item_pool`` of strings are refused clearly. Bools are refused as actions of every game,
as in the other views."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import social_dilemmas

AGENTS = ["player_0", "player_1"]
IPD_ALLOWED = "0..1 (0 cooperate, 1 defect)"
COIN_ALLOWED = "0..3 (0 left, 1 right, 2 up, 3 down)"
NEG_ALLOWED = "[0.0, 5.0]"


def assert_names(excinfo, *parts: str) -> None:
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, (part, msg)


def started(name: str, **kwargs):
    env = social_dilemmas.parallel_env(name, **kwargs)
    env.reset(seed=0)
    return env


def valid(name: str):
    return np.full(3, 2.5, np.float32) if name == "negotiation" else 0


def step_player_1(env, name: str, action):
    return env.step({"player_0": valid(name), "player_1": action})


# -- item 9: Negotiation actions --------------------------------------------------------
@pytest.mark.parametrize(
    "action",
    [
        "abc",
        {},
        "123",
        ["1", "2", "3"],
        [True, False, True],
        np.array([True, False, True]),
        torch.tensor([True, False, True]),
        [1 + 1j, 0, 0],
        np.array([1, 2, 3], dtype=np.complex64),
        [None, 0, 0],
        [[1, 2], [3]],
        None,
    ],
    ids=["str", "dict", "digits", "str-list", "bool-list", "bool-array", "bool-tensor", "complex-list",
         "complex-array", "none-item", "ragged", "none"],
)
def test_item9_negotiation_refuses_strings_bools_complex_and_objects_naming_agent_and_allowed(action):
    env = started("negotiation")
    with pytest.raises(ValueError) as e:
        step_player_1(env, "negotiation", action)
    assert_names(e, "player_1", "3 finite numbers", NEG_ALLOWED, "bools")
    assert env.agents == AGENTS  # the game did not advance


@pytest.mark.parametrize(
    "action, parts",
    [
        ([5.1, 0, 0], [NEG_ALLOWED]),
        ([0, -0.1, 0], [NEG_ALLOWED]),
        ([0, -5, 0], [NEG_ALLOWED]),
        ([math.nan, 0, 0], ["NaN", NEG_ALLOWED]),
        ([0, 0, math.inf], ["inf", NEG_ALLOWED]),
        ([1e300, 0, 0], [NEG_ALLOWED]),
        ([1.0, 1.0], ["(3,)", NEG_ALLOWED]),
        ([[1.0, 1.0, 1.0]], ["(3,)", NEG_ALLOWED]),
        (2.0, ["(3,)", NEG_ALLOWED]),
    ],
    ids=["above", "below", "minus5", "nan", "inf", "huge", "short", "2d", "scalar"],
)
def test_negotiation_refuses_values_outside_the_box(action, parts):
    env = started("negotiation")
    with pytest.raises(ValueError) as e:
        step_player_1(env, "negotiation", action)
    assert_names(e, "player_1", *parts)


@pytest.mark.parametrize("action", [[1, 2, 3], np.array([1, 2, 3], np.uint16), np.array([0.5, 5.0, 0.0]),
                                    torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)])
def test_negotiation_accepts_integers_and_floats(action):
    env = started("negotiation")
    _, rewards, *_ = step_player_1(env, "negotiation", action)
    assert 0.0 <= rewards["player_1"] <= 1.0


# -- item 9: the games' arguments -----------------------------------------------------------
@pytest.mark.parametrize(
    "payoff",
    [
        [[1e39, -3], [0, -2]],  # finite in float64, inf in float32: rewards were inf
        [[-1, -3], [0, -3.5e38 * 2]],
        "abc",
        [["-1", "-3"], ["0", "-2"]],
        [[-1, -3], [0]],
        {"R": -1},
        [[True, False], [True, False]],
        [[-1, -3], [0, math.nan]],
        [-1, -3, 0, -2],
        None,
    ],
    ids=["overflow", "overflow-neg", "str", "str-items", "ragged", "dict", "bools", "nan", "flat", "none"],
)
def test_item9_ipd_payoff_is_refused_naming_it_and_the_allowed_values(payoff):
    with pytest.raises(ValueError) as e:
        social_dilemmas.parallel_env("ipd", payoff=payoff)
    assert_names(e, "payoff", "2x2 matrix [[R, S], [T, P]]", "finite numbers")


def test_ipd_payoff_of_large_but_representable_values_is_accepted():
    env = started("ipd", payoff=[[3e38, -3e38], [3.2e38, 0]])
    _, rewards, *_ = env.step({"player_0": 0, "player_1": 0})
    assert all(math.isfinite(r) for r in rewards.values())


@pytest.mark.parametrize(
    "item_pool",
    [["1", "1", "1"], "abc", "111", [True, True, True], {"a": 1}, [1, 1], [1, -1, 1], [0, 0, 0], [1, math.inf, 1],
     [[1, 1], [1]]],
    ids=["str-items", "str", "digits", "bools", "dict", "short", "negative", "zeros", "inf", "ragged"],
)
def test_item9_item_pool_is_refused_naming_it_and_the_allowed_values(item_pool):
    with pytest.raises(ValueError) as e:
        social_dilemmas.parallel_env("negotiation", item_pool=item_pool)
    assert_names(e, "item_pool", "3 finite non-negative quantities")


@pytest.mark.parametrize(
    "name, kwargs, parts",
    [
        ("coin_game", {"size": 1}, ["size", ">= 2"]),
        ("coin_game", {"size": "3"}, ["size", "integer"]),
        ("coin_game", {"size": True}, ["size", "integer"]),
        ("coin_game", {"penalty": "x"}, ["penalty", "finite number"]),
        ("coin_game", {"penalty": math.inf}, ["penalty", "finite number"]),
        ("ipd", {"max_steps": 0}, ["max_steps", ">= 1"]),
        ("ipd", {"max_steps": 2.5}, ["max_steps", "integer"]),
        ("negotiation", {"n_items": 0}, ["n_items", ">= 1"]),
        ("negotiation", {"value_low": 6}, ["value_low", "value_high"]),
        ("negotiation", {"max_proposal": 0}, ["max_proposal", "> 0"]),
        ("negotiation", {"max_proposal": True}, ["max_proposal", "finite number"]),
        ("coin_game", {"sise": 4}, ["sise", "size", "penalty", "max_steps"]),
    ],
)
def test_bad_game_arguments_are_refused_naming_them(name, kwargs, parts):
    with pytest.raises((ValueError, TypeError)) as e:
        social_dilemmas.parallel_env(name, **kwargs)
    assert_names(e, *parts)


def test_unknown_game_is_refused_listing_the_games():
    with pytest.raises(ValueError) as e:
        social_dilemmas.parallel_env("chess")
    assert_names(e, "chess", "ipd", "coin_game", "negotiation")


@pytest.mark.parametrize("render_mode", ["rgb", "ansi", 1])
def test_bad_render_mode_is_refused(render_mode):
    with pytest.raises(ValueError) as e:
        social_dilemmas.parallel_env("ipd", render_mode=render_mode)
    assert_names(e, "render_mode", "'human'", "'rgb_array'", "None")


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True])
def test_bad_seed_is_refused(seed):
    env = social_dilemmas.parallel_env("ipd")
    with pytest.raises(ValueError) as e:
        env.reset(seed=seed)
    assert_names(e, "seed", "non-negative integer or None")


# -- discrete actions: one rule for bools everywhere ------------------------------------------
@pytest.mark.parametrize(
    "action",
    [2, -1, 0.5, math.nan, math.inf, "0", "a", None, True, False, np.bool_(True), torch.tensor(True), 1 + 0j,
     [0], np.array([1]), {}],
    ids=["2", "-1", "half", "nan", "inf", "digit", "str", "none", "true", "false", "np-bool", "tensor-bool",
         "complex", "list", "array", "dict"],
)
def test_ipd_refuses_actions_outside_its_space_naming_agent_and_allowed_values(action):
    env = started("ipd")
    with pytest.raises(ValueError) as e:
        step_player_1(env, "ipd", action)
    assert_names(e, "player_1", IPD_ALLOWED)
    assert env.agents == AGENTS


@pytest.mark.parametrize("action", [4, -1, 1.5, True, "up", np.int64(7)])
def test_coin_game_refuses_actions_outside_its_space_naming_agent_and_allowed_values(action):
    env = started("coin_game")
    with pytest.raises(ValueError) as e:
        env.step({"player_0": action, "player_1": 0})
    assert_names(e, "player_0", COIN_ALLOWED)


@pytest.mark.parametrize("action", [1, 1.0, np.int8(1), np.float32(1.0), torch.tensor(1), np.array(1)])
def test_ipd_accepts_integers_and_integral_floats(action):
    env = started("ipd")
    _, rewards, *_ = step_player_1(env, "ipd", action)
    assert rewards["player_1"] == 0.0  # player_1 defected against a cooperator


# -- the actions dict and the episode -------------------------------------------------------
@pytest.mark.parametrize("actions", [[0, 0], (0, 0), None, 0])
def test_actions_that_are_not_a_dict_are_refused_naming_the_agents(actions):
    env = started("ipd")
    with pytest.raises(TypeError) as e:
        env.step(actions)
    assert_names(e, "actions", "dict", "player_0", "player_1")


@pytest.mark.parametrize("name", ["ipd", "coin_game", "negotiation"])
def test_missing_and_unknown_agents_are_refused_naming_them(name):
    env = started(name)
    with pytest.raises(ValueError) as e:
        env.step({"player_0": valid(name)})
    assert_names(e, "missing", "player_1", "expected exactly one action for each of ['player_0', 'player_1']")
    with pytest.raises(ValueError) as e:
        env.step({"player_0": valid(name), "player_1": valid(name), "player_2": valid(name)})
    assert_names(e, "unknown agents ['player_2']", "['player_0', 'player_1']")


@pytest.mark.parametrize("lookup", ["observation_space", "action_space"])
def test_unknown_agent_in_a_space_lookup_is_refused(lookup):
    env = social_dilemmas.parallel_env("coin_game")
    with pytest.raises(ValueError) as e:
        getattr(env, lookup)("player_9")
    assert_names(e, "player_9", "player_0", "player_1")


def test_stepping_before_reset_or_after_the_end_is_refused_saying_what_to_call():
    env = social_dilemmas.parallel_env("ipd", max_steps=1)
    joint = {"player_0": 0, "player_1": 0}
    with pytest.raises(RuntimeError) as e:
        env.step(joint)
    assert_names(e, "step()", "reset()")
    env.reset(seed=0)
    env.step(joint)
    with pytest.raises(RuntimeError) as e:
        env.step(joint)
    assert_names(e, "episode ended", "reset()")
