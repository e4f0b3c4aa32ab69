"""Counting the apples and patches of Commons Harvest Open (``count_apples``), and the
example ``examples/commons_harvest_compare.py`` run end to end with a tiny budget.

Skipped as a whole when Melting Pot is not installed."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("meltingpot") is None or importlib.util.find_spec("shimmy") is None:
    pytest.skip("Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot)", allow_module_level=True)

from social_dilemmas import commons_harvest as ch  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "commons_harvest_compare.py"
AGENTS = [f"player_{i}" for i in range(7)]


def ascii_map() -> list[str]:
    ch.import_meltingpot()
    cfg = importlib.import_module("meltingpot.configs.substrates.commons_harvest__open")
    return cfg.ASCII_MAP.strip("\n").split("\n")


@pytest.fixture(scope="module")
def env():
    e = ch.CommonsHarvestOpen(render_mode="rgb_array", max_steps=1000)
    yield e
    e.close()


def test_every_apple_spawn_point_of_the_map_holds_an_apple_at_reset(env):
    env.reset(seed=3)
    count = ch.count_apples(env)
    spawn_points = sum(line.count("A") for line in ascii_map())  # 'A': grass with an apple
    assert spawn_points == 64
    assert count.apples == count.spawn_points == spawn_points and count.hidden == 0
    assert count.patches_alive == count.patches == 6
    assert sorted(count.apples_per_patch) == [6, 6, 13, 13, 13, 13]  # two corners, four diamonds
    assert count.present.shape == (64,) and count.present.all()
    from_world = ch.count_apples(env.state())  # the world view itself gives the same
    assert from_world.apples == 64 and np.array_equal(from_world.present, count.present)


def test_patches_are_groups_out_of_each_others_regrowth_radius():
    layout = ch._apple_layout()
    d2 = ((layout.cells[:, None] - layout.cells[None]) ** 2).sum(-1)
    other = layout.patch[:, None] != layout.patch[None]
    assert d2[other].min() > 2 ** 2  # no apple regrows from another patch's apples
    grid = ascii_map()
    assert all(grid[r][c] == "A" for r, c in layout.cells)


def test_eating_an_apple_takes_exactly_that_apple_off_the_count(env):
    """Seeded random play without the zapper (no beam hides a cell): an apple leaves the
    count only when a player is rewarded for eating it, and steps where one player eats
    one apple and none regrows lower the count by exactly one."""
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    before = ch.count_apples(env)
    eaten = lost_total = 0
    drops_of_one = 0
    for _ in range(300):
        _, rewards, _, _, _ = env.step({a: int(rng.integers(7)) for a in AGENTS})  # actions 0..6: no zap
        after = ch.count_apples(env, before)
        reward = int(sum(rewards.values()))
        lost = int((before.present & ~after.present).sum())
        grown = int((~before.present & after.present).sum())
        assert after.hidden == 0
        assert lost <= reward  # an apple never disappears uneaten
        assert after.apples == before.apples - lost + grown
        assert after.patches_alive == sum(n > 0 for n in after.apples_per_patch)
        if reward == 1 and grown == 0:
            # one apple eaten: it left the count, unless it regrew and was eaten in this same step
            drops_of_one += after.apples == before.apples - 1
        eaten += reward
        lost_total += lost
        before = after
    assert eaten >= 10 and drops_of_one >= 10
    assert lost_total >= 0.9 * eaten  # the rest: apples eaten in the step they regrew


def test_a_patch_without_apples_is_dead_and_a_beam_keeps_the_previous_state(env):
    env.reset(seed=2)
    world = env.state()
    layout = ch._apple_layout()
    k = layout.cell
    floor = world[11 * k:12 * k, 1 * k:2 * k].copy()  # an empty floor cell
    assert ascii_map()[11][1] == " "
    reference = ch.count_apples(world)
    emptied = world.copy()
    target = int(layout.patch[0])
    for r, c in layout.cells[layout.patch == target]:
        emptied[r * k:(r + 1) * k, c * k:(c + 1) * k] = floor
    count = ch.count_apples(emptied)
    size = int((layout.patch == target).sum())
    assert count.apples == 64 - size and count.apples_per_patch[target] == 0
    assert count.patches_alive == 5 and count.hidden == 0
    # a zap beam (opaque) over one apple of another patch: unknown, so the previous state is kept
    beamed = world.copy()
    r, c = layout.cells[layout.patch != target][0]
    beamed[r * k:(r + 1) * k, c * k:(c + 1) * k] = (252, 252, 106)
    alone = ch.count_apples(beamed)
    assert alone.hidden == 1 and alone.apples == 63
    carried = ch.count_apples(beamed, previous=reference)
    assert carried.hidden == 1 and carried.apples == 64 and carried.patches_alive == 6


def test_count_apples_refuses_what_is_not_the_world_view():
    with pytest.raises(ValueError, match="world view"):
        ch.count_apples(np.zeros((88, 88, 3), np.uint8))
    with pytest.raises(ValueError, match="world view"):
        ch.count_apples(np.zeros((144, 192, 3), np.float32))
    with pytest.raises(RuntimeError, match="before reset"):
        ch.count_apples(ch.CommonsHarvestOpen())


def test_compare_example_trains_plays_and_writes_every_file(tmp_path):
    out = tmp_path / "compare"
    args = ["--iterations", "1", "--network-width", "16", "--max-steps", "20", "--resize", "36",
            "--batch-size", "1", "--chunk", "4", "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy", "PYGAME_HIDE_SUPPORT_PROMPT": "1"}
    proc = subprocess.run([sys.executable, str(EXAMPLE), *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    for run, artefact in (("proximal_adalign", "checkpoint.pt"), ("ppo", "model.zip"), ("ppo_sr", "model.zip")):
        assert (out / run / artefact).exists()
    names = ("proximal_adalign", "ppo", "ppo_sr", "random")
    for name in ("compare.csv", "steps.csv", "apples.png", *(f"{n}.mp4" for n in names)):
        assert (out / name).stat().st_size > 0, name
    with (out / "compare.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["player"] for r in rows] == list(names)
    for r in rows:
        for key in ("per_capita_return", "final_apples", "final_patches_alive", "mean_apples", "mean_patches_alive"):
            assert math.isfinite(float(r[key])), (r["player"], key)
        assert 0 <= float(r["final_apples"]) <= 64 and 0 <= float(r["final_patches_alive"]) <= 6
    with (out / "steps.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 4 * 20
    if ch.scenario_assets_available():
        assert (out / "scenarios.csv").exists()
    else:
        assert "scenario scores skipped: " in proc.stdout
    assert f"wrote {out / 'compare.csv'}" in proc.stdout and "Proximal AdAlign" in proc.stdout
    # --players: a saved player evaluated beside random play, nothing trained
    again = tmp_path / "saved"
    saved = ["--max-steps", "20", "--resize", "36", "--out", str(again), "--no-progress",
             "--players", f"pa={out / 'proximal_adalign' / 'checkpoint.pt'}"]
    proc = subprocess.run([sys.executable, str(EXAMPLE), *saved], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr[-4000:]}"
    with (again / "compare.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["player"] for r in rows] == ["pa", "random"]
    assert int(rows[0]["train_updates"]) == 1 and float(rows[0]["train_seconds"]) > 0
    assert not (again / "proximal_adalign").exists() and (again / "pa.mp4").stat().st_size > 0


@pytest.mark.parametrize("spec, message", [("nothing", "expected NAME=PATH"), ("random=x.pt", "reserved"),
                                           ("a=/no/such/file.pt", "does not exist")])
def test_compare_example_names_a_bad_saved_player(spec, message, capsys):
    sys.path.insert(0, str(EXAMPLE.parent))
    try:
        example = importlib.import_module("commons_harvest_compare")
    finally:
        sys.path.remove(str(EXAMPLE.parent))
    with pytest.raises(SystemExit):
        example.parse_args(["--players", spec])
    err = capsys.readouterr().err
    assert "--players" in err and message in err


def test_self_play_records_the_commons_step_by_step_and_repeats_exactly():
    still = ch.self_play("noop", episodes=1, max_steps=15, resize=36)
    assert still.per_capita_return.shape == (1, 15) and (still.spawn_points, still.patches) == (64, 6)
    assert (still.apples == 64).all() and (still.patches_alive == 6).all() and (still.per_capita_return == 0).all()
    rand = ch.self_play("random", episodes=2, max_steps=40, resize=36, seed=3)
    assert rand.apples.shape == (2, 40) and (np.diff(rand.per_capita_return, axis=1) >= 0).all()
    again = ch.self_play("random", episodes=2, max_steps=40, resize=36, seed=3)
    np.testing.assert_array_equal(rand.apples, again.apples)
    np.testing.assert_array_equal(rand.per_capita_return, again.per_capita_return)
    summary = rand.summary()
    assert summary["final_apples"] == rand.apples[:, -1].mean() and summary["mean_patches_alive"] <= 6
    with pytest.raises(ValueError, match="episodes = 0 is invalid"):
        ch.self_play("random", episodes=0)
