"""The opponent-shaping losses built on DiCE (Foerster et al., 2018): LOQA's and POLA's (SPEC section 7b).

Same conventions as :mod:`trainers.losses` (batch first, time second; advantages and
returns carry no gradient; every function pure). The methods whose estimators
differentiate through the other player's learning or its modelled policy keep their
losses here, beside the magic box they share.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.advantages import check_time_major, gae, monte_carlo_returns

__all__ = ["magic_box", "loaded_dice_returns", "loqa_opponent_log_probs", "loqa_loss", "pola_dice_objective",
           "pola_kl", "pola_value_loss"]


def magic_box(x: Tensor) -> Tensor:
    """DiCE's magic box (Foerster et al., 2018): 1 in the forward pass, its gradient is
    ``grad x`` (``exp(x - stop_gradient(x))``)."""
    return torch.exp(x - x.detach())


def loaded_dice_returns(rewards: Tensor, log_probs: Tensor, values: Tensor, dones: Tensor, gamma: float,
                        dice_discount: float) -> Tensor:
    """The other player's returns, made differentiable in the agent's policy (LOQA's loaded DiCE).

    ``rewards`` (the other player's), ``values`` (its state values ``V(s_t)``, no gradient),
    ``dones``: ``[B, T]``, whole episodes from ``t = 0`` (an episode may end before ``T``:
    nothing after a done is added, and the log-probabilities' sum restarts after it);
    ``log_probs``: the agent's log-probabilities of its actions, with gradient. In the
    forward pass the result is the discounted return ``G_t = r_t + gamma * G_{t+1}``; its
    gradient is that of

        G_t + sum_{k >= t} (gamma * dice_discount)^{k-t} (G_k - V_k) * dice_k,
        dice_k = box(S_k) - box(S_{k-1}),  S_k = sum_{j <= k} log pi(a_j)  (box: :func:`magic_box`)

    so that ``grad G_t = sum_{k >= t} (gamma * dice_discount)^{k-t} (G_k - V_k) grad log pi(a_k)``
    (``dice_discount``, LOQA's ``differentiable_opponent.discount``, weighs the far future
    down)."""
    check_time_major("rewards", rewards)
    for name, x in (("log_probs", log_probs), ("values", values), ("dones", dones)):
        if x.shape != rewards.shape:
            raise ValueError(f"loaded_dice_returns: {name} {tuple(x.shape)} must match rewards {tuple(rewards.shape)}")
    done = dones.to(torch.bool)
    returns = monte_carlo_returns(rewards, done, gamma)
    steps = rewards.shape[1]
    boxes, running = [], torch.zeros_like(log_probs[:, 0])
    for t in range(steps):  # S_t restarts after the end of an episode
        running = running + log_probs[:, t]
        boxes.append(magic_box(running))
        if t + 1 < steps:
            running = torch.where(done[:, t], torch.zeros_like(running), running)
    box = torch.stack(boxes, 1)
    before = torch.cat((torch.ones_like(box[:, :1]), box[:, :-1]), 1)
    before = torch.where(torch.cat((torch.ones_like(done[:, :1]), done[:, :-1]), 1), torch.ones_like(before), before)
    dice = box - before
    weight = (returns - values).detach()
    acc, out = torch.zeros_like(dice[:, 0]), []
    for t in reversed(range(steps)):
        acc = weight[:, t] * dice[:, t] + gamma * dice_discount * torch.where(done[:, t], torch.zeros_like(acc), acc)
        out.append(acc)
    return returns + torch.stack(out[::-1], 1)


def loqa_opponent_log_probs(q_values: Tensor, actions: Tensor, q_taken: Tensor, temperature: float = 1.0) -> Tensor:
    """The other player's modelled log-probabilities of its actions (LOQA): a softmax of its
    Q-values ``q_values`` ``[B, T, A]`` (no gradient) over ``temperature``, where the entry
    of the action it took (``actions`` ``[B, T]``) is replaced by ``q_taken`` ``[B, T]``
    (its differentiable return, :func:`loaded_dice_returns`)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    idx = actions.long().unsqueeze(-1)
    q = q_values.detach().scatter(-1, idx, q_taken.unsqueeze(-1))
    return F.log_softmax(q / temperature, -1).gather(-1, idx).squeeze(-1)


def loqa_loss(adv: Tensor, log_probs: Tensor, opponent_log_probs: Tensor, entropy: Tensor, entropy_coef: float,
              shaping_weight: float) -> tuple[Tensor, dict[str, Tensor]]:
    """LOQA's actor loss: the policy gradient of the agent's advantages ``adv`` (no gradient),
    plus ``shaping_weight`` times the same advantages on the other player's modelled
    log-probabilities (:func:`loqa_opponent_log_probs`, whose gradient reaches the agent
    through the loaded DiCE returns), minus the entropy bonus. All ``[B, T]``."""
    adv = adv.detach()
    pg = -(adv * log_probs).mean()
    shaping = -(adv * opponent_log_probs).mean()
    ent = entropy.mean()
    loss = pg + shaping_weight * shaping - entropy_coef * ent
    return loss, {"loss_pg": pg.detach(), "loss_shaping": shaping.detach(), "entropy": ent.detach()}


def _whole_episodes(name: str, rewards: Tensor, **others: Tensor) -> None:
    check_time_major("rewards", rewards)
    for key, x in others.items():
        if x is not None and x.shape != rewards.shape:
            raise ValueError(f"{name}: {key} {tuple(x.shape)} must match rewards {tuple(rewards.shape)}")


def pola_dice_objective(self_log_probs: Tensor, other_log_probs: Tensor, rewards: Tensor, values: Tensor | None,
                        gamma: float, gae_lambda: float = 1.0) -> Tensor:
    """POLA-DiCE's objective of one player (to maximise; Zhao et al., 2022, the authors'
    ``dice_objective``): its expected discounted return, made differentiable in *both* players'
    policies by DiCE, so that the other player's look-ahead step, taken on it, depends on this
    player's parameters.

    Every row is one whole episode from ``t = 0`` (``[B, T]``: the player's ``rewards``, its own
    and the other player's log-probabilities of the actions played, with gradient). With
    ``S_t = sum_{k <= t} (log pi(a_k) + log pi'(b_k))`` and ``box`` the :func:`magic_box`:

    * ``values`` None (no baseline): ``mean_b sum_t gamma^t r_t box(S_t)``;
    * ``values`` ``V(s_t)`` (no gradient; loaded DiCE with GAE, the authors' default):
      ``mean_b sum_t gamma^t A_t (box(S_t) - box(S_{t-1}))`` with ``A`` the GAE(``gae_lambda``)
      advantages of the rewards (0 after the last step: the episode ends there).

    The forward value of the first is the mean discounted return, of the second 0. The gradient
    of the first is ``mean_b sum_t gamma^t r_t sum_{k <= t} grad (log pi(a_k) + log pi'(b_k))``,
    of the second ``mean_b sum_t gamma^t A_t grad (log pi(a_t) + log pi'(b_t))``; their
    derivatives in the other player's parameters (the box values depend on them) carry the
    second-order terms that a differentiated-through look-ahead step needs."""
    _whole_episodes("pola_dice_objective", rewards, self_log_probs=self_log_probs, other_log_probs=other_log_probs,
                    values=values)
    steps = rewards.shape[1]
    discount = gamma ** torch.arange(steps, dtype=rewards.dtype, device=rewards.device)
    deps = torch.cumsum(self_log_probs + other_log_probs, 1)
    if values is None:
        return (magic_box(deps) * rewards.detach() * discount).sum(1).mean()
    values = values.detach()
    next_values = torch.cat((values[:, 1:], torch.zeros_like(values[:, :1])), 1)
    last = torch.zeros_like(rewards, dtype=torch.bool)
    last[:, -1] = True
    adv, _ = gae(rewards, values, next_values, last, gamma, gae_lambda)
    before = torch.cat((torch.zeros_like(deps[:, :1]), deps[:, :-1]), 1)
    return ((magic_box(deps) - magic_box(before)) * adv * discount).sum(1).mean()


def pola_kl(logits: Tensor, ref_logits: Tensor) -> Tensor:
    """POLA's proximal term: ``KL(pi || pi_ref)`` of two categorical policies given by their logits
    ``[..., A]`` on the same states, averaged over the states (the authors' ``kl_div_jax``:
    ``sum_a p (log p - log q)``, ``p`` the policy being optimised). ``ref_logits`` carry no gradient."""
    if logits.shape != ref_logits.shape:
        raise ValueError(f"pola_kl: logits {tuple(logits.shape)} and ref_logits {tuple(ref_logits.shape)} must match")
    logp = F.log_softmax(logits, -1)
    logq = F.log_softmax(ref_logits.detach(), -1)
    return (logp.exp() * (logp - logq)).sum(-1).mean()


def pola_value_loss(values: Tensor, rewards: Tensor, gamma: float) -> Tensor:
    """POLA's critic loss: ``mean_b sum_t (G_t - V(s_t))^2`` with ``G`` the discounted return of
    the rest of the episode (every row one whole episode, nothing after its last step)."""
    _whole_episodes("pola_value_loss", rewards, values=values)
    last = torch.zeros_like(rewards, dtype=torch.bool)
    last[:, -1] = True
    returns = monte_carlo_returns(rewards, last, gamma)
    return ((returns - values) ** 2).sum(1).mean()
