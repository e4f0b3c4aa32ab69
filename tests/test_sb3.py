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
import trainers
from social_dilemmas.policies import resolve_player
from trainers import algorithms
from trainers.__main__ import main
from trainers.algorithms.ppo import PPO, SB3Policy, ppo_kwargs
from trainers.algorithms.ppo import load_player as load_sb3_player
from trainers.common import CheckpointError
from trainers.config import Config
from trainers.players import load_player
from trainers.presets import make_config
from trainers.sb3_bridge import TIME_LIMIT_MODES, GameVecEnv, SeatVecEnv

ENVS = ("ipd", "coin_game", "negotiation")
SB3_ALGOS = ("ppo", "ppo_shared_reward")


def tiny(env: str, algo: str = "ppo", **kw) -> Config:
    return make_config(env, **{"algo": algo, "num_games": 8, "max_steps": 6, "iterations": 2, "hidden": 8,
                               "tensorboard": False, "device": "cpu", **kw})


def read_metrics(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_baselines_are_registered_algorithms():
    for algo in SB3_ALGOS:
        assert algo in algorithms.names() and issubclass(algorithms.get(algo), PPO)
    assert algorithms.get("ppo_shared_reward").shared_reward and not algorithms.get("ppo").shared_reward


# -- the bridge ------------------------------------------------------------------------------
def ipd_actions(num_games: int, row: int, col: int) -> np.ndarray:
    """SB3's flat actions: slot g * 2 + i is seat i of game g."""
    return np.tile([row, col], num_games)


def test_bridge_is_a_vecenv_with_one_slot_per_player_of_every_game():
    env = GameVecEnv("coin_game", 5)
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


@pytest.mark.parametrize("time_limit", TIME_LIMIT_MODES)
def test_episode_end_at_max_steps_terminal_observation_and_time_limit_flag(time_limit):
    env = GameVecEnv("ipd", 3, max_steps=4, time_limit=time_limit)
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


def test_bridge_refuses_an_unknown_time_limit_mode():
    with pytest.raises(ValueError, match="time_limit"):
        GameVecEnv("ipd", 2, time_limit="never")


def test_shared_reward_gives_every_slot_the_sum_of_its_game():
    env = GameVecEnv("ipd", 2, shared_reward=True, max_steps=3)
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
    env = GameVecEnv("negotiation", 2, max_steps=2)
    env.reset()
    _, rew, _, _ = env.step(np.full((4, 3), 5.0, dtype=np.float32))
    assert rew.shape == (4,) and np.isfinite(rew).all()


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_bridge_pickles_mid_episode_and_continues_identically(dumps):
    env = GameVecEnv("coin_game", 4, shared_reward=True, max_steps=5)
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
    env = GameVecEnv("ipd", 2, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    env.reset()
    env.step(np.array([0, 1, 1, 1]))
    rgb = env.render()
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_seat_views_step_in_lockstep():
    base = GameVecEnv("ipd", 3, max_steps=4)
    seats = [SeatVecEnv(base, i) for i in range(2)]
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


@pytest.mark.parametrize("independent", [False, True])
def test_ppo_does_not_bootstrap_at_max_steps_unless_asked(tmp_path, independent):
    # IPD rewards are integers: a bootstrapped last step adds gamma * V(terminal obs)
    for time_limit, bootstrapped in (("terminate", False), ("bootstrap", True)):
        cfg = tiny("ipd", iterations=1, time_limit=time_limit, independent=independent)
        run = trainers.train(cfg, tmp_path / time_limit, progress=False)
        assert run.env.time_limit == time_limit
        for model in run.models:
            rewards = model.rollout_buffer.rewards  # [n_steps, n_envs], the rollout of the last update
            assert np.all(rewards[:-1] == np.round(rewards[:-1]))
            assert bool(np.any(rewards[-1] != np.round(rewards[-1]))) is bootstrapped
        assert json.loads((tmp_path / time_limit / "config.json").read_text())["run"]["time_limit"] == time_limit


# -- training --------------------------------------------------------------------------------------
@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_short_ppo_run_writes_outputs_and_changes_the_policy(tmp_path, env, algo):
    cfg = tiny(env, algo)
    fresh = algorithms.get(algo)(cfg)  # the run object before any update: the same seed, the same weights
    before = {k: v.clone() for k, v in fresh.models[0].policy.state_dict().items()}
    fresh.close()
    run = trainers.train(cfg, tmp_path, progress=False)
    assert isinstance(run, algorithms.get(algo)) and run.out == tmp_path and not run.cfg.independent
    assert run.iteration == 2 and len(run.models) == 1
    assert run.models[0].num_timesteps == 2 * 6 * 16  # iterations * max_steps * (games * players)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format"] == 2 and saved["run"]["algo"] == algo and saved["run"]["time_limit"] == "terminate"
    assert saved["algorithm"]["independent"] is False
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    for key in ("rollout/reward_per_step", "train/loss", "train/value_loss", "train/approx_kl"):
        assert all(np.isfinite(float(r[key])) for r in rows), key
    assert (tmp_path / "model.zip").exists() and (tmp_path / "checkpoint.pt").exists()
    assert not (tmp_path / "model_player_0.zip").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    after = run.models[0].policy.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    info = json.loads((tmp_path / "sb3.json").read_text())
    assert info["ppo"]["n_steps"] == 6 and info["ppo"]["gamma"] == cfg.algorithm.gamma
    assert info["ppo"]["learning_rate"] == cfg.algorithm.lr and info["n_envs"] == 16


def test_ppo_arguments_follow_the_config():
    cfg = tiny("coin_game", ppo_epochs=3, ppo_minibatches=2, clip_eps=0.1, grad_clip=0.0, target_kl=0.0, seed=5)
    section = cfg.algorithm
    kw = ppo_kwargs(section, n_envs=16, n_steps=cfg.run.steps_per_rollout, seed=cfg.run.seed, device="cpu")
    assert kw["n_steps"] == 6 and kw["batch_size"] == 6 * 16 // 2 and kw["n_epochs"] == 3
    assert kw["learning_rate"] == section.lr and kw["ent_coef"] == section.entropy_coef and kw["clip_range"] == 0.1
    assert kw["max_grad_norm"] == 0.5 and kw["target_kl"] is None and kw["gae_lambda"] == section.gae_lambda
    assert kw["gamma"] == section.gamma and kw["seed"] == 5 and kw["device"] == "cpu"
    assert kw["policy_kwargs"]["net_arch"] == dict(pi=[8, 8], vf=[8, 8])
    kw = ppo_kwargs(tiny("coin_game", grad_clip=2.0, target_kl=0.02).algorithm, 16, 6, 0, "cpu")
    assert kw["max_grad_norm"] == 2.0 and kw["target_kl"] == 0.02


def test_cli_trains_and_resumes_a_ppo_run_exactly(tmp_path, capsys):
    common = ["--env", "coin_game", "--num-games", "8", "--max-steps", "6", "--hidden", "8", "--no-tensorboard",
              "--save-every", "2", "--device", "cpu", "--no-progress"]
    assert main(["train", "--algo", "ppo_shared_reward", "--iterations", "4", "--out", str(tmp_path / "full"), *common]) == 0
    assert main(["train", "--algo", "ppo_shared_reward", "--iterations", "2", "--out", str(tmp_path / "split"), *common]) == 0
    saved = json.loads((tmp_path / "split" / "config.json").read_text())
    assert saved["run"]["num_games"] == 8 and saved["run"]["max_steps"] == 6 and saved["algorithm"]["hidden"] == 8
    capsys.readouterr()
    # resuming refuses what would change what the run learns, and names it; the run is untouched
    assert main(["train", "--resume", str(tmp_path / "split"), "--iterations", "4", "--lr", "0.5", "--no-progress"]) == 2
    assert "lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "split"), "--max-steps", "7", "--no-progress"]) == 2
    assert "max_steps" in capsys.readouterr().err
    assert [r["iteration"] for r in read_metrics(tmp_path / "split" / "metrics.csv")] == ["1", "2"]
    assert main(["train", "--resume", str(tmp_path / "split"), "--iterations", "4", "--no-progress"]) == 0
    assert "trained 4 updates" in capsys.readouterr().out
    a = read_metrics(tmp_path / "full" / "metrics.csv")
    b = read_metrics(tmp_path / "split" / "metrics.csv")
    assert [r["iteration"] for r in b] == ["1", "2", "3", "4"]
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if not k.startswith("time/")} == \
               {k: v for k, v in rb.items() if not k.startswith("time/")}
    game = social_dilemmas.make_game("coin_game")
    full = load_sb3_player(tmp_path / "full" / "model.zip", game).model
    split = load_sb3_player(tmp_path / "split" / "model.zip", game).model
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, split.policy.state_dict()[k]), k


