"""One trial of a sweep in its run folder: resumed from its own checkpoint, timed, reported while it trains.

:func:`train_trial` is what every Ray Tune trial of :mod:`trainers.sweep` runs (through
:mod:`trainers.ray_runner`); it needs no Ray itself. It keeps ``sweep_trial.json`` in the run
folder: the trial's seconds of training over all its attempts (counted while it runs, so an
attempt killed with its worker counts up to its last few seconds), its attempts, whether the
last one resumed a checkpoint, and the Ray node it ran on.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from trainers.config import Config

__all__ = ["train_trial", "same_run", "last_metrics"]


def last_metrics(path: Path) -> dict[str, float]:
    """The last whole row of a ``metrics.csv`` being written (quietly: a row in mid-write is skipped)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    header = lines[0].split(",")
    for line in reversed(lines[1:]):
        fields = line.split(",")
        if len(fields) == len(header):
            try:
                return {k: float(v) for k, v in zip(header, fields) if v != ""}
            except ValueError:
                continue
    return {}


def _record(folder: Path, record: dict[str, Any]) -> None:
    """``folder/sweep_trial.json``, replaced whole (its own partial file, not one of
    :func:`~trainers.common.atomic_write`'s, which the training run starting beside it may
    remove as stale)."""
    part = folder / ".sweep_trial.json.part"
    part.write_text(json.dumps(record))
    os.replace(part, folder / "sweep_trial.json")


def same_run(folder: Path, config: Config) -> bool:
    """Whether ``folder`` holds a checkpoint and the ``config.json`` of a run of ``config``
    (the settings a resumed run may change aside, :data:`trainers.run.RESUME_CHANGEABLE`)."""
    from trainers.presets import load_config
    from trainers.run import RESUME_CHANGEABLE

    if not (folder / "checkpoint.pt").exists():
        return False
    try:
        saved = json.loads(load_config(folder / "config.json").to_json())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    given = json.loads(config.to_json())
    for data in (saved, given):
        for k in RESUME_CHANGEABLE:
            data["run"].pop(k, None)
    return saved == given


def train_trial(config: Config, folder: str | Path, threads: int = 1, report: Any = None, every: float = 2.0,
                node: str | None = None, wait_lock: float = 60.0) -> dict[str, float]:
    """Train one trial into its run folder ``folder``: from its ``checkpoint.pt`` when that
    is of this configuration (:func:`same_run`: a retried trial), else from the start (a run of
    other settings left there is replaced, as :func:`trainers.run.train` does). Every ``every`` seconds (and at the end)
    it calls ``report`` with the last row of ``metrics.csv`` and updates the folder's
    ``sweep_trial.json`` (seconds of training over every attempt, attempts, ``node``). A run
    folder still locked by the process of an earlier attempt (a killed driver's worker, on its
    way out) is waited for up to ``wait_lock`` seconds. Returns the last row of ``metrics.csv``."""
    import torch

    from trainers.common import RunFolderInUse
    from trainers.run import train

    torch.set_num_threads(max(1, threads))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        record = json.loads((folder / "sweep_trial.json").read_text())
    except (OSError, ValueError):
        record = {"seconds": 0.0, "attempts": 0}
    base, attempts = float(record.get("seconds", 0.0)), int(record.get("attempts", 0)) + 1
    resume = same_run(folder, config)
    error: list[BaseException] = []

    def run() -> None:
        deadline = time.monotonic() + wait_lock
        while True:
            try:
                if resume:
                    train(config, folder, resume=True, progress=False, iterations=config.run.iterations)
                else:
                    train(config, folder, progress=False)
                return
            except RunFolderInUse as e:  # the worker of a killed attempt, not yet gone
                if time.monotonic() > deadline:
                    error.append(e)
                    return
                time.sleep(1.0)
            except BaseException as e:  # noqa: BLE001 - re-raised in the trial's thread
                error.append(e)
                return

    start = time.perf_counter()
    worker = threading.Thread(target=run, name="train", daemon=True)
    worker.start()
    while True:
        worker.join(every)
        _record(folder, {"seconds": base + time.perf_counter() - start, "attempts": attempts, "node": node,
                         "resumed": resume})
        row = last_metrics(folder / "metrics.csv")
        if not worker.is_alive():
            break
        if report is not None and row:
            report(row)
    if error:
        raise error[0]
    if report is not None:
        report(row)
    return row
