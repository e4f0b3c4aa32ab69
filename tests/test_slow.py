"""Long training runs with published targets: `make slow`, not part of `make test` or CI."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_adalign_self_play_on_the_ipd_learns_tit_for_tat_first_move_included(tmp_path, example):
    """The CPU preset, 10 seeds (about 40 s each on a free core): at least 9 meet every target of
    tit-for-tat: P(C) >= 0.9 on the first move and after CC and DC, <= 0.2 after CD and DD,
    self-play >= -1.1 per step, Always Defect <= -1.75 per step against the agent."""
    result = example("ipd_tit_for_tat").main(["--seeds", "10", "--threads", "1", "--out", str(tmp_path),
                                               "--no-progress"])
    assert sum(result["holds"].values()) >= 9, result["reports"]
    assert result["target_met"]


def test_adalign_with_the_papers_gru_actor_learns_tit_for_tat_first_move_included(tmp_path, example):
    """The CPU preset with the paper's GRU actor over the whole history and the published agent
    replay and Q-critic (the example's GRU_OPTIONS), 10 seeds (about 60 s each): at least 8
    meet every target of tit-for-tat."""
    result = example("ipd_tit_for_tat").main(["--seeds", "10", "--actor", "gru", "--threads", "1",
                                               "--out", str(tmp_path), "--no-progress"])
    assert sum(result["holds"].values()) >= 8, result["reports"]


def test_adalign_on_the_coin_game_cooperates_and_is_not_exploited_by_always_defect(tmp_path, example):
    """One seed of the league reproduction (the CPU preset, 2000 updates; about 25 minutes).

    Thresholds from the seeds measured for the README: self-play 0.14-0.28 per step each
    (ten seeds), Always Defect's exploitation ratio 0.11-0.27 (the first six seeds, 256
    games against each)."""
    result = example("reproduce_league").main(["--env", "coin_game", "--seeds", "1", "--out", str(tmp_path),
                                                    "--no-progress"])
    measured = {what: value for what, value, _, _ in result["targets"]}
    assert measured["AdAlign self-play (each seed against itself), reward per step of each"] >= 0.1, result["targets"]
    assert measured["Always Defect vs AdAlign / vs Always Cooperate (exploitation ratio)"] <= 0.5, result["targets"]


def test_adalign_on_the_negotiation_is_not_exploited_and_ppo_sr_is(tmp_path, example):
    """One seed of the league reproduction (AdAlign from the CPU preset, 800 updates; PPO and
    PPO-SR 500 updates; about 12 minutes on one core).

    The ten seeds measured for the README: AdAlign's exploitation 0.04-0.34 (64 games
    against each seed), self-play 0.30-0.35 per step each (seed 0: 0.35, against PPO's
    0.31); PPO-SR's self-play 0.486-0.490 and exploitation 0.96."""
    result = example("reproduce_league").main(["--env", "negotiation", "--seeds", "1", "--out", str(tmp_path),
                                                    "--no-progress"])
    measured = {what: (value, holds) for what, value, _, holds in result["targets"]}
    aa_exploit = next(k for k in measured if "exploitation" in k and "AdAlign" in k)
    assert measured[aa_exploit][0] <= 0.5, result["targets"]
    assert measured["AdAlign self-play (each seed against itself), reward per step of each"][1], result["targets"]
    sr = next(k for k in measured if k.startswith("PPO-SR self-play"))
    sr_exploit = next(k for k in measured if "exploitation" in k and "PPO-SR" in k)
    assert measured[sr][0] >= 0.4 and measured[sr_exploit][0] >= 0.5, result["targets"]


def test_mfos_against_a_naive_learner_gets_more_than_mutual_cooperation(tmp_path):
    """M-FOS's published IPD result (Lu et al., ICML 2022): against a naive learner the meta-agent
    earns more than mutual cooperation (-1 per step), and the naive learner less than it. The
    CPU preset (--fast: 256 meta-episodes per update, 300 updates), seed 0, one thread: 503 s
    on a busy 2-core machine (1.7 s per update). Measured: M-FOS -0.564, the naive learner -2.049
    per step; seeds 1 and 2: -0.582 / -1.962 and -0.997 / -1.110 (see the README)."""
    from trainers.presets import make_config
    from trainers.run import train

    algo = train(make_config("ipd", "mfos", fast=True, seed=0, tensorboard=False), tmp_path / "run", progress=False)
    measured = algo.evaluate()  # 64 meta-episodes, the meta-agent's mean action
    assert measured["eval/meta_reward_per_step"] > -1.0, measured
    assert measured["eval/meta_opponent_reward_per_step"] < measured["eval/meta_reward_per_step"], measured