def test_independent_learners_resume_exactly(tmp_path):
    full = trainers.train(tiny("negotiation", iterations=3, independent=True), tmp_path / "full", progress=False)
    assert full.cfg.independent and len(full.models) == 2 and len(full.seat_envs) == 2
    assert sorted(p.name for p in (tmp_path / "full").glob("model*.zip")) == ["model_player_0.zip", "model_player_1.zip"]
    assert (tmp_path / "full" / "checkpoint.pt").exists()
    a, b = (m.policy.state_dict() for m in full.models)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two networks
    rows = read_metrics(tmp_path / "full" / "metrics.csv")
    assert "train/player_1/loss" in rows[0] and "rollout/reward_per_step" in rows[0]
    trainers.train(tiny("negotiation", iterations=1, independent=True), tmp_path / "split", progress=False)
    resumed = trainers.train(out=tmp_path / "split", resume=True, iterations=3, progress=False)
    assert resumed.cfg.independent and resumed.iteration == 3
    for m1, m2 in zip(full.models, resumed.models, strict=True):
        s1, s2 = m1.policy.state_dict(), m2.policy.state_dict()
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
    game = social_dilemmas.make_game("negotiation")
    for i, m in enumerate(resumed.models):  # each seat's exported model is that seat's network
        saved = load_sb3_player(tmp_path / "split" / f"model_player_{i}.zip", game).model.policy.state_dict()
        assert all(torch.equal(v, saved[k]) for k, v in m.policy.state_dict().items())


