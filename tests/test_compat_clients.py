"""Third-party clients on the registered envs, those our pins install: Stable-Baselines3's
``check_env``, ``make_vec_env`` (``DummyVecEnv``) and ``SubprocVecEnv``, Gymnasium's
``make_vec`` with ``vectorization_mode="sync"`` and ``"async"``, and Gymnasium's
``RecordVideo`` (skipped without moviepy, which our pins do not install).

The README's compatibility table lists the versions tested and the clients our pins do
not install (TorchRL, SuperSuit, RLlib).
"""

from __future__ import annotations

import importlib.util

import gymnasium
import numpy as np
import pytest

import social_dilemmas
from trainers.metrics import use_tensorboard_stub

use_tensorboard_stub()  # SB3 imports TensorBoard, and through it TensorFlow when installed

from stable_baselines3.common.env_checker import check_env  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv  # noqa: E402

IDS = social_dilemmas.ENV_IDS
GAMES = tuple(IDS)
# the IPD against always_defect, player_0 cooperating: (C, D) every round, -3 per step
IPD_KWARGS = {"opponent": "always_defect", "max_steps": 3}
ROUND_CD = np.array([1, 0, 0, 1], dtype=np.float32)  # last round: I cooperated, the other defected
FIRST_OBS = np.zeros(4, dtype=np.float32)  # no round played yet


@pytest.mark.parametrize("name", GAMES)
def test_sb3_check_env_passes_on_the_registered_env(name):
    """SB3's checker, on the env as ``gymnasium.make`` gives it (its warnings: the Coin Game's
    (4, 3, 3) float planes look like an image to SB3, and the Negotiation's Box(0, 5) actions
    are not symmetric; neither stops ``MlpPolicy``)."""
    env = gymnasium.make(IDS[name], max_steps=4)
    check_env(env, warn=True)
    env.close()


def play_ipd_vec(vec) -> None:
    """Three rounds and one more: ``dones`` at the third, the terminal observation in the
    info, the time limit flagged, the next episode already started."""
    assert vec.num_envs == 2
    vec.seed(0)
    obs = vec.reset()
    np.testing.assert_array_equal(obs, [FIRST_OBS, FIRST_OBS])
    for t in range(1, 4):
        obs, rewards, dones, infos = vec.step(np.array([0, 0]))
        np.testing.assert_array_equal(rewards, [-3.0, -3.0])
        assert dones.tolist() == [t == 3] * 2
    for info in infos:
        np.testing.assert_array_equal(info["terminal_observation"], ROUND_CD)
        assert info["TimeLimit.truncated"] is True
        assert info["episode"]["r"] == -9.0 and info["episode"]["l"] == 3  # SB3's Monitor
    np.testing.assert_array_equal(obs, [FIRST_OBS, FIRST_OBS])  # SB3 resets on the done step
    obs, rewards, dones, _ = vec.step(np.array([0, 0]))
    np.testing.assert_array_equal(obs, [ROUND_CD, ROUND_CD])
    assert not dones.any()
    vec.close()


def test_sb3_make_vec_env_steps_whole_episodes():
    vec = make_vec_env(IDS["ipd"], n_envs=2, env_kwargs=IPD_KWARGS)
    assert isinstance(vec, DummyVecEnv)
    play_ipd_vec(vec)


def test_sb3_subproc_vec_env_steps_whole_episodes():
    """Two worker processes (``fork``: a ``forkserver`` or ``spawn`` worker imports TensorFlow
    through SB3 and TensorBoard, about 15 s here; it also needs the id written
    ``"social_dilemmas:social_dilemmas/IPD-v0"`` unless ``__main__`` imports
    ``social_dilemmas``, see the README)."""
    vec = make_vec_env(IDS["ipd"], n_envs=2, env_kwargs=IPD_KWARGS, vec_env_cls=SubprocVecEnv,
                       vec_env_kwargs={"start_method": "fork"})
    assert isinstance(vec, SubprocVecEnv)
    assert vec.get_attr("spec")[0].id == IDS["ipd"]
    play_ipd_vec(vec)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_make_vec_sync_and_async_autoreset_on_the_next_step(mode):
    envs = gymnasium.make_vec(IDS["ipd"], num_envs=2, vectorization_mode=mode, **IPD_KWARGS)
    cls = gymnasium.vector.SyncVectorEnv if mode == "sync" else gymnasium.vector.AsyncVectorEnv
    assert isinstance(envs, cls)
    assert envs.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.NEXT_STEP
    obs, _ = envs.reset(seed=0)
    np.testing.assert_array_equal(obs, [FIRST_OBS, FIRST_OBS])
    for t in range(1, 4):
        obs, rewards, terminated, truncated, infos = envs.step(np.array([0, 0]))
        np.testing.assert_array_equal(obs, [ROUND_CD, ROUND_CD])
        np.testing.assert_array_equal(rewards, [-3.0, -3.0])
        assert truncated.tolist() == [t == 3] * 2 and not terminated.any()
    assert [list(r) for r in infos["opponent_rewards"]] == [[0.0], [0.0]]  # always_defect against C
    # next-step autoreset: this step resets, with no reward
    obs, rewards, terminated, truncated, _ = envs.step(np.array([1, 1]))
    np.testing.assert_array_equal(obs, [FIRST_OBS, FIRST_OBS])
    np.testing.assert_array_equal(rewards, [0.0, 0.0])
    assert not truncated.any() and not terminated.any()
    envs.close()


@pytest.mark.parametrize("name", ["coin_game", "negotiation"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_gymnasium_make_vec_sync_and_async_batch_every_game(name, mode):
    envs = gymnasium.make_vec(IDS[name], num_envs=2, vectorization_mode=mode, max_steps=2)
    single = social_dilemmas.make_game(name).observation_space()
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, *single.shape) and obs.dtype == single.dtype
    envs.action_space.seed(1)
    truncs = []
    for _ in range(2):
        obs, rewards, _, truncated, _ = envs.step(envs.action_space.sample())
        assert obs.shape == (2, *single.shape) and rewards.shape == (2,) and np.isfinite(rewards).all()
        truncs.append(truncated.tolist())
    assert truncs == [[False, False], [True, True]]
    envs.close()


@pytest.mark.skipif(importlib.util.find_spec("moviepy") is None,
                    reason="gymnasium's RecordVideo needs moviepy (pip install moviepy), which our pins do not install")
@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_record_video_writes_one_file_per_episode(name, tmp_path):
    from gymnasium.wrappers import RecordVideo

    env = RecordVideo(gymnasium.make(IDS[name], render_mode="rgb_array", max_steps=3), str(tmp_path),
                      episode_trigger=lambda episode: True, name_prefix=name)
    for seed in (0, 1):
        env.reset(seed=seed)
        truncated = False
        while not truncated:
            _, _, _, truncated, _ = env.step(env.action_space.sample())
    env.close()
    videos = sorted(p.name for p in tmp_path.glob("*.mp4"))
    assert videos == [f"{name}-episode-0.mp4", f"{name}-episode-1.mp4"]
    assert all((tmp_path / v).stat().st_size > 0 for v in videos)
