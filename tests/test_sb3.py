"""The Stable-Baselines3 baselines: the VecEnv bridge, PPO / PPO-SR runs, resume, SB3 models as players."""

from __future__ import annotations

import csv
import json
import pickle

import cloudpickle
import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import VecEnv

import social_dilemmas
from social_dilemmas.policies import resolve_player
from trainers import sb3
from trainers.__main__ import main
from trainers.config import preset

ENVS = ("ipd", "coin_game", "negotiation")



def tiny(env: str, algo: str = "ppo", **kw):
    return preset(env, **{"algo": algo, "batch_size": 8, "max_steps": 6, "iterations": 2, "hidden": 8,
                          "tensorboard": False, **kw})


def read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# -- the bridge ------------------------------------------------------------------------------
def ipd_actions(num_games: int, row: int, col: int) -> np.ndarray:
    """SB3's flat actions: slot g * 2 + i is seat i of game g."""
    return np.tile([row, col], num_games)


def test_bridge_is_a_vecenv_with_one_slot_per_player_of_every_game():
    env = sb3.GameVecEnv("coin_game", 5)
    assert isinstance(env, VecEnv)
    assert env.num_envs == 10 and env.n_players == 2
    obs = env.reset()
    assert isinstance(obs, np.ndarray) and obs.dtype == np.float32 and obs.shape == (10, 4, 3, 3)
    assert env.observation_space == social_dilemmas.make_game("coin_game").observation_space()
    obs, rew, dones, infos = env.step(np.zeros(10, dtype=np.int64))
    assert obs.shape == (10, 4, 3, 3) and rew.shape == (10,) and rew.dtype == np.float32
    assert dones.shape == (10,) and dones.dtype == bool and len(infos) == 10
    # every player sees itself in channel 0: seat 1's view is its own
    vec = env.vec
    np.testing.assert_array_equal(obs.reshape(5, 2, 4, 3, 3), vec.game.observe(vec.state).numpy())
    assert env.get_attr("render_mode") == [None] * 10
    assert env.env_is_wrapped(gymnasium.Wrapper) == [False] * 10
    assert env.env_method("pop_stats", indices=[0, 1])[0]["rollout/reward_per_step"] == pytest.approx(float(rew.mean()))


@pytest.mark.parametrize("time_limit", sb3.TIME_LIMIT_MODES)
def test_episode_end_at_max_steps_terminal_observation_and_time_limit_flag(time_limit):
    env = sb3.GameVecEnv("ipd", 3, max_steps=4, time_limit=time_limit)
    env.seed(0)
    obs = env.reset()
    assert not obs.any()  # IPD: all zeros before the first round
    for t in range(4):
        obs, rew, dones, infos = env.step(ipd_actions(3, 0, 1))  # seat 0 cooperates, seat 1 defects
        np.testing.assert_array_equal(rew, np.tile([-3.0, 0.0], 3))
        if t < 3:
            assert not dones.any()
            assert all("terminal_observation" not in i for i in infos)
            np.testing.assert_array_equal(obs, np.tile([[1, 0, 0, 1], [0, 1, 1, 0]], (3, 1)))
    assert dones.all()  # only at max_steps
    for slot, info in enumerate(infos):
        want = [1, 0, 0, 1] if slot % 2 == 0 else [0, 1, 1, 0]  # the last round, from each player's side
        np.testing.assert_array_equal(info["terminal_observation"], want)
        assert info["TimeLimit.truncated"] is (time_limit == "bootstrap")
        assert info["episode"]["l"] == 4
        assert info["episode"]["r"] == pytest.approx(-12.0 if slot % 2 == 0 else 0.0)
    assert not obs.any()  # the returned observation is already the first of the next episode
    obs, _, dones, infos = env.step(ipd_actions(3, 1, 1))
    assert not dones.any() and infos == [{}] * 6
    np.testing.assert_array_equal(obs, np.tile([0, 1, 0, 1], (6, 1)))


def test_shared_reward_gives_every_slot_the_sum_of_its_game():
    env = sb3.GameVecEnv("ipd", 2, shared_reward=True, max_steps=3)
    env.reset()
    _, rew, _, _ = env.step(np.array([0, 1, 1, 1]))  # game 0: C vs D (-3 + 0); game 1: D vs D (-2 + -2)
    np.testing.assert_array_equal(rew, [-3.0, -3.0, -4.0, -4.0])
    stats = env.pop_stats()  # the game's own rewards, not the shared ones
    assert stats["rollout/reward_per_step"] == pytest.approx((-3 + 0 - 2 - 2) / 4)
    assert stats["rollout/cooperation"] == pytest.approx(0.25)
    env.step(np.array([0, 0, 0, 0]))
    _, _, dones, infos = env.step(np.array([0, 0, 0, 0]))
    assert dones.all()
    assert infos[0]["episode"]["r"] == pytest.approx(-3 - 2 - 2)  # the shared return the learner saw
    assert infos[0]["game_return"] == pytest.approx(-3 - 1 - 1)  # the player's own return


