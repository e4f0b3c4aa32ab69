"""Iterated Prisoner's Dilemma: the batched rules (the one source of truth)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas import xp
from social_dilemmas.core import (
    BatchedGame,
    GameState,
    check_discrete_actions,
    check_positive_int,
    check_real_numbers,
    to_numpy,
)

__all__ = ["IPD", "IPDState", "DEFAULT_PAYOFF", "COOPERATE", "DEFECT", "MEMORY_ONE_STATES", "memory_one_values"]

COOPERATE = 0
DEFECT = 1

#: Payoff to the row player ``payoff[my_action][other_action]`` (the LOLA / LOQA matrix):
#: CC -> -1, CD -> -3, DC -> 0, DD -> -2.
DEFAULT_PAYOFF = ((-1.0, -3.0), (0.0, -2.0))

#: The entries of a memory-one IPD policy ``[5]`` of cooperation probabilities, each from the
#: player's own side: the first round, then after each last round (my action, other's action).
MEMORY_ONE_STATES = ("start", "CC", "CD", "DC", "DD")

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_SWAP = [1, 0]  # reorders players so each sees itself first
_ACTIONS = np.array([COOPERATE, DEFECT], dtype=np.int64)


@dataclasses.dataclass
class IPDState(GameState):
    """``last``: int64 ``[B, 2]``, each player's action in the previous round, ``-1`` before the first."""

    last: torch.Tensor


class IPD(BatchedGame[IPDState]):
    """Iterated Prisoner's Dilemma.

    ## Description
    Two players play the one-shot Prisoner's Dilemma repeatedly for ``max_steps`` rounds,
    moving simultaneously. Each round a player either cooperates or defects; defecting
    pays more whatever the other does, yet both are better off cooperating than both
    defecting. The game is the standard testbed of opponent shaping (LOLA, LOQA,
    Advantage Alignment), where learners should discover reciprocity such as tit-for-tat.

    ## Action space
    ``Discrete(2)`` per player.

    | Num | Action    |
    |-----|-----------|
    | 0   | cooperate |
    | 1   | defect    |

    ## Observation space
    ``Box(0, 1, (4,), float32)`` per player, from the player's own point of view: the
    one-hot of the last round. All zeros at the first step (no round played yet); a
    recurrent policy provides memory of longer histories. The batched view can give them as
    uint8 (``make_vec(..., obs_dtype="uint8")``).

    | Index | Observation         |
    |-------|---------------------|
    | 0     | I cooperated        |
    | 1     | I defected          |
    | 2     | other cooperated    |
    | 3     | other defected      |

    ## Rewards
    ``payoff[my_action][other_action]``, by default (the LOLA / LOQA matrix):

    |              | other C | other D |
    |--------------|---------|---------|
    | **I play C** | -1      | -3      |
    | **I play D** | 0       | -2      |

    Rewards lie in ``[min(payoff), max(payoff)]``.

    ## Episode end
    The game never terminates; every view truncates after ``max_steps`` rounds.

    ## Arguments
    * ``payoff``: 2x2 matrix ``[[R, S], [T, P]]`` of the row player's payoffs: finite ints
      or floats that fit in float32 (the rewards' type); bools and strings are refused. A
      matrix that is not a dilemma (``T > R > P > S``) is accepted with a warning.
    * ``max_steps``: rounds per episode, default 16 (the paper's episode length).

    ## Version history
    * v0: initial release.
    """

    name = "ipd"
    title = "Iterated Prisoner's Dilemma"
    action_kind = "discrete"
    compact_obs_dtypes = (torch.uint8,)

    def __init__(self, payoff: Any = DEFAULT_PAYOFF, max_steps: int = 16):
        allowed = f"a 2x2 matrix [[R, S], [T, P]] of finite numbers of at most {_FLOAT32_MAX:.3g} in size"
        arr = check_real_numbers(payoff, "payoff", allowed + " (ints or floats; bools and strings are refused)")
        if arr.shape != (2, 2):
            raise ValueError(f"payoff must be {allowed}, got shape {arr.shape}: {payoff!r}")
        if not np.all(np.isfinite(arr)) or np.any(np.abs(arr) > _FLOAT32_MAX):
            # rewards are float32: a larger value would become inf
            raise ValueError(f"payoff must be {allowed}, got {arr.tolist()}")
        (r, s), (t, p) = arr
        if not t > r > p > s:
            warnings.warn(
                f"payoff {arr.tolist()} is not a Prisoner's Dilemma (needs T > R > P > S with "
                f"R={r}, S={s}, T={t}, P={p})",
                stacklevel=2,
            )
        self.payoff = arr
        self.max_steps = check_positive_int("max_steps", max_steps)
        self._payoff_flat = arr.reshape(-1).astype(np.float32)
        self._cache: dict = {}
        self._cache_actions: dict = {}
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (4,), np.float32)
        self._act_space = gymnasium.spaces.Discrete(2)

    def config(self) -> dict[str, Any]:
        return {"payoff": self.payoff.tolist(), "max_steps": self.max_steps}

    def observation_space(self) -> gymnasium.spaces.Box:
        return self._obs_space

    def action_space(self) -> gymnasium.spaces.Discrete:
        return self._act_space

    @property
    def reward_range(self) -> tuple[float, float]:
        return float(self.payoff.min()), float(self.payoff.max())

    # -- rules --------------------------------------------------------------------------
    def init(self, noise) -> IPDState:
        b = noise.shape[0]
        return IPDState(t=xp.zeros_like_int(noise, (b,)), last=xp.zeros_like_int(noise, (b, 2), fill=-1))

    def transition(self, state: IPDState, actions, noise) -> tuple[IPDState, Any]:
        a = xp.as_int(actions)
        # index of (my action, other action) in the flattened payoff, for both players at once
        rewards = xp.constant(self._payoff_flat, a, self._cache)[a * 2 + a[:, _SWAP]]
        return IPDState(t=state.t + 1, last=a), rewards

    def observe(self, state: IPDState):
        return xp.as_float(self._one_hot(state))

    def observe_as(self, state: IPDState, dtype: torch.dtype) -> torch.Tensor:
        """The observations in ``dtype`` (float32 or uint8) from the same one-hot comparison."""
        return self._one_hot(state).to(dtype)

    def _one_hot(self, state: IPDState):
        last = state.last
        # [B, 2 (player), 2 (me, other)] from each player's side, one-hot over {C, D};
        # the -1 of "no round yet" matches neither, giving all zeros
        sides = xp.lib(last).stack((last, last[:, _SWAP]), axis=1)
        return (sides[..., None] == xp.constant(_ACTIONS, last, self._cache_actions)).reshape(state.batch_size, 2, 4)

    def action_metrics(self, actions: torch.Tensor) -> dict[str, float]:
        """``{"cooperation": the fraction of cooperative moves}``."""
        return {"cooperation": float((actions == COOPERATE).float().mean())}

    def validate_actions(self, actions: torch.Tensor) -> None:
        check_discrete_actions(actions, 2, "0 (cooperate) or 1 (defect)")

    # -- rendering ----------------------------------------------------------------------
    def new_record(self, state: IPDState) -> dict[str, Any]:
        record = super().new_record(state)
        record["actions"] = []
        return record

    def update_record(self, record, prev, actions, rewards, state) -> None:
        super().update_record(record, prev, actions, rewards, state)
        record["actions"].append(to_numpy(actions[0]).astype(np.int64))

    def frame(self, state: IPDState, record: dict[str, Any]) -> Any:
        from renderers.frames import IPDFrame

        return IPDFrame(
            actions=np.asarray(record["actions"], dtype=np.int64).reshape(-1, 2),
            max_steps=self.max_steps,
            scores=tuple(float(x) for x in record["scores"]),
            rewards=None if record["rewards"] is None else tuple(float(x) for x in record["rewards"]),
        )