@pytest.mark.parametrize("independent", [False, True])
def test_ppo_runs_evaluate_against_the_scripted_players(tmp_path, independent):
    cfg = tiny("negotiation", eval_every=2, eval_games=8, independent=independent)
    run = trainers.train(cfg, tmp_path, progress=False)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r.get("eval/self", "") != "" for r in rows] == [False, True]
    assert 0.0 <= float(rows[1]["eval/vs_always_cooperate"]) <= 1.0
    assert np.isfinite(float(rows[1]["eval/exploitation"]))
    assert run.iteration == 2


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="time_limit"):
        make_config("ipd", algo="ppo", time_limit="never")
    with pytest.raises(ValueError, match="algo"):
        make_config("ipd", algo="sac")
    # a setting of another algorithm's section (or an old name) is named, not silently ignored
    with pytest.raises(ValueError, match="'independent'"):
        make_config("ipd", algo="adalign", independent=True)
    with pytest.raises(ValueError, match="'actor_lr'"):
        make_config("ipd", algo="ppo", actor_lr=1e-3)
    with pytest.raises(ValueError, match="'batch_size'"):
        make_config("ipd", algo="ppo", batch_size=8)
    with pytest.raises(ValueError, match="clip_eps"):
        make_config("ipd", algo="ppo", clip_eps=1.5)
    with pytest.raises(ValueError, match="lr"):
        make_config("ipd", algo="ppo", lr=0.0)
    with pytest.raises(FileNotFoundError, match="config.json"):
        trainers.train(out=tmp_path / "nothing", resume=True)
    with pytest.raises(ValueError, match="config"):
        trainers.train(out=tmp_path / "no-config")
    # a PPO run folder of the first trainers (model.zip, no checkpoint.pt) plays but cannot be resumed
    old = tmp_path / "old-ppo"
    old.mkdir()
    (old / "config.json").write_text(tiny("ipd").to_json())
    (old / "model.zip").write_bytes(b"")
    with pytest.raises(CheckpointError, match="retrain"):
        trainers.train(out=old, resume=True, progress=False)


