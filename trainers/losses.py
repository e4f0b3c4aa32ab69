"""The losses of Advantage Alignment, Proximal Advantage Alignment and the critic (SPEC sections 5-7).

These are the functions the trainers run (the value estimators are in
:mod:`trainers.advantages`). Every function here is pure: it reads its tensor arguments
without modifying them, keeps no global state, and works on any device and floating dtype
(the result has the device and dtype of the inputs).

Conventions
-----------
* Tensors are **batch first, time second**: ``[B, T]``, optionally followed by extra
  trailing dimensions (for example players): ``[B, T, ...]``.  Time is always dim 1.
* Advantages, returns and targets carry **no gradient**: every loss detaches the
  advantages it receives, so gradient flows only through the log-probabilities (actor
  losses) or the values (critic loss).
* "Past aggregate" of an agent's own advantages, written ``past(A)_t`` below, is
  computed by :func:`past_advantage_mean`; it is 0 at ``t = 0``.

Main formulas (agent ``i``, other players ``j != i``)::

    loss_pg = - mean_{b,t} [ A_t * log pi_t ]
    loss_aa = - mean_{b, t>=1} [ past(A)_t * (sum_{j != i} Aj_t) * log pi_t ]
    A*_t    = A_t + beta * past(A)_t * sum_{j != i} Aj_t          (A*_0 = A_0)

with ``past(A)_t = (1/t) * sum_{k<t} A_k`` (``mode="mean"``, the released code's
default) or, with ``mode="discounted"``, the paper's discounted sums: in the REINFORCE
form ``gamma^{t+1} * sum_{k<t} gamma^{t-k} A_k`` (Eq. 8, whose ``gamma^t`` weighs step
``t`` of the return), in the aligned advantage ``gamma * sum_{k<t} gamma^{t-k} A_k``
(Eq. 10: the ratio of the PPO surrogate carries no ``gamma^t``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.advantages import check_time_major

__all__ = [
    "SIGN_CASES",
    "PAST_MODES",
    "past_advantage_mean",
    "sign_case_mask",
    "alignment_weights",
    "advantage_alignment_term",
    "reinforce_loss",
    "adalign_loss",
    "aligned_advantages",
    "ppo_clip_loss",
    "proximal_adalign_loss",
    "critic_loss",
]

#: Sign cases of the alignment term, as (sign of past own aggregate, sign of the other
#: players' advantage) -- paper Fig. 1a and the C/E/V/S ablations of Fig. 7.
SIGN_CASES: dict[str, tuple[int, int]] = {
    "cooperative": (+1, +1),
    "empathetic": (+1, -1),
    "vengeful": (-1, +1),
    "spiteful": (-1, -1),
}

#: Aggregation modes of :func:`past_advantage_mean`.
PAST_MODES = ("mean", "discounted")

Masks = str | Iterable[str] | None


# --------------------------------------------------------------------------------------
# Advantage Alignment (REINFORCE form, SPEC section 5)
# --------------------------------------------------------------------------------------


def past_advantage_mean(adv: Tensor, mode: str = "mean", gamma: float | None = None, time_discount: bool = True) -> Tensor:
    """Aggregate of an agent's PAST advantages at every time step.

    ``adv`` is ``[B, T, ...]`` (time = dim 1); the result has the same shape, and its
    value at ``t = 0`` is 0 (there is no past).

    * ``mode="mean"`` (default, the released code)::

          past_t = (1/t) * sum_{k<t} A_k        for t >= 1,    past_0 = 0

    * ``mode="discounted"`` (paper Eq. 8, needs ``gamma``)::

          past_t = gamma^{t+1} * sum_{k<t} gamma^{t-k} A_k

      (the ``gamma^{t+1}`` is the paper's ``gamma^t`` of the time step times the extra
      ``gamma`` of the alignment term). With ``time_discount=False`` the ``gamma^t`` of
      the time step is left out, as in the aligned advantage of Eq. 10::

          past_t = gamma * sum_{k<t} gamma^{t-k} A_k

    Vectorised: cumsum for the mean, a ``[T, T]`` lower-triangular weight matrix for the
    discounted form (no negative powers of gamma, so no overflow on long horizons).
    This helper does not detach: the alignment functions below detach its input.
    """
    check_time_major("adv", adv)
    T = adv.shape[1]
    if mode == "mean":
        csum = torch.cumsum(adv, dim=1)
        past_sum = torch.cat([torch.zeros_like(adv[:, :1]), csum[:, :-1]], dim=1)
        t = torch.arange(T, device=adv.device, dtype=adv.dtype).clamp(min=1)
        t = t.view((1, T) + (1,) * (adv.dim() - 2))
        return past_sum / t
    if mode == "discounted":
        if gamma is None:
            raise ValueError('past_advantage_mean: mode="discounted" needs gamma')
        idx = torch.arange(T, device=adv.device, dtype=torch.float64)
        t_idx, k_idx = idx.view(T, 1), idx.view(1, T)
        # weight[t, k] = gamma^{t+1} * gamma^{t-k} = gamma^{2t + 1 - k}   for k < t
        # (without the time step's gamma^t: gamma * gamma^{t-k} = gamma^{t + 1 - k})
        expo = (2.0 * t_idx if time_discount else t_idx) + 1.0 - k_idx
        weight = torch.where(k_idx < t_idx, torch.tensor(float(gamma), dtype=torch.float64, device=adv.device) ** expo, 0.0)
        weight = weight.to(adv.dtype)
        return torch.einsum("tk,bk...->bt...", weight, adv)
    raise ValueError(f"unknown aggregation mode {mode!r}; allowed values are {', '.join(map(repr, PAST_MODES))}")


def _validate_masks(masks: Masks) -> frozenset | None:
    """Return the set of kept sign cases (None = keep all); ValueError on bad names."""
    if masks is None:
        return None
    if isinstance(masks, str):
        masks = (masks,)
    names = list(masks)
    unknown = [m for m in names if m not in SIGN_CASES]
    if unknown:
        raise ValueError(
            f"unknown sign-case mask(s) {unknown!r}; allowed values are "
            f"{', '.join(map(repr, SIGN_CASES))}"
        )
    return frozenset(names)


def sign_case_mask(past_own: Tensor, others: Tensor, masks: Masks) -> Tensor | None:
    """Boolean tensor: True where (sign(past_own), sign(others)) is one of ``masks``.

    ``masks`` is a collection of names from :data:`SIGN_CASES` (a single name string is
    accepted too); ``None`` returns None (keep everything). Elements where either factor
    is exactly 0 belong to no case; their alignment term is 0 anyway.
    """
    kept = _validate_masks(masks)
    if kept is None:
        return None
    keep = torch.zeros(torch.broadcast_shapes(past_own.shape, others.shape), dtype=torch.bool, device=past_own.device)
    for name in kept:
        s_past, s_other = SIGN_CASES[name]
        keep = keep | (((past_own * s_past) > 0) & ((others * s_other) > 0))
    return keep


def _sum_others(own_adv: Tensor, others_adv: Tensor) -> Tensor:
    if others_adv.dim() == own_adv.dim() + 1:
        others_adv = others_adv.sum(dim=-1)
    elif others_adv.dim() != own_adv.dim():
        raise ValueError(
            "others_adv must be shaped like own_adv (already summed over the other players) or "
            f"like own_adv plus a trailing n_others dim; got own {tuple(own_adv.shape)}, "
            f"others {tuple(others_adv.shape)}"
        )
    if others_adv.shape != own_adv.shape:
        raise ValueError(
            f"others_adv (summed) {tuple(others_adv.shape)} does not match own_adv {tuple(own_adv.shape)}"
        )
    return others_adv


def alignment_weights(
    own_adv: Tensor,
    others_adv: Tensor,
    *,
    mode: str = "mean",
    gamma: float | None = None,
    masks: Masks = None,
    time_discount: bool = True,
) -> Tensor:
    """Per-step alignment weight ``w_t = past(A_own)_t * sum_j Aj_t`` (masked), detached.
    ``time_discount``: see :func:`past_advantage_mean` (Eq. 8: True; Eq. 10: False).

    Shapes: ``own_adv`` ``[B, T, ...]``; ``others_adv`` either the same shape (already
    summed over the other players) or ``[B, T, ..., n_others]`` (summed here over the
    last dim). Result ``[B, T, ...]``, 0 at ``t = 0`` and, when ``masks`` is given,
    0 wherever the sign case is not kept.
    """
    own = own_adv.detach()
    others = _sum_others(own, others_adv.detach())
    past = past_advantage_mean(own, mode=mode, gamma=gamma, time_discount=time_discount)
    w = past * others
    keep = sign_case_mask(past, others, masks)
    if keep is not None:
        w = torch.where(keep, w, torch.zeros_like(w))
    return w


def advantage_alignment_term(
    own_adv: Tensor,
    others_adv: Tensor,
    log_probs: Tensor,
    *,
    mode: str = "mean",
    gamma: float | None = None,
    masks: Masks = None,
) -> Tensor:
    """The Advantage Alignment loss term (SPEC section 5), a scalar::

        loss_aa = - mean_{b, t>=1, ...} [ past(A_own)_t * (sum_{j != i} Aj_t) * log pi_t ]

    Shapes:
      * ``own_adv``   ``[B, T, ...]``: the agent's own advantages.
      * ``others_adv`` either ``[B, T, ...]`` (already the sum over all other players)
        or ``[B, T, ..., n_others]`` (one column per other player; summed here over the
        last dim). Which one is meant is decided by the number of dims.
      * ``log_probs`` ``[B, T, ...]`` like ``own_adv``: ``log pi(a_t | s_t)`` of the
        agent's actions (summed over action components beforehand if any).

    The mean is over the batch, the time steps ``t = 1 .. T-1`` (``t = 0`` has no past
    and is excluded from the denominator) and any trailing dims: the denominator is
    ``B * (T-1) * prod(trailing)``. Masked-out sign cases count as 0 in the mean (they
    stay in the denominator). With ``T == 1`` the term is 0.

    ``mode``/``gamma`` choose the past aggregate (see :func:`past_advantage_mean`);
    ``masks`` is None (keep all) or a collection of sign cases to KEEP among
    ``"cooperative" (+,+)``, ``"empathetic" (+,-)``, ``"vengeful" (-,+)``,
    ``"spiteful" (-,-)`` as (sign of past own aggregate, sign of others' advantage);
    unknown names raise ValueError.

    Both advantages are detached inside: gradient flows through ``log_probs`` only.
    The term is exactly 0 when the other players' advantages are 0.
    """
    check_time_major("own_adv", own_adv)
    if log_probs.shape != own_adv.shape:
        raise ValueError(f"log_probs {tuple(log_probs.shape)} must match own_adv {tuple(own_adv.shape)}")
    w = alignment_weights(own_adv, others_adv, mode=mode, gamma=gamma, masks=masks).to(log_probs.dtype)
    if own_adv.shape[1] < 2:
        return (log_probs * 0.0).sum()
    return -(w[:, 1:] * log_probs[:, 1:]).mean()


def reinforce_loss(adv: Tensor, log_probs: Tensor) -> Tensor:
    """Policy-gradient loss ``-mean(adv.detach() * log_probs)`` over all elements.

    Shapes: ``adv`` and ``log_probs`` ``[B, T, ...]`` (same shape). Scalar result;
    gradient flows through ``log_probs`` only.
    """
    if adv.shape != log_probs.shape:
        raise ValueError(f"adv {tuple(adv.shape)} must match log_probs {tuple(log_probs.shape)}")
    return -(adv.detach().to(log_probs.dtype) * log_probs).mean()


def adalign_loss(
    own_adv: Tensor,
    others_adv: Tensor | None,
    log_probs: Tensor,
    entropy: Tensor | None = None,
    *,
    beta: float,
    entropy_coef: float = 0.0,
    mode: str = "mean",
    gamma: float | None = None,
    masks: Masks = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Full AdAlign actor loss (SPEC section 5)::

        loss = loss_pg + beta * loss_aa - entropy_coef * entropy.mean()

    with ``loss_pg`` = :func:`reinforce_loss` ``(own_adv, log_probs)`` and ``loss_aa`` =
    :func:`advantage_alignment_term` (same shape rules). ``beta = 0`` is plain policy
    gradient (then ``others_adv`` may be None). ``entropy`` is any tensor of per-step
    entropies (or None for no bonus).

    Returns ``(loss, info)``; ``info`` holds detached scalars ``loss``, ``loss_pg``,
    ``loss_aa`` and ``entropy``.
    """
    loss_pg = reinforce_loss(own_adv, log_probs)
    if others_adv is None:
        if beta != 0:
            raise ValueError("adalign_loss: others_adv is required when beta != 0")
        loss_aa = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    else:
        loss_aa = advantage_alignment_term(own_adv, others_adv, log_probs, mode=mode, gamma=gamma, masks=masks)
    loss = loss_pg + beta * loss_aa
    if entropy is not None:
        ent = entropy.mean()
        loss = loss - entropy_coef * ent
    else:
        ent = torch.zeros((), dtype=log_probs.dtype, device=log_probs.device)
    info = {
        "loss": loss.detach(),
        "loss_pg": loss_pg.detach(),
        "loss_aa": loss_aa.detach(),
        "entropy": ent.detach(),
    }
    return loss, info


# --------------------------------------------------------------------------------------
# Proximal Advantage Alignment (SPEC section 6)
# --------------------------------------------------------------------------------------


def aligned_advantages(
    own_adv: Tensor,
    others_adv: Tensor,
    *,
    beta: float,
    mode: str = "mean",
    gamma: float | None = None,
    masks: Masks = None,
) -> Tensor:
    """Aligned advantages of Proximal AdAlign (paper Eq. 10)::

        A*_t = A_t + beta * past(A)_t * sum_{j != i} Aj_t,      A*_0 = A_0

    With ``mode="discounted"``, ``past(A)_t = gamma * sum_{k<t} gamma^{t-k} A_k`` as in
    Eq. 10 (no ``gamma^t`` of the time step, unlike the REINFORCE form of Eq. 8). Shapes as in :func:`advantage_alignment_term` (``others_adv`` summed or with a
    trailing ``n_others`` dim). Masks zero the alignment part of the excluded sign
    cases. Returns a new detached ``[B, T, ...]`` tensor; ``beta = 0`` returns an exact
    copy of ``own_adv``.
    """
    own = own_adv.detach()
    if beta == 0:
        _sum_others(own, others_adv)  # shape check only
        _validate_masks(masks)
        return own.clone()
    return own + beta * alignment_weights(own, others_adv, mode=mode, gamma=gamma, masks=masks, time_discount=False)


def ppo_clip_loss(
    log_probs: Tensor, old_log_probs: Tensor, adv: Tensor, clip_eps: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate::

        ratio_t = exp(log_probs_t - old_log_probs_t)
        loss    = - mean_t min( ratio_t * A_t, clip(ratio_t, 1-eps, 1+eps) * A_t )

    Shapes: all ``[B, T, ...]`` (or any matching shape). ``old_log_probs`` and ``adv``
    are detached. Returns ``(loss, info)`` with detached scalars:
    ``approx_kl`` = mean((ratio - 1) - log ratio) (the low-variance KL(old||new)
    estimator, >= 0), ``clip_fraction`` = fraction with |ratio - 1| > eps, and
    ``ratio_mean``.
    """
    if not (log_probs.shape == old_log_probs.shape == adv.shape):
        raise ValueError(
            f"ppo_clip_loss: shapes differ: log_probs {tuple(log_probs.shape)}, "
            f"old_log_probs {tuple(old_log_probs.shape)}, adv {tuple(adv.shape)}"
        )
    adv = adv.detach().to(log_probs.dtype)
    log_ratio = log_probs - old_log_probs.detach().to(log_probs.dtype)
    ratio = torch.exp(log_ratio)
    surr1 = ratio * adv
    surr2 = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    loss = -torch.min(surr1, surr2).mean()
    with torch.no_grad():
        info = {
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": ((ratio - 1.0).abs() > clip_eps).to(log_probs.dtype).mean(),
            "ratio_mean": ratio.mean(),
        }
    return loss, info


def proximal_adalign_loss(
    log_probs: Tensor,
    old_log_probs: Tensor,
    own_adv: Tensor,
    others_adv: Tensor,
    *,
    beta: float,
    clip_eps: float,
    mode: str = "mean",
    gamma: float | None = None,
    masks: Masks = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Proximal AdAlign loss (paper Eq. 10): :func:`ppo_clip_loss` with the aligned advantages A*.

    ``A*`` = :func:`aligned_advantages` ``(own_adv, others_adv, beta=..., ...)``, shapes as
    there. Advantages that should be normalised are normalised before they are given here
    (:func:`trainers.advantages.normalize_advantages`, before the other players' sum), so
    every row's A* depends only on that row. With ``beta = 0`` this equals
    ``ppo_clip_loss(log_probs, old_log_probs, own_adv, clip_eps)`` exactly.

    Returns ``(loss, info)``: the PPO info plus ``aligned_adv_mean`` and ``aligned_adv_std``
    (detached).
    """
    a_star = aligned_advantages(own_adv, others_adv, beta=beta, mode=mode, gamma=gamma, masks=masks)
    loss, info = ppo_clip_loss(log_probs, old_log_probs, a_star, clip_eps)
    info["aligned_adv_mean"] = a_star.mean()
    info["aligned_adv_std"] = a_star.std(correction=0)
    return loss, info


# --------------------------------------------------------------------------------------
# Critic
# --------------------------------------------------------------------------------------


def critic_loss(values: Tensor, targets: Tensor, huber_delta: float = 1.0) -> Tensor:
    """Huber loss between ``values`` and detached ``targets``, mean over all elements::

        l(x) = 0.5 x^2                          if |x| <= delta
               delta * (|x| - 0.5 delta)        otherwise,       x = values - targets

    Shapes: any matching shapes. Gradient flows through ``values`` only.
    """
    if values.shape != targets.shape:
        raise ValueError(f"critic_loss: values {tuple(values.shape)} must match targets {tuple(targets.shape)}")
    return F.huber_loss(values, targets.detach().to(values.dtype), reduction="mean", delta=huber_delta)
