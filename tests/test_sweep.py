"""Sweeps on Ray Tune (trainers.sweep, trainers.ray_runner) and the league's matches as Ray tasks.

The bad-input tests start no Ray. One module fixture starts a local Ray of 2 CPUs for the
4-trial sweep and the league. The simulated 2-node cluster (a node removed mid-training) and
the driver killed mid-sweep are under ``slow`` (about a minute each on a busy 2-core machine)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

ray = pytest.importorskip("ray")

from trainers.__main__ import main  # noqa: E402
from trainers.presets import make_config  # noqa: E402
from trainers.run import train  # noqa: E402
from trainers.sweep import (  # noqa: E402
    SweepFolderError,
    SweepSpec,
    check_sweep_folder,
    make_trials,
    parse_set,
    sweep,
)

ROOT = Path(__file__).resolve().parents[1]
IPD = ["--env", "ipd", "--algo", "adalign", "--fast"]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _equal(a, b) -> bool:
    """Whether two checkpoint states (nested dicts, lists, tensors, numbers) are equal."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def _state(folder: Path) -> dict:
    return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=False)


# -- the grid and bad input (no Ray) ---------------------------------------------------------------------
def test_the_grid_crosses_games_seeds_and_option_values_and_names_each_trial():
    spec = SweepSpec(env=["ipd"], algo=["adalign"], seeds=[0, 1], fast=True, iterations=5,
                     options=parse_set(["beta=1,3", "num_games=64"]))
    trials = make_trials(spec)
    assert sorted(trials) == ["ipd-adalign-s0-beta1", "ipd-adalign-s0-beta3", "ipd-adalign-s1-beta1",
                              "ipd-adalign-s1-beta3"]
    cfg = trials["ipd-adalign-s1-beta3"]
    assert (cfg.run.seed, cfg.run.iterations, cfg.run.num_games, cfg.algorithm.beta) == (1, 5, 64, 3)
    assert parse_set(['env_kwargs={"payoff": "classic"}'])["env_kwargs"] == [{"payoff": "classic"}]
    assert parse_set(["actor_lr=[0.01, 1e-3]", "time_limit=bootstrap"]) == {
        "actor_lr": [0.01, 1e-3], "time_limit": ["bootstrap"]}


def test_a_grid_file_gives_the_grid_and_the_command_line_wins_over_it(tmp_path):
    from trainers.sweep import load_grid, make_spec

    grid = tmp_path / "grid.yaml"
    grid.write_text("env: ipd\nalgo: [adalign]\nseeds: [0, 1, 2]\nfast: true\niterations: 7\n"
                    "set: {beta: [1.0, 3.0], num_games: 32}\n")
    spec = make_spec(load_grid(grid), seeds=[5], iterations=None)
    trials = make_trials(spec)
    assert sorted(trials) == ["ipd-adalign-s5-beta1.0", "ipd-adalign-s5-beta3.0"]
    assert all(c.run.iterations == 7 and c.run.num_games == 32 for c in trials.values())


def test_an_unknown_option_fails_before_any_trial_naming_the_option_and_the_algorithm(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", *IPD, "--seeds", "0", "--set", "betta=1,2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'betta' is not a setting of the run or of adalign" in err and "beta" in err
    assert not out.exists()
    assert main(["sweep", *IPD, "--set", "beta=-1", "--out", str(out)]) == 2
    assert "beta" in capsys.readouterr().err and not out.exists()
    assert main(["sweep", *IPD, "--set", "seed=1,2", "--out", str(out)]) == 2
    assert "--seeds" in capsys.readouterr().err
    grid = tmp_path / "grid.yaml"
    grid.write_text("env: ipd\nalgo: adalign\nseeds: [0, 1]\nbetas: [1]\n")
    assert main(["sweep", "--grid", str(grid), "--out", str(out)]) == 2
    assert "unknown keys ['betas']" in capsys.readouterr().err and not out.exists()


def test_a_folder_holding_another_sweep_or_runs_of_no_sweep_is_refused_and_left_as_it_is(tmp_path, capsys):
    out = tmp_path / "sweep"
    first = make_trials(SweepSpec(env=["ipd"], algo=["adalign"], seeds=[0, 1], fast=True, iterations=5))
    manifest = check_sweep_folder(out, first, resume=False)
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(manifest))
    before = (out / "sweep.json").read_bytes()
    assert main(["sweep", *IPD, "--seeds", "0", "1", "2", "--iterations", "5", "--out", str(out)]) == 2
    assert "holds another sweep" in capsys.readouterr().err
    assert main(["sweep", *IPD, "--seeds", "0", "1", "--iterations", "5", "--out", str(out)]) == 2
    assert f"continue it with --resume {out}" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out), "--seeds", "3"]) == 2
    assert "--seeds cannot be given" in capsys.readouterr().err
    assert (out / "sweep.json").read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["sweep.json"]
    other = tmp_path / "runs"
    (other / "ipd-adalign-s0").mkdir(parents=True)
    with pytest.raises(SweepFolderError, match="ipd-adalign-s0 exists and belongs to no sweep"):
        check_sweep_folder(other, first, resume=False)
    assert main(["sweep", "--resume", str(other)]) == 2
    assert "no sweep.json there" in capsys.readouterr().err


