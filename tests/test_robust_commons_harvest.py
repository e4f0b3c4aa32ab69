"""Robustness of the Commons Harvest adapter and its recording (issue 19, items 12, 15, 16):
bad arguments refused before any worker starts, the Lua prelude folders of killed processes
removed, a clear error for a script without the ``__main__`` guard, and the recorder.

Skipped as a whole when Melting Pot is not installed. Worker processes are slow to start:
one test starts one (through a script); the others start none. No test leaves a worker or
a prelude folder behind (the folders go to ``tmp_path``)."""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

if importlib.util.find_spec("meltingpot") is None or importlib.util.find_spec("shimmy") is None:
    pytest.skip(
        "Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot): run `make install` "
        "or `python scripts/install_meltingpot.py`",
        allow_module_level=True,
    )

from social_dilemmas.commons_harvest import CommonsHarvestOpen, CommonsHarvestVec, substrate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def no_workers() -> bool:
    return not [p for p in multiprocessing.active_children() if p.name.startswith("commons-harvest-worker")]


def child_env(tmp_path: Path) -> dict:
    """A subprocess environment that imports this checkout and writes temp folders to tmp_path."""
    env = dict(os.environ, TMPDIR=str(tmp_path), OMP_NUM_THREADS="1", SDL_VIDEODRIVER="dummy",
               PYGAME_HIDE_SUPPORT_PROMPT="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def prelude_folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.name.startswith("social_dilemmas_lua_"))


# -- item 12: arguments refused before any worker starts ----------------------------------------
@pytest.mark.parametrize("timeout", [-1, 0, math.nan, math.inf, True, "5", None])
def test_vec_refuses_a_bad_timeout_before_starting_workers(timeout):
    with pytest.raises(ValueError, match=r"timeout must be a positive finite number of seconds, got"):
        CommonsHarvestVec(1, timeout=timeout)
    assert no_workers()


def test_vec_refuses_an_unusable_device_before_starting_workers():
    # without CUDA, "cuda" itself; with it, a device index past the last GPU
    bad = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    with pytest.raises(ValueError, match=rf"device={bad!r}"):
        CommonsHarvestVec(1, device=bad)
    with pytest.raises(ValueError, match="device must be a torch device"):
        CommonsHarvestVec(1, device="gpu-please")
    assert no_workers()


@pytest.mark.parametrize("value", ["no", "False", 1, None])
def test_deterministic_must_be_a_bool(value):
    with pytest.raises(ValueError, match=rf"deterministic must be True or False, got {value!r}"):
        CommonsHarvestOpen(deterministic=value)
    with pytest.raises(ValueError, match="deterministic must be True or False"):
        CommonsHarvestVec(1, deterministic=value)
    assert no_workers()
    assert CommonsHarvestOpen(deterministic=np.bool_(False)).deterministic is False


# -- item 12: the prelude folders of killed processes ---------------------------------------------
_WRITE_PRELUDE = (
    "import sys, time\n"
    "from social_dilemmas.commons_harvest import substrate\n"
    "rel = substrate._deterministic_level_directory()\n"
    "print(substrate._meltingpot_root() / rel, flush=True)\n"
    "time.sleep(120)\n"
)


def test_prelude_folders_of_killed_processes_are_removed(tmp_path, monkeypatch):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITE_PRELUDE], env=child_env(tmp_path), cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    try:
        folders = [Path(p.stdout.readline().strip()).resolve() for p in procs]
        procs[0].send_signal(signal.SIGTERM)  # neither runs the exit handler that removes the folder
        procs[1].send_signal(signal.SIGKILL)
        for p in procs:
            p.wait(30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(30)
            p.stdout.close()
    assert all(f.is_dir() and f.parent == tmp_path.resolve() for f in folders), folders
    # a live process's folder and a folder of the older naming are never touched
    live = tmp_path / f"social_dilemmas_lua_pid{os.getpid()}_live"
    older = tmp_path / "social_dilemmas_lua_abc123"
    live.mkdir()
    older.mkdir()
    # the next process writing a prelude removes the dead ones
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(substrate, "_level_dir", {})
    mine = (substrate._meltingpot_root() / substrate._deterministic_level_directory()).resolve()
    try:
        assert not any(f.exists() for f in folders)
        assert live.is_dir() and older.is_dir()
        assert mine.is_dir() and mine.name.startswith(f"social_dilemmas_lua_pid{os.getpid()}_")
    finally:
        for folder in (mine, live, older):
            shutil.rmtree(folder, ignore_errors=True)


# -- item 15: a script without the __main__ guard ----------------------------------------------
def test_vec_created_while_a_worker_imports_the_script_says_to_add_the_guard(monkeypatch):
    # what multiprocessing sets while a spawned process imports the main script
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match=r"CommonsHarvestVec must be under `if __name__ == \"__main__\":`"):
        CommonsHarvestVec(1)
    assert no_workers()


def test_script_without_the_main_guard_fails_with_a_clear_error(tmp_path):
    """The README's snippet pasted into a script, unguarded: one worker (a few seconds)."""
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent("""\
        from social_dilemmas.commons_harvest import CommonsHarvestVec

        vec = CommonsHarvestVec(num_envs=1, max_steps=2)
        obs, info = vec.reset(seed=0)
    """))
    run = subprocess.run([sys.executable, str(script)], env=child_env(tmp_path), cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    # the worker's own error, and the parent's
    assert 'the code that creates a CommonsHarvestVec must be under `if __name__ == "__main__":`' in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: Commons Harvest worker 0") and '`if __name__ == "__main__":` guard' in last
    assert prelude_folders(tmp_path) == []  # the parent exited normally: its prelude folder went with it


# -- item 16: the recorder ----------------------------------------------------------------------
def test_recorder_records_commons_harvest(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from renderers import commons_harvest_image_size
    from social_dilemmas.record import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(substrate, "_level_dir", {})
    out = tmp_path / "ch.gif"
    players = ["random", "noop", "random", "noop", "random", "noop", "random"]
    try:
        result = main(["--env", "commons_harvest_open", "--players", *players, "--max-steps", "3", "--fps", "2",
                       "--out", str(out)])
    finally:
        for folder in prelude_folders(tmp_path):
            shutil.rmtree(folder, ignore_errors=True)
    assert result["frames"] == 3 + 1 + 1 and result["steps"] == 3 and result["players"] == players
    h, w = commons_harvest_image_size((144, 192, 3))
    assert result["frame_shape"] == (h, w, 3)  # the world with the scores, not the bare 144 x 192 world view
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size == (w, h) and im.n_frames >= 2
