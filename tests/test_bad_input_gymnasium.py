"""Bad input to the Gymnasium single-agent views (``gymnasium.make`` / ``gymnasium.make_vec``
of ``social_dilemmas/*-v0``): every case is refused with an error that names the argument or
the player and the allowed values.

Issue 19, item 10: ``opponent=social_dilemmas.Policy`` (the class) and opponent paths with
another suffix than the saved players' are refused with errors naming the scripted players
and the saved players' suffixes."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch

import social_dilemmas
from social_dilemmas.policies import Policy, saved_player_suffixes

IDS = {
    "ipd": "social_dilemmas/IPD-v0",
    "coin_game": "social_dilemmas/CoinGame-v0",
    "negotiation": "social_dilemmas/Negotiation-v0",
}
IPD_ALLOWED = "0..1 (0 cooperate, 1 defect)"
IPD_VEC_ALLOWED = "0 (cooperate) or 1 (defect)"
SCRIPTED_IPD = ["always_cooperate", "always_defect", "random", "tit_for_tat", "grim_trigger"]


def assert_names(excinfo, *parts: str) -> None:
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, (part, msg)


def started(name: str, **kwargs):
    env = gymnasium.make(IDS[name], **kwargs).unwrapped
    env.reset(seed=0)
    return env


def started_vec(name: str, num_envs: int = 3, **kwargs):
    env = gymnasium.make_vec(IDS[name], num_envs=num_envs, **kwargs)
    env.reset(seed=0)
    return env


class Cooperator(Policy):
    name = "cooperator"

    def act(self, obs):
        return torch.zeros(obs.shape[0], dtype=torch.int64)


class BoolPlayer(Policy):
    def act(self, obs):
        return torch.zeros(obs.shape[0], dtype=torch.bool)


class HalfPlayer(Policy):
    def act(self, obs):
        return torch.full((obs.shape[0],), 0.5)


# -- item 10: the opponent argument ---------------------------------------------------------
@pytest.mark.parametrize("make", [gymnasium.make, lambda i, **k: gymnasium.make_vec(i, num_envs=2, **k)],
                         ids=["make", "make_vec"])
@pytest.mark.parametrize("cls", [Policy, Cooperator])
def test_item10_an_opponent_class_is_refused_asking_for_an_instance(make, cls):
    # was: AttributeError 'int' object has no attribute 'num_envs' at reset
    with pytest.raises(TypeError) as e:
        make(IDS["ipd"], opponent=cls).reset(seed=0)
    assert_names(e, "opponent", f"the class {cls.__name__}", "instance", "Policy instance", "tit_for_tat",
                 *saved_player_suffixes())


@pytest.mark.parametrize("path", ["agent.pth", "runs/agent.ckpt", "model.safetensors", "tit_for_tat.txt",
                                  "players/tit_for_tatt"])
def test_item10_an_opponent_path_of_another_format_names_the_saved_players_suffixes(path):
    # was: "unknown scripted player 'agent.pth'", saying nothing of saved players
    with pytest.raises(ValueError) as e:
        gymnasium.make(IDS["ipd"], opponent=path)
    assert_names(e, "opponent", repr(path), *SCRIPTED_IPD, "saved player", *saved_player_suffixes())


def test_an_existing_file_of_another_format_is_refused_the_same_way(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a player")
    with pytest.raises(ValueError) as e:
        gymnasium.make(IDS["coin_game"], opponent=path)
    assert_names(e, "opponent", str(path), "always_defect", *saved_player_suffixes())


@pytest.mark.parametrize("suffix", [".pt", ".zip"])
def test_a_missing_saved_player_names_the_file(suffix, tmp_path):
    path = tmp_path / f"missing{suffix}"
    with pytest.raises(FileNotFoundError) as e:
        gymnasium.make(IDS["ipd"], opponent=str(path))
    assert_names(e, str(path), "does not exist")


@pytest.mark.parametrize("opponent", [3, None, 2.5, [0, 1]])
def test_an_opponent_of_another_type_is_refused_listing_the_kinds(opponent):
    with pytest.raises(TypeError) as e:
        gymnasium.make(IDS["ipd"], opponent=opponent)
    assert_names(e, "opponent", "scripted player's name", "saved player's path", "Policy instance", "callable",
                 type(opponent).__name__)


@pytest.mark.parametrize("name", ["ipd", "coin_game", "negotiation"])
def test_an_unknown_scripted_opponent_is_refused_listing_the_names(name):
    with pytest.raises(ValueError) as e:
        gymnasium.make(IDS[name], opponent="tit_for_tatt")
    assert_names(e, "opponent", "'tit_for_tatt'", "always_cooperate", "always_defect", "random")


def test_an_opponent_instance_still_plays():
    env = started("ipd", opponent=Cooperator())
    _, reward, *_ = env.step(1)
    assert reward == 0.0


# -- the other arguments -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, parts",
    [
        ({"render_mode": "rgb"}, ["render_mode", "'human'", "'rgb_array'"]),
        ({"size": 1}, ["size", ">= 2"]),
        ({"sise": 4}, ["sise", "size"]),
        ({"payoff": "abc"}, ["payoff", "2x2"]),
    ],
)
def test_bad_env_arguments_are_refused_naming_them(kwargs, parts):
    game = "ipd" if "payoff" in kwargs else "coin_game"
    with pytest.raises((ValueError, TypeError)) as e:
        gymnasium.make(IDS[game], **kwargs)
    assert_names(e, *parts)


@pytest.mark.parametrize(
    "kwargs, parts",
    [
        ({"num_envs": 0}, ["num_envs", ">= 1"]),
        ({"num_envs": "2"}, ["num_envs", ">= 1"]),
        ({"num_envs": True}, ["num_envs", ">= 1"]),
        ({"num_envs": 2, "device": "meta"}, ["device", "'meta'", "'cpu'"]),
        ({"num_envs": 2, "device": "gpu"}, ["device", "'gpu'", "'cpu'"]),
        ({"num_envs": 2, "device": "cuda:99"}, ["device", "'cuda:99'", "'cpu'"]),
        ({"num_envs": 2, "render_mode": "human"}, ["render_mode", "SingleAgentEnv"]),
    ],
)
def test_bad_vector_env_arguments_are_refused_naming_them(kwargs, parts):
    with pytest.raises(ValueError) as e:
        gymnasium.make_vec(IDS["ipd"], **kwargs)
    assert_names(e, *parts)


@pytest.mark.parametrize("seed", [-1, "a", 1.5])
@pytest.mark.parametrize("vector", [False, True])
def test_bad_seed_is_refused(seed, vector):
    env = gymnasium.make_vec(IDS["ipd"], num_envs=2) if vector else gymnasium.make(IDS["ipd"]).unwrapped
    with pytest.raises(ValueError) as e:
        env.reset(seed=seed)
    assert_names(e, "seed", "non-negative integer or None")


# -- the learner's actions, one game ----------------------------------------------------------
@pytest.mark.parametrize("action", [2, -1, 0.5, math.nan, "1", None, True, np.bool_(False), [0], 1j],
                         ids=["2", "-1", "half", "nan", "str", "none", "true", "np-false", "list", "complex"])
def test_the_learners_bad_ipd_action_is_refused_naming_player_0(action):
    env = started("ipd")
    with pytest.raises(ValueError) as e:
        env.step(action)
    assert_names(e, "player_0", IPD_ALLOWED)


@pytest.mark.parametrize("action", ["abc", {}, [True, False, True], [1 + 1j, 0, 0], [math.nan, 0, 0], [-5, 0, 0],
                                    [1.0, 1.0]],
                         ids=["str", "dict", "bools", "complex", "nan", "minus5", "short"])
def test_the_learners_bad_negotiation_action_is_refused_naming_player_0(action):
    env = started("negotiation")
    with pytest.raises(ValueError) as e:
        env.step(action)
    assert_names(e, "player_0", "[0.0, 5.0]")


@pytest.mark.parametrize("opponent, value", [(lambda obs: 9, "9"), (lambda obs: True, "True"),
                                             (lambda obs: "a", "'a'")], ids=["9", "true", "str"])
def test_a_callable_opponents_bad_action_is_refused_naming_it(opponent, value):
    env = started("ipd", opponent=opponent)
    with pytest.raises(ValueError) as e:
        env.step(0)
    assert_names(e, "callable player", value, IPD_ALLOWED)


def test_stepping_before_reset_or_after_the_end_is_refused_saying_what_to_call():
    env = gymnasium.make(IDS["ipd"], max_steps=1).unwrapped
    with pytest.raises(RuntimeError) as e:
        env.step(0)
    assert_names(e, "step()", "reset()")
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(RuntimeError) as e:
        env.step(0)
    assert_names(e, "episode ended", "reset()")


# -- the learner's actions, many games (gymnasium.make_vec) -------------------------------------
@pytest.mark.parametrize(
    "actions, parts",
    [
        (np.array([True, False, True]), ["dtype bool"]),
        (torch.tensor([True, False, True]), ["torch.bool"]),
        (np.array(["0", "1", "0"]), ["dtype <U1"]),
        (np.array([0, None, 1], dtype=object), ["dtype object"]),
        (np.array([0, 1, 1j]), ["dtype complex128"]),
        ([[0], [1, 1], []], ["ragged"]),
        (torch.zeros(3, dtype=torch.uint64), ["torch.uint64"]),
    ],
    ids=["np-bool", "torch-bool", "str", "object", "complex", "ragged", "torch-uint64"],
)
def test_vector_learner_actions_of_a_bad_dtype_are_refused_naming_player_0(actions, parts):
    env = started_vec("ipd")
    with pytest.raises(ValueError) as e:
        env.step(actions)
    assert_names(e, "player_0", "integers or floats", "bools", *parts)


@pytest.mark.parametrize(
    "actions, parts",
    [
        ([0, 2, 0], ["player_0", "game 1", IPD_VEC_ALLOWED]),
        ([0, 0, -1], ["player_0", "game 2", IPD_VEC_ALLOWED]),
        ([0.5, 0.0, 1.0], ["player_0", "game 0", IPD_VEC_ALLOWED]),
        ([0.0, math.nan, 1.0], ["player_0", "game 1", IPD_VEC_ALLOWED]),
        (np.array([0, 2**64 - 1, 0], dtype=np.uint64), ["player_0", "game 1", IPD_VEC_ALLOWED]),
        ([0, 1], ["player_0", "[3]", "[2]"]),
        ([[0], [1], [0]], ["player_0", "[3]", "[3, 1]"]),
    ],
    ids=["2", "-1", "half", "nan", "uint64-huge", "short", "2d"],
)
def test_vector_learner_actions_outside_the_space_are_refused_naming_player_0(actions, parts):
    env = started_vec("ipd")
    with pytest.raises(ValueError) as e:
        env.step(actions)
    assert_names(e, *parts)


def test_vector_accepts_numpy_unsigned_integers_within_the_space():
    env = started_vec("ipd", opponent="always_cooperate")
    _, rewards, *_ = env.step(np.array([1, 0, 1], dtype=np.uint64))
    assert rewards.tolist() == [0.0, -1.0, 0.0]


@pytest.mark.parametrize("actions", [np.full((3, 3), -5.0), np.full((3, 3), math.inf), np.full((3, 3), 5.5)])
def test_vector_negotiation_actions_outside_the_box_are_refused_naming_player_0(actions):
    env = started_vec("negotiation")
    with pytest.raises(ValueError) as e:
        env.step(actions)
    assert_names(e, "player_0", "game 0", "[0.0, 5.0]")


@pytest.mark.parametrize("opponent, parts", [(BoolPlayer(), ["opponent's actions", "torch.bool", "bools"]),
                                             (HalfPlayer(), ["player_1", "game 0", IPD_VEC_ALLOWED])],
                         ids=["bool", "half"])
def test_vector_opponent_actions_of_a_bad_dtype_or_value_are_refused(opponent, parts):
    env = started_vec("ipd", opponent=opponent)
    with pytest.raises((TypeError, ValueError)) as e:
        env.step(np.zeros(3, dtype=np.int64))
    assert_names(e, *parts)


def test_vector_stepping_before_reset_is_refused_saying_what_to_call():
    env = gymnasium.make_vec(IDS["ipd"], num_envs=2)
    with pytest.raises(RuntimeError) as e:
        env.step(np.zeros(2, dtype=np.int64))
    assert_names(e, "step()", "reset()")


def test_the_same_rule_for_bools_in_every_view():
    """True/False is refused as an action by the PettingZoo, Gymnasium and batched views alike."""
    with pytest.raises(ValueError, match="player_0"):
        started("ipd").step(True)
    with pytest.raises(ValueError, match="player_0"):
        started_vec("ipd").step(np.array([True, True, True]))
    pz = social_dilemmas.parallel_env("ipd")
    pz.reset(seed=0)
    with pytest.raises(ValueError, match="player_0"):
        pz.step({"player_0": True, "player_1": 0})
    vec = social_dilemmas.make_vec("ipd", 3)
    vec.reset(seed=0)
    with pytest.raises(TypeError, match="bools"):
        vec.step(torch.ones((3, 2), dtype=torch.bool))