def test_negotiation_takes_sb3_box_actions():
    env = sb3.GameVecEnv("negotiation", 2, max_steps=2)
    env.reset()
    _, rew, _, _ = env.step(np.full((4, 3), 5.0, dtype=np.float32))
    assert rew.shape == (4,) and np.isfinite(rew).all()


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_bridge_pickles_mid_episode_and_continues_identically(dumps):
    env = sb3.GameVecEnv("coin_game", 4, shared_reward=True, max_steps=5)
    env.seed(3)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(2):
        env.step(rng.integers(4, size=8))
    copy = pickle.loads(dumps(env))
    for _ in range(6):  # across the end of an episode
        a = rng.integers(4, size=8)
        o1, r1, d1, i1 = env.step(a)
        o2, r2, d2, i2 = copy.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        assert [i.get("game_return") for i in i1] == [i.get("game_return") for i in i2]


def test_bridge_renders_game_zero():
    env = sb3.GameVecEnv("ipd", 2, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    env.reset()
    env.step(np.array([0, 1, 1, 1]))
    rgb = env.render()
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_seat_views_step_in_lockstep():
    base = sb3.GameVecEnv("ipd", 3, max_steps=4)
    seats = [sb3.SeatVecEnv(base, i) for i in range(2)]
    assert seats[0].num_envs == 3
    for s in seats:
        assert not s.reset().any()
    seats[0].step_async(np.zeros(3, dtype=np.int64))
    with pytest.raises(RuntimeError, match="lockstep"):
        seats[0].step_wait()
    seats[1].step_async(np.ones(3, dtype=np.int64))
    o0, r0, _, _ = seats[0].step_wait()
    o1, r1, _, _ = seats[1].step_wait()
    np.testing.assert_array_equal(r0, [-3.0] * 3)
    np.testing.assert_array_equal(r1, [0.0] * 3)
    np.testing.assert_array_equal(o0, [[1, 0, 0, 1]] * 3)
    np.testing.assert_array_equal(o1, [[0, 1, 1, 0]] * 3)


def test_ppo_does_not_bootstrap_at_max_steps_unless_asked(tmp_path):
    # IPD rewards are integers: a bootstrapped last step adds gamma * V(terminal obs)
    for time_limit, bootstrapped in (("terminate", False), ("bootstrap", True)):
        run = sb3.train(tiny("ipd", iterations=1), tmp_path / time_limit, progress=False, time_limit=time_limit)
        rewards = run.model.rollout_buffer.rewards  # [n_steps, n_envs], the rollout of the last update
        assert np.all(rewards[:-1] == np.round(rewards[:-1]))
        assert bool(np.any(rewards[-1] != np.round(rewards[-1]))) is bootstrapped


# -- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", sb3.SB3_ALGOS)
def test_short_ppo_run_writes_outputs_and_changes_the_policy(tmp_path, env, algo):
    cfg = tiny(env, algo)
    run = sb3.train(cfg, tmp_path, progress=False)
    assert run.iteration == 2
    assert run.model.num_timesteps == 2 * 6 * 16  # iterations * max_steps * (games * players)
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == algo
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    for key in ("rollout/reward_per_step", "train/loss", "train/value_loss", "train/approx_kl"):
        assert all(np.isfinite(float(r[key])) for r in rows), key
    assert (tmp_path / "model.zip").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    fresh = sb3.make_model(cfg, sb3.make_env(cfg)).policy.state_dict()
    after = run.model.policy.state_dict()
    assert any(not torch.equal(fresh[k], after[k]) for k in fresh)
    info = json.loads((tmp_path / "sb3.json").read_text())
    assert info["ppo"]["n_steps"] == 6 and info["ppo"]["gamma"] == cfg.gamma and info["time_limit"] == "terminate"


def test_ppo_arguments_follow_the_config():
    cfg = tiny("coin_game", ppo_epochs=3, ppo_minibatches=2, clip_eps=0.1, grad_clip=0.0, target_kl=0.0)
    kw = sb3.ppo_kwargs(cfg, n_envs=16)
    assert kw["n_steps"] == 6 and kw["batch_size"] == 6 * 16 // 2 and kw["n_epochs"] == 3
    assert kw["learning_rate"] == cfg.actor_lr and kw["ent_coef"] == cfg.entropy_coef and kw["clip_range"] == 0.1
    assert kw["max_grad_norm"] == 0.5 and kw["target_kl"] is None and kw["gae_lambda"] == cfg.gae_lambda


def test_cli_trains_and_resumes_a_ppo_run_exactly(tmp_path, capsys):
    common = ["--env", "coin_game", "--batch-size", "8", "--max-steps", "6", "--hidden", "8", "--no-tensorboard",
              "--save-every", "2", "--no-progress"]
    assert main(["train", "--algo", "ppo_shared_reward", "--iterations", "4", "--out", str(tmp_path / "full"), *common]) == 0
    assert main(["train", "--algo", "ppo_shared_reward", "--iterations", "2", "--out", str(tmp_path / "split"), *common]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--iterations", "4", "--no-progress"]) == 0
    assert "trained 4 updates" in capsys.readouterr().out
    a = read_metrics(tmp_path / "full" / "metrics.csv")
    b = read_metrics(tmp_path / "split" / "metrics.csv")
    assert [r["iteration"] for r in b] == ["1", "2", "3", "4"]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if not k.startswith("time/")} == \
               {k: v for k, v in rb.items() if not k.startswith("time/")}
    full = sb3.load_policy(tmp_path / "full" / "model.zip", social_dilemmas.make_game("coin_game")).model
    split = sb3.load_policy(tmp_path / "split" / "model.zip", social_dilemmas.make_game("coin_game")).model
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, split.policy.state_dict()[k]), k


