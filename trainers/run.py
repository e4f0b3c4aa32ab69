"""The one entry point of training: :func:`train` runs any registered algorithm into a run folder.

Used by the command line (``python -m trainers train``), the examples and the reproduction
scripts. A run folder holds:

* ``.lock``: the lock of the training process that uses the folder (:func:`~trainers.common.lock_run_folder`):
  a second run of the same folder, new or resumed, is refused with
  :class:`~trainers.common.RunFolderInUse` while the first runs;
* ``config.json``: the configuration (:class:`trainers.config.Config`);
* ``metrics.csv``: one row per ``log_every`` updates, namespaced metrics (``rollout/``,
  ``train/``, ``eval/``, ``time/``), and TensorBoard logs under ``tb/``;
* ``checkpoint.pt``: written atomically every ``save_every`` updates and at the end:
  ``{"format": 2, "algo", "config", "iteration", "state", "best_return"}``, where ``state``
  is the algorithm's (everything ``resume`` needs to continue exactly), plus what the
  algorithm exports beside it (Stable-Baselines3's ``model.zip``);
* with ``keep_best``, ``best.pt``: the same format, with the player's state only
  (:meth:`~trainers.algorithms.base.Algorithm.player_state`), of the update whose training
  batch had the highest ``rollout/reward_per_step`` (written atomically when it improves).

A NaN or infinite loss stops the run with :class:`~trainers.common.TrainingDiverged`; the
last good checkpoint stays. A file that cannot be written (a full disk, a read-only folder) is
an ``OSError`` naming it, and the previous checkpoint stays. Temporary files of writes that a
killed run left behind are removed when the folder is next used.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from trainers import algorithms
from trainers.common import CheckpointError, atomic_save, atomic_write, lock_run_folder, remove_stale_temporaries
from trainers.config import Config
from trainers.metrics import MetricsLog, read_metrics
from trainers.players import CHECKPOINT_FORMAT, read_run_checkpoint

__all__ = ["train", "save_checkpoint", "save_best", "RESUME_CHANGEABLE"]

#: The run settings a resumed run may change: none of them changes what it learns.
RESUME_CHANGEABLE = ("iterations", "save_every", "log_every", "eval_every", "eval_games", "tensorboard", "keep_best")


def save_checkpoint(algo: Any, out: Path) -> None:
    """``out/checkpoint.pt`` of the run ``algo`` (atomically), and the files it exports beside it."""
    atomic_save({"format": CHECKPOINT_FORMAT, "algo": algo.run.algo, "config": algo.config.to_dict(),
                 "iteration": algo.iteration, "state": algo.state_dict(), "best_return": algo.best_return},
                out / "checkpoint.pt")
    algo.export(out)


def save_best(algo: Any, out: Path) -> None:
    """``out/best.pt``: the run's current agent as a player (atomically)."""
    atomic_save({"format": CHECKPOINT_FORMAT, "algo": algo.run.algo, "config": algo.config.to_dict(),
                 "iteration": algo.iteration, "state": algo.player_state(), "best_return": algo.best_return},
                out / "best.pt")


def _resume(out: Path) -> tuple[Config, dict[str, Any], dict[str, Any]]:
    path = out / "checkpoint.pt"
    if not path.exists():
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume {out}: no config.json there; is this a training run's folder?")
        if (out / "model.zip").exists() or (out / "model_player_0.zip").exists():
            raise CheckpointError(f"--resume {out}: no checkpoint.pt there, only the exported model (model.zip): it "
                                  "still plays, but a run resumes from checkpoint.pt (PPO runs of an earlier version "
                                  "of the trainers saved none); retrain it")
        raise FileNotFoundError(f"--resume {out}: no checkpoint.pt there (the run saved none yet); start it again")
    config, state, ckpt = read_run_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by an earlier version of the trainers (format {ckpt.get('format')}): "
            f"it still plays as a player (league, recorder, opponent), but it cannot be resumed; retrain with "
            f"python -m trainers train --env {config.run.env} --algo {config.run.algo} --out NEW_FOLDER")
    _check_config_json(out, config, path)
    return config, state, ckpt


