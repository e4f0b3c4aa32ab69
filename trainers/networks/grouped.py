"""Many copies of one network with different weights, run at once (agent replay's snapshots).

The published IPD and Coin Game runs give every game of a batch its own opponent, drawn from
the agent's past snapshots. Running one network per game would cost one call per game and
step; instead the snapshots' weights are stacked (:func:`stack_states`) and
``torch.func.vmap`` runs the network's vmappable ``forward`` once for all of them
(:func:`grouped_call`): group ``g`` of every input goes through snapshot ``g``'s weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

__all__ = ["stack_states", "grouped_call"]


def stack_states(states: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """State dicts of one network (parameters and buffers), stacked along a new first dimension."""
    if not states:
        raise ValueError("stack_states needs at least one state dict")
    return {name: torch.stack([s[name] for s in states]) for name in states[0]}


def grouped_call(module: nn.Module, stacked: dict[str, Tensor], *args: Tensor, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` with the weights ``stacked[name][g]`` on ``args[i][g]`` for
    every group ``g`` (every tensor argument has the groups as its first dimension); the outputs
    have the groups first too. ``module``'s weights are not used, only its code."""
    def one(weights: dict[str, Tensor], *a: Tensor) -> Any:
        return functional_call(module, weights, a, kwargs)

    return vmap(one)(stacked, *args)
