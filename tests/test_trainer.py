"""AdAlign and Proximal AdAlign through the training core: the loop, the command line, checkpoints and resuming."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import gymnasium
import pytest
import torch

import social_dilemmas
from social_dilemmas.policies import resolve_player
from trainers import algorithms, train
from trainers.algorithms.adalign import AdAlign
from trainers.common import TrainingDiverged
from trainers.config import Config
from trainers.players import load_player as load_policy
from trainers.policy import AgentPolicy
from trainers.presets import make_config

TINY = dict(num_games=16, iterations=3, hidden=16, tensorboard=False, save_every=2)
ENVS = ("ipd", "coin_game", "negotiation")


def tiny(env: str, algo: str = "adalign", **kw) -> Config:
    max_steps = {"ipd": 8, "coin_game": 10, "negotiation": 6}[env]
    return make_config(env, **{"algo": algo, "max_steps": max_steps, **TINY, **kw})


def Trainer(cfg: Config):  # noqa: N802  (the run object of the configured algorithm, without a run folder)
    return algorithms.get(cfg.run.algo)(cfg)


def read_metrics(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("algo", ["adalign", "proximal_adalign"])
def test_short_training_run_writes_outputs_and_changes_the_policy(tmp_path, env, algo):
    # agent replay plays networks without a value head: the Negotiation's separate critic here
    extra = dict(trajectory_replay=0.25, shared_encoder=False) if env == "negotiation" else {}
    cfg = tiny(env, algo, self_play_prob=0.5, snapshot_every=1, **extra)
    before = Trainer(cfg).actor.state_dict()
    trainer = train(cfg, tmp_path, progress=False)
    assert trainer.iteration == 3
    assert json.loads((tmp_path / "config.json").read_text())["run"]["algo"] == algo
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [int(r["iteration"]) for r in rows] == [1, 2, 3]
    for r in rows:
        assert all(torch.isfinite(torch.tensor(float(v))) for k, v in r.items() if v)
    after = trainer.actor.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert (tmp_path / "checkpoint.pt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    cfg = tiny("coin_game", iterations=4, self_play_prob=0.5, snapshot_every=1, save_every=2)
    full = train(cfg, tmp_path / "full", progress=False)
    half = tiny("coin_game", iterations=2, self_play_prob=0.5, snapshot_every=1, save_every=2)
    train(half, tmp_path / "split", progress=False)
    resumed = train(out=tmp_path / "split", resume=True, iterations=4, progress=False)
    a = read_metrics(tmp_path / "full" / "metrics.csv")
    b = read_metrics(tmp_path / "split" / "metrics.csv")
    assert [r["iteration"] for r in b] == ["1", "2", "3", "4"]
    skip = {k for k in a[0] if k.startswith("time/")}
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in skip} == {k: v for k, v in rb.items() if k not in skip}
    for k, v in full.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k])


def test_resume_of_a_folder_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        train(out=tmp_path, resume=True, progress=False)


def test_metrics_that_start_after_the_critic_warmup_reach_metrics_csv(tmp_path):
    # the actor's losses appear only from update critic_warmup + 1; the CSV header must
    # widen then (earlier rows empty), also when the warm-up ends after a resume
    for out, stops in ((tmp_path / "full", [4]), (tmp_path / "split", [2, 4])):
        train(tiny("ipd", iterations=stops[0], critic_warmup=2), out, progress=False)
        for stop in stops[1:]:
            train(out=out, resume=True, iterations=stop, progress=False)
        rows = read_metrics(out / "metrics.csv")
        assert [r["iteration"] for r in rows] == ["1", "2", "3", "4"]
        assert [r["train/loss_pg"] != "" for r in rows] == [False, False, True, True]
        assert all(r["train/critic_loss"] for r in rows)

@pytest.mark.parametrize("algo", ["adalign", "proximal_adalign"])
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, algo):
    import trainers.losses

    cfg = tiny("ipd", algo, iterations=6, save_every=2)
    train(cfg, tmp_path, progress=False, iterations=2)
    good = (tmp_path / "checkpoint.pt").read_bytes()
    real = trainers.losses.ppo_clip_loss if algo == "proximal_adalign" else trainers.losses.adalign_loss

    def poisoned(*args, **kwargs):
        loss, info = real(*args, **kwargs)
        return loss * float("nan"), info

    monkeypatch.setattr(trainers.losses, real.__name__, poisoned)
    with pytest.raises(TrainingDiverged, match="actor loss is nan at update 3"):
        train(out=tmp_path, resume=True, progress=False, iterations=6)
    assert (tmp_path / "checkpoint.pt").read_bytes() == good
    assert [r["iteration"] for r in read_metrics(tmp_path / "metrics.csv")] == ["1", "2"]


@pytest.mark.parametrize("env", ENVS)
def test_periodic_evaluation_logs_scripted_matches_without_changing_training(tmp_path, env):
    plain = train(tiny(env, iterations=4), tmp_path / "plain", progress=False)
    evaluated = train(tiny(env, iterations=4, eval_every=2, eval_games=8), tmp_path / "eval", progress=False)
    for k, v in plain.actor.state_dict().items():  # evaluating draws nothing from the training generators
        assert torch.equal(v, evaluated.actor.state_dict()[k]), k
    rows = read_metrics(tmp_path / "eval" / "metrics.csv")
    assert [r["eval/self"] != "" for r in rows] == [False, True, False, True]
    for r in rows[1::2]:
        assert -1.0 <= float(r["eval/exploitation"]) <= 2.0
        assert {"eval/vs_always_defect", "eval/always_cooperate_gets", "time/eval_s"} <= {k for k, v in r.items() if v}
    # the evaluation is the one scripted_evaluation gives for the saved actor
    from trainers.evaluation.scripted import scripted_evaluation

    again = scripted_evaluation(evaluated.game, lambda seat: load_policy(tmp_path / "eval" / "checkpoint.pt"),
                                games=8, seed=0)
    assert float(rows[-1]["eval/self"]) == pytest.approx(again["eval/self"], abs=1e-5)


def test_bad_config_names_the_field_and_allowed_values():
    with pytest.raises(ValueError, match="algo = 'reinforce' is invalid.*adalign"):
        make_config("ipd", algo="reinforce")
    with pytest.raises(ValueError, match="sign_masks.*cooperative"):
        make_config("ipd", sign_masks=["friendly"])
    with pytest.raises(ValueError, match="num_games"):
        make_config("ipd", num_games=0)
    with pytest.raises(ValueError, match="env"):
        make_config("chess")
    assert make_config("commons_harvest_open", eval_every=10).run.eval_games == 1  # episodes of 1000 steps
    with pytest.raises(ValueError, match="eval_games = 0 is invalid: must be an integer >= 1"):
        make_config("ipd", eval_games=0)
    for name in ("actor_lr", "beta", "entropy_coef"):
        with pytest.raises(ValueError, match=f"{name} = inf is invalid: must be a finite number"):
            make_config("ipd", **{name: float("inf")})
    with pytest.raises(ValueError, match="'lr' is not a setting of the run or of adalign.*actor_lr"):
        make_config("ipd", lr=1e-3)  # PPO's name: every name belongs to one section
    with pytest.raises(ValueError, match="env_kwargs.*max_steps"):
        make_config("coin_game", env_kwargs={"max_steps": 4})  # the episode length is max_steps, never both
    with pytest.raises(ValueError, match="env_kwargs = {'size': 4} is invalid for ipd.*size"):
        make_config("ipd", env_kwargs={"size": 4})  # the game's own check, as a clear error


@pytest.mark.parametrize("algo", algorithms.names())
def test_every_config_field_has_a_docstring_that_the_cli_shows(algo, capsys):
    import dataclasses

    from trainers.__main__ import main
    from trainers.config import RunConfig, field_docs

    section = algorithms.get(algo).Config
    for cls in (RunConfig, section):
        docs = field_docs(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        assert names == set(docs), names ^ set(docs)
        assert all(len(d) > 10 for d in docs.values())
    assert main(["train", "--algo", algo, "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    for name, doc in field_docs(section).items():
        assert "--" + name.replace("_", "-") in shown, name
        assert " ".join(doc.split()[:4]) in shown, name  # its docstring is its help


def test_presets_follow_the_spec_table():
    ipd, coin, neg = make_config("ipd"), make_config("coin_game"), make_config("negotiation")
    assert (ipd.run.num_games, ipd.algorithm.gamma, ipd.algorithm.beta, ipd.algorithm.entropy_coef) == (2048, 0.9, 0.3, 0.15)
    assert (coin.run.num_games, coin.run.max_steps, coin.algorithm.gamma, coin.algorithm.grad_clip) == (512, 50, 0.96, 10.0)
    assert (neg.run.num_games, neg.algorithm.beta, neg.algorithm.trajectory_replay) == (16384, 3.0, 0.05)
    ch = make_config("commons_harvest_open")  # Proximal AdAlign on rollouts of 15 steps of 1000-step episodes
    assert (ch.run.algo, ch.run.max_steps, ch.run.rollout_steps, ch.run.time_limit) == ("proximal_adalign", 1000, 15, "bootstrap")
    assert (ch.algorithm.hidden, ch.algorithm.vision_memory, ch.algorithm.clip_eps) == (192, "gtrxl", 0.1)


def test_checkpoint_is_a_player_for_league_recorder_and_gymnasium(tmp_path):
    train(tiny("ipd", max_steps=16), tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    game = social_dilemmas.make_game("ipd")
    policy = resolve_player(str(path), game)
    assert isinstance(policy, AgentPolicy)
    policy.reset(5, "cpu")
    actions = policy.act(torch.zeros(5, 4))
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    env = gymnasium.make("social_dilemmas/IPD-v0", opponent=str(path))
    env.reset(seed=0)
    for _ in range(16):
        _, r, _, trunc, _ = env.step(0)
    assert trunc
    with pytest.raises(ValueError, match="coin_game|CoinGame"):
        load_policy(path, social_dilemmas.make_game("coin_game"))


def test_greedy_agent_policy_is_deterministic(tmp_path):
    train(tiny("negotiation"), tmp_path, progress=False)
    policy = load_policy(tmp_path / "checkpoint.pt", greedy=True)
    obs = torch.rand(4, 15) * 0.5
    policy.reset(4)
    a = policy.act(obs)
    policy.reset(4)
    b = policy.act(obs)
    assert torch.equal(a, b) and a.shape == (4, 3) and bool(((a >= 0) & (a <= 5)).all())


def test_cli_help_explains_every_option():
    out = subprocess.run([sys.executable, "-m", "trainers", "train", "--help"], capture_output=True, text=True, check=True)
    for option, words in [("--beta", "alignment"), ("--self-play-prob", "snapshot"), ("--resume", "exactly")]:
        assert option in out.stdout
        assert words in out.stdout


def test_cli_trains_and_measures_cooperation(tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainers", "train", "--env", "ipd", "--algo", "adalign", "--seed", "1",
           "--iterations", "2", "--num-games", "8", "--hidden", "8", "--no-tensorboard", "--no-progress",
           "--device", "cpu", "--out", str(run)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert (run / "checkpoint.pt").exists() and (run / "metrics.csv").exists()
    res = subprocess.run([sys.executable, "-m", "trainers", "cooperation", "--agent", str(run / "checkpoint.pt"),
                          "--out", str(tmp_path / "coop"), "--games", "16"], check=True, capture_output=True, text=True)
    assert "CC" in res.stdout and "self_play" in res.stdout and "always_defect_gets" in res.stdout
    rows = list(csv.DictReader(open(tmp_path / "coop" / "cooperation.csv")))
    assert [r["previous_round"] for r in rows] == ["start", "CC", "CD", "DC", "DD"]
    assert all(0 <= float(r["p_cooperate"]) <= 1 for r in rows)
    checks = list(csv.DictReader(open(tmp_path / "coop" / "tit_for_tat.csv")))
    assert [r["metric"] for r in checks] == ["start", "CC", "DC", "CD", "DD", "self_play", "always_defect_gets"]
    assert (tmp_path / "coop" / "cooperation.png").stat().st_size > 1000


def test_cli_rejects_a_bad_option_value(tmp_path):
    res = subprocess.run([sys.executable, "-m", "trainers", "train", "--env", "ipd", "--gamma", "1.5", "--out",
                          str(tmp_path)], capture_output=True, text=True)
    assert res.returncode != 0 and "gamma" in res.stderr


def test_cuda_device_is_refused_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    with pytest.raises(ValueError, match="CUDA is not available"):
        Trainer(tiny("ipd", device="cuda"))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("env", ENVS)
def test_training_on_cuda_keeps_everything_on_the_device(tmp_path, env):
    trainer = train(tiny(env, device="cuda"), tmp_path, progress=False)
    assert trainer.rollouts.obs.is_cuda and next(trainer.actor.parameters()).is_cuda
    policy = load_policy(tmp_path / "checkpoint.pt", device="cuda")
    policy.reset(3, "cuda")
    assert policy.act(trainer.rollouts.obs[:3]).is_cuda


def test_tensorboard_logs_are_written(tmp_path):
    train(tiny("ipd", tensorboard=True, iterations=2), tmp_path, progress=False)
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


@pytest.mark.parametrize("recurrent", [True, False])
def test_actor_steps_give_the_sequence_pass_also_across_episode_starts(recurrent):
    from trainers.networks.recurrent import Actor

    torch.manual_seed(0)
    actor = Actor(4, 16, n_actions=2, recurrent=recurrent)
    obs = torch.eye(4)[torch.randint(0, 4, (6, 9))]
    starts = torch.zeros(6, 9, dtype=torch.bool)
    starts[:, 0] = starts[2, 4] = starts[5, 7] = True  # two games start a new episode mid-way
    memory = actor.initial_memory(6, "cpu")
    seq, _ = actor.forward_sequence(memory, obs, starts)
    state = actor.begin(memory)
    for t in range(9):
        dist, value, state = actor.step(state, obs[:, t], starts[:, t])
        assert value is None and torch.allclose(dist.logits, seq.logits[:, t], atol=1e-6)
    # an episode start clears the memory: the restarted rows match fresh episodes of their tails
    fresh, _ = actor.forward_sequence(actor.initial_memory(1, "cpu"), obs[2:3, 4:], starts[2:3, 4:])
    assert torch.allclose(fresh.logits[0], seq.logits[2, 4:], atol=1e-6)


def test_feed_forward_actor_sees_the_current_round_and_whether_the_episode_started():
    from trainers.networks.recurrent import Actor

    torch.manual_seed(0)
    actor = Actor(4, 16, n_actions=2, recurrent=False)
    obs = torch.eye(4)[torch.randint(0, 4, (6, 9))]  # [6 games, 9 steps, 4]
    obs[:, 0] = 0.0  # no previous round at the first step
    starts = torch.zeros(6, 9, dtype=torch.bool)
    starts[:, 0] = True
    seq, _ = actor.forward_sequence(actor.initial_memory(6, "cpu"), obs, starts)
    # after the first step the output depends on the current observation only
    flat_obs, flat_logits = obs[:, 1:].reshape(-1, 4), seq.logits[:, 1:].reshape(-1, 2)
    for k in range(4):
        rows = flat_obs[:, k] == 1
        assert torch.allclose(flat_logits[rows], flat_logits[rows][:1].expand(int(rows.sum()), 2), atol=1e-6)
    # the first step has an input of its own: an all-zero observation later in the episode differs
    first = torch.tensor([[True, False]])
    later, _ = actor.forward_sequence(actor.initial_memory(1, "cpu"), torch.zeros(1, 2, 4), first)
    assert not torch.allclose(later.logits[0, 0], later.logits[0, 1])


def test_anneal_lr_decays_the_actor_learning_rate_linearly_to_zero():
    trainer = Trainer(tiny("ipd", iterations=4, anneal_lr=True, actor_lr=1e-3))
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append(trainer.actor_opt.param_groups[0]["lr"])
    assert seen == pytest.approx([1e-3, 7.5e-4, 5e-4, 2.5e-4])
    assert trainer.critic.opt.param_groups[0]["lr"] == pytest.approx(trainer.cfg.critic_lr)


def test_alignment_warmup_trains_the_plain_learner_first_then_turns_the_term_on():
    warm = Trainer(tiny("coin_game", iterations=3, beta=1.0, alignment_warmup=2))
    plain = Trainer(tiny("coin_game", iterations=3, beta=0.0))
    for update in range(3):
        warm.train_step()
        plain.train_step()
        same = all(torch.equal(v, plain.actor.state_dict()[k]) for k, v in warm.actor.state_dict().items())
        assert same == (update < 2), f"update {update + 1}"
    with pytest.raises(ValueError, match="alignment_warmup.*>= 0"):
        make_config("coin_game", alignment_warmup=-1)


def test_fast_ipd_preset_resumes_exactly_after_an_interruption_and_is_a_player(tmp_path, monkeypatch):
    kw = dict(fast=True, max_steps=8, num_games=16, hidden=16, tensorboard=False, snapshot_every=1, critic_warmup=1)
    cfg = make_config("ipd", iterations=4, save_every=2, **kw)
    section = cfg.algorithm
    assert not section.actor_recurrent and section.anneal_lr and section.self_play_prob == 0.5
    full = train(cfg, tmp_path / "full", progress=False)
    real_step = AdAlign.train_step

    def interrupted(self):  # Ctrl-C during the third update, after the checkpoint of the second
        if self.iteration == 2:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(AdAlign, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(make_config("ipd", iterations=4, save_every=2, **kw), tmp_path / "split", progress=False)
    monkeypatch.setattr(AdAlign, "train_step", real_step)
    resumed = train(out=tmp_path / "split", resume=True, progress=False)  # the lr schedule continues where it was
    assert resumed.iteration == 4
    for k, v in full.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k])
    policy = load_policy(tmp_path / "full" / "checkpoint.pt", social_dilemmas.make_game("ipd"))
    policy.reset(3, "cpu")
    first = policy.act(torch.zeros(3, 4))
    assert first.shape == (3,) and set(first.tolist()) <= {0, 1}


def test_cli_fast_flag_uses_the_cpu_preset_and_is_refused_where_it_does_not_apply(tmp_path):
    run = tmp_path / "run"
    base = [sys.executable, "-m", "trainers", "train", "--no-tensorboard", "--no-progress", "--device", "cpu"]
    subprocess.run(base + ["--env", "ipd", "--fast", "--iterations", "1", "--num-games", "8", "--hidden", "8",
                           "--out", str(run)], check=True, capture_output=True, text=True)
    saved = json.loads((run / "config.json").read_text())
    section = saved["algorithm"]
    assert section["actor_recurrent"] is False and section["anneal_lr"] is True and section["beta"] == 3.0
    assert saved["run"]["num_games"] == 8  # an option given on the command line wins over the preset
    for extra in (["--env", "commons_harvest_open", "--algo", "ppo"], ["--env", "ipd", "--algo", "ppo"]):
        res = subprocess.run(base + extra + ["--fast", "--out", str(tmp_path / "x")], capture_output=True, text=True)
        assert res.returncode == 2 and "--fast" in res.stderr


def test_checkpoint_opponent_plays_on_across_episode_ends_in_gymnasium_make_vec(tmp_path):
    train(tiny("ipd", max_steps=16), tmp_path, progress=False)
    envs = gymnasium.make_vec("social_dilemmas/IPD-v0", num_envs=3, opponent=str(tmp_path / "checkpoint.pt"))
    envs.reset(seed=0)
    ends = 0
    for _ in range(40):  # two episode ends: the opponent's memory is cleared for the games that ended
        _, _, _, truncated, _ = envs.step(envs.action_space.sample())
        ends += int(truncated.sum())
    envs.close()
    assert ends == 6


def test_cli_threads_option_sets_torchs_cpu_threads(tmp_path):
    from trainers.__main__ import main

    before = torch.get_num_threads()
    try:
        code = main(["train", "--env", "ipd", "--iterations", "1", "--num-games", "8", "--hidden", "8",
                     "--no-tensorboard", "--no-progress", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "r")])
        assert code == 0 and torch.get_num_threads() == 1
        assert main(["train", "--env", "ipd", "--threads", "0", "--out", str(tmp_path / "x")]) == 2
    finally:
        torch.set_num_threads(before)


def test_importing_the_trainers_does_not_import_tensorflow():
    # SB3 imports TensorBoard, which imported TensorFlow when installed (Melting Pot brings it):
    # 5 s and a screen of log lines in every process
    code = "import sys, trainers.sb3_bridge, trainers.algorithms.ppo, trainers.algorithms.adalign; print('tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False" and "cuda drivers" not in proc.stderr
