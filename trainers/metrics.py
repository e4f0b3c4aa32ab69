"""Where a run's numbers go: ``metrics.csv``, TensorBoard, and the reading back of both.

Metrics are ``{"namespace/name": float}`` dictionaries (``rollout/``, ``train/``,
``eval/``, ``time/``). :class:`MetricsLog` writes one row per logged update to
``metrics.csv``; a metric that first appears after the first row (the actor's losses
after the critic's warm-up, the ``eval/`` columns) widens the header and the earlier rows
leave that column empty. On resume it keeps the rows up to the checkpoint's update and
drops later ones.
"""

from __future__ import annotations

import csv
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics", "updates_done", "summary_writer", "use_tensorboard_stub"]


def use_tensorboard_stub() -> None:
    """Make TensorBoard use its own TensorFlow stub in this process.

    ``tensorboard`` imports TensorFlow when it is installed (the Melting Pot extra brings it):
    seconds of start-up and a screen of log lines, for nothing, since writing event files
    needs none of it. Registering ``tensorboard.compat.notf`` selects the stub. Called before
    anything that imports TensorBoard: :func:`summary_writer` and the Stable-Baselines3
    bridge (SB3 imports TensorBoard when it is imported)."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def summary_writer(logdir: str | Path, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` for ``logdir``, or None without tensorboard."""
    use_tensorboard_stub()
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(logdir), purge_step=purge_step)


def read_metrics(path: Path, upto: int) -> tuple[list[str] | None, list[dict[str, str]]]:
    """The header and the rows of an existing ``metrics.csv`` with ``iteration <= upto``."""
    if not path.exists():
        return None, []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, [r for r in reader if int(r["iteration"]) <= upto]


def updates_done(run: str | Path) -> int:
    """The last update logged in ``run/metrics.csv`` (0 when there is none)."""
    _, rows = read_metrics(Path(run) / "metrics.csv", upto=2**62)
    return int(rows[-1]["iteration"]) if rows else 0


class MetricsLog:
    """``out/metrics.csv`` (and TensorBoard under ``out/tb`` when ``tensorboard``), continued
    after update ``start`` (rows logged after it, by a run that was interrupted, are dropped)."""

    def __init__(self, out: Path, start: int, tensorboard: bool, resume: bool):
        self.path = out / "metrics.csv"
        self.header, self.rows = read_metrics(self.path, start)
        self.writer = summary_writer(out / "tb", purge_step=start + 1 if resume else None) if tensorboard else None
        self.file = None
        self.csv: csv.DictWriter | None = None

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        row: dict[str, Any] = {"iteration": iteration, **{k: f"{v:.6g}" for k, v in metrics.items()}}
        new_columns = [k for k in row if k not in (self.header or [])]
        if self.file is None or new_columns:
            if self.file is not None:  # a metric that starts late: rewrite the file with the wider header
                self.file.close()
                _, self.rows = read_metrics(self.path, upto=iteration)
            self.header = [*(self.header or []), *new_columns]
            self.file = self.path.open("w", newline="")
            self.csv = csv.DictWriter(self.file, fieldnames=self.header, extrasaction="ignore")
            self.csv.writeheader()
            self.csv.writerows(self.rows)
        self.csv.writerow(row)
        self.file.flush()
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, iteration)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
