"""The example scripts run, with tiny budgets, and write and print what they promise.

Each example runs as a subprocess (one CPU thread, no window) in a temporary folder, so
its default output folder ``runs/examples`` lands there too.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.algorithms.adalign import FAST_PRESETS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GAMES = ("ipd", "coin_game", "negotiation")


def run_example(script: str, *args: str, cwd: Path) -> str:
    temp = cwd / "tmp"  # the example's temporary folder: nothing may be left there
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1",
           "TMPDIR": str(temp)}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert not list(temp.glob("SB3-*")), "SB3 left a log folder in the temp folder"
    return proc.stdout


def test_train_adalign_then_league_and_video(tmp_path):
    """train_adalign.py on every game; its IPD checkpoint then plays in league.py and record_video.py."""
    out = run_example("train_adalign.py", "--iterations", 2, "--batch-size", 16, cwd=tmp_path)
    runs = tmp_path / "runs" / "examples"
    for game in GAMES:
        run = runs / f"{game}-adalign-s0"
        assert f"{game}: 2 updates of adalign; run folder {Path('runs/examples') / run.name}" in out
        assert (run / "checkpoint.pt").exists() and (run / "config.json").exists()
        with (run / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["iteration"] for r in rows] == ["1", "2"]
    assert out.count("rollout/reward_per_step") == 3

    checkpoint = runs / "ipd-adalign-s0" / "checkpoint.pt"

    out = run_example("league.py", checkpoint, "--seeds", 1, "--episodes", 4, "--out", tmp_path / "league",
                      cwd=tmp_path)
    assert "highest mean reward per step over all opponents" in out
    for name in ("league.csv", "league.png", "league.json"):
        assert (tmp_path / "league" / name).stat().st_size > 0
    with (tmp_path / "league" / "league.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 * 6  # five scripted IPD players and the checkpoint
    assert {"ipd-adalign-s0", "tit_for_tat"} <= {r["row"] for r in rows}

    video = tmp_path / "ipd.gif"
    out = run_example("record_video.py", "--env", "ipd", "--players", checkpoint, "tit_for_tat",
                      "--episodes", 2, "--max-steps", 4, "--fps", 2, "--out", video, cwd=tmp_path)
    assert out.startswith(f"wrote {video}: ")
    assert "episode 1: returns player_0" in out
    assert video.stat().st_size > 0


def test_pettingzoo_quickstart(tmp_path):
    # every game; a random player against a scripted one (discrete and continuous actions)
    out = run_example("pettingzoo_quickstart.py", "--players", "random", "always_defect",
                      "--render", tmp_path / "episode.gif", cwd=tmp_path)
    for game, steps in (("ipd", 16), ("coin_game", 16), ("negotiation", 50)):
        assert f"{game:<12} {steps} steps; returns: player_0 (random) " in out
        assert f"wrote {tmp_path / f'episode_{game}.gif'} ({steps + 1} frames)" in out
        assert (tmp_path / f"episode_{game}.gif").stat().st_size > 0
    assert out.count("player_1 (always_defect)") == 3


def test_gymnasium_sb3(tmp_path):
    out = run_example("gymnasium_sb3.py", "--steps", 256, "--num-envs", 2, "--eval-episodes", 1, cwd=tmp_path)
    assert "PPO vs tit_for_tat" in out and "PPO vs always_cooperate" in out
    assert "cooperation against tit_for_tat" in out


def test_baselines(tmp_path):
    out = run_example("baselines.py", "--iterations", 2, "--batch-size", 8, cwd=tmp_path)
    for algo in ("ppo", "ppo_shared_reward"):
        assert (tmp_path / "runs" / "examples" / f"ipd-{algo}-s0" / "model.zip").exists()
        assert f"{algo}: 2 updates" in out
    assert out.count("in self-play: reward per step") == 2


@pytest.mark.parametrize("env, jobs", [("coin_game", 1), ("coin_game", 2), ("negotiation", 1)])
def test_reproduce_league_trains_plays_checks_targets_and_reuses_finished_runs(tmp_path, env, jobs):
    args = ("--env", env, "--seeds", 1, "--adalign-iterations", 2, "--ppo-iterations", 2, "--batch-size", 16,
            "--ppo-batch-size", 8, "--episodes", 2, "--out", tmp_path / env, "--no-progress", "--jobs", jobs)
    out = run_example("reproduce_league.py", *args, cwd=tmp_path)
    folder = tmp_path / env
    for run, artefact in (("adalign-s0", "checkpoint.pt"), ("ppo-s0", "model.zip"), ("ppo_sr-s0", "model.zip")):
        assert (folder / run / artefact).exists()
    saved = json.loads((folder / "adalign-s0" / "config.json").read_text())
    assert saved["format"] == 2 and saved["run"]["algo"] == "adalign"
    # the CPU preset, the command line's number of games
    assert saved["algorithm"]["beta"] == FAST_PRESETS[env]["beta"] and saved["run"]["num_games"] == 16
    with (folder / "league.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    scripted = {"always_cooperate", "always_defect"} | ({"random"} if env == "coin_game" else set())
    assert {r["row"] for r in rows} == {"adalign", "ppo", "ppo_sr"} | scripted
    with (folder / "targets.csv").open(newline="") as f:
        targets = list(csv.DictReader(f))
    assert any("exploitation" in t["what"] for t in targets) and all(t["holds"] in ("yes", "no", "") for t in targets)
    if env == "negotiation":  # every target is a check, and PPO ran with the game's own settings
        assert all(t["holds"] in ("yes", "no") for t in targets) and len(targets) == 5
        assert json.loads((folder / "ppo-s0" / "config.json").read_text())["algorithm"]["ppo_minibatches"] == 8
    with (folder / "self_play.csv").open(newline="") as f:
        assert sorted(r["player"] for r in csv.DictReader(f)) == ["adalign", "ppo", "ppo_sr"]
    with (folder / "times.csv").open(newline="") as f:
        assert sorted(r["player"] for r in csv.DictReader(f)) == ["adalign", "ppo", "ppo_sr"]
    assert "target:" in out and (folder / "league.png").stat().st_size > 0
    if jobs > 1:  # each run trained in its own process, its output kept
        assert sorted(p.name for p in (folder / "logs").iterdir()) == ["adalign-s0.log", "ppo-s0.log", "ppo_sr-s0.log"]
    again = run_example("reproduce_league.py", *args, cwd=tmp_path)
    assert again.count("reusing") == 3
    if env == "negotiation":  # other AdAlign settings: AdAlign trains again, PPO and PPO-SR are reused
        other = list(args)
        other[other.index("--batch-size") + 1] = 12
        changed = run_example("reproduce_league.py", *other, cwd=tmp_path)
        assert changed.count("reusing") == 2 and "reusing " + str(folder / "adalign-s0") not in changed
        assert json.loads((folder / "adalign-s0" / "config.json").read_text())["run"]["num_games"] == 12


def test_negotiation_targets_measure_exploitation_from_the_mutual_defection_floor(example):
    """Always Defect keeps half of every item against anyone, so against a player that bids 5
    on everything it earns its floor (mutual defection, 0.30), and that player counts as not
    exploited at all; a player it treats like Always Cooperate counts as fully exploited."""
    import numpy as np

    from trainers.evaluation.league import LeagueResult

    module = example("reproduce_league")
    names = ["adalign", "ppo", "ppo_sr", "always_cooperate", "always_defect"]

    def result(ad_earns_against: dict[str, float]) -> LeagueResult:
        col = np.full((5, 5), 0.3)
        for name, value in ad_earns_against.items():
            col[names.index(name), 4] = value  # Always Defect in the column seat
        zeros = np.zeros((5, 5))
        return LeagueResult(names, col.T.copy(), col, zeros, zeros, focal=0)

    same = {"adalign": [0.36], "ppo": [0.31], "ppo_sr": [0.47]}
    ad = {"always_cooperate": 0.55, "always_defect": 0.30, "ppo_sr": 0.52}
    checks = {what: (value, holds) for what, value, _, holds in
              module.targets("negotiation", result({**ad, "adalign": 0.30}), same)}
    exploited = [k for k in checks if "exploitation" in k]
    assert len(exploited) == 2 and "AdAlign" in exploited[0] and "PPO-SR" in exploited[1]
    assert checks[exploited[0]] == (0.0, True)  # AD earns only its floor against AdAlign
    assert checks[exploited[1]][0] == pytest.approx(0.88) and checks[exploited[1]][1]
    assert all(holds for _, holds in checks.values() if holds is not None)
    checks = {what: (value, holds) for what, value, _, holds in
              module.targets("negotiation", result({**ad, "adalign": 0.55}), {**same, "ppo": [0.40]})}
    assert checks[exploited[0]] == (1.0, False)  # treated like Always Cooperate
    ppo = next(k for k in checks if k.startswith("PPO self-play"))
    assert checks[ppo][1] is False and next(v for k, v in checks.items() if k.startswith("AdAlign self-play"))[1] is False


def test_reproduce_league_reuses_only_finished_runs_of_the_same_settings(tmp_path, example):
    """A finished run is reused when its config.json ({"format": 2, "run", "algorithm"}) matches
    apart from the settings that do not change what it learns; a flat config.json of the first
    trainers is never reused, even for the same settings."""
    from trainers.presets import legacy_config, make_config

    module = example("reproduce_league")
    base = dict(fast=True, seed=1, iterations=3, num_games=16, device="cpu", save_every=50)
    cfg = make_config("coin_game", "adalign", **base)
    run = tmp_path / "adalign-s1"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"")
    (run / "metrics.csv").write_text("iteration\n1\n2\n3\n")

    def reused(saved: str) -> bool:
        (run / "config.json").write_text(saved)
        return module.finished(run, "checkpoint.pt", cfg)

    assert reused(cfg.to_json())
    bookkeeping = dict(device="auto", save_every=1, log_every=2, tensorboard=False, eval_every=1, eval_games=8)
    assert reused(make_config("coin_game", "adalign", **{**base, **bookkeeping}).to_json())
    assert not reused(make_config("coin_game", "adalign", **base, beta=2.0).to_json())
    assert not reused(make_config("coin_game", "adalign", **{**base, "iterations": 4}).to_json())
    assert not reused(make_config("coin_game", "adalign", **{**base, "seed": 2}).to_json())
    flat = {**cfg.run.to_dict(), **cfg.algorithm.to_dict()}
    flat["batch_size"] = flat.pop("num_games")
    for name in ("rollout_steps", "time_limit", "value_coef") + tuple(k for k in flat if k.startswith("vision_")):
        flat.pop(name)
    assert json.loads(legacy_config(flat).to_json()) == json.loads(cfg.to_json())  # the same settings, flat
    assert not reused(json.dumps(flat))
    assert not reused("{not json")
    (run / "config.json").write_text(cfg.to_json())
    (run / "metrics.csv").write_text("iteration\n1\n2\n")
    assert not module.finished(run, "checkpoint.pt", cfg)  # not finished
    (run / "metrics.csv").write_text("iteration\n1\n2\n3\n")
    (run / "checkpoint.pt").unlink()
    assert not module.finished(run, "checkpoint.pt", cfg)  # nothing saved


def test_ipd_tit_for_tat_reports_the_first_move_and_the_targets(tmp_path):
    out = run_example("ipd_tit_for_tat.py", "--seeds", 1, "--iterations", 2, "--actor", "gru",
                      "--set", json.dumps({"num_games": 64, "hidden": 8}), "--out", tmp_path / "tft", "--no-progress",
                      cwd=tmp_path)
    assert "seed 0: start" in out and "self_play" in out and "seeds meet every target" in out
    rows = list(csv.DictReader(open(tmp_path / "tft" / "tit_for_tat.csv")))
    assert rows[0]["seed"] == "0" and {"start", "self_play", "always_defect_gets", "tit_for_tat"} <= set(rows[0])
    config = json.loads((tmp_path / "tft" / "seed_0" / "config.json").read_text())
    assert config["algorithm"]["actor_recurrent"] and config["algorithm"]["critic_kind"] == "q"


def test_negotiation_reciprocity_writes_the_table_and_both_figures(tmp_path):
    out = run_example("negotiation_reciprocity.py", "--seeds", 2, "--iterations", 2, "--eval-every", 1,
                      "--set", json.dumps({"num_games": 4, "hidden": 8, "eval_games": 4}), "--out", tmp_path / "neg",
                      "--no-progress", cwd=tmp_path)
    assert "seeds reciprocate" in out
    rows = list(csv.DictReader(open(tmp_path / "neg" / "reciprocity.csv")))
    assert [r["seed"] for r in rows] == ["0", "1"] and all(r["reciprocal"] in ("True", "False") for r in rows)
    for name in ("fig6_training_curves.png", "fig3b_episode.png", "fig3b_episode.csv"):
        assert (tmp_path / "neg" / name).stat().st_size > 1000, name


PUBLISHED = Path(os.environ.get("SOCIAL_DILEMMAS_PUBLISHED_LEAGUE",
                                Path(__file__).resolve().parents[2] / "shared" / "published_league"))
needs_published = pytest.mark.skipif(not PUBLISHED.is_dir(), reason=f"the published league's agents are not at "
                                     f"{PUBLISHED} (set SOCIAL_DILEMMAS_PUBLISHED_LEAGUE to a copy)")


@needs_published
def test_published_league_plays_the_sets_and_compares_with_the_paper(tmp_path):
    out = run_example("published_league.py", "--published", PUBLISHED, "--sets", "AdAlign", "POLA", "--seeds", 2,
                      "--episodes", 4, "--out", tmp_path / "pl", "--no-progress", cwd=tmp_path)
    for name in ("league.csv", "league.png", "league.json", "comparison.csv", "comparison.md"):
        assert (tmp_path / "pl" / name).stat().st_size > 0
    with (tmp_path / "pl" / "league.csv").open(newline="") as f:
        assert {r["row"] for r in csv.DictReader(f)} == {"AdAlign", "POLA", "always_cooperate", "always_defect", "random"}
    with (tmp_path / "pl" / "comparison.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * 5  # each set: self-play twice, against AC, AD and random
    paper = [r for r in rows if r["paper_row"]]
    assert {r["col"] for r in paper} == {"AdAlign (every pair of seeds)", "AdAlign (each seed against itself)",
                                         "always_cooperate", "always_defect"}
    assert all(r["agrees"] in ("True", "False") for r in paper)
    assert "| AdAlign | always_defect |" in out


@needs_published
def test_reproduce_league_adds_the_published_agents(tmp_path):
    args = ("--env", "coin_game", "--seeds", 1, "--adalign-iterations", 2, "--ppo-iterations", 2, "--batch-size", 16,
            "--ppo-batch-size", 8, "--episodes", 2, "--out", tmp_path / "coin", "--no-progress",
            "--published", PUBLISHED)
    out = run_example("reproduce_league.py", *args, cwd=tmp_path)
    with (tmp_path / "coin" / "league.csv").open(newline="") as f:
        names = {r["row"] for r in csv.DictReader(f)}
    assert {"published AdAlign", "published LOQA", "published POLA", "adalign", "ppo"} <= names
    with (tmp_path / "coin" / "versus_published.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 * 4 * 2  # our three players, four published sets, both seat orders
    assert {(r["ours"], r["first_seat"]) for r in rows if r["theirs"] == "AdAlign"} == {
        (p, s) for p in ("adalign", "ppo", "ppo_sr") for s in ("ours", "theirs")}
    assert "adalign vs published AdAlign (theirs first)" in out


def test_full_league_trains_the_ablations_and_the_other_methods_and_plays_them(tmp_path):
    """The Fig. 7 league with tiny budgets: an ablation keeps the sign cases it does not mask,
    LOQA trains from its Coin Game preset, M-FOS from its Coin Game CPU preset, and
    league.md has every cell and the training times."""
    args = ("--seeds", 1, "--players", "adalign_vs", "loqa", "mfos", "--adalign-iterations", 2, "--loqa-iterations", 2,
            "--mfos-iterations", 1, "--episodes", 2, "--out", tmp_path / "full", "--no-progress")
    out = run_example("full_league.py", *args, cwd=tmp_path)
    assert "leaving out" not in out
    with (tmp_path / "full" / "league.csv").open(newline="") as f:
        names = {r["row"] for r in csv.DictReader(f)}
    assert names == {"adalign_vs", "loqa", "mfos", "always_cooperate", "always_defect", "random"}
    mfos = json.loads((tmp_path / "full" / "mfos-s0" / "config.json").read_text())
    assert (mfos["run"]["env"], mfos["run"]["num_games"], mfos["run"]["iterations"]) == ("coin_game", 32, 1)
    saved = json.loads((tmp_path / "full" / "adalign_vs-s0" / "config.json").read_text())
    assert saved["algorithm"]["sign_masks"] == ["cooperative", "empathetic"]  # V and S masked
    assert json.loads((tmp_path / "full" / "loqa-s0" / "config.json").read_text())["run"]["algo"] == "loqa"
    table = (tmp_path / "full" / "league.md").read_text()
    assert "| adalign_vs |" in table and "min (mean of 1)" in table
    times = (tmp_path / "full" / "times.csv").read_text()
    assert {r["player"] for r in csv.DictReader(times.splitlines())} == {"adalign_vs", "loqa", "mfos"}
    replay = ("--seeds", 1, "--players", "adalign_vs", "--episodes", 2, "--out", tmp_path / "full", "--no-progress",
              "--league-only", "--adalign-iterations", 5)  # other settings: played as they are, not retrained
    run_example("full_league.py", *replay, cwd=tmp_path)
    assert (tmp_path / "full" / "times.csv").read_text() == times
    assert json.loads((tmp_path / "full" / "adalign_vs-s0" / "config.json").read_text())["run"]["iterations"] == 2
    missing = subprocess.run([sys.executable, str(EXAMPLES / "full_league.py"), "--players", "adalign_s", "--seeds", "1",
                              "--league-only", "--out", str(tmp_path / "full")], capture_output=True, text=True,
                             cwd=tmp_path)
    assert missing.returncode == 2 and "adalign_s-s0/checkpoint.pt does not exist" in missing.stderr
    bad = subprocess.run([sys.executable, str(EXAMPLES / "full_league.py"), "--players", "adalign_x"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "--players ['adalign_x'] is invalid" in bad.stderr
