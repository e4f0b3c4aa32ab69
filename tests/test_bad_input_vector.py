"""Bad input to the batched view (``social_dilemmas.make_vec`` / ``VectorGame``): every case
is refused with an error that names the argument or the player and the allowed values.

Issue 19, item 8: the view validates actions by default (``validate=False`` is the trainers'
fast path), and numpy or list actions, bad dtypes, bools, unavailable devices and a
``validate`` that is not a bool are refused with our own errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import social_dilemmas
from social_dilemmas.vector import VectorGame

GAMES = ["ipd", "coin_game", "negotiation"]
IPD_ALLOWED = "0 (cooperate) or 1 (defect)"
COIN_ALLOWED = "0 (left), 1 (right), 2 (up), 3 (down)"
DTYPES_ALLOWED = "'int64'"


def assert_names(excinfo, *parts: str) -> None:
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, (part, msg)


def started(name: str, num_envs: int = 3, **kwargs):
    vec = social_dilemmas.make_vec(name, num_envs=num_envs, **kwargs)
    vec.reset(seed=0)
    return vec


def valid_actions(vec) -> torch.Tensor:
    shape = (vec.num_envs, vec.n_players, *vec.game.action_shape)
    if vec.game.action_kind == "discrete":
        return torch.zeros(shape, dtype=torch.int64)
    return torch.full(shape, 2.5)


# -- item 8: validation by default, the fast path on request -------------------------------
@pytest.mark.parametrize(
    "name, bad, parts",
    [
        ("ipd", -1, ["player_1", "game 2", IPD_ALLOWED]),  # was: both players -3
        ("ipd", 2, ["player_1", "game 2", IPD_ALLOWED]),  # was: an IndexError of torch
        ("ipd", 0.5, ["player_1", "game 2", IPD_ALLOWED]),  # was: truncated to 0
        ("coin_game", -1, ["player_1", "game 2", COIN_ALLOWED]),  # was: wrapped to cell 0
        ("coin_game", 9, ["player_1", "game 2", COIN_ALLOWED]),
        ("coin_game", 1.5, ["player_1", "game 2", COIN_ALLOWED]),
        ("negotiation", math.nan, ["player_1", "game 2", "NaN", "[0.0, 5.0]"]),  # was: NaN rewards
        ("negotiation", -5.0, ["player_1", "game 2", "[0.0, 5.0]"]),  # was: reward -0.733
        ("negotiation", math.inf, ["player_1", "game 2", "[0.0, 5.0]"]),
        ("negotiation", 5.5, ["player_1", "game 2", "[0.0, 5.0]"]),
    ],
)
def test_item8_make_vec_validates_actions_by_default(name, bad, parts):
    vec = started(name)
    assert vec.validate is True
    actions = valid_actions(vec).to(torch.float32 if isinstance(bad, float) else torch.int64)
    actions[2, 1] = bad
    with pytest.raises(ValueError) as e:
        vec.step(actions)
    assert_names(e, *parts)


def test_item8_the_fast_path_skips_the_value_checks_and_steps_as_before():
    fast = started("ipd", validate=False)
    assert fast.validate is False
    _, rewards, *_ = fast.step(torch.full((3, 2), -1))  # documented: undefined results, no check
    assert rewards.shape == (3, 2)
    checked, unchecked = started("coin_game", num_envs=64), started("coin_game", num_envs=64, validate=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):  # valid actions: the same games either way
        a = torch.randint(4, (64, 2), generator=gen)
        for x, y in zip(checked.step(a)[:4], unchecked.step(a)[:4]):
            assert torch.equal(x, y)


@pytest.mark.parametrize("validate", ["no", "yes", "False", 0, 1, None, 1.0])
def test_item8_validate_must_be_a_bool(validate):
    with pytest.raises(ValueError) as e:
        social_dilemmas.make_vec("ipd", 2, validate=validate)
    assert_names(e, "validate", "True or False", repr(validate))


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize(
    "actions, parts",
    [
        ([[0, 1]] * 3, ["actions", "torch.Tensor", "list", "[3, 2]", "integers or floats"]),
        (np.zeros((3, 2), dtype=np.int64), ["actions", "torch.Tensor", "ndarray", "[3, 2]"]),
        (((0, 1),) * 3, ["actions", "torch.Tensor", "tuple"]),
        (1, ["actions", "torch.Tensor", "int"]),
        (None, ["actions", "torch.Tensor", "NoneType"]),
        (torch.zeros((3, 2), dtype=torch.bool), ["actions", "torch.bool", "bools", DTYPES_ALLOWED]),
        (torch.zeros((3, 2), dtype=torch.complex64), ["actions", "torch.complex64", "complex", DTYPES_ALLOWED]),
        (torch.zeros((3, 2), dtype=torch.uint64), ["actions", "torch.uint64", DTYPES_ALLOWED]),
        (torch.zeros((3, 2), dtype=torch.uint32), ["actions", "torch.uint32", DTYPES_ALLOWED]),
        (torch.zeros((3, 2), dtype=torch.uint16), ["actions", "torch.uint16", DTYPES_ALLOWED]),
    ],
    ids=["list", "numpy", "tuple", "int", "none", "bool", "complex", "uint64", "uint32", "uint16"],
)
def test_item8_actions_of_a_bad_type_or_dtype_are_refused_in_both_modes(actions, parts, validate):
    vec = started("ipd", validate=validate)
    with pytest.raises(TypeError) as e:
        vec.step(actions)
    assert_names(e, *parts)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                                   torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_integer_and_float_dtypes_are_accepted(dtype):
    vec = started("coin_game")
    ref = started("coin_game")
    a = torch.tensor([[0, 3], [2, 1], [3, 3]])
    for x, y in zip(vec.step(a.to(dtype))[:4], ref.step(a)[:4]):
        assert torch.equal(x, y)


def _no_cuda():
    return not torch.cuda.is_available()


def _no_mps():
    return not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


@pytest.mark.parametrize(
    "device, why",
    [
        pytest.param("cuda", "not available", marks=pytest.mark.skipif(not _no_cuda(), reason="CUDA is here")),
        pytest.param("cuda:0", "not available", marks=pytest.mark.skipif(not _no_cuda(), reason="CUDA is here")),
        ("cuda:99", "not available"),
        pytest.param("mps", "not available", marks=pytest.mark.skipif(not _no_mps(), reason="MPS is here")),
        ("meta", "holds no data"),
        ("gpu", "not a torch device"),
        (1.5, "must be a torch device"),
        (True, "must be a torch device"),
        (None, "must be a torch device"),
        ("", "not a torch device"),
    ],
)
def test_item8_unavailable_or_unknown_devices_are_refused_listing_those_here(device, why):
    with pytest.raises(ValueError) as e:
        social_dilemmas.make_vec("coin_game", 4, device=device)
    assert_names(e, "device", repr(device), why, "'cpu'")


def test_the_cpu_device_is_accepted_in_every_spelling():
    for device in ("cpu", torch.device("cpu"), "cpu:0"):
        assert social_dilemmas.make_vec("ipd", 2, device=device).device.type == "cpu"


# -- the other arguments ----------------------------------------------------------------
@pytest.mark.parametrize("num_envs", [0, -2, 2.5, "8", True, None])
def test_bad_num_envs_is_refused(num_envs):
    with pytest.raises(ValueError) as e:
        social_dilemmas.make_vec("ipd", num_envs=num_envs)
    assert_names(e, "num_envs", ">= 1")


def test_unknown_game_is_refused_listing_the_games():
    with pytest.raises(ValueError) as e:
        social_dilemmas.make_vec("chess", 2)
    assert_names(e, "chess", "ipd", "coin_game", "negotiation")


def test_a_game_that_is_not_a_batched_game_is_refused():
    with pytest.raises(TypeError) as e:
        VectorGame("ipd", 2)
    assert_names(e, "game", "BatchedGame", "str")


@pytest.mark.parametrize(
    "name, kwargs, parts",
    [
        ("coin_game", {"sise": 4}, ["sise", "size", "penalty"]),
        ("coin_game", {"size": 1}, ["size", ">= 2"]),
        ("coin_game", {"penalty": math.nan}, ["penalty", "finite number"]),
        ("ipd", {"max_steps": 0}, ["max_steps", ">= 1"]),
        ("ipd", {"payoff": [[1e39, 0], [0, 0]]}, ["payoff", "2x2", "finite"]),
        ("ipd", {"payoff": "abc"}, ["payoff", "2x2", "strings are refused"]),
        ("negotiation", {"item_pool": ["1", "1", "1"]}, ["item_pool", "3 finite non-negative"]),
        ("negotiation", {"max_proposal": "5"}, ["max_proposal", "finite number"]),
    ],
)
def test_bad_game_arguments_are_refused_naming_them(name, kwargs, parts):
    with pytest.raises((ValueError, TypeError)) as e:
        social_dilemmas.make_vec(name, 2, **kwargs)
    assert_names(e, *parts)


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True])
def test_bad_seed_is_refused(seed):
    vec = social_dilemmas.make_vec("ipd", 2)
    with pytest.raises(ValueError) as e:
        vec.reset(seed=seed)
    assert_names(e, "seed", "non-negative integer or None")


# -- actions: shape and values ---------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("cut", ["fewer_games", "one_player", "flat", "extra_dim"])
def test_actions_of_the_wrong_shape_are_refused_naming_the_shape(name, cut):
    vec = started(name)
    good = valid_actions(vec)
    bad = {"fewer_games": good[:2], "one_player": good[:, :1], "flat": good.reshape(-1), "extra_dim": good[None]}[cut]
    with pytest.raises(ValueError) as e:
        vec.step(bad)
    assert_names(e, "actions", "[num_envs, n_players, *action_shape]", str(list(good.shape)))


@pytest.mark.parametrize(
    "name, game, player, value, parts",
    [
        ("ipd", 0, 0, 7, [IPD_ALLOWED]),
        ("ipd", 1, 1, math.nan, [IPD_ALLOWED]),
        ("ipd", 0, 1, math.inf, [IPD_ALLOWED]),
        ("coin_game", 1, 0, 4, [COIN_ALLOWED]),
        ("coin_game", 0, 1, -3, [COIN_ALLOWED]),
        ("negotiation", 1, 0, -0.001, ["[0.0, 5.0]"]),
        ("negotiation", 0, 1, -math.inf, ["NaN or inf", "[0.0, 5.0]"]),
    ],
)
def test_invalid_action_values_name_the_game_player_and_allowed_values(name, game, player, value, parts):
    vec = started(name)
    actions = valid_actions(vec).double()
    actions[game, player] = value
    with pytest.raises(ValueError) as e:
        vec.step(actions)
    assert_names(e, f"player_{player}", f"game {game}", *parts)


def test_a_refused_step_does_not_advance_the_games():
    vec = started("ipd")
    before = vec.state_dict()
    with pytest.raises(ValueError):
        vec.step(torch.full((3, 2), 5))
    after = vec.state_dict()
    assert after["t"] == before["t"] and all(torch.equal(after["state"][k], v) for k, v in before["state"].items())


def test_stepping_before_reset_is_refused_saying_what_to_call():
    vec = social_dilemmas.make_vec("ipd", 2)
    with pytest.raises(RuntimeError) as e:
        vec.step(torch.zeros(2, 2, dtype=torch.int64))
    assert_names(e, "step()", "reset()")


def test_a_saved_state_of_other_games_is_refused_naming_both():
    saved = started("ipd", num_envs=5).state_dict()
    with pytest.raises(ValueError) as e:
        started("ipd", num_envs=4).load_state_dict(saved)
    assert_names(e, "5 x IPD", "4 x IPD")


def test_the_trainers_use_the_fast_path():
    """The trainers' actions are valid by construction: they pass ``validate=False``."""
    sb3_bridge = pytest.importorskip("trainers.sb3_bridge")
    from trainers import algorithms
    from trainers.presets import make_config

    assert sb3_bridge.GameVecEnv("ipd", 2).vec.validate is False
    assert sb3_bridge.GameVecEnv(social_dilemmas.make_game("ipd"), 2).vec.validate is False
    for algo in ("adalign", "ppo"):
        cfg = make_config("ipd", algo=algo, num_games=2, iterations=1, hidden=4, tensorboard=False, device="cpu")
        run = algorithms.get(algo)(cfg)
        assert (run.vec if hasattr(run, "vec") else run.env.vec).validate is False
