"""What every part of the trainers shares: the device, the divergence error, atomic files, the run folder's lock,
checkpoint reading.

Nothing here knows an algorithm or a game.
"""

from __future__ import annotations

import errno
import io
import math
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch
from torch import Tensor

__all__ = ["TrainingDiverged", "CheckpointError", "RunFolderInUse", "resolve_device", "atomic_write", "atomic_save",
           "remove_stale_temporaries", "lock_run_folder", "read_checkpoint", "check_finite", "clip_and_step"]


class TrainingDiverged(RuntimeError):
    """A loss or a weight became NaN or infinite; the last good checkpoint is kept."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another kind, or of an older format. The message names the file."""


class RunFolderInUse(RuntimeError):
    """Another training process holds the run folder's lock (:func:`lock_run_folder`)."""


def resolve_device(name: str | torch.device) -> torch.device:
    """``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a ``torch.device``;
    a ``ValueError`` naming the setting when CUDA is asked for and absent."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise ValueError(f"device = {name!r} is invalid: allowed values are auto, cpu, cuda, cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is invalid: CUDA is not available here; use auto or cpu")
    return torch.device(name)


#: The temporary files of :func:`atomic_write`: ``.NAME.XXXXXXXX.tmp.SUFFIX`` (``tempfile.mkstemp``'s 8 characters).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^.]*)?")


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file in the folder of ``path``, flush it to disk,
    then rename it over ``path``: a crash mid-write never leaves a truncated file, and a
    failed write (a full disk, a read-only folder) leaves the previous ``path`` as it was.

    An ``OSError`` names ``path`` (not the temporary file). A process killed mid-write
    leaves its temporary file behind; :func:`remove_stale_temporaries` removes them."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # the permissions of a file written directly (mkstemp's are 0600)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write it ({e.strerror or e}); the previous file, if any, is kept",
                      str(path)) from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`. The object is serialised in memory first,
    so that a full disk is an ``OSError`` (``ENOSPC``) naming ``path`` rather than an error
    of torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that :func:`atomic_write` left in ``folder`` when its
    process was killed mid-write; returns them. Call it only while holding the folder's lock
    (:func:`lock_run_folder`): another process's temporary file is a write in progress."""
    removed = []
    for p in Path(folder).iterdir():
        if p.is_file() and _TEMPORARY.fullmatch(p.name):
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


#: The lock file of a run folder (:func:`lock_run_folder`).
LOCK_NAME = ".lock"


def lock_run_folder(folder: str | Path) -> IO[str]:
    """Take the run folder's lock: an exclusive ``flock`` on ``folder/.lock``, held until the
    returned file is closed or the process ends (the kernel releases it then, so a killed
    run leaves no stale lock). The file holds the owner's process id, for the message.

    Raises :class:`RunFolderInUse` naming the folder and the process that holds it. Where
    ``fcntl`` does not exist (Windows) the folder is not locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not Linux or macOS
        fcntl = None
    path = Path(folder) / LOCK_NAME
    try:
        f = open(path, "a+")
    except OSError as e:
        raise type(e)(e.errno, f"cannot create the run folder's lock file ({e.strerror or e})", str(path)) from e
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                raise
            f.seek(0)
            owner = f.read().strip()
            f.close()
            raise RunFolderInUse(f"run folder {str(folder)!r} is in use by another training run"
                                 f"{f' (process {owner})' if owner else ''}: wait for it to end, or train in "
                                 "another folder") from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


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
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, MemoryError,
            OverflowError, KeyError, IndexError, TypeError, AttributeError, ImportError) as e:
        # damaged bytes can make the unpickler fail anywhere: a huge allocation (MemoryError), a bad
        # opcode argument (KeyError, IndexError, OverflowError), a "class" that does not exist...
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
