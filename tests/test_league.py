"""The league: hand-computed IPD cells, outputs, globs of seeds, saved players, n-player games."""

from __future__ import annotations

import csv
import json
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch

from social_dilemmas.core import BatchedGame, GameState
from social_dilemmas.policies import Policy
from social_dilemmas.vector import VectorGame
from trainers import train
from trainers.__main__ import main
from trainers.evaluation.league import LeaguePlayer, format_table, league, parse_player, run_league
from trainers.presets import make_config


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cell(result, row: str, col: str) -> tuple[float, float]:
    i, j = result.names.index(row), result.names.index(col)
    return float(result.row_reward[i, j]), float(result.col_reward[i, j])


IPD_PLAYERS = ["always_cooperate", "always_defect", "tit_for_tat", "grim_trigger"]


def test_scripted_ipd_league_matches_hand_computed_rewards(tmp_path):
    result = league("ipd", IPD_PLAYERS, tmp_path, seeds=2, episodes=8, progress=False)
    # payoffs (me, other): CC -1, CD -3, DC 0, DD -2; 16 rounds
    assert cell(result, "always_defect", "always_cooperate") == (0.0, -3.0)
    assert cell(result, "always_cooperate", "always_defect") == (-3.0, 0.0)
    assert cell(result, "always_cooperate", "always_cooperate") == (-1.0, -1.0)
    assert cell(result, "always_defect", "always_defect") == (-2.0, -2.0)
    # tit for tat is exploited once, then both defect for 15 rounds
    assert cell(result, "tit_for_tat", "always_defect") == pytest.approx((-33 / 16, -30 / 16))
    assert cell(result, "always_defect", "tit_for_tat") == pytest.approx((-30 / 16, -33 / 16))
    assert cell(result, "grim_trigger", "always_defect") == pytest.approx((-33 / 16, -30 / 16))
    assert cell(result, "tit_for_tat", "grim_trigger") == (-1.0, -1.0)
    assert np.all(result.row_std == 0) and np.all(result.col_std == 0)  # deterministic players

    rows = read_csv(tmp_path / "league.csv")
    assert list(rows[0]) == ["row", "col", "row_reward", "col_reward", "row_std", "col_std"]
    assert len(rows) == len(IPD_PLAYERS) ** 2
    by_cell = {(r["row"], r["col"]): r for r in rows}
    assert float(by_cell["tit_for_tat", "always_defect"]["row_reward"]) == pytest.approx(-33 / 16, abs=1e-5)
    png = (tmp_path / "league.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    settings = json.loads((tmp_path / "league.json").read_text())
    assert settings["players"]["always_defect"] == ["always_defect"] * 2 and settings["episodes"] == 8
    table = format_table(result)
    assert "-2.062 / -1.875" in table


def test_random_player_varies_over_seeds():
    result = run_league("ipd", ["random", "always_cooperate"], seeds=3, episodes=4)
    i, j = result.names.index("random"), result.names.index("always_cooperate")
    assert result.row_std[i, j] > 0  # three seeds of the random player, four games each
    # against always cooperate: random gets -1 when it cooperates and 0 when it defects; the other -1 or -3
    p_defect = result.row_reward[i, j] + 1
    assert result.col_reward[i, j] == pytest.approx(-1 - 2 * p_defect)


def test_players_are_parsed_from_names_files_globs_and_labels(tmp_path):
    from social_dilemmas import make_game

    game = make_game("ipd")
    p = parse_player("tit_for_tat", game, seeds=4)
    assert p.name == "tit_for_tat" and p.instances == ["tit_for_tat"] * 4 and p.scripted
    with pytest.raises(ValueError, match="unknown player 'nice'.*tit_for_tat"):
        parse_player("nice", game)
    with pytest.raises(FileNotFoundError, match="matches no file"):
        parse_player(str(tmp_path / "runs-s*/checkpoint.pt"), game)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_player(str(tmp_path / "missing.pt"), game)
    for s in (0, 1, 2, 10):
        (tmp_path / f"ipd-adalign-s{s}").mkdir()
        (tmp_path / f"ipd-adalign-s{s}" / "checkpoint.pt").write_bytes(b"")
    p = parse_player(str(tmp_path / "ipd-adalign-s*" / "checkpoint.pt"), game, seeds=3)
    assert p.name == "ipd-adalign"
    assert [x.split("/")[-2] for x in p.instances] == ["ipd-adalign-s0", "ipd-adalign-s1", "ipd-adalign-s2"]
    p = parse_player("mine=" + str(tmp_path / "ipd-adalign-s1" / "checkpoint.pt"), game)
    assert p.name == "mine" and len(p.instances) == 1
    assert parse_player(str(tmp_path / "ipd-adalign-s10" / "checkpoint.pt"), game).name == "ipd-adalign-s10"


def test_glob_of_trainer_checkpoints_and_an_sb3_model_play_in_the_league(tmp_path, capsys):
    tiny = dict(num_games=8, iterations=1, hidden=8, max_steps=16, tensorboard=False, device="cpu")
    for s in (0, 1):
        cfg = make_config("ipd", algo="adalign", seed=s, **tiny)
        train(cfg, tmp_path / f"ipd-adalign-s{s}", progress=False)
    train(make_config("ipd", algo="ppo", **tiny), tmp_path / "ipd-ppo", progress=False)
    out = tmp_path / "league"
    argv = ["league", "--env", "ipd", "--seeds", "2", "--episodes", "4", "--out", str(out), "--no-progress",
            "--players", "always_defect", str(tmp_path / "ipd-adalign-s*" / "checkpoint.pt"),
            str(tmp_path / "ipd-ppo" / "model.zip")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ipd-adalign" in printed and "ipd-ppo" in printed and "league.csv" in printed
    rows = read_csv(out / "league.csv")
    names = ["always_defect", "ipd-adalign", "ipd-ppo"]
    assert [(r["row"], r["col"]) for r in rows] == [(a, b) for a in names for b in names]
    by_cell = {(r["row"], r["col"]): r for r in rows}
    # always defect gets 0 (the other cooperated) or -2 per round against anyone
    for col in names:
        assert -2.0 <= float(by_cell["always_defect", col]["row_reward"]) <= 0.0
    # two seeds of AdAlign against themselves: 2 x 2 instance pairs with different games
    assert float(by_cell["ipd-adalign", "ipd-adalign"]["row_std"]) > 0
    settings = json.loads((out / "league.json").read_text())
    assert len(settings["players"]["ipd-adalign"]) == 2 and len(settings["players"]["ipd-ppo"]) == 1
    assert (out / "league.png").exists()
    # greedy trained players play their most likely action: the games' seeds change nothing
    model = str(tmp_path / "ipd-ppo" / "model.zip")
    a, b = (run_league("ipd", [model, "always_cooperate"], episodes=4, greedy=True, seed=s) for s in (0, 7))
    np.testing.assert_array_equal(a.row_reward, b.row_reward)
    # the PPO run's checkpoint.pt is the same player as its model.zip
    ckpt = str(tmp_path / "ipd-ppo" / "checkpoint.pt")
    c = run_league("ipd", [ckpt, "always_cooperate"], episodes=4, greedy=True, seed=0)
    assert c.names == a.names == ["ipd-ppo", "always_cooperate"]
    np.testing.assert_array_equal(a.row_reward, c.row_reward)
    np.testing.assert_array_equal(a.col_reward, c.col_reward)


def test_league_command_reports_bad_players(tmp_path, capsys):
    assert main(["league", "--env", "coin_game", "--players", "tit_for_tat", "--out", str(tmp_path),
                 "--no-progress"]) == 2
    assert "unknown player 'tit_for_tat'" in capsys.readouterr().err


# -- more than two players: focal and background populations ------------------------------------------
class PublicGoods(BatchedGame):
    """A tiny n-player game for the league's n-player path: contribute (1) or not (0);
    everyone gets ``1.5 * contributions / n`` and a contributor pays 1."""

    name = "public_goods"
    title = "Public goods"
    action_kind = "discrete"

    def __init__(self, n_players: int = 4, max_steps: int = 3):
        self.n_players, self.max_steps = n_players, max_steps

    def config(self) -> dict[str, Any]:
        return {"n_players": self.n_players, "max_steps": self.max_steps}

    def observation_space(self):
        return gymnasium.spaces.Box(0, 1, (1,), np.float32)

    def action_space(self):
        return gymnasium.spaces.Discrete(2)

    def init(self, noise):
        return GameState(t=torch.zeros(noise.shape[0], dtype=torch.int64, device=noise.device))

    def transition(self, state, actions, noise):
        a = actions.float()
        rewards = 1.5 * a.sum(1, keepdim=True) / self.n_players - a
        return GameState(t=state.t + 1), rewards

    def observe(self, state):
        return torch.zeros(state.batch_size, self.n_players, 1, device=state.t.device)


class Constant(Policy):
    def __init__(self, action: int):
        self.action, self.name = action, f"always_{action}"

    def act(self, obs):
        return torch.full((obs.shape[0],), self.action, dtype=torch.int64, device=obs.device)


def test_n_player_league_reports_focal_and_background_per_capita_rewards(tmp_path):
    game = PublicGoods(n_players=4)
    players = [LeaguePlayer("contribute", [Constant(1)]), LeaguePlayer("free_ride", [Constant(0)])]
    result = run_league(game, players, episodes=2)  # focal = n - 2 = 2 seats
    assert result.focal == 2
    # 2 focal contributors, 2 background free riders: pot 1.5 * 2 / 4 = 0.75
    assert cell(result, "contribute", "free_ride") == pytest.approx((0.75 - 1, 0.75))
    assert cell(result, "free_ride", "contribute") == pytest.approx((0.75, -0.25))
    assert cell(result, "contribute", "contribute") == pytest.approx((0.5, 0.5))
    one = run_league(game, players, episodes=2, focal=1)  # 1 contributor against 3 free riders
    assert cell(one, "contribute", "free_ride") == pytest.approx((1.5 / 4 - 1, 1.5 / 4))
    with pytest.raises(ValueError, match="focal"):
        run_league(game, players, focal=4)
    from trainers.evaluation.league import write_league

    write_league(result, tmp_path)
    assert (tmp_path / "league.png").exists() and len(read_csv(tmp_path / "league.csv")) == 4


def test_scripted_evaluation_matches_hand_computed_ipd_rewards():
    import social_dilemmas
    from social_dilemmas.policies import make_policy
    from trainers.evaluation.scripted import scripted_evaluation

    game = social_dilemmas.make_game("ipd")  # 16 rounds; (me, other): CC -1, CD -3, DC 0, DD -2

    def evaluate(name: str) -> dict[str, float]:
        return scripted_evaluation(game, lambda seat: make_policy(name, game), games=4)

    tft = evaluate("tit_for_tat")
    assert tft["eval/self"] == -1.0
    assert tft["eval/vs_always_defect"] == pytest.approx(-33 / 16)
    assert tft["eval/always_defect_gets"] == pytest.approx(-30 / 16)
    assert tft["eval/vs_always_cooperate"] == tft["eval/always_cooperate_gets"] == -1.0
    assert {f"eval/vs_{n}" for n in IPD_PLAYERS} <= set(tft)
    # Always Defect gains 2/16 over mutual defection (-2) against tit for tat, 2 against Always Cooperate
    assert tft["eval/exploitation"] == pytest.approx(1 / 16)
    assert evaluate("always_cooperate")["eval/exploitation"] == 1.0
    assert evaluate("always_defect")["eval/exploitation"] == 0.0


def test_scripted_evaluation_refuses_games_of_more_than_two_players():
    from trainers.evaluation.scripted import scripted_evaluation

    class ThreePlayers:
        n_players, name = 3, "public_goods"

    with pytest.raises(ValueError, match="two-player game; public_goods has 3 players"):
        scripted_evaluation(ThreePlayers(), lambda seat: None)


def test_a_game_without_its_own_action_check_is_checked_against_its_action_space():
    """A game written outside the project gets the default check (its Discrete space) in
    the checked vector view the league plays on."""
    vec = VectorGame(PublicGoods(n_players=3), 2)
    vec.reset(seed=0)
    vec.step(torch.tensor([[0, 1, 1], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"player_2.*integers in \[0, 2\)"):
        vec.step(torch.tensor([[0, 1, 1], [1, 0, 2]]))
