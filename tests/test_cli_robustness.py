"""The trainers' command line and run folders against bad inputs, broken files and a hostile system (issue 19,
items 1-7 and 11): every case is one ``error:`` line naming the option or the file, never a traceback, and
nothing already saved is lost."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import social_dilemmas
import trainers.common
from social_dilemmas.policies import load_saved_player
from trainers.__main__ import main
from trainers.common import CheckpointError, atomic_save
from trainers.metrics import read_metrics
from trainers.presets import make_config
from trainers.run import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-games", "8", "--hidden", "8", "--no-tensorboard", "--no-progress", "--device", "cpu"]


def ipd(out: Path, *extra: str) -> list[str]:
    return ["train", "--env", "ipd", "--iterations", "2", *TINY, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs of 2 updates: the IPD's and the Coin Game's."""
    folder = tmp_path_factory.mktemp("runs")
    assert main(ipd(folder / "ipd")) == 0
    assert main(["train", "--env", "coin_game", "--iterations", "1", "--max-steps", "4", *TINY,
                 "--out", str(folder / "coin")]) == 0
    return folder


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A copy of the finished IPD run."""
    shutil.copytree(runs / "ipd", tmp_path / "run")
    return tmp_path / "run"


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".lock"}


def error_of(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- 1. a run folder in use ------------------------------------------------------------------------------
def test_a_run_folder_in_use_is_refused_and_left_alone(run, capsys):
    before = files(run)
    lock = trainers.common.lock_run_folder(run)  # another open file: flock refuses it as it would another process
    try:
        assert main(ipd(run, "--seed", "5")) == 2
        assert "is in use by another training run" in error_of(capsys)
        assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 2
        assert str(run) in error_of(capsys)
        with pytest.raises(trainers.common.RunFolderInUse, match=f"process {os.getpid()}"):
            train(out=run, resume=True, progress=False, iterations=3)
    finally:
        lock.close()
    assert files(run) == before
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0


def test_the_lock_of_a_killed_run_is_released_by_the_system(run, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from trainers.common import lock_run_folder; "
                               "lock = lock_run_folder(sys.argv[1]); print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 2
        assert f"(process {holder.pid})" in error_of(capsys)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0  # no stale lock


# -- 2. options given with --resume ------------------------------------------------------------------------
@pytest.mark.parametrize("option, named", [
    (["--actor-lr", "-5"], "actor_lr"), (["--beta", "nan"], "beta"), (["--env", "coin_game"], "env"),
    (["--actor-lr", "0.5"], "actor_lr"), (["--fast"], "--fast"), (["--out", "OTHER"], "--out"),
])
def test_resume_refuses_what_cannot_change_and_writes_nothing(run, capsys, option, named):
    option = [str(run.parent / "other") if o == "OTHER" else o for o in option]
    before = files(run)
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress", *option]) == 2
    assert named in error_of(capsys)
    assert files(run) == before and not (run.parent / "other").exists()


def test_resume_applies_what_can_change(run):
    assert main(["train", "--resume", str(run), "--iterations", "3", "--log-every", "2", "--out", f"{run}/",
                 "--no-progress"]) == 0
    saved = json.loads((run / "config.json").read_text())["run"]
    assert (saved["iterations"], saved["log_every"]) == (3, 2)


# -- 3. resuming what cannot be resumed ---------------------------------------------------------------------
def test_resume_below_the_updates_done_is_refused_and_keeps_config_json(run, capsys):
    before = files(run)
    assert main(["train", "--resume", str(run), "--iterations", "1", "--no-progress"]) == 2
    assert "iterations = 1 is below the 2 updates the run has done" in error_of(capsys)
    assert files(run) == before


@pytest.mark.parametrize("algo", ["adalign", "ppo"])
def test_resume_without_a_checkpoint_is_refused_and_keeps_metrics(run, capsys, algo):
    (run / "checkpoint.pt").unlink()
    if algo == "ppo":  # a PPO folder: its config and its exported model, no checkpoint
        (run / "config.json").write_text(make_config("ipd", "ppo").to_json())
        (run / "model.zip").write_bytes(b"PK")
    before = files(run)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert "no checkpoint.pt there" in error_of(capsys)
    assert files(run) == before


# -- 4. max_steps inside env_kwargs -------------------------------------------------------------------------
def test_max_steps_inside_env_kwargs_is_refused(tmp_path, capsys):
    assert main(ipd(tmp_path / "run", "--env-kwargs", '{"max_steps": 4}')) == 2
    assert "give the episode length as max_steps" in error_of(capsys)
    assert not (tmp_path / "run").exists()


# -- 5. broken files, bad options, a hostile system ---------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "empty", "random", "folder"])
def test_a_broken_checkpoint_is_an_error_naming_it(run, capsys, damage):
    path = run / "checkpoint.pt"
    data = path.read_bytes()
    path.unlink()
    if damage == "folder":
        path.mkdir()
    else:
        path.write_bytes({"truncated": data[:1000], "empty": b"", "random": os.urandom(4000)}[damage])
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert str(path) in error_of(capsys)


def test_a_checkpoint_copied_from_another_run_is_named_as_such(runs, run, capsys):
    shutil.copy(runs / "coin" / "checkpoint.pt", run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    message = error_of(capsys)
    assert str(run / "checkpoint.pt") in message and "copied from another run" in message
    assert "env: 'coin_game' in checkpoint.pt, 'ipd' in config.json" in message


def test_a_checkpoint_whose_weights_are_of_another_game_is_an_error_naming_it(runs, run, capsys):
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    ckpt["state"] = torch.load(runs / "coin" / "checkpoint.pt", weights_only=False)["state"]
    torch.save(ckpt, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    message = error_of(capsys)
    assert str(run / "checkpoint.pt") in message and "does not fit" in message and "size mismatch" in message
    with pytest.raises(CheckpointError, match="checkpoint.pt' holds weights that do not fit"):
        load_saved_player(run / "checkpoint.pt", social_dilemmas.make_game("ipd"))


def test_a_corrupt_config_json_is_an_error_naming_it(run, capsys):
    (run / "config.json").write_text('{"format": 2, "run": {')
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    assert str(run / "config.json") in error_of(capsys)


def test_a_corrupt_sb3_json_does_not_stop_a_ppo_run_from_resuming(tmp_path):
    out = tmp_path / "ppo"
    assert main(["train", "--env", "ipd", "--algo", "ppo", "--iterations", "1", "--max-steps", "4", *TINY,
                 "--out", str(out)]) == 0
    (out / "sb3.json").write_text("{not json")
    assert main(["train", "--resume", str(out), "--iterations", "2", "--no-progress"]) == 0
    assert json.loads((out / "sb3.json").read_text())["policy"]


def test_an_argument_the_game_does_not_take_is_an_error(tmp_path, capsys):
    assert main(ipd(tmp_path / "run", "--env-kwargs", '{"size": 3}')) == 2
    assert "env_kwargs = {'size': 3} is invalid for ipd" in error_of(capsys)


@pytest.mark.parametrize("command", ["train", "cooperation", "league"])
def test_an_out_that_is_a_file_is_an_error_naming_it(runs, tmp_path, capsys, command):
    out = tmp_path / "a_file"
    out.write_text("keep me")
    argv = {"train": ipd(out),
            "cooperation": ["cooperation", "--agent", str(runs / "ipd" / "checkpoint.pt"), "--games", "4", "--out", str(out)],
            "league": ["league", "--env", "ipd", "--players", "always_defect", "--seeds", "1", "--episodes", "2",
                       "--no-progress", "--out", str(out)]}[command]
    assert main(argv) == 2
    assert f"{out}" in error_of(capsys) and out.read_text() == "keep me"


def test_a_folder_that_cannot_be_written_is_an_error_naming_the_file(run, capsys, monkeypatch):
    def refuse(*args, dir=None, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(trainers.common.tempfile, "mkstemp", refuse)
    before = files(run)
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 1
    assert error_of(capsys) == f"error: {run / 'config.json'}: cannot write it (Permission denied); the previous " \
                               "file, if any, is kept"
    assert files(run) == before


def test_a_read_only_folder_is_an_error_naming_the_file(run, capsys):
    for p in (run, *run.iterdir()):
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        if os.access(run, os.W_OK):
            pytest.skip("this user writes to read-only folders (root); the test above simulates it")
        assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 1
        assert str(run) in error_of(capsys)
    finally:
        for p in (run, *run.iterdir()):
            p.chmod(0o755 if p.is_dir() else 0o644)


@pytest.mark.parametrize("fault", ["write", "fsync"])
def test_a_full_disk_is_an_error_naming_the_checkpoint_which_is_kept(run, capsys, monkeypatch, fault):
    """ENOSPC from the write of the checkpoint's data, or from flushing it to the disk."""
    def is_checkpoint(name: str) -> bool:
        return Path(name).name.startswith(".checkpoint.pt.")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    if fault == "write":
        class Full:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            write = staticmethod(full)

        real_open = open
        monkeypatch.setattr(trainers.common, "open", lambda name, mode="r", *a, **k: Full(real_open(name, mode, *a, **k))
                            if is_checkpoint(str(name)) and "w" in mode else real_open(name, mode, *a, **k), raising=False)
    else:
        real_fsync = os.fsync
        monkeypatch.setattr(os, "fsync", lambda fd: full() if is_checkpoint(os.readlink(f"/proc/self/fd/{fd}"))
                            else real_fsync(fd))
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 1
    assert error_of(capsys) == f"error: {run / 'checkpoint.pt'}: cannot write it (No space left on device); " \
                               "the previous file, if any, is kept"
    assert (run / "checkpoint.pt").read_bytes() == before
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.pt", "config.json", "metrics.csv"]
    assert [r["iteration"] for r in read_metrics(run / "metrics.csv", 99)[1]] == ["1", "2", "3"]
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0  # from update 2 again