def test_resuming_refuses_settings_that_change_what_the_run_learns(tmp_path):
    trainers.train(tiny("ipd", iterations=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="time_limit"):
        trainers.train(tiny("ipd", iterations=2, time_limit="bootstrap"), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="independent"):
        trainers.train(tiny("ipd", iterations=2, independent=True), tmp_path, resume=True, progress=False)
    with pytest.raises(ValueError, match="ppo"):
        trainers.train(tiny("ipd", algo="ppo_shared_reward", iterations=2), tmp_path, resume=True, progress=False)
    run = trainers.train(tiny("ipd", iterations=2, save_every=5), tmp_path, resume=True, progress=False)
    assert run.iteration == 2 and run.run.save_every == 5


# -- SB3 models as players -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def coin_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("coin-ppo")
    trainers.train(tiny("coin_game", iterations=1), out, progress=False)
    return out / "model.zip"


def test_sb3_model_is_a_player_everywhere(coin_model):
    game = social_dilemmas.make_game("coin_game")
    player = resolve_player(str(coin_model), game)
    assert isinstance(player, SB3Policy) and player.name.startswith("ppo:")
    player.reset(64, "cpu", torch.Generator().manual_seed(0))
    vec = social_dilemmas.make_vec("coin_game", 64)
    obs, _ = vec.reset(seed=0)
    a1 = player.act(obs[:, 0])
    assert a1.shape == (64,) and a1.dtype == torch.int64 and bool(((a1 >= 0) & (a1 < 4)).all())
    player.reset(64, "cpu", torch.Generator().manual_seed(0))
    assert torch.equal(player.act(obs[:, 0]), a1)  # sampling from the given generator
    greedy = load_sb3_player(coin_model, game, greedy=True)
    assert greedy.deterministic
    assert torch.equal(greedy.act(obs[:, 0]), greedy.act(obs[:, 0]))
    env = gymnasium.make("social_dilemmas/CoinGame-v0", opponent=str(coin_model))
    env.reset(seed=0)
    _, r, _, _, _ = env.step(0)
    assert np.isfinite(r)


@pytest.mark.parametrize("greedy", [False, True])
def test_checkpoint_and_exported_model_play_identically(coin_model, greedy):
    game = social_dilemmas.make_game("coin_game")
    checkpoint = coin_model.parent / "checkpoint.pt"
    from_zip = load_sb3_player(coin_model, game, greedy=greedy)
    from_pt = load_player(checkpoint, game, greedy=greedy)
    assert isinstance(from_pt, SB3Policy) and from_pt.name.startswith("ppo:") and from_pt.deterministic is greedy
    assert isinstance(resolve_player(str(checkpoint), game), SB3Policy)  # the .pt entry point
    weights = from_zip.model.policy.state_dict()
    assert all(torch.equal(v, weights[k]) for k, v in from_pt.model.policy.state_dict().items())
    vec = social_dilemmas.make_vec("coin_game", 64)
    obs, _ = vec.reset(seed=0)
    for p in (from_zip, from_pt):
        p.reset(64, "cpu", torch.Generator().manual_seed(1))
    other = torch.Generator().manual_seed(2)
    for _ in range(5):  # the same actions step after step: the same network, the generator used alike
        a_zip, a_pt = from_zip.act(obs[:, 0]), from_pt.act(obs[:, 0])
        assert torch.equal(a_zip, a_pt)
        obs, *_ = vec.step(torch.stack([a_zip, torch.randint(4, (64,), generator=other)], dim=1))
    with pytest.raises(ValueError, match="coin_game"):
        load_player(checkpoint, social_dilemmas.make_game("ipd"))


def test_negotiation_model_plays_clipped_proposals(tmp_path):
    trainers.train(tiny("negotiation", iterations=1), tmp_path, progress=False)
    game = social_dilemmas.make_game("negotiation")
    player = load_sb3_player(tmp_path / "model.zip", game)
    player.reset(32)
    obs, _ = social_dilemmas.make_vec("negotiation", 32).reset(seed=0)
    a = player.act(obs[:, 0])
    assert a.shape == (32, 3) and a.dtype == torch.float32 and bool(((a >= 0) & (a <= 5)).all())


def test_loading_a_model_for_another_game_is_refused(coin_model):
    with pytest.raises(ValueError, match="trained with observations"):
        load_sb3_player(coin_model, social_dilemmas.make_game("ipd"))
    with pytest.raises(FileNotFoundError):
        load_sb3_player(coin_model.parent / "missing.zip", social_dilemmas.make_game("coin_game"))
