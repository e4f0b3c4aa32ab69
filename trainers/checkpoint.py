"""Checkpoints: atomic writes, and trained agents as players of the policy interface."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from social_dilemmas.policies import Policy

__all__ = ["atomic_write", "atomic_save", "load_checkpoint", "AgentPolicy", "load_policy"]


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


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    # "actor": the AdAlign trainer's; "model": the Commons Harvest trainer's one network
    if not isinstance(ckpt, dict) or ("actor" not in ckpt and "model" not in ckpt) or "config" not in ckpt:
        raise ValueError(f"{str(path)!r} is not a social-dilemmas trainer checkpoint")
    return ckpt


class AgentPolicy(Policy):
    """A trained actor playing one seat of a batch of games (recurrent state per game).

    ``greedy=True`` plays the most likely action (the squashed mean for Negotiation)
    instead of sampling.
    """

    def __init__(self, actor: torch.nn.Module, name: str = "agent", greedy: bool = False):
        self.actor = actor.eval()
        self.name = name
        self.greedy = greedy
        self.h: torch.Tensor | None = None
        self.generator: torch.Generator | None = None

    def reset(self, num_envs: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> None:
        super().reset(num_envs, device, generator)
        self.actor.to(self.device)
        self.h = self.actor.initial_state(num_envs, self.device)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0)
        self.generator = generator

    def reset_envs(self, mask: torch.Tensor) -> None:
        if self.h is not None:  # not in place: h is an inference tensor after an act() under inference_mode
            self.h = self.h.masked_fill(mask.to(self.h.device).view(1, -1, *([1] * (self.h.dim() - 2))), 0.0)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        from trainers.networks import sample_action

        if self.h is None or self.h.shape[1] != obs.shape[0]:
            self.reset(obs.shape[0], obs.device, self.generator if self.h is not None else None)
        dist, self.h = self.actor.step(obs.to(self.device).float(), self.h)
        if self.greedy:
            action = dist.mode() if hasattr(dist, "base_entropy") else dist.probs.argmax(-1)
        else:
            action = sample_action(dist, self.generator)
        return action.to(obs.device)


def load_policy(path: str | Path, game=None, device: str | torch.device = "cpu", greedy: bool = False) -> Policy:
    """The agent saved in a trainer checkpoint as a :class:`Policy`: an :class:`AgentPolicy`,
    or for Commons Harvest Open a :class:`trainers.commons_harvest.CommonsHarvestPolicy`.

    ``game``, when given, must be the game the agent was trained on (same name and the
    same observation and action spaces; for Commons Harvest a
    :class:`~social_dilemmas.commons_harvest.CommonsHarvestSpec` whose images are the
    trained size in RGB, channels last or first). Another game is a ``ValueError`` naming both.
    """
    from trainers.config import TrainConfig

    ckpt = load_checkpoint(path, device)
    cfg = TrainConfig.from_json(ckpt["config"])
    name = Path(path).parent.name or Path(path).stem
    game_name = getattr(game, "name", None)
    if game is not None and game_name != cfg.env:
        raise ValueError(f"checkpoint {str(path)!r} holds an agent for {cfg.env}, not for {game_name or repr(game)}")
    if cfg.env == "commons_harvest_open":
        from trainers.commons_harvest import load_commons_harvest_policy

        return load_commons_harvest_policy(ckpt, game, device, greedy, name)

    from trainers.adalign import make_training_game
    from trainers.networks import build_networks

    trained_on = make_training_game(cfg)
    if game is not None:
        if game.name != trained_on.name or game.obs_shape != trained_on.obs_shape or game.action_shape != trained_on.action_shape:
            raise ValueError(f"checkpoint {str(path)!r} holds an agent for {trained_on!r}, not for {game!r}")
    actor, _ = build_networks(trained_on, cfg.hidden, actor_recurrent=cfg.actor_recurrent)
    actor.load_state_dict(ckpt["actor"])
    return AgentPolicy(actor.to(device), name=f"{cfg.algo}:{name}", greedy=greedy)