def test_an_unreachable_address_is_a_clear_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "sweep"
    start = time.perf_counter()
    assert main(["sweep", *IPD, "--iterations", "5", "--address", "127.0.0.1:1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--address 127.0.0.1:1: no Ray cluster reachable there" in err and "ray start --head" in err
    assert not (out / "sweep.json").exists() and time.perf_counter() - start < 30
    assert main(["sweep", *IPD, "--address", "nowhere", "--out", str(out)]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


# -- on a local Ray of 2 CPUs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    temp = Path("/tmp") / f"sdray-test-{os.getpid()}"
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_a_sweep_of_four_trials_writes_four_run_folders_and_sweep_csv_and_resumes_without_rerunning(
        tmp_path, local_ray):
    out = tmp_path / "sweep"
    spec = SweepSpec(env=["ipd"], algo=["adalign"], seeds=[0, 1, 2, 3], fast=True, iterations=5,
                     options={"num_games": [64], "tensorboard": [False]})
    result = sweep(out, spec, verbose=False)
    assert result["errors"] == {} and result["skipped"] == []
    rows = _rows(out / "sweep.csv")
    assert [r["trial"] for r in rows] == [f"ipd-adalign-s{s}" for s in range(4)]
    for r in rows:
        folder = Path(r["folder"])
        assert r["status"] == "finished" and r["updates"] == "5" and r["num_games"] == "64"
        assert float(r["seconds"]) > 0 and r["attempts"] == "1" and float(r["rollout/reward_per_step"]) < 0
        assert (folder / "checkpoint.pt").exists() and _state(folder)["iteration"] == 5
    mtimes = {r["trial"]: (Path(r["folder"]) / "checkpoint.pt").stat().st_mtime_ns for r in rows}
    again = sweep(out, resume=True, verbose=False)
    assert sorted(again["skipped"]) == sorted(mtimes) and again["errors"] == {}
    assert {r["trial"]: (Path(r["folder"]) / "checkpoint.pt").stat().st_mtime_ns for r in rows} == mtimes


def test_the_league_command_plays_its_matches_as_ray_tasks_with_the_same_results(tmp_path, local_ray, capsys):
    league = ["league", "--env", "ipd", "--players", "always_cooperate", "always_defect", "tit_for_tat", "--seeds", "2",
              "--episodes", "8", "--env-kwargs", '{"max_steps": 8}', "--no-progress"]
    assert main([*league, "--out", str(tmp_path / "here")]) == 0
    assert main([*league, "--ray", "--out", str(tmp_path / "ray")]) == 0
    assert "the matches run as Ray tasks" in capsys.readouterr().out
    assert (tmp_path / "ray" / "league.csv").read_text() == (tmp_path / "here" / "league.csv").read_text()


def test_a_trial_resumes_only_a_checkpoint_of_its_own_configuration(tmp_path):
    """A retried trial continues its checkpoint; a run of other settings left in its folder
    (a reproduction's earlier preset) is trained again from the start."""
    from trainers.sweep_trial import same_run, train_trial

    config = _trial_config(2)
    config.run.num_games = 32
    folder = tmp_path / "run"
    assert not same_run(folder, config)
    train(config, folder, progress=False)
    longer = _trial_config(3)
    longer.run.num_games = 32
    assert same_run(folder, config) and same_run(folder, longer)  # iterations may change on resume
    other = _trial_config(2)
    other.run.num_games = 16
    assert not same_run(folder, other)
    reported = []
    train_trial(longer, folder, report=reported.append, every=0.05)
    record = json.loads((folder / "sweep_trial.json").read_text())
    assert record["resumed"] and _state(folder)["iteration"] == 3 and reported[-1]["iteration"] == 3
    train_trial(other, folder)
    assert not json.loads((folder / "sweep_trial.json").read_text())["resumed"]
    assert [int(r["iteration"]) for r in _rows(folder / "metrics.csv")] == [1, 2]
    assert json.loads((folder / "config.json").read_text())["run"]["num_games"] == 16


# -- a simulated cluster, and a killed driver (slow) ------------------------------------------------------------
def _trial_config(iterations: int):
    return make_config("ipd", "adalign", fast=True, seed=0, iterations=iterations, num_games=256, save_every=10,
                       tensorboard=False)


@pytest.mark.slow
def test_a_trial_whose_node_is_removed_resumes_from_its_checkpoint_on_another_node(tmp_path):
    """Head (no CPUs) and two 1-CPU nodes; the node running the trial is removed once the trial
    has saved a checkpoint; the trial finishes on the other node, and its final weights (and
    every other part of its state) equal an uninterrupted run's."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    out, name = tmp_path / "sweep", "ipd-adalign-s0"
    removed: list[str] = []

    def remove_the_trials_node() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                record = json.loads((out / name / "sweep_trial.json").read_text())
                if _state(out / name)["iteration"] >= 20:
                    node = next(n for n in nodes if n.node_id == record["node"])
                    cluster.remove_node(node, allow_graceful=False)
                    removed.append(node.node_id)
                    return
            except (OSError, ValueError, KeyError, RuntimeError, EOFError):
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=remove_the_trials_node, daemon=True)
    watcher.start()
    try:
        result = sweep(out, trials={name: _trial_config(300)}, address=cluster.address, max_failures=2,
                       verbose=False)
    finally:
        watcher.join(5)
        ray.shutdown()
        cluster.shutdown()
    assert removed, "the trial ended before its node could be removed"
    record = json.loads((out / name / "sweep_trial.json").read_text())
    assert result["errors"] == {} and record["attempts"] == 2 and record["resumed"] and record["node"] != removed[0]
    iterations = [int(r["iteration"]) for r in _rows(out / name / "metrics.csv")]
    assert iterations == list(range(1, 301))
    train(_trial_config(300), tmp_path / "uninterrupted", progress=False)
    ours, theirs = _state(out / name), _state(tmp_path / "uninterrupted")
    assert ours["iteration"] == 300 and _equal(ours["state"], theirs["state"])


@pytest.mark.slow
def test_the_reproduction_scripts_train_as_ray_tune_trials_and_play_the_league_as_ray_tasks(tmp_path, example):
    league = example("reproduce_league").main(
        ["--env", "coin_game", "--seeds", "1", "--adalign-iterations", "2", "--ppo-iterations", "2", "--batch-size", "16",
         "--ppo-batch-size", "8", "--episodes", "2", "--out", str(tmp_path / "coin"), "--no-progress", "--ray",
         "--jobs", "2"])
    for run in ("adalign-s0", "ppo-s0", "ppo_sr-s0"):
        assert json.loads((tmp_path / "coin" / run / "sweep_trial.json").read_text())["attempts"] == 1
    assert {r["row"] for r in league["result"].rows} >= {"adalign", "ppo", "ppo_sr", "always_defect"}
    assert sorted(r["player"] for r in _rows(tmp_path / "coin" / "times.csv")) == ["adalign", "ppo", "ppo_sr"]
    ipd = example("ipd_tit_for_tat").main(["--seeds", "2", "--iterations", "2", "--out", str(tmp_path / "ipd"),
                                           "--no-progress", "--ray", "--cpus", "2"])
    assert sorted(ipd["times"]) == [0, 1] and all(t > 0 for t in ipd["times"].values())
    assert all((tmp_path / "ipd" / f"seed_{s}" / "sweep_trial.json").exists() for s in (0, 1))


@pytest.mark.slow
def test_sweep_resume_after_the_driver_is_killed_continues_and_reruns_nothing_that_finished(tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "trainers", "sweep", *IPD, "--seeds", "0", "1", "--iterations", "200",
               "--set", "num_games=256", "save_every=10", "tensorboard=false", "--cpus", "1", "--quiet",
               "--out", str(out)]
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        first = second = None
        deadline = time.time() + 300
        while time.time() < deadline and driver.poll() is None:  # one trial at a time (--cpus 1)
            try:
                done = [n for n in ("ipd-adalign-s0", "ipd-adalign-s1") if _state(out / n)["iteration"] == 200]
                busy = [n for n in ("ipd-adalign-s0", "ipd-adalign-s1") if n not in done and
                        (out / n / "checkpoint.pt").exists() and _state(out / n)["iteration"] >= 20]
                if done and busy:
                    first, second = done[0], busy[0]
                    break
            except (OSError, RuntimeError, EOFError, KeyError):
                pass
            time.sleep(0.2)
        assert first is not None, "no point where one trial had finished and the other was training"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        finished_mtime = (out / first / "checkpoint.pt").stat().st_mtime_ns
        time.sleep(3)
        resumed = subprocess.run([sys.executable, "-m", "trainers", "sweep", "--resume", str(out), "--cpus", "1",
                                  "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # whatever of the killed driver's Ray is left
        except ProcessLookupError:
            pass
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (out / first / "checkpoint.pt").stat().st_mtime_ns == finished_mtime
    assert json.loads((out / first / "sweep_trial.json").read_text())["attempts"] == 1
    record = json.loads((out / second / "sweep_trial.json").read_text())
    assert record["resumed"] and record["attempts"] >= 2
    assert [int(r["iteration"]) for r in _rows(out / second / "metrics.csv")] == list(range(1, 201))
    assert [r["status"] for r in _rows(out / "sweep.csv")] == ["finished", "finished"]
    assert "1 trials had finished before" in resumed.stdout
    # both drivers' Ray sessions end up in the sweep folder (the path is too long for Ray's sockets)
    sessions = [p for p in (out / "ray_tmp").iterdir() if p.name.startswith("session_2")]
    assert not (out / "ray_tmp").is_symlink() and len(sessions) == 2
    assert (out / "ray_tmp" / "session_latest" / "logs").is_dir()
    reference = _trial_config(200)
    reference.run.seed = int(second[-1])
    train(reference, tmp_path / "uninterrupted", progress=False)
    assert _equal(_state(out / second)["state"], _state(tmp_path / "uninterrupted")["state"])
