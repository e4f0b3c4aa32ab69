"""TensorBoard writers that never import TensorFlow.

``tensorboard`` imports TensorFlow when it is installed (the Melting Pot extra brings it),
which costs seconds and fills the terminal with TensorFlow's start-up log. Writing event
files needs none of it: registering ``tensorboard.compat.notf`` makes TensorBoard use its
own small stub instead.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

__all__ = ["summary_writer", "use_tensorboard_stub"]


def use_tensorboard_stub() -> None:
    """Make TensorBoard use its TensorFlow stub in this process. Called when ``trainers`` is
    imported: Stable-Baselines3 imports ``torch.utils.tensorboard`` at import time, which
    imported TensorFlow (5 s and a screen of start-up log in every process)."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


def summary_writer(logdir: str | Path, purge_step: int | None = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` for ``logdir``, or None without tensorboard
    (through the stub that importing ``trainers`` registered)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(logdir), purge_step=purge_step)