def memory_one_values(coop_a: torch.Tensor, coop_b: torch.Tensor, gamma: float,
                      payoff: Any = DEFAULT_PAYOFF) -> torch.Tensor:
    """The exact discounted returns ``E[sum_t gamma^t r_t]`` of the infinite IPD between two
    memory-one players (the analytic game of LOLA and M-FOS), differentiable in both.

    ``coop_a``, ``coop_b``: ``[B, 5]`` cooperation probabilities in the order of
    :data:`MEMORY_ONE_STATES`, each from its own player's side (``b``'s ``CD`` is "b
    cooperated, a defected"). The rounds form a Markov chain over the joint last round
    ``s`` in (CC, CD, DC, DD) of ``a``'s side; with ``p0`` the distribution of the first
    round, ``P`` the transition matrix and ``r`` a player's payoff per joint round::

        V = p0^T (I - gamma P)^{-1} r

    Returns ``[B, 2]``: ``a``'s and ``b``'s discounted returns; ``(1 - gamma) * V`` is the
    reward per step. ``payoff``: the row player's ``[[R, S], [T, P]]`` (:class:`IPD`'s)."""
    if coop_a.shape != coop_b.shape or coop_a.dim() != 2 or coop_a.shape[1] != 5:
        raise ValueError(f"coop_a and coop_b must both be [B, 5] cooperation probabilities, got "
                         f"{tuple(coop_a.shape)} and {tuple(coop_b.shape)}")
    if not 0 <= gamma < 1:
        raise ValueError(f"gamma must be in [0, 1), got {gamma!r}")
    pay = torch.as_tensor(np.asarray(payoff, dtype=np.float64), dtype=coop_a.dtype, device=coop_a.device)
    # b's entries re-ordered to a's side: a's CD is b's DC
    b_seen = coop_b[:, [0, 1, 3, 2, 4]]

    def joint(pa: torch.Tensor, pb: torch.Tensor) -> torch.Tensor:  # over (CC, CD, DC, DD)
        return torch.stack((pa * pb, pa * (1 - pb), (1 - pa) * pb, (1 - pa) * (1 - pb)), -1)

    p0 = joint(coop_a[:, 0], b_seen[:, 0])  # [B, 4]
    transition = joint(coop_a[:, 1:], b_seen[:, 1:])  # [B, 4 (from), 4 (to)]
    eye = torch.eye(4, dtype=coop_a.dtype, device=coop_a.device)
    # occupancy x = p0^T (I - gamma P)^{-1}, i.e. (I - gamma P)^T x = p0
    occupancy = torch.linalg.solve((eye - gamma * transition).transpose(1, 2), p0.unsqueeze(-1)).squeeze(-1)
    rewards = torch.stack((pay.reshape(4), pay.T.reshape(4)), -1)  # [4 joint rounds, 2 players]
    return occupancy @ rewards