def test_a_full_disk_while_logging_is_an_error_naming_metrics_csv(run, capsys, monkeypatch):
    import csv

    writerow = csv.DictWriter.writerow

    def full(self, row):
        if row.get("iteration") == 3:  # the row of update 3, after the file was rewritten with rows 1 and 2
            raise OSError(errno.ENOSPC, "No space left on device")
        return writerow(self, row)

    monkeypatch.setattr(csv.DictWriter, "writerow", full)
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 1
    assert error_of(capsys) == f"error: {run / 'metrics.csv'}: cannot write it (No space left on device)"
    assert [r["iteration"] for r in read_metrics(run / "metrics.csv", 99)[1]] == ["1", "2"]


def test_an_unknown_league_device_is_an_error_naming_it(tmp_path, capsys):
    assert main(["league", "--env", "ipd", "--players", "always_defect", "--device", "tpu", "--out",
                 str(tmp_path / "league")]) == 2
    assert "device = 'tpu' is invalid: allowed values are auto, cpu, cuda, cuda:N" in error_of(capsys)


@pytest.mark.parametrize("agent, games, says", [
    ("missing", 4, "does not exist"), ("ipd", 0, "--games must be an integer >= 1"),
    ("coin", 4, "holds an agent for coin_game, not for ipd"), ("random", 4, "cannot be read"),
    ("folder", 4, "is a folder: give the checkpoint in it"),
])
def test_cooperation_errors_are_one_line_naming_the_problem(runs, tmp_path, capsys, agent, games, says):
    path = {"missing": tmp_path / "nothing" / "checkpoint.pt", "ipd": runs / "ipd" / "checkpoint.pt",
            "coin": runs / "coin" / "checkpoint.pt", "random": tmp_path / "random.pt", "folder": runs / "ipd"}[agent]
    if agent == "random":
        path.write_bytes(os.urandom(3000))
    assert main(["cooperation", "--agent", str(path), "--games", str(games), "--out", str(tmp_path / "coop")]) == 2
    message = error_of(capsys)
    assert says in message and (agent == "ipd" or str(path) in message)


