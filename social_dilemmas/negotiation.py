"""Negotiation Game, continuous with public values: the batched rules (the one source of truth)."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas import xp
from social_dilemmas.core import (
    BatchedGame,
    GameState,
    check_box_actions,
    check_finite_number,
    check_positive_int,
    check_real_numbers,
    to_numpy,
)

__all__ = ["Negotiation", "NegotiationState"]

_SWAP = [1, 0]


@dataclasses.dataclass
class NegotiationState(GameState):
    """* ``values``: float32 ``[B, 2, n_items]``, this round's values of each player;
    * ``proposals``: float32 ``[B, 2, n_items]``, the proposals of the previous round (0 at reset).
    """

    values: torch.Tensor
    proposals: torch.Tensor


class Negotiation(BatchedGame[NegotiationState]):
    """Negotiation Game with continuous proposals and public values (Advantage Alignment, 2025).

    ## Description
    Every step is one complete, simultaneous, one-shot negotiation over a pool of items
    with freshly drawn values. Values are "high contrast": per item, independently,
    ``player_0`` values it ``value_low`` or ``value_high`` with equal probability and
    ``player_1`` values it ``value_low + value_high`` minus that. Both players see both
    value vectors. Each player proposes how much of every item it wants; an item is
    split in proportion to the proposals, but only fully handed out when the proposals
    add up to at least ``max_proposal``. Asking for everything guarantees a share of every
    item, yet both players do best when each asks only for the items it values more.

    ## Action space
    ``Box(0, max_proposal, (n_items,), float32)`` per player: a proposal per item.
    Every view rejects NaN, inf, values outside the box, bools, complex numbers and strings,
    naming the player (the batched view checks the values unless ``validate=False``).

    ## Observation space
    ``Box(0, 1, (5 * n_items,), float32)`` per player, every entry divided by 10:

    | Slice                      | Observation                 |
    |----------------------------|-----------------------------|
    | ``[0, n)``                 | item pool                   |
    | ``[n, 2n)``                | my values                   |
    | ``[2n, 3n)``               | my previous proposal        |
    | ``[3n, 4n)``               | the other's values          |
    | ``[4n, 5n)``               | the other's previous proposal |

    Previous proposals are 0 at reset. After a step, the observation shows the newly
    drawn values together with the proposals just made.

    ## Rewards
    ``r_me = sum_k pool_k * v_me,k * p_me,k / max(p_me,k + p_other,k, max_proposal) / Z``
    with ``Z = value_high * sum_k pool_k`` (15 with the defaults: the maximum value times
    the number of items). Each reward lies in ``[0, 1]`` and the two sum to at most 1; the
    best joint outcome, each taking the items it values ``value_high``, gives 0.5 each.

    ## Episode end
    The game never terminates; every view truncates after ``max_steps`` steps.

    ## Arguments
    * ``n_items``: number of item types (default 3).
    * ``item_pool``: quantity of each item (ints or floats, at most 10), default one of each.
    * ``value_low``, ``value_high``: the two values of the high-contrast draw (1 and 5).
    * ``max_proposal``: the upper bound of a proposal and the split threshold (5).
    * ``max_steps``: steps per episode (default 50).

    ## Version history
    * v0: initial release.
    """

    name = "negotiation"
    title = "Negotiation Game"
    action_kind = "continuous"

    def __init__(
        self,
        n_items: int = 3,
        item_pool: Any = None,
        value_low: float = 1.0,
        value_high: float = 5.0,
        max_proposal: float = 5.0,
        max_steps: int = 50,
    ):
        self.n_items = check_positive_int("n_items", n_items)
        self.reset_noise_size = self.step_noise_size = self.n_items
        allowed = f"{self.n_items} finite non-negative quantities (n_items), not all zero"
        pool = (np.ones(self.n_items) if item_pool is None else
                check_real_numbers(item_pool, "item_pool", allowed + " (ints or floats; bools and strings are refused)"))
        if pool.shape != (self.n_items,) or not np.all(np.isfinite(pool)) or np.any(pool < 0) or pool.sum() <= 0:
            raise ValueError(f"item_pool must hold {allowed}, got {item_pool!r}")
        self.value_low = check_finite_number("value_low", value_low)
        self.value_high = check_finite_number("value_high", value_high)
        if not 0 <= self.value_low <= self.value_high or self.value_high <= 0:
            raise ValueError(
                f"values must satisfy 0 <= value_low <= value_high and value_high > 0, "
                f"got value_low={value_low!r}, value_high={value_high!r}"
            )
        self.max_proposal = check_finite_number("max_proposal", max_proposal)
        if self.max_proposal <= 0:
            raise ValueError(f"max_proposal must be > 0, got {max_proposal!r}")
        if max(pool.max(), self.value_high, self.max_proposal) > 10:
            raise ValueError("item_pool, value_high and max_proposal must be at most 10 (observations are divided by 10)")
        self.item_pool = pool
        self.max_steps = check_positive_int("max_steps", max_steps)
        self.normaliser = self.value_high * float(pool.sum())
        self._pool = pool.astype(np.float32)
        self._cache: dict = {}
        self._cache_max: dict = {}
        n = self.n_items
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (5 * n,), np.float32)
        self._act_space = gymnasium.spaces.Box(0.0, self.max_proposal, (n,), np.float32)

    def config(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "item_pool": self.item_pool.tolist(),
            "value_low": self.value_low,
            "value_high": self.value_high,
            "max_proposal": self.max_proposal,
            "max_steps": self.max_steps,
        }

    def observation_space(self) -> gymnasium.spaces.Box:
        return self._obs_space

    def action_space(self) -> gymnasium.spaces.Box:
        return self._act_space

    @property
    def reward_range(self) -> tuple[float, float]:
        return 0.0, 1.0

    def pool(self, like) -> Any:
        """The item pool, float32 ``[n_items]``, on ``like``'s library and device."""
        return xp.constant(self._pool, like, self._cache)

    # -- rules --------------------------------------------------------------------------
    def draw_values(self, noise) -> Any:
        """High-contrast values ``[B, 2, n_items]`` from uniform noise ``[B, n_items]``."""
        v0 = xp.as_float(xp.lib(noise).where(noise < 0.5, self.value_low, self.value_high))
        return xp.lib(noise).stack((v0, (self.value_low + self.value_high) - v0), axis=1)

    def shares(self, proposals) -> Any:
        """The fraction of every item each player receives, ``[B, 2, n_items]``."""
        total = proposals.sum(1)[:, None]
        return proposals / xp.lib(total).maximum(total, self._max_proposal(total))

    def _max_proposal(self, like):
        return xp.constant(np.float32(self.max_proposal), like, self._cache_max)

    def init(self, noise) -> NegotiationState:
        b = noise.shape[0]
        return NegotiationState(
            t=xp.zeros_like_int(noise, (b,)),
            values=self.draw_values(noise),
            proposals=xp.zeros_like_float(noise, (b, 2, self.n_items)),
        )

    def transition(self, state: NegotiationState, actions, noise) -> tuple[NegotiationState, Any]:
        p = xp.as_float(actions)
        gains = self.shares(p) * state.values * self.pool(p)
        rewards = gains.sum(-1) / self.normaliser
        return NegotiationState(t=state.t + 1, values=self.draw_values(noise), proposals=p), rewards

    def observe(self, state: NegotiationState):
        b = state.batch_size
        v, p = state.values, state.proposals
        pool = xp.lib(v).broadcast_to(self.pool(v), (b, 2, self.n_items))
        return xp.concat([pool, v, p, v[:, _SWAP], p[:, _SWAP]], axis=-1) * 0.1

    def validate_actions(self, actions: torch.Tensor) -> None:
        check_box_actions(actions, 0.0, self.max_proposal)

    # -- rendering ----------------------------------------------------------------------
    def new_record(self, state: NegotiationState) -> dict[str, Any]:
        record = super().new_record(state)
        record.update(values=to_numpy(state.values[0]), proposals=None, shares=None)
        return record

    def update_record(self, record, prev, actions, rewards, state) -> None:
        super().update_record(record, prev, actions, rewards, state)
        p = xp.as_float(actions[0:1])
        record.update(
            values=to_numpy(prev.values[0]), proposals=to_numpy(p[0]), shares=to_numpy(self.shares(p)[0])
        )

    def frame(self, state: NegotiationState, record: dict[str, Any]) -> Any:
        from renderers.frames import NegotiationFrame

        return NegotiationFrame(
            item_pool=self.item_pool.copy(),
            values=record["values"],
            proposals=record["proposals"],
            shares=record["shares"],
            rewards=record["rewards"],
            scores=tuple(float(x) for x in record["scores"]),
            step=int(state.t[0]),
            max_steps=self.max_steps,
        )