def test_mfos_on_the_coin_game_learns_to_exploit_the_naive_learner(tmp_path):
    """M-FOS's Coin Game meta-game (Lu et al., ICML 2022: M-FOS exploits a naive PPO learner):
    the CPU preset (--fast: 32 games, 150 meta-episodes, the authors' lr 2e-4), seed 0, one
    thread. Over the last 10 meta-episodes the meta-agent earns more than 0.15 per step and the
    learner less than 0, and the meta-agent gains more than 0.15 on its first 10. Measured:
    -0.042 / +0.051 (M-FOS / learner) over the first 10, +0.220 / -0.204 over the last 10; 1814 s
    with three or four jobs on the 2-core machine (7.7 s per meta-episode with two). Seed 1 learns
    later (about 0 per step at meta-episode 60-90), and --lr 0.002 faster (+0.310 / -0.293 and
    +0.323 / -0.298 over the last 10 of seeds 0 and 1); a scripted Always Defect in the same seat
    gets about +0.50 / -0.50 (see the README)."""
    import csv

    from trainers.presets import make_config
    from trainers.run import train

    train(make_config("coin_game", "mfos", fast=True, seed=0, tensorboard=False), tmp_path / "run", progress=False)
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))

    def mean(part, key):
        return sum(float(r[key]) for r in part) / len(part)

    first, last = rows[:10], rows[-10:]
    assert mean(last, "rollout/reward_per_step") > 0.15, rows[-1]
    assert mean(last, "rollout/opponent_reward_per_step") < 0, rows[-1]
    assert mean(last, "rollout/reward_per_step") > mean(first, "rollout/reward_per_step") + 0.15, rows[-1]


def test_pola_self_play_on_the_ipd_learns_tit_for_tat_first_move_included(tmp_path):
    """POLA-DiCE's CPU preset (``--fast``: 10 updates of 20 outer steps, two look-ahead steps each,
    256 games of 16 rounds), seed 0: agent 1 meets every target of tit-for-tat, first move
    included (by update 5; the paper's Fig. 4 finds reciprocity with POLA-DiCE on the IPD).
    Measured: passed in 13 min 42 s on one thread of the shared 2-core machine (load average
    13-14; 60-100 s per update). Not every seed gets there: seed 1 ends in always-cooperate,
    which Always Defect exploits, and no variant tried held tit-for-tat on both seeds (the
    README lists them)."""


def test_loqa_self_play_on_the_ipd_learns_tit_for_tat_first_move_included(tmp_path):
    """LOQA's CPU preset (``--fast``: LOQA's table actor, a Monte Carlo Q-critic with value
    normalisation learnt alone for 200 updates, then 400 updates of both), 3 seeds: each meets
    every target of tit-for-tat (P(C) >= 0.9 on the first move and after CC and DC, <= 0.2 after
    CD and DD, self-play >= -1.1, Always Defect <= -1.75 per step against it). Measured: all
    three met them (first move 0.988-0.989, after CD 0.085-0.086), 549-1012 s a seed on one
    thread of the busy 2-core machine (the README's LOQA section)."""
    from trainers import train
    from trainers.evaluation.cooperation import ipd_report, tit_for_tat_checks
    from trainers.presets import make_config

    config = make_config("ipd", "pola", fast=True, seed=0, tensorboard=False, device="cpu")
    train(config, tmp_path / "run", progress=False)
    report = ipd_report(str(tmp_path / "run" / "checkpoint.pt"), num_games=1024)
    checks = tit_for_tat_checks(report)
    assert all(holds for *_, holds in checks), checks


    reports = {}
    for seed in range(3):
        train(make_config("ipd", "loqa", fast=True, seed=seed), tmp_path / f"s{seed}", progress=False)
        report = ipd_report(tmp_path / f"s{seed}" / "checkpoint.pt")
        reports[seed] = (all(ok for *_, ok in tit_for_tat_checks(report)), report)
    assert all(ok for ok, _ in reports.values()), reports
