"""Commons Harvest Open (Melting Pot through Shimmy): API, seeding, preprocessing, bad input,
the Gymnasium view, the batched worker view and scenario evaluation.

Skipped as a whole when Melting Pot is not installed. Every reset builds a dmlab2d level
(about 1 s), so the tests keep episodes short and resets few.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

if importlib.util.find_spec("meltingpot") is None or importlib.util.find_spec("shimmy") is None:
    pytest.skip(
        "Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot): run `make install` "
        "or `python scripts/install_meltingpot.py`",
        allow_module_level=True,
    )

import gymnasium  # noqa: E402
import pettingzoo  # noqa: E402
from pettingzoo.test import parallel_api_test  # noqa: E402

import social_dilemmas  # noqa: E402
from social_dilemmas import commons_harvest as ch  # noqa: E402
from social_dilemmas.policies import Policy  # noqa: E402

AGENTS = [f"player_{i}" for i in range(7)]


def rollout(env, seed, steps, action_seed=0, reset=True):
    """Observations and rewards of ``steps`` steps under seeded random actions."""
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed) if reset else env.reset()
    frames = [np.stack([obs[a] for a in AGENTS])]
    rewards = []
    for _ in range(steps):
        obs, rew, _, _, _ = env.step({a: int(rng.integers(8)) for a in AGENTS})
        frames.append(np.stack([obs[a] for a in AGENTS]))
        rewards.append([rew[a] for a in AGENTS])
    return np.stack(frames), np.array(rewards)


@pytest.fixture(scope="module")
def env():
    e = ch.CommonsHarvestOpen(render_mode="rgb_array")
    yield e
    e.close()


# -- import, registry ----------------------------------------------------------------------
def test_import_is_lazy_and_quiet():
    """Importing the package imports nothing of Melting Pot; the first import of Melting Pot
    (TensorFlow included) prints nothing."""
    code = (
        "import sys, social_dilemmas, social_dilemmas.commons_harvest as ch\n"
        "print(sorted(m for m in ('meltingpot', 'shimmy', 'tensorflow', 'jax') if m in sys.modules))\n"
        "ch.import_meltingpot(); print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]
    assert out.stderr.strip() == "", out.stderr


def test_registered_makers():
    pz = pettingzoo.make("parallel", "social_dilemmas/CommonsHarvestOpen-v0", max_steps=10)
    assert isinstance(pz, ch.CommonsHarvestOpen) and pz.max_steps == 10
    direct = social_dilemmas.parallel_env("commons_harvest_open", resize=32)
    assert direct.observation_space("player_0").shape == (32, 32, 3)


# -- the PettingZoo view ----------------------------------------------------------------
def test_parallel_api(env):
    parallel_api_test(env, num_cycles=30)


def test_spaces_shapes_and_dtypes(env):
    assert env.possible_agents == AGENTS
    for a in AGENTS:
        assert env.observation_space(a) is env.observation_space(a)
        assert env.observation_space(a) == gymnasium.spaces.Box(0, 255, (88, 88, 3), np.uint8)
        assert env.action_space(a) == gymnasium.spaces.Discrete(8)
    obs, infos = env.reset(seed=1)
    assert set(obs) == set(AGENTS) == set(infos)
    for a in AGENTS:
        assert obs[a].dtype == np.uint8 and obs[a].shape == (88, 88, 3)
        assert env.observation_space(a).contains(obs[a])
    obs, rew, term, trunc, info = env.step({a: 0 for a in AGENTS})
    assert all(type(rew[a]) is float for a in AGENTS)
    assert not any(term.values()) and not any(trunc.values())
    frame = env.render()
    assert frame.shape == (144, 192, 3) and frame.dtype == np.uint8


def test_preprocessing_options_match_their_spaces():
    e = ch.CommonsHarvestOpen(resize=42, grayscale=True, channels_first=True)
    space = e.observation_space("player_3")
    assert space.shape == (1, 42, 42) and space.dtype == np.uint8
    obs, _ = e.reset(seed=0)
    assert all(space.contains(obs[a]) for a in AGENTS)
    obs, *_ = e.step({a: 1 for a in AGENTS})
    assert obs["player_6"].shape == (1, 42, 42)
    e.close()
    rgb = np.random.default_rng(0).integers(0, 256, (7, 88, 88, 3), dtype=np.uint8)
    for kwargs, shape in [({}, (88, 88, 3)), (dict(resize=44), (44, 44, 3)), (dict(grayscale=True), (88, 88, 1)),
                          (dict(channels_first=True), (3, 88, 88)), (dict(resize=100, channels_first=True), (3, 100, 100))]:
        fmt = ch.ObsFormat(**kwargs)
        out = fmt.apply(rgb)
        assert fmt.shape == shape and out.shape == (7, *shape) and out.dtype == np.uint8
    assert np.array_equal(ch.ObsFormat(channels_first=True).apply(rgb), rgb.transpose(0, 3, 1, 2))


def test_truncation_after_max_steps():
    e = ch.CommonsHarvestOpen(max_steps=4)
    e.reset(seed=0)
    for t in range(4):
        assert e.agents == AGENTS
        _, _, term, trunc, _ = e.step({a: 0 for a in AGENTS})
        assert not any(term.values())
        assert all(trunc.values()) == (t == 3)
    assert e.agents == []
    with pytest.raises(RuntimeError, match="after the episode ended"):
        e.step({a: 0 for a in AGENTS})
    e.close()


def test_bad_input():
    e = ch.CommonsHarvestOpen(max_steps=3)
    with pytest.raises(RuntimeError, match="before reset"):
        e.step({a: 0 for a in AGENTS})
    with pytest.raises(RuntimeError, match="before reset"):
        e.render() if e.render_mode else e.state()
    e.reset(seed=0)
    with pytest.raises(ValueError, match=r"player_2.*0\.\.7"):
        e.step({**{a: 0 for a in AGENTS}, "player_2": 8})
    for bad in (-1, 1.5, "1", None, True):
        with pytest.raises(ValueError, match="player_4"):
            e.step({**{a: 0 for a in AGENTS}, "player_4": bad})
    with pytest.raises(ValueError, match=r"missing actions for \['player_6'\]"):
        e.step({a: 0 for a in AGENTS[:6]})
    with pytest.raises(ValueError, match="unknown agents"):
        e.step({**{a: 0 for a in AGENTS}, "player_7": 0})
    with pytest.raises(TypeError, match="dict"):
        e.step([0] * 7)
    with pytest.raises(ValueError, match="unknown agent"):
        e.observation_space("player_9")
    # integer-valued numpy and torch scalars are fine
    e.step({**{a: np.int64(1) for a in AGENTS}, "player_0": torch.tensor(2), "player_1": np.array(3)})
    e.close()
    for kwargs in (dict(max_steps=0), dict(resize=0), dict(grayscale="yes"), dict(render_mode="window")):
        with pytest.raises(ValueError):
            ch.CommonsHarvestOpen(**kwargs)
    with pytest.raises(ValueError, match="seed"):
        ch.CommonsHarvestOpen().reset(seed=-1)


def test_human_render_and_frame():
    e = ch.CommonsHarvestOpen(render_mode="human", max_steps=2)
    e.reset(seed=0)
    e.step({a: 1 for a in AGENTS})
    frame = e.frame()
    assert frame.world.shape == (144, 192, 3) and frame.scores.shape == (7,) and frame.step == 1
    assert e.render() is None
    e.close()


# -- seeding --------------------------------------------------------------------------------
def test_same_seed_same_trajectory_for_100_steps(env):
    other = ch.CommonsHarvestOpen()
    obs_a, rew_a = rollout(env, seed=123, steps=100)
    obs_b, rew_b = rollout(other, seed=123, steps=100)
    for t in range(101):
        assert np.array_equal(obs_a[t], obs_b[t]), f"observations differ at step {t}"
    assert np.array_equal(rew_a, rew_b)
    # reset() without a seed continues deterministically from the last seed
    cont_a = rollout(env, seed=None, steps=20, reset=False)
    cont_b = rollout(other, seed=None, steps=20, reset=False)
    assert np.array_equal(cont_a[0], cont_b[0]) and np.array_equal(cont_a[1], cont_b[1])
    # another seed, another game
    obs_c, _ = rollout(other, seed=124, steps=0)
    assert not np.array_equal(obs_a[0], obs_c[0])
    other.close()


def test_stock_lua_is_not_reproducible():
    """Why the Lua prelude exists: Melting Pot's own level, built three times with the same
    env_seed, starts differently (LuaJIT's per-state string hash changes the `pairs` order
    that assigns spawn points). The chance that three builds agree is about 1e-7."""
    starts = []
    for _ in range(3):
        sub = ch.build_substrate(env_seed=99, max_steps=10, deterministic=False)
        starts.append(np.stack([o["RGB"] for o in sub.reset().observation]))
        sub.close()
    assert not (np.array_equal(starts[0], starts[1]) and np.array_equal(starts[0], starts[2]))


def test_prelude_is_not_applied_to_another_melting_pot_version(monkeypatch):
    # the prelude's folder cache and the hashes live in the substrate module, which reads them
    monkeypatch.setattr(ch.substrate, "_level_dir", {})
    monkeypatch.setitem(ch.substrate._PATCHED_LUA, "lua/modules/game_object.lua", "0" * 64)
    with pytest.warns(RuntimeWarning, match="not reproducible"):
        assert ch.substrate._deterministic_level_directory() is None


# -- the Gymnasium view ---------------------------------------------------------------------
class RecordingPolicy(Policy):
    name = "recorder"

    def __init__(self):
        self.shapes = []

    def act(self, obs):
        self.shapes.append((tuple(obs.shape), obs.dtype))
        return torch.full((obs.shape[0],), 5, dtype=torch.int64)


def test_gymnasium_view_batches_the_six_opponents():
    policy = RecordingPolicy()
    env = gymnasium.make("social_dilemmas/CommonsHarvestOpen-v0", opponent=policy, max_steps=3)
    obs, info = env.reset(seed=0)
    assert obs.shape == (88, 88, 3) and obs.dtype == np.uint8
    obs, reward, terminated, truncated, info = env.step(1)
    assert isinstance(reward, float) and len(info["opponent_rewards"]) == 6
    assert policy.shapes == [((6, 88, 88, 3), torch.uint8)]
    env.step(0)
    *_, terminated, truncated, _ = env.step(0)
    assert truncated and not terminated
    with pytest.raises(RuntimeError, match="ended"):
        env.step(0)
    env.close()
    calls = []
    env = gymnasium.make("social_dilemmas/CommonsHarvestOpen-v0", opponent=lambda o: calls.append(o.shape) or 7)
    env.reset(seed=0)
    env.step(0)
    assert calls == [(88, 88, 3)] * 6
    with pytest.raises(ValueError, match="player_0"):
        env.step(9)
    env.close()
    with pytest.raises(ValueError, match="allowed values"):
        gymnasium.make("social_dilemmas/CommonsHarvestOpen-v0", opponent="tit_for_tat")


def test_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    env = gymnasium.make("social_dilemmas/CommonsHarvestOpen-v0", opponent="random", max_steps=5,
                         render_mode="rgb_array", resize=24)
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


# -- the batched view -----------------------------------------------------------------------
def _gone(pids, timeout=10.0):
    """Whether every process in ``pids`` has exited (and is no child of ours any more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_vec_two_workers_shapes_autoreset_and_close():
    vec = ch.CommonsHarvestVec(2, max_steps=3)
    pids = vec.pids
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, 7, 88, 88, 3) and obs.dtype == torch.uint8
    assert not torch.equal(obs[0], obs[1])  # two games, two seeds
    for t in range(3):
        obs, rew, term, trunc, info = vec.step(torch.zeros(2, 7, dtype=torch.int64))
        assert rew.shape == (2, 7) and rew.dtype == torch.float32
        assert term.shape == trunc.shape == (2,) and not term.any()
        assert bool(trunc.all()) == (t == 2)
    assert info["_final_obs"].tolist() == [True, True]
    assert info["final_obs"].shape == obs.shape and not torch.equal(info["final_obs"], obs)
    # the worker's game matches the PettingZoo view with the same seed
    seed0 = int(np.random.SeedSequence(0).spawn(2)[0].generate_state(1)[0] >> 1)
    single = ch.CommonsHarvestOpen(max_steps=3)
    first, _ = single.reset(seed=seed0)
    obs0, _ = vec.reset(seed=0)
    assert np.array_equal(obs0[0].numpy(), np.stack([first[a] for a in AGENTS]))
    single.close()
    with pytest.raises(ValueError, match=r"\[2, 7\]"):
        vec.step(torch.zeros(2, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match="player_3 of game 1"):
        vec.step(torch.tensor([[0] * 7, [0, 0, 0, 8, 0, 0, 0]]))
    vec.close()
    assert vec.closed and _gone(pids)
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset()


def test_vec_killed_worker_raises_clear_error_and_no_hang():
    vec = ch.CommonsHarvestVec(2, max_steps=50, timeout=60)
    vec.reset(seed=1)
    pids = vec.pids
    os.kill(pids[1], signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"worker 1 \(pid \d+\) died \(killed by signal 9\)"):
        vec.step(np.zeros((2, 7), dtype=np.int64))
    assert time.monotonic() - start < 15
    assert vec.closed and _gone(pids)


def test_vec_workers_stop_when_garbage_collected():
    vec = ch.CommonsHarvestVec(1)
    pids = vec.pids
    del vec
    gc.collect()
    assert _gone(pids)


# -- scenarios ----------------------------------------------------------------------------------
ASSETS = ch.scenario_assets_available("commons_harvest__open_0")


@pytest.mark.skipif(not ASSETS, reason="the Melting Pot asset archive (scenario bots) is not installed: "
                    "this dm-meltingpot was built offline; `python scripts/install_meltingpot.py --full` gets it")
def test_scenario_evaluation():
    result = ch.evaluate_scenario("random", "commons_harvest__open_0", episodes=1, seed=0)
    lo, hi = ch.SCENARIO_SCORE_RANGES["commons_harvest__open_0"]
    assert result.episodes == 1 and len(result.per_episode) == 1
    assert result.normalised_score == pytest.approx((result.focal_per_capita_return - lo) / (hi - lo))


@pytest.mark.skipif(ASSETS, reason="the scenario bots are installed, so there is no missing-assets error to see")
def test_scenario_without_assets_says_how_to_get_them():
    with pytest.raises(ch.MeltingPotAssetsMissing, match=r"install_meltingpot\.py --full.*meltingpot-assets-2\.3\.0"):
        ch.evaluate_scenario("random", "commons_harvest__open_1")
    with pytest.raises(ValueError, match="allowed values"):
        ch.evaluate_scenario("random", "commons_harvest__open_7")


def test_scenario_evaluation_arithmetic_with_a_stand_in_scenario(monkeypatch):
    """The evaluation loop, without the bots: a stand-in for Melting Pot's scenario that
    gives focal player 0 one apple per step for 3 steps."""
    import dm_env

    class StandIn:
        def __init__(self):
            self.t, self.actions = 0, []

        def _obs(self):
            return [{"RGB": np.full((88, 88, 3), i, np.uint8), "READY_TO_SHOOT": 1.0} for i in range(5)]

        def reset(self):
            self.t = 0
            return dm_env.restart(self._obs())

        def step(self, actions):
            self.actions.append(actions)
            self.t += 1
            reward = [1.0, 0.0, 0.0, 0.0, 0.0]
            return (dm_env.termination if self.t == 3 else dm_env.transition)(reward, self._obs())

        def close(self):
            pass

    mp = ch.import_meltingpot()
    stand_ins = []
    monkeypatch.setattr(ch.scenarios, "_missing_bots", lambda scenario: [])  # where evaluate_scenario looks it up
    monkeypatch.setattr(mp.scenario, "build", lambda name: stand_ins.append(StandIn()) or stand_ins[-1])
    policy = RecordingPolicy()
    result = ch.evaluate_scenario(policy, "commons_harvest__open_1", episodes=2, resize=44, grayscale=True)
    lo, hi = ch.SCENARIO_SCORE_RANGES["commons_harvest__open_1"]
    assert result.per_episode == [0.6, 0.6] and result.focal_per_capita_return == pytest.approx(0.6)
    assert result.normalised_score == pytest.approx((0.6 - lo) / (hi - lo))
    assert policy.shapes == [((5, 44, 44, 1), torch.uint8)] * 6
    assert stand_ins[0].actions == [[5] * 5] * 3
