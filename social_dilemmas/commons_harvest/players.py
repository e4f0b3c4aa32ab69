"""The scripted players of Commons Harvest Open and :func:`resolve_commons_harvest_player`,
which turns a name, a saved player's path, a policy or a callable into a
:class:`~social_dilemmas.policies.Policy`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from social_dilemmas.commons_harvest.observations import ACTION_NAMES, CommonsHarvestSpec
from social_dilemmas.policies import Policy, resolve_player, saved_player_format, saved_player_suffixes

__all__ = ["SCRIPTED_PLAYERS", "resolve_commons_harvest_player"]


class _RandomPlayer(Policy):
    name = "random"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.randint(len(ACTION_NAMES), (obs.shape[0],), generator=getattr(self, "generator", None)).to(obs.device)


class _NoopPlayer(Policy):
    name = "noop"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], dtype=torch.int64, device=obs.device)


#: the scripted players of Commons Harvest: uniform random actions, and standing still
SCRIPTED_PLAYERS = {"random": _RandomPlayer, "noop": _NoopPlayer}


def resolve_commons_harvest_player(player: Any, spec: CommonsHarvestSpec) -> Policy:
    """A player of Commons Harvest as a :class:`~social_dilemmas.policies.Policy`: ``"random"``,
    ``"noop"``, a saved player's path, a ``Policy``, or a callable ``fn(observation) -> action``.

    A saved player is loaded by the loader of its suffix in the
    :data:`~social_dilemmas.policies.PLAYER_ENTRY_POINTS` group, imported only then: a training
    checkpoint ``DIR/checkpoint.pt`` of ``python -m trainers train --env commons_harvest_open``
    (a checkpoint of another game is a ``ValueError`` naming both), an SB3 model ``.zip``. The player must have been trained on observations
    of ``spec``'s size.
    """
    if isinstance(player, str) and player in SCRIPTED_PLAYERS:
        return SCRIPTED_PLAYERS[player]()
    if isinstance(player, (str, Path)) and saved_player_format(player) is None:
        raise ValueError(
            f"unknown player {str(player)!r} for commons_harvest_open; allowed values: {sorted(SCRIPTED_PLAYERS)}, "
            f"a saved player's path ({', '.join(saved_player_suffixes())}), a Policy, or a callable obs -> action"
        )
    return resolve_player(player, spec)
