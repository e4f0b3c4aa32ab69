"""What every part of the trainers shares: the device, the divergence error, atomic files, checkpoint reading.

Nothing here knows an algorithm or a game.
"""

from __future__ import annotations

import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["TrainingDiverged", "CheckpointError", "resolve_device", "atomic_write", "atomic_save", "read_checkpoint",
           "check_finite", "clip_and_step"]


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another kind, or of an older format. The message names the file."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a ``torch.device``;
    a ``ValueError`` naming the setting when CUDA is asked for and absent."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is invalid: CUDA is not available here; use auto or cpu")
    return torch.device(name)


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file in the folder of ``path``, flush it to disk,
    then rename it over ``path``: a crash mid-write never leaves a truncated file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The dictionary saved in the checkpoint file ``path`` (tensors mapped to ``device``).

    A missing file is a ``FileNotFoundError``; a folder, an empty, truncated or foreign
    file a :class:`CheckpointError`; both name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder, not a file (the file is DIR/checkpoint.pt)")
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as e:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read ({type(e).__name__}: {e}); it is empty, "
                              "truncated or not a checkpoint of this project") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{str(path)!r} is not a social-dilemmas trainer checkpoint")
    return ckpt


def check_finite(what: str, value: Tensor, iteration: int, out: Path | None = None) -> None:
    """Raise :class:`TrainingDiverged` if ``value`` (a scalar) is NaN or infinite, naming ``what`` and the update."""
    if not bool(torch.isfinite(value)):
        where = f" in {out} is kept" if out is not None else " is kept"
        raise TrainingDiverged(f"{what} is {value.item()} at update {iteration + 1}; stopping. The last good checkpoint"
                               f"{where}; lower the learning rates or clip gradients.")


def clip_and_step(optimizer: torch.optim.Optimizer, loss: Tensor, params: Iterable[Tensor], grad_clip: float) -> float:
    """One optimiser step on ``loss``: zero the gradients, backward, clip their norm to
    ``grad_clip`` (0: no clipping), step. Returns the gradient norm before clipping."""
    params = list(params)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else math.inf))
    optimizer.step()
    return norm
