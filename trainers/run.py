"""The one entry point of training: :func:`train` runs any registered algorithm into a run folder.

Used by the command line (``python -m trainers train``), the examples and the reproduction
scripts. A run folder holds:

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
last good checkpoint stays.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from trainers import algorithms
from trainers.common import CheckpointError, atomic_save
from trainers.config import Config
from trainers.metrics import MetricsLog
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
            raise CheckpointError(f"--resume {out}: a PPO run of an earlier version of the trainers (model.zip, no "
                                  "checkpoint.pt); its model.zip still plays, but it cannot be resumed: retrain it")
        raise FileNotFoundError(f"--resume {out}: no checkpoint.pt there (the run saved none yet); start it again")
    config, state, ckpt = read_run_checkpoint(path)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {str(path)!r} was written by an earlier version of the trainers (format {ckpt.get('format')}): "
            f"it still plays as a player (league, recorder, opponent), but it cannot be resumed; retrain with "
            f"python -m trainers train --env {config.run.env} --algo {config.run.algo} --out NEW_FOLDER")
    return config, state, ckpt


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
    ``iterations`` sets the total number of updates (to extend a resumed run)."""
    out = Path(out)
    state = None
    if resume:
        saved, state, ckpt = _resume(out)
        config = saved if config is None else _changes(saved, config.validate(), out)
    elif config is None:
        raise ValueError("config is required unless resume=True")
    if iterations is not None:
        config.run.iterations = iterations
    config.validate()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.to_json())
    algo = algorithms.get(config.run.algo)(config, out)
    try:
        if state is not None:
            algo.iteration = int(ckpt["iteration"])
            algo.best_return = float(ckpt.get("best_return", float("-inf")))
            algo.load_state_dict(state)
        _loop(algo, out, resume, progress)
    finally:
        algo.close()
    return algo


def _loop(algo: Any, out: Path, resume: bool, progress: bool) -> None:
    """Train ``algo`` to ``iterations`` updates: log every ``log_every``, evaluate every
    ``eval_every``, save every ``save_every`` updates and at the end."""
    from tqdm.auto import tqdm

    run = algo.run
    log = MetricsLog(out, algo.iteration, run.tensorboard, resume)
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