def _check_config_json(out: Path, config: Config, path: Path) -> None:
    """A ``CheckpointError`` when ``out/config.json`` holds another run than the checkpoint ``path``
    (a checkpoint copied from another run): the command line starts from config.json, so the
    difference would otherwise look like options given on resume. An unreadable config.json
    is left to its reader."""
    try:
        data = json.loads((out / "config.json").read_text())
        run, section = data["run"], data["algorithm"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if run.get("algo") != config.run.algo:
        differ = ["algo"]
    else:
        differ = [k for k, v in config.run.to_dict().items()
                  if k not in RESUME_CHANGEABLE and _jsonable(run.get(k)) != _jsonable(v)]
        differ += [k for k, v in config.algorithm.to_dict().items() if _jsonable(section.get(k)) != _jsonable(v)]
    if differ:
        mine = config.to_dict()
        shown = ", ".join(f"{k}: {mine['run'].get(k, mine['algorithm'].get(k))!r} in checkpoint.pt, "
                          f"{run.get(k, section.get(k))!r} in config.json" for k in differ[:4])
        raise CheckpointError(f"checkpoint {str(path)!r} is not of the run in {out}/config.json ({shown}"
                              f"{', ...' if len(differ) > 4 else ''}): was it copied from another run?")


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _changes(saved: Config, given: Config, out: Path) -> Config:
    """``saved`` with the settings of :data:`RESUME_CHANGEABLE` taken from ``given``; a
    ``ValueError`` names any other setting that differs."""
    if given.run.algo != saved.run.algo:
        raise ValueError(f"--resume {out}: the run is of {saved.run.algo}, not {given.run.algo}")
    old_run, new_run = saved.run.to_dict(), given.run.to_dict()
    old_section, new_section = saved.algorithm.to_dict(), given.algorithm.to_dict()
    differ = [k for k in old_run if old_run[k] != new_run[k] and k not in RESUME_CHANGEABLE]
    differ += [k for k in old_section if old_section[k] != new_section.get(k)]
    if differ:
        raise ValueError(f"--resume {out}: {', '.join(differ)} cannot change when a run is resumed (it would not "
                         f"continue as it started); only {', '.join(RESUME_CHANGEABLE)} can. Start a new run instead")
    for k in RESUME_CHANGEABLE:
        setattr(saved.run, k, getattr(given.run, k))
    return saved


def train(config: Config | None = None, out: str | Path = "runs/train", *, resume: bool = False, progress: bool = True,
          iterations: int | None = None) -> Any:
    """Train a run of ``config`` into the folder ``out``, or with ``resume=True`` continue the
    run saved there exactly where its checkpoint stopped; returns the algorithm's run object.

    When resuming, ``config`` (optional) may change the settings of :data:`RESUME_CHANGEABLE`
    (those that do not change what the run learns) and must keep every other one.
    ``iterations`` sets the total number of updates (to extend a resumed run; fewer than the
    run has done is a ``ValueError``).

    The folder is locked while the run trains (:func:`~trainers.common.lock_run_folder`): a
    folder in use is a :class:`~trainers.common.RunFolderInUse`, and nothing in it changes. A
    checkpoint that cannot be read, that is of another run than ``config.json`` or whose
    weights do not fit its configuration is a :class:`~trainers.common.CheckpointError`; a
    damaged header of ``metrics.csv`` a ``ValueError``; a file that cannot be written an
    ``OSError``; all name the file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run folder {str(out)!r} is a file, not a folder: give another --out")
    if resume and not (out / "config.json").exists() and not (out / "checkpoint.pt").exists():
        _resume(out)  # not a run's folder: its error, before anything is written there
    if not resume and config is None:
        raise ValueError("config is required unless resume=True")
    if not resume:
        if iterations is not None:
            config.run.iterations = iterations
        config.validate()  # before the folder is made
    out.mkdir(parents=True, exist_ok=True)
    lock = lock_run_folder(out)
    try:
        remove_stale_temporaries(out)
        return _train_locked(config, out, resume, progress, iterations)
    finally:
        lock.close()


def _train_locked(config: Config | None, out: Path, resume: bool, progress: bool, iterations: int | None) -> Any:
    """:func:`train`, once the run folder ``out`` is locked."""
    state = None
    if resume:
        saved, state, ckpt = _resume(out)
        config = saved if config is None else _changes(saved, config.validate(), out)
    if iterations is not None:
        config.run.iterations = iterations
    config.validate()
    if state is not None and config.run.iterations < int(ckpt["iteration"]):
        raise ValueError(f"--resume {out}: iterations = {config.run.iterations} is below the {int(ckpt['iteration'])} "
                         f"updates the run has done; give at least {int(ckpt['iteration'])} (more to train on)")
    start = int(ckpt["iteration"]) if state is not None else 0
    history = read_metrics(out / "metrics.csv", start) if resume else (None, [])  # a damaged header: before any write
    atomic_write(out / "config.json", lambda tmp: Path(tmp).write_text(config.to_json()))
    algo = algorithms.get(config.run.algo)(config, out)
    try:
        if state is not None:
            algo.iteration = int(ckpt["iteration"])
            algo.best_return = float(ckpt.get("best_return", float("-inf")))
            try:
                algo.load_state_dict(state)
            except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise CheckpointError(f"checkpoint {str(out / 'checkpoint.pt')!r} does not fit the run it names "
                                      f"({config.run.algo} on {config.run.env}): {type(e).__name__}: "
                                      f"{' '.join(str(e).split())[:300]}") from None
        _loop(algo, out, resume, progress, history)
    finally:
        algo.close()
    return algo


def _loop(algo: Any, out: Path, resume: bool, progress: bool, history: tuple | None = None) -> None:
    """Train ``algo`` to ``iterations`` updates: log every ``log_every``, evaluate every
    ``eval_every``, save every ``save_every`` updates and at the end (``history``: the rows of
    metrics.csv it continues, :func:`~trainers.metrics.read_metrics`)."""
    from tqdm.auto import tqdm

    run = algo.run
    log = MetricsLog(out, algo.iteration, run.tensorboard, resume, history)
    bar = tqdm(total=run.iterations, initial=algo.iteration, disable=not progress, unit="update",
               desc=f"{run.algo} {run.env}", dynamic_ncols=True)
    start = time.perf_counter()
    try:
        while algo.iteration < run.iterations:
            step_start = time.perf_counter()
            metrics = algo.train_step()
            elapsed = time.perf_counter() - step_start
            metrics["time/iteration_s"] = elapsed
            metrics["time/env_steps_per_s"] = algo.steps_per_update / elapsed
            if "time/rollout_s" in metrics:
                metrics["time/update_s"] = elapsed - metrics["time/rollout_s"]
            it = algo.iteration
            if run.eval_every and it % run.eval_every == 0:
                eval_start = time.perf_counter()
                metrics.update(algo.evaluate())
                metrics["time/eval_s"] = time.perf_counter() - eval_start
            reward = metrics.get("rollout/reward_per_step")
            if run.keep_best and reward is not None and reward > algo.best_return:
                algo.best_return = reward
                save_best(algo, out)
            metrics["time/elapsed_s"] = time.perf_counter() - start
            if it % run.log_every == 0 or it == run.iterations:
                log.log(it, metrics)
            if it % run.save_every == 0 or it == run.iterations:
                save_checkpoint(algo, out)
            bar.update(1)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if k in algo.postfix})
    finally:
        bar.close()
        log.close()
