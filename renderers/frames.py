"""Plain-data snapshots of one moment of each game, for the renderers.

The environments build one of these frozen dataclasses whenever they are asked
for a picture, and :func:`renderers.render` (or the per-game ``render_<game>``
function) turns it into an RGB array.  Nothing here depends on pygame or on the
rest of the project: a frame is just numbers.

The dataclasses are declared with ``eq=False``: several fields are numpy
arrays, for which the generated ``__eq__``/``__hash__`` would raise.  Frames
therefore compare and hash by identity.  Arrays handed to a frame should not be
mutated afterwards (the dataclass is frozen, the arrays inside are not).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["IPDFrame", "CoinGameFrame", "NegotiationFrame", "CommonsHarvestFrame"]


@dataclass(frozen=True, eq=False)
class IPDFrame:
    """One moment of an Iterated Prisoner's Dilemma episode.

    Attributes:
        actions: int array of shape ``[T, 2]``: the actions of the ``T`` rounds
            played so far (``0`` = cooperate, ``1`` = defect), player_0 in
            column 0.  ``T`` may be 0 (start of an episode) and is at most
            ``max_steps``.
        max_steps: number of rounds in an episode (the length of the drawn
            timeline, which shows at most the last
            :data:`renderers.ipd.MAX_ROUNDS_SHOWN` rounds).
        scores: running total reward of ``(player_0, player_1)``.
        rewards: reward of the last round per player, or ``None`` before the
            first round.
    """

    actions: np.ndarray
    max_steps: int
    scores: tuple
    rewards: tuple | None = None


@dataclass(frozen=True, eq=False)
class CoinGameFrame:
    """One moment of a Coin Game episode.

    Attributes:
        size: the grid is ``size x size`` cells (3 by default).
        positions: int array ``[n_players, 2]`` with the ``(row, col)`` of each
            player.  Players may share a cell.
        coin: ``(row, col)`` of the coin.
        coin_owner: index of the player who owns the coin (its colour).
        scores: running total reward per player.
        coins_picked: int array ``[n_players, n_players]``;
            ``coins_picked[i, j]`` is the number of coins owned by player ``j``
            that player ``i`` picked up this episode.
        step: steps taken so far in the episode.
        max_steps: episode length.
    """

    size: int
    positions: np.ndarray
    coin: tuple
    coin_owner: int
    scores: tuple
    coins_picked: np.ndarray
    step: int
    max_steps: int


@dataclass(frozen=True, eq=False)
class NegotiationFrame:
    """One round of the continuous Negotiation game.

    Attributes:
        item_pool: float array ``[n_items]``, quantity of each item (three
            items of quantity 1 by default).
        values: float array ``[2, n_items]``, each player's (public) value per
            unit of each item this round, typically 1..5.
        proposals: float array ``[2, n_items]`` of the proposals made this
            round, each in ``[0, 5]``; ``None`` before the first round.
        shares: float array ``[2, n_items]``, fraction of each item each player
            receives (``p_me / max(p_me + p_other, 5)``); ``None`` before the
            first round.  The two shares of an item may sum to less than 1, the
            rest stays unallocated.
        rewards: float array ``[2]``, each player's reward this round; ``None``
            before the first round.
        scores: running total reward per player.
        step: rounds played so far.
        max_steps: rounds in an episode.
    """

    item_pool: np.ndarray
    values: np.ndarray
    proposals: np.ndarray | None
    shares: np.ndarray | None
    rewards: np.ndarray | None
    scores: tuple
    step: int
    max_steps: int


@dataclass(frozen=True, eq=False)
class CommonsHarvestFrame:
    """One moment of Melting Pot's Commons Harvest Open.

    Attributes:
        world: uint8 array ``[H, W, 3]``, Melting Pot's global ``WORLD.RGB``
            view (144 x 192 for the standard map).
        scores: float array ``[n_players]`` of running returns (7 players).
        step: steps taken so far in the episode.
        max_steps: episode length.
    """

    world: np.ndarray
    scores: np.ndarray
    step: int
    max_steps: int