def test_independent_learners_resume_exactly(tmp_path):
    full = sb3.train(tiny("negotiation", iterations=3), tmp_path / "full", progress=False, independent=True)
    assert [p.name for p in full.model_paths()] == ["model_player_0.zip", "model_player_1.zip"]
    assert all(p.exists() for p in full.model_paths())
    a, b = (m.policy.state_dict() for m in full.models)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two networks
    rows = read_metrics(tmp_path / "full" / "metrics.csv")
    assert "train/player_1/loss" in rows[0] and "rollout/reward_per_step" in rows[0]
    sb3.train(tiny("negotiation", iterations=1), tmp_path / "split", progress=False, independent=True)
    resumed = sb3.train(out=tmp_path / "split", resume=True, iterations=3, progress=False)
    assert resumed.independent and resumed.iteration == 3
    for m1, m2 in zip(full.models, resumed.models):
        s1, s2 = m1.policy.state_dict(), m2.policy.state_dict()
        assert all(torch.equal(s1[k], s2[k]) for k in s1)


@pytest.mark.parametrize("independent", [False, True])
def test_ppo_runs_evaluate_against_the_scripted_players(tmp_path, independent):
    run = sb3.train(tiny("negotiation", eval_every=2, eval_games=8), tmp_path, progress=False, independent=independent)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r.get("eval/self", "") != "" for r in rows] == [False, True]
    assert 0.0 <= float(rows[1]["eval/vs_always_cooperate"]) <= 1.0
    assert np.isfinite(float(rows[1]["eval/exploitation"]))
    assert run.iteration == 2


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="time_limit"):
        sb3.train(tiny("ipd"), tmp_path, time_limit="never")
    with pytest.raises(ValueError, match="algo"):
        sb3.train(tiny("ipd", algo="adalign"), tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        sb3.train(out=tmp_path / "nothing", resume=True)


# -- SB3 models as players -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coin_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("coin-ppo")
    sb3.train(tiny("coin_game", iterations=1), out, progress=False)
    return out / "model.zip"


def test_sb3_model_is_a_player_everywhere(coin_model):
    game = social_dilemmas.make_game("coin_game")
    player = resolve_player(str(coin_model), game)
    assert isinstance(player, sb3.SB3Policy) and player.name.startswith("ppo:")
    player.reset(64, "cpu", torch.Generator().manual_seed(0))
    vec = social_dilemmas.make_vec("coin_game", 64)
    obs, _ = vec.reset(seed=0)
    a1 = player.act(obs[:, 0])
    assert a1.shape == (64,) and a1.dtype == torch.int64 and bool(((a1 >= 0) & (a1 < 4)).all())
    player.reset(64, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(player.act(obs[:, 0]), a1)  # sampling from the given generator
    greedy = sb3.load_policy(coin_model, game, deterministic=True)
    assert torch.equal(greedy.act(obs[:, 0]), greedy.act(obs[:, 0]))
    env = gymnasium.make("social_dilemmas/CoinGame-v0", opponent=str(coin_model))
    env.reset(seed=0)
    _, r, _, _, _ = env.step(0)
    assert np.isfinite(r)


def test_negotiation_model_plays_clipped_proposals(tmp_path):
    sb3.train(tiny("negotiation", iterations=1), tmp_path, progress=False)
    game = social_dilemmas.make_game("negotiation")
    player = sb3.load_policy(tmp_path / "model.zip", game)
    player.reset(32)
    obs, _ = social_dilemmas.make_vec("negotiation", 32).reset(seed=0)
    a = player.act(obs[:, 0])
    assert a.shape == (32, 3) and a.dtype == torch.float32 and bool(((a >= 0) & (a <= 5)).all())


def test_loading_a_model_for_another_game_is_refused(coin_model):
    with pytest.raises(ValueError, match="trained with observations"):
        sb3.load_policy(coin_model, social_dilemmas.make_game("ipd"))
    with pytest.raises(FileNotFoundError):
        sb3.load_policy(coin_model.parent / "missing.zip", social_dilemmas.make_game("coin_game"))
