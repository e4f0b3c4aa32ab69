"""PyTorch training for the social-dilemma games: Advantage Alignment, Proximal Advantage
Alignment and the Stable-Baselines3 PPO baselines, behind one algorithm interface.

    from trainers import train
    from trainers.presets import make_config

    run = train(make_config("ipd", fast=True, iterations=200), "runs/ipd-fast")

* :func:`train` (:mod:`trainers.run`): the one entry point, for every algorithm.
* :mod:`trainers.presets`: configurations from the games' presets (SPEC section 7);
  :mod:`trainers.config`: the run section and the sections of the algorithms.
* :mod:`trainers.algorithms`: the registry of algorithms, one module each, and the
  on-policy core they share (:mod:`trainers.algorithms.base`).
* :mod:`trainers.losses` and :mod:`trainers.advantages`: the pure functions the
  algorithms run; :mod:`trainers.networks`: the networks.
* :mod:`trainers.players`: checkpoints as players; :mod:`trainers.evaluation`: scripted
  matches, leagues, the IPD's cooperation table.

Importing this package imports nothing else and changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["train"]


def train(config: Any = None, out: str | Path = "runs/train", **kwargs: Any) -> Any:
    """Train a run of ``config`` (a :class:`trainers.config.Config`) into the folder ``out``;
    see :func:`trainers.run.train` for ``resume``, ``progress`` and ``iterations``."""
    from trainers.run import train as run_train

    return run_train(config, out, **kwargs)
