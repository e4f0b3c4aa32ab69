"""The outer loop every trainer shares: metrics.csv, TensorBoard, progress bar, checkpoints.

A *run* is any object with ``iteration`` (updates done), ``train_step() -> metrics``
(one update, returning ``{"namespace/name": float}``) and ``save()`` (an atomic
checkpoint), and ``evaluate() -> metrics`` when ``cfg.eval_every`` may be set (the loop
calls it every ``eval_every`` updates and adds ``time/eval_s``). :func:`run_loop` drives
it to ``cfg.iterations``; on resume it keeps the
rows of ``metrics.csv`` up to the checkpoint's iteration and drops later ones. A metric
that first appears after the first row (the actor's losses begin after the critic's
warm-up) widens the header, and the earlier rows leave that column empty.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

__all__ = ["prepare_config", "read_metrics", "updates_done", "run_loop"]


def prepare_config(cfg: Any, out: Path, resume: bool, iterations: int | None) -> Any:
    """The configuration of a run in ``out``: the saved ``config.json`` when resuming,
    else ``cfg``; ``iterations`` (if given) overrides the total. Validated, then written
    back to ``out/config.json``."""
    from trainers.config import TrainConfig

    if resume:
        if not (out / "config.json").exists():
            raise FileNotFoundError(f"--resume {out}: no config.json there; is this a training run's folder?")
        cfg = TrainConfig.load(out / "config.json")
    elif cfg is None:
        raise ValueError("cfg is required unless resume=True")
    if iterations is not None:
        cfg.iterations = iterations
    cfg.validate()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.to_json())
    return cfg


def read_metrics(path: Path, upto: int) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and the rows of an existing ``metrics.csv`` with ``iteration <= upto``."""
    if not path.exists():
        return None, []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, [r for r in reader if int(r["iteration"]) <= upto]


def updates_done(run: Path) -> int:
    """The last update logged in ``run/metrics.csv`` (0 when there is none)."""
    _, rows = read_metrics(Path(run) / "metrics.csv", upto=2**62)
    return int(rows[-1]["iteration"]) if rows else 0


def run_loop(run: Any, cfg: Any, out: Path, resume: bool, progress: bool, desc: str,
             postfix: tuple[str, ...] = ("rollout/reward_per_step", "rollout/cooperation")) -> None:
    """Train ``run`` to ``cfg.iterations`` updates, logging every ``cfg.log_every`` and saving
    every ``cfg.save_every`` updates and at the end."""
    from tqdm.auto import tqdm

    from trainers.tb import summary_writer

    header, rows = read_metrics(out / "metrics.csv", run.iteration)
    writer = summary_writer(out / "tb", purge_step=run.iteration + 1 if resume else None) if cfg.tensorboard else None
    bar = tqdm(total=cfg.iterations, initial=run.iteration, disable=not progress, unit="update", desc=desc,
               dynamic_ncols=True)
    csv_file = None
    start = time.perf_counter()
    try:
        while run.iteration < cfg.iterations:
            metrics = run.train_step()
            if cfg.eval_every and run.iteration % cfg.eval_every == 0:
                eval_start = time.perf_counter()
                metrics.update(run.evaluate())
                metrics["time/eval_s"] = time.perf_counter() - eval_start
            metrics["time/elapsed_s"] = time.perf_counter() - start
            it = run.iteration
            if it % cfg.log_every == 0 or it == cfg.iterations:
                row = {"iteration": it, **{k: f"{v:.6g}" for k, v in metrics.items()}}
                new_columns = [k for k in row if k not in (header or [])]
                if csv_file is None or new_columns:
                    if csv_file is not None:  # metrics that start late (the actor's, after the critic's warm-up)
                        csv_file.close()
                        _, rows = read_metrics(out / "metrics.csv", upto=it)
                    header = [*(header or []), *new_columns]
                    csv_file = (out / "metrics.csv").open("w", newline="")
                    w = csv.DictWriter(csv_file, fieldnames=header, extrasaction="ignore")
                    w.writeheader()
                    w.writerows(rows)
                w.writerow(row)
                csv_file.flush()
                if writer is not None:
                    for k, v in metrics.items():
                        writer.add_scalar(k, v, it)
            if it % cfg.save_every == 0 or it == cfg.iterations:
                run.save()
            bar.update(1)
            bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in metrics.items() if k in postfix})
    finally:
        bar.close()
        if csv_file is not None:
            csv_file.close()
        if writer is not None:
            writer.close()
