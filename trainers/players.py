"""Checkpoints as players: ``DIR/checkpoint.pt`` -> a :class:`~social_dilemmas.policies.Policy`, through the algorithm registry.

:func:`load_player` is the ``.pt`` loader of the ``social_dilemmas.players`` entry points
(``pyproject.toml``), so a checkpoint is a player everywhere one is accepted: the league
(``--players runs/x/checkpoint.pt``), the recorder, the Gymnasium opponent
(``opponent="runs/x/checkpoint.pt"``), Commons Harvest's scenarios. The checkpoint names
its algorithm; the algorithm's ``player()`` builds the policy. Checkpoints of the first
trainers (format 1) still load: their flat configuration is converted
(:func:`trainers.presets.legacy_config`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from social_dilemmas.policies import Policy
from trainers import algorithms
from trainers.common import CheckpointError, read_checkpoint
from trainers.config import Config
from trainers.presets import config_from_dict, legacy_config

__all__ = ["CHECKPOINT_FORMAT", "load_player", "read_run_checkpoint"]

#: Version of ``checkpoint.pt``'s layout: ``{"format", "algo", "config", "iteration", "state"}``
#: (1: the first trainers' checkpoints, which held their networks at the top level).
CHECKPOINT_FORMAT = 2


def read_run_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Config, dict[str, Any], dict[str, Any]]:
    """``(config, state, checkpoint)`` of the checkpoint file ``path``. Format 1 comes back
    converted, with ``checkpoint["format"] == 1``; anything else is a
    :class:`~trainers.common.CheckpointError` naming the file."""
    ckpt = read_checkpoint(path, device)
    where = f"checkpoint {str(path)!r}"
    try:
        if ckpt.get("format") == CHECKPOINT_FORMAT:
            return config_from_dict(ckpt["config"], where), ckpt["state"], ckpt
        if "config" in ckpt and ("actor" in ckpt or "model" in ckpt):  # the first trainers' checkpoints
            old = json.loads(ckpt["config"]) if isinstance(ckpt["config"], str) else ckpt["config"]
            config = legacy_config(old, ckpt.get("network"))
            state = {"actor": ckpt["actor"] if "actor" in ckpt else ckpt["model"]}
            return config, state, {**ckpt, "format": 1}
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where} is damaged or of an unknown layout ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{where} is not a social-dilemmas trainer checkpoint")


def load_player(path: str | Path, game: Any = None, device: str | torch.device = "cpu", greedy: bool = False) -> Policy:
    """The agent saved in the checkpoint ``path`` as a player of ``game``.

    ``game`` (a game's spec: a ``BatchedGame`` or ``social_dilemmas.spec(name)``) must be the
    game the agent was trained on, with the same observations and actions (Commons Harvest:
    the trained image size, channels last or first); another game is a ``ValueError``
    naming both. None: the game it was trained on. ``greedy``: the most likely action
    instead of sampling. A damaged or foreign file is a :class:`~trainers.common.CheckpointError`
    naming it."""
    config, state, _ = read_run_checkpoint(path, device)
    trained = config.run.env
    game_name = getattr(game, "name", None)
    if game is not None and game_name != trained:
        raise ValueError(f"checkpoint {str(path)!r} holds an agent for {trained}, not for {game_name or repr(game)}")
    name = Path(path).parent.name or Path(path).stem
    cls = algorithms.get(config.run.algo)
    try:
        return cls.player(config, state, game, device=device, greedy=greedy, name=f"{config.run.algo}:{name}")
    except CheckpointError as e:  # the algorithm's own (SB3's model in the checkpoint): name the file
        raise CheckpointError(f"checkpoint {str(path)!r}: {e}") from None
    except (RuntimeError, KeyError, TypeError, IndexError, AttributeError) as e:  # e.g. torch's size mismatch
        raise CheckpointError(f"checkpoint {str(path)!r} holds weights that do not fit the agent its configuration "
                              f"describes ({config.run.algo} on {config.run.env}): {type(e).__name__}: "
                              f"{' '.join(str(e).split())[:300]}") from None