# -- 6. infinite values ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--actor-lr", "--critic-lr", "--beta", "--entropy-coef"])
def test_infinite_values_are_refused(tmp_path, capsys, option):
    assert main(ipd(tmp_path / "run", option, "inf")) == 2
    assert f"{option[2:].replace('-', '_')} = inf is invalid: must be a finite number" in error_of(capsys)


# -- 7. what a killed run leaves ------------------------------------------------------------------------------
def test_temporary_files_of_a_killed_save_are_removed_when_the_run_resumes(run):
    left = [".checkpoint.pt.ab3k_x9z.tmp.pt", ".config.json.q0w9e8r7.tmp.json", ".metrics.csv.zzzzzzzz.tmp.csv"]
    for name in left:
        (run / name).write_bytes(b"PK\x03\x04half")
    (run / ".keep.me").write_text("not ours")
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0
    assert sorted(p.name for p in run.iterdir()) == [".keep.me", ".lock", "checkpoint.pt", "config.json", "metrics.csv"]


def test_a_save_killed_midway_leaves_a_temporary_file_the_next_run_removes(run):
    code = ("import os, signal, sys; import trainers.common as c; from trainers.__main__ import main\n"
            "c.os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
            "main(['train', '--resume', sys.argv[1], '--iterations', '3', '--no-progress'])")
    proc = subprocess.run([sys.executable, "-c", code, str(run)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert [p.name for p in run.iterdir() if ".tmp" in p.name]  # killed while writing config.json
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0
    assert not [p.name for p in run.iterdir() if ".tmp" in p.name]


@pytest.mark.parametrize("damage", ["truncated row", "NUL bytes", "row of another width"])
def test_damaged_metrics_rows_are_dropped_with_a_warning_and_not_carried_on(run, damage):
    path = run / "metrics.csv"
    text = path.read_text()
    header, row1, row2 = text.splitlines()
    text = {"truncated row": f"{header}\n{row1}\n{row2[:25]}\n",
            "NUL bytes": f"{header}\n{row1}\n\x00\x00\x00\x00{row2}\n",
            "row of another width": f"{header}\n{row1},1.5\n{row2}\n"}[damage]
    path.write_text(text)
    with pytest.warns(UserWarning, match=f"{path}: dropped 1 damaged row"):
        assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 0
    lines = path.read_text().splitlines()
    assert lines[0] == header and [line.split(",")[0] for line in lines[1:]] == \
        (["2", "3"] if damage == "row of another width" else ["1", "3"])
    assert all(len(line.split(",")) == len(header.split(",")) for line in lines)


@pytest.mark.parametrize("header", ["\x00\x00garbage,header", "rollout/reward_per_step,iteration", ""])
def test_a_damaged_metrics_header_is_an_error_naming_the_file(run, capsys, header):
    path = run / "metrics.csv"
    path.write_text(header + "\n" + path.read_text().split("\n", 1)[1])
    before = files(run)
    assert main(["train", "--resume", str(run), "--iterations", "3", "--no-progress"]) == 2
    assert f"{path}' has a damaged header" in error_of(capsys)
    assert files(run) == before
    assert main(ipd(run)) == 0  # a new run in the folder starts a new metrics.csv
    assert read_metrics(path, 99)[0][0] == "iteration"


# -- 11. corrupt or foreign saved players ------------------------------------------------------------------
def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return path


@pytest.mark.parametrize("kind", ["zip of text", "zip with bad data", "zip with empty data", "text .zip", "random .zip",
                                  "text .pt", "zip .pt", "ppo checkpoint of junk"])
def test_a_corrupt_or_foreign_saved_player_is_an_error_naming_it(tmp_path, capsys, kind):
    suffix = ".pt" if kind.endswith(".pt") or "checkpoint" in kind else ".zip"
    path = tmp_path / f"player{suffix}"
    if kind == "zip of text" or kind == "zip .pt":
        _zip(path, {"hello.txt": "hi"})
    elif kind == "zip with bad data":
        _zip(path, {"data": "{not json"})
    elif kind == "zip with empty data":
        _zip(path, {"data": "{}"})
    elif kind in ("text .zip", "text .pt"):
        path.write_text("hello world\n")
    elif kind == "random .zip":
        path.write_bytes(os.urandom(3000))
    else:
        atomic_save({"format": 2, "algo": "ppo", "config": make_config("ipd", "ppo").to_dict(), "iteration": 1,
                     "state": {"models": [b"junk"]}}, path)
    with pytest.raises(CheckpointError, match=str(path)):
        load_saved_player(path, social_dilemmas.make_game("ipd"))
    assert main(["league", "--env", "ipd", "--players", "always_defect", str(path), "--seeds", "1", "--episodes", "2",
                 "--no-progress", "--out", str(tmp_path / "league")]) == 2
    assert str(path) in error_of(capsys)


def test_any_damaged_bytes_are_a_checkpoint_error_naming_the_file(tmp_path):
    """Random bytes make the unpickler fail in many ways (a huge allocation, a bad opcode
    argument, a missing class...): every one is a CheckpointError naming the file, for the
    trainer's checkpoints and the published agents' pickles alike (300 fixed random files,
    some starting like a pickle)."""
    import random

    from trainers.common import CheckpointError, read_checkpoint
    from trainers.published import read_published

    rng = random.Random(0)
    path = tmp_path / "checkpoint.pt"
    for i in range(300):
        blob = rng.randbytes(rng.randrange(1, 4000))
        if i % 2:
            blob = b"\x80\x04" + blob  # a pickle's protocol header
        path.write_bytes(blob)
        for reader in (read_checkpoint, read_published):
            with pytest.raises(CheckpointError, match="checkpoint.pt"):
                reader(path)
