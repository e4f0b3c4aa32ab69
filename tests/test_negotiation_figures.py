"""The Negotiation's figures and reciprocity test (paper Fig. 3b and Fig. 6; issue 15)."""

from __future__ import annotations

import pytest

import social_dilemmas
from social_dilemmas.policies import make_policy
from trainers import train
from trainers.evaluation.negotiation import (
    is_reciprocal,
    plot_episode,
    plot_training_curves,
    read_curves,
    sample_episode,
    write_episode,
)
from trainers.presets import make_config


def test_an_episode_records_each_players_values_and_proposals(tmp_path):
    game = social_dilemmas.make_game("negotiation")
    steps = sample_episode([make_policy("always_cooperate", game), make_policy("always_defect", game)], seed=3)
    assert len(steps) == game.max_steps
    for s in steps:
        for k in range(3):
            assert sorted((s["values"][0][k], s["values"][1][k])) == [1.0, 5.0]  # high contrast, public values
            # Always Cooperate takes only the items it values more; Always Defect bids 5 on everything
            assert s["proposals"][0][k] == (5.0 if s["values"][0][k] == 5.0 else 0.0)
            assert s["proposals"][1][k] == 5.0
        for i in range(2):  # SPEC section 3: r = sum_k v_k p_k / max(p_k + q_k, 5) / 15
            mine, theirs = s["proposals"][i], s["proposals"][1 - i]
            expected = sum(s["values"][i][k] * mine[k] / max(mine[k] + theirs[k], 5.0) for k in range(3)) / 15
            assert s["rewards"][i] == pytest.approx(expected, abs=1e-6)
    plot_episode(steps, tmp_path / "episode.png", names=("always_cooperate", "always_defect"))
    write_episode(steps, tmp_path / "episode.csv")
    assert (tmp_path / "episode.png").stat().st_size > 5000
    assert len((tmp_path / "episode.csv").read_text().splitlines()) == 1 + 2 * game.max_steps


def test_training_curves_need_the_evaluation_columns(tmp_path):
    kw = dict(num_games=4, max_steps=4, hidden=8, iterations=4, tensorboard=False)
    for seed in (0, 1):
        train(make_config("negotiation", fast=True, seed=seed, eval_every=2, eval_games=4, **kw), tmp_path / f"s{seed}",
              progress=False)
    curves = plot_training_curves([tmp_path / "s0", tmp_path / "s1"], tmp_path / "curves.png")
    assert sorted(curves["eval/self"]) == [2, 4] and all(len(v) == 2 for v in curves["eval/self"].values())
    assert (tmp_path / "curves.png").stat().st_size > 5000
    train(make_config("negotiation", fast=True, **kw), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="plain.*--eval-every"):
        read_curves([tmp_path / "plain"])


def test_reciprocity_thresholds():
    assert is_reciprocal({"eval/self": 0.40, "eval/always_defect_gets": 0.35})
    assert not is_reciprocal({"eval/self": 0.30, "eval/always_defect_gets": 0.30})  # bids 5 on everything
    assert not is_reciprocal({"eval/self": 0.49, "eval/always_defect_gets": 0.54})  # an unconditional cooperator


def test_bid_response_tells_a_reciprocal_agent_from_one_that_ignores_the_other():
    import numpy as np

    from social_dilemmas.policies import CallablePolicy
    from trainers.evaluation.negotiation import bid_response

    game = social_dilemmas.make_game("negotiation")

    def mirror(obs):  # 5 on its valuable items; on the others 5 only if the other bid high on everything last step
        mine, theirs, their_last = obs[3:6] * 10, obs[9:12] * 10, obs[12:15] * 10
        return np.where(mine > theirs, 5.0, 5.0 if their_last.mean() > 4 else 0.0).astype(np.float32)

    def half(obs):  # ignores the other: 5 on its valuable items, 2.5 on the others
        return np.where(obs[3:6] > obs[9:12], 5.0, 2.5).astype(np.float32)

    reciprocal = bid_response(lambda: CallablePolicy(mirror, game), games=8)
    # against Always Cooperate (which bids 0 on its own low items) it mostly gives items away
    # (not when Always Cooperate valued all three items more, 1 step in 8); against Always
    # Defect (5 everywhere) it keeps them, from the second step on
    assert reciprocal["low_bid_vs_always_cooperate"] < 1.0
    assert reciprocal["low_bid_vs_always_defect"] == pytest.approx(5.0 * 49 / 50, abs=0.2)
    assert reciprocal["retaliation"] > 3.5
    fixed = bid_response(lambda: CallablePolicy(half, game), games=8)
    assert fixed["low_bid_vs_always_cooperate"] == fixed["low_bid_vs_always_defect"] == pytest.approx(2.5)
    assert fixed["retaliation"] == pytest.approx(0.0)
