"""The registry of algorithms: ``--algo NAME`` -> the :class:`~trainers.algorithms.base.Algorithm` subclass.

Built in (each one module, imported on first use so that ``import trainers`` stays cheap
and Stable-Baselines3 is loaded only for its baselines)::

    adalign             trainers.algorithms.adalign            Advantage Alignment, REINFORCE form (SPEC 5)
    proximal_adalign    trainers.algorithms.proximal_adalign   Proximal Advantage Alignment, PPO form (SPEC 6)
    ppo                 trainers.algorithms.ppo                Stable-Baselines3's PPO in self-play
    ppo_shared_reward   trainers.algorithms.ppo                PPO on the sum of the players' rewards (PPO-SR)
    loqa                trainers.algorithms.loqa               LOQA, opponent Q-learning awareness (SPEC 7b)
    mfos                trainers.algorithms.mfos               M-FOS, model-free opponent shaping, IPD and Coin Game (SPEC 7b)
    pola                trainers.algorithms.pola               POLA-DiCE, proximal LOLA with look-ahead (SPEC 7b)

A new algorithm is one module with an :class:`~trainers.algorithms.base.Algorithm`
subclass (usually of :class:`~trainers.algorithms.base.OnPolicy`, overriding
``update_actor``) and its configuration section, registered by :func:`register` (in a
process: a test, a notebook) or by an entry point of the :data:`ENTRY_POINTS` group in
its package's ``pyproject.toml``: ``NAME = "package.module:Class"``. Nothing else changes:
the command line, the run folder, resume, the league and every other player loader find
it here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

__all__ = ["register", "get", "names", "ENTRY_POINTS"]

#: Entry-point group through which installed packages add algorithms.
ENTRY_POINTS = "social_dilemmas.algorithms"

_BUILT_IN: dict[str, str] = {
    "adalign": "trainers.algorithms.adalign:AdAlign",
    "proximal_adalign": "trainers.algorithms.proximal_adalign:ProximalAdAlign",
    "ppo": "trainers.algorithms.ppo:PPO",
    "ppo_shared_reward": "trainers.algorithms.ppo:PPOSharedReward",
    "loqa": "trainers.algorithms.loqa:LOQA",
    "mfos": "trainers.algorithms.mfos:MFOS",
    "pola": "trainers.algorithms.pola:POLA",
}
_registered: dict[str, type] = {}


def register(cls: type, name: str | None = None) -> type:
    """Register an algorithm class under ``name`` (default: its ``name`` attribute); returns the
    class, so it can decorate it. Its section's fields may not reuse the run section's names."""
    from trainers.config import RunConfig

    name = name or getattr(cls, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"an algorithm's name must be an identifier, got {name!r}")
    for attr in ("Config", "train_step", "state_dict", "load_state_dict", "player"):
        if not hasattr(cls, attr):
            raise TypeError(f"{cls.__name__} is not an algorithm: it has no {attr!r} (see trainers.algorithms.base.Algorithm)")
    clash = sorted(RunConfig.field_names() & cls.Config.field_names())
    if clash:
        raise ValueError(f"{cls.__name__}.Config reuses the run section's names {clash}; every name means one thing")
    _registered[name] = cls
    return cls


def _installed() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINTS)}


def names() -> list[str]:
    """Every algorithm's name: the built-in ones, the installed ones, then those registered here."""
    return list(dict.fromkeys([*_BUILT_IN, *_installed(), *_registered]))


def get(name: str) -> Any:
    """The algorithm class registered as ``name``; a ``ValueError`` listing the names otherwise."""
    if name in _registered:
        return _registered[name]
    if name in _BUILT_IN:
        module, _, attr = _BUILT_IN[name].partition(":")
        return getattr(importlib.import_module(module), attr)
    entry = _installed().get(name)
    if entry is not None:
        return entry.load()
    raise ValueError(f"algo = {name!r} is invalid: allowed values are {names()}")
