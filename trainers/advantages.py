"""Value estimators and the advantages the actor losses take (SPEC sections 5-7).

Pure functions, as in :mod:`trainers.losses`: they read their arguments without modifying
them, return **detached** tensors (advantages, returns and targets are weights and targets,
never paths for gradient), keep no state and work on any device and floating dtype.
Tensors are batch first, time second: ``[B, T, ...]``.

* :func:`gae`, :func:`td0_targets`, :func:`monte_carlo_returns`: the estimators.
* :func:`normalize_advantages`: zero mean, unit std.
* :func:`others_sum`: for every player of a game, the sum of the other players' advantages
  (the ``sum_{j != i} A^j`` of the alignment term), rows laid out ``game * n_players + seat``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["check_time_major", "gae", "td0_targets", "monte_carlo_returns", "normalize_advantages", "others_sum"]


def check_time_major(name: str, x: Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(f"{name} must be shaped [B, T, ...] (batch, time, ...); got {tuple(x.shape)}")


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    dones: Tensor,
    gamma: float,
    lam: float,
    *,
    truncated: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Generalised Advantage Estimation over the time dimension (dim 1).

    Shapes: ``rewards``, ``values``, ``next_values``, ``dones`` (and ``truncated``) are
    all ``[B, T, ...]`` (same shape). ``dones`` may be bool or float.

    * ``values[b, t]``      = V(s_t)
    * ``next_values[b, t]`` = V(s_{t+1}), the value of the state reached after step t
      (at the end of the window this is the bootstrap value).
    * ``dones[b, t]``       = True where the episode ends after step t: no bootstrap
      from ``next_values[b, t]`` and the recursion does not cross it.
    * ``truncated[b, t]`` (optional) = True where the episode is cut after step t but
      should still bootstrap from ``next_values[b, t]``: the recursion is cut there,
      the TD error keeps the bootstrap. Only needed when a window holds several
      episodes that end by truncation and the critic's value of the final state is
      not already zero.

    Formula (``d_t = dones``, ``c_t = 1 - max(d_t, truncated_t)``)::

        delta_t = r_t + gamma * (1 - d_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * c_t * A_{t+1},      A_T = 0
        returns = A + values

    ``lam = 1`` gives the discounted return minus the value, ``lam = 0`` the TD error.

    Returns ``(advantages, returns)``, both ``[B, T, ...]`` and **detached** (no
    gradient flows to the critic through them; they are targets / weights).
    """
    for name, x in (("rewards", rewards), ("values", values), ("next_values", next_values), ("dones", dones)):
        check_time_major(name, x)
    if not (rewards.shape == values.shape == next_values.shape == dones.shape):
        raise ValueError(
            "gae: rewards, values, next_values and dones must share a shape; got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(next_values.shape)}, {tuple(dones.shape)}"
        )
    with torch.no_grad():
        values = values.detach()
        dtype = torch.promote_types(rewards.dtype, values.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        r = rewards.detach().to(dtype)
        v = values.to(dtype)
        nv = next_values.detach().to(dtype)
        not_done = 1.0 - dones.detach().to(dtype)
        cont = not_done
        if truncated is not None:
            if truncated.shape != dones.shape:
                raise ValueError(f"gae: truncated must be shaped like dones {tuple(dones.shape)}")
            cont = not_done * (1.0 - truncated.detach().to(dtype))
        delta = r + gamma * not_done * nv - v
        steps = []
        last = torch.zeros_like(delta[:, 0])
        for t in range(delta.shape[1] - 1, -1, -1):
            last = delta[:, t] + (gamma * lam) * cont[:, t] * last
            steps.append(last)
        advantages = torch.stack(steps[::-1], dim=1)
        returns = advantages + v
    return advantages, returns


def td0_targets(rewards: Tensor, next_values: Tensor, dones: Tensor, gamma: float) -> Tensor:
    """One-step TD targets ``y_t = r_t + gamma * (1 - d_t) * V(s_{t+1})``.

    Shapes: all ``[B, T, ...]`` (any matching shapes work, this is elementwise);
    ``dones`` bool or float. ``next_values`` usually comes from the target critic.
    Returns a detached tensor of the same shape.
    """
    with torch.no_grad():
        nv = next_values.detach()
        dtype = torch.promote_types(rewards.dtype, nv.dtype)
        if not dtype.is_floating_point:
            dtype = torch.get_default_dtype()
        return rewards.detach().to(dtype) + gamma * (1.0 - dones.detach().to(dtype)) * nv.to(dtype)


def monte_carlo_returns(
    rewards: Tensor, dones: Tensor, gamma: float, bootstrap: Tensor | None = None
) -> Tensor:
    """Discounted returns ``G_t = r_t + gamma * (1 - d_t) * G_{t+1}`` (backward over T).

    Shapes: ``rewards``, ``dones`` ``[B, T, ...]``; ``bootstrap`` (optional) shaped like
    one time slice ``[B, ...]``: the value used for ``G_T`` after the last step (0 when
    None). A done at step t stops the sum there (nothing after it is added).
    Returns a detached ``[B, T, ...]`` tensor.
    """
    check_time_major("rewards", rewards)
    if dones.shape != rewards.shape:
        raise ValueError(f"monte_carlo_returns: dones {tuple(dones.shape)} must match rewards {tuple(rewards.shape)}")
    with torch.no_grad():
        dtype = rewards.dtype if rewards.dtype.is_floating_point else torch.get_default_dtype()
        r = rewards.detach().to(dtype)
        not_done = 1.0 - dones.detach().to(dtype)
        if bootstrap is None:
            g = torch.zeros_like(r[:, 0])
        else:
            g = bootstrap.detach().to(dtype).expand_as(r[:, 0])
        out = []
        for t in range(r.shape[1] - 1, -1, -1):
            g = r[:, t] + gamma * not_done[:, t] * g
            out.append(g)
        return torch.stack(out[::-1], dim=1)


def normalize_advantages(adv: Tensor, eps: float = 1e-8, dim=None) -> Tensor:
    """``(adv - mean) / (std + eps)``: zero mean, unit (population) std.

    Statistics over all elements (``dim=None``) or over ``dim`` (kept for
    broadcasting). The population std (no Bessel correction) is used, so a single
    element gives 0 instead of NaN. Returns a new detached tensor.
    """
    adv = adv.detach()
    if dim is None:
        mean, std = adv.mean(), adv.std(correction=0)
    else:
        mean = adv.mean(dim=dim, keepdim=True)
        std = adv.std(dim=dim, keepdim=True, correction=0)
    return (adv - mean) / (std + eps)


def others_sum(adv: Tensor, n_players: int) -> Tensor:
    """For every row, the sum of the advantages of the other players of its game.

    ``adv`` is ``[N, T]`` with ``N = games * n_players`` rows laid out ``game * n_players +
    seat`` (the rollouts' layout); the result has the same shape and is detached."""
    per_game = adv.detach().view(-1, n_players, adv.shape[1])
    return (per_game.sum(1, keepdim=True) - per_game).reshape(adv.shape)
