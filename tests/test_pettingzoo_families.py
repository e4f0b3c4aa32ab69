"""The PettingZoo family modules (``from social_dilemmas import coin_game_v0``): the module
shape PettingZoo's own games have, PettingZoo's ``max_cycles_test``, ``api_test``,
``parallel_api_test`` and seed tests, ``max_cycles`` onto ``max_steps``, and bad input.

Commons Harvest Open's module runs ``max_cycles_test`` only (each reset builds a dmlab2d
level; ``tests/test_commons_harvest.py`` runs ``parallel_api_test`` on the same env), and is
skipped without Melting Pot.
"""

from __future__ import annotations

import importlib.util
import inspect

import numpy as np
import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, seed_test
from pettingzoo.utils.conversions import parallel_to_aec_wrapper
from pettingzoo.utils.wrappers import OrderEnforcingWrapper

import social_dilemmas
from social_dilemmas import coin_game_v0, commons_harvest_open_v0, ipd_v0, negotiation_v0

GAMES = ("ipd", "coin_game", "negotiation")
HAS_MELTINGPOT = importlib.util.find_spec("meltingpot") is not None and importlib.util.find_spec("shimmy") is not None
needs_meltingpot = pytest.mark.skipif(
    not HAS_MELTINGPOT,
    reason="Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot): run `python scripts/install_meltingpot.py`",
)


MODULES = {"ipd": ipd_v0, "coin_game": coin_game_v0, "negotiation": negotiation_v0,
           "commons_harvest_open": commons_harvest_open_v0}


def family(name: str):
    return MODULES[name]


@pytest.mark.parametrize("name", [*GAMES, "commons_harvest_open"])
def test_module_shape_as_pettingzoo_families(name):
    """``from social_dilemmas import <game>_v0`` gives ``env``, ``parallel_env`` and ``raw_env``,
    each taking ``max_cycles`` and ``render_mode``. Building nothing, so no Melting Pot needed."""
    mod = family(name)
    assert mod.__name__ == f"social_dilemmas.{name}_v0"
    assert mod.__all__ == ["env", "parallel_env", "raw_env"]
    for fn in (mod.env, mod.parallel_env, mod.raw_env):
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["max_cycles", "render_mode"] and params["max_cycles"].default is None
        assert "max_cycles" in fn.__doc__ or "Same arguments" in fn.__doc__
    assert "max_cycles" in mod.__doc__ and "max_steps" in mod.__doc__


@pytest.mark.parametrize("name", GAMES)
def test_views_are_the_registered_env_and_its_aec_conversions(name):
    mod = family(name)
    par = mod.parallel_env()
    assert isinstance(par, ParallelEnv) and par.metadata["name"] == f"{name}_v0"
    assert par.game.config() == social_dilemmas.parallel_env(name).game.config()
    aec = mod.env()
    assert isinstance(aec, AECEnv) and isinstance(aec, OrderEnforcingWrapper)
    assert isinstance(aec.unwrapped, type(par)) and aec.metadata["name"] == f"{name}_v0"
    raw = mod.raw_env()
    assert isinstance(raw, parallel_to_aec_wrapper) and not isinstance(raw, OrderEnforcingWrapper)
    assert aec.possible_agents == raw.possible_agents == par.possible_agents


@pytest.mark.parametrize("name", GAMES)
def test_pettingzoo_max_cycles_test_passes(name):
    max_cycles_test(family(name))


@needs_meltingpot
def test_pettingzoo_max_cycles_test_passes_for_commons_harvest_open():
    max_cycles_test(family("commons_harvest_open"))


@pytest.mark.parametrize("name", GAMES)
def test_pettingzoo_api_test_passes_on_env(name):
    api_test(family(name).env(), num_cycles=60)


@pytest.mark.parametrize("name", GAMES)
def test_pettingzoo_parallel_api_test_passes_on_parallel_env(name):
    parallel_api_test(family(name).parallel_env(), num_cycles=60)


@pytest.mark.parametrize("name", GAMES)
def test_pettingzoo_seed_tests_pass(name):
    mod = family(name)
    seed_test(mod.env, num_cycles=20)
    parallel_seed_test(mod.parallel_env, num_cycles=20)


@pytest.mark.parametrize("name", GAMES)
@pytest.mark.parametrize("max_cycles", [1, 7])
def test_max_cycles_is_max_steps_in_both_views(name, max_cycles):
    mod = family(name)
    par = mod.parallel_env(max_cycles=max_cycles)
    assert par.game.max_steps == max_cycles
    par.reset(seed=0)
    steps = 0
    while par.agents:
        _, _, terms, truncs, _ = par.step({a: par.action_space(a).sample() for a in par.agents})
        steps += 1
    assert steps == max_cycles and all(truncs.values()) and not any(terms.values())

    aec = mod.env(max_cycles=max_cycles)
    aec.reset(seed=0)
    acted = {a: 0 for a in aec.possible_agents}
    for agent in aec.agent_iter():
        _, _, term, trunc, _ = aec.last()
        if term or trunc:
            aec.step(None)
        else:
            acted[agent] += 1
            aec.step(aec.action_space(agent).sample())
    assert acted == {a: max_cycles for a in aec.possible_agents}


@pytest.mark.parametrize("name", GAMES)
def test_max_cycles_default_is_the_games_max_steps_and_max_steps_alone_is_kept(name):
    mod = family(name)
    default = social_dilemmas.make_game(name).max_steps
    assert mod.parallel_env().game.max_steps == default
    assert mod.parallel_env(max_steps=3).game.max_steps == 3
    assert mod.parallel_env(max_cycles=3, max_steps=3).game.max_steps == 3
    assert mod.env(max_steps=5).unwrapped.game.max_steps == 5


@pytest.mark.parametrize("name", [*GAMES, "commons_harvest_open"])
@pytest.mark.parametrize("maker", ["env", "parallel_env", "raw_env"])
def test_conflicting_max_steps_is_refused(name, maker):
    with pytest.raises(ValueError, match=rf"{name}_v0: max_cycles=4 and max_steps=5 conflict"):
        getattr(family(name), maker)(max_cycles=4, max_steps=5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4", True])
def test_bad_max_cycles_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match=r"max_cycles must be an integer >= 1"):
        family("coin_game").parallel_env(max_cycles=bad)


def test_numpy_integer_max_cycles_is_accepted():
    assert family("ipd").parallel_env(max_cycles=np.int64(3)).game.max_steps == 3


def test_game_arguments_pass_through_and_unknown_ones_are_refused():
    coin = family("coin_game")
    assert coin.parallel_env(size=5).observation_space("player_0").shape == (4, 5, 5)
    assert coin.env(size=4, penalty=-3.0).unwrapped.game.config()["penalty"] == -3.0
    with pytest.raises(TypeError, match="arguments of coin_game"):
        coin.env(grid=5)


@pytest.mark.parametrize("name", GAMES)
def test_render_mode_reaches_the_env(name):
    aec = family(name).env(max_cycles=3, render_mode="rgb_array")
    assert aec.render_mode == "rgb_array"
    aec.reset(seed=0)
    frame = aec.render()
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    with pytest.raises(ValueError, match="render_mode must be one of"):
        family(name).parallel_env(render_mode="video")
