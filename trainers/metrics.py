"""Where a run's numbers go: ``metrics.csv``, TensorBoard, and the reading back of both.

Metrics are ``{"namespace/name": float}`` dictionaries (``rollout/``, ``train/``,
``eval/``, ``time/``). :class:`MetricsLog` writes one row per logged update to
``metrics.csv``; a metric that first appears after the first row (the actor's losses
after the critic's warm-up, the ``eval/`` columns) widens the header and the earlier rows
leave that column empty. On resume it keeps the rows up to the checkpoint's update and
drops later ones, and the damaged rows that a run killed mid-write left (a truncated row, NUL
bytes): :func:`read_metrics` warns about them and keeps the others; a damaged header is a
``ValueError`` naming the file. The file is rewritten atomically, so a kill or a full disk
then never loses its rows.
"""

from __future__ import annotations

import csv
import sys
import types
import warnings
from pathlib import Path
from typing import Any

from trainers.common import atomic_write

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
    """The header and the rows of an existing ``metrics.csv`` with ``iteration <= upto``.

    A row that is not whole (another number of fields than the header, an iteration that is
    not an integer above the previous row's, a value that is not a number, NUL bytes: what a
    kill mid-write or two processes writing at once leave) is dropped with a warning naming
    the file and its line. A header that is not ``iteration`` followed by metric names is a
    ``ValueError`` naming the file. An empty file has no header and no rows."""
    if not path.exists():
        return None, []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines:
        return None, []
    header = next(csv.reader([lines[0]]), [])
    if not header or header[0] != "iteration" or len(set(header)) != len(header) or \
            not all(name and name.isascii() and name.isprintable() and name == name.strip() for name in header):
        raise ValueError(f"{str(path)!r} has a damaged header (it starts {lines[0][:60]!r}, not 'iteration,' then "
                         "metric names): move it away, and the run logs to a new one")
    rows, damaged, last = [], [], 0
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        fields = next(csv.reader([line]), [])
        if not _whole(fields, len(header), last):
            damaged.append(number)
            continue
        last = int(fields[0])
        if last <= upto:
            rows.append(dict(zip(header, fields)))
    if damaged:
        shown = ", ".join(map(str, damaged[:10])) + (", ..." if len(damaged) > 10 else "")
        warnings.warn(f"{path}: dropped {len(damaged)} damaged row(s) at line(s) {shown} (a run killed while writing "
                      "it, or two runs writing at once)", stacklevel=2)
    return header, rows


def _whole(fields: list[str], width: int, last: int) -> bool:
    """Whether ``fields`` is a whole row of a metrics file of ``width`` columns after the iteration ``last``."""
    if len(fields) != width or not (fields[0].isascii() and fields[0].isdigit()) or int(fields[0]) <= last:
        return False
    for value in fields[1:]:
        if value:
            try:
                float(value)
            except ValueError:
                return False
    return "\x00" not in "".join(fields)


def updates_done(run: str | Path) -> int:
    """The last update logged in ``run/metrics.csv`` (0 when there is none)."""
    _, rows = read_metrics(Path(run) / "metrics.csv", upto=2**62)
    return int(rows[-1]["iteration"]) if rows else 0


class MetricsLog:
    """``out/metrics.csv`` (and TensorBoard under ``out/tb`` when ``tensorboard``), continued
    after update ``start`` (rows logged after it, by a run that was interrupted, are dropped).
    ``history``: :func:`read_metrics` of the file up to ``start``, when already read."""

    def __init__(self, out: Path, start: int, tensorboard: bool, resume: bool,
                 history: tuple[list[str] | None, list[dict[str, str]]] | None = None):
        self.path = out / "metrics.csv"
        if history is None:  # a new run starts a new file
            history = read_metrics(self.path, start) if resume else (None, [])
        self.header, self.rows = history
        self.writer = summary_writer(out / "tb", purge_step=start + 1 if resume else None) if tensorboard else None
        self.file = None
        self.csv: csv.DictWriter | None = None

    def log(self, iteration: int, metrics: dict[str, float]) -> None:
        row: dict[str, Any] = {"iteration": iteration, **{k: f"{v:.6g}" for k, v in metrics.items()}}
        new_columns = [k for k in row if k not in (self.header or [])]
        try:
            if self.file is None or new_columns:
                if self.file is not None:  # a metric that starts late: rewrite the file with the wider header
                    self.file.close()
                    self.file = None
                    _, self.rows = read_metrics(self.path, upto=iteration)
                self.header = [*(self.header or []), *new_columns]
                atomic_write(self.path, self._write_rows)  # the rows so far, then rows are appended
                self.file = self.path.open("a", newline="")
                self.csv = csv.DictWriter(self.file, fieldnames=self.header, extrasaction="ignore")
            self.csv.writerow(row)
            self.file.flush()
        except OSError as e:
            if e.filename is not None:  # named already (atomic_write)
                raise
            raise type(e)(e.errno, f"cannot write it ({e.strerror or e})", str(self.path)) from e
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(k, v, iteration)

    def _write_rows(self, tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.header, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
