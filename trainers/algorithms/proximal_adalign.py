"""Proximal Advantage Alignment, PPO form (SPEC section 6; Duque et al., ICLR 2025, Eq. 10).

PPO's clipped surrogate on the aligned advantages ``A* = A + beta * past(A) * sum_j A^j``
(:func:`trainers.losses.proximal_adalign_loss`), minus the entropy bonus (plus the value
head's loss where actor and critic share a network), over several epochs of minibatches
with an early stop on the approximate KL (:func:`~trainers.algorithms.base.ppo_epochs`).
The rest is the on-policy core's. The default algorithm of Commons Harvest Open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainers import losses
from trainers.algorithms.adalign import FAST_PRESETS, PAPER_PRESETS, AdAlign, AdAlignConfig
from trainers.algorithms.base import ppo_epochs
from trainers.config import need
from trainers.critics import Estimate
from trainers.networks.distributions import entropy
from trainers.rollout import Batch

__all__ = ["ProximalAdAlign", "ProximalAdAlignConfig"]


@dataclass
class ProximalAdAlignConfig(AdAlignConfig):
    """Proximal Advantage Alignment: AdAlign's settings and PPO's."""

    ppo_epochs: int = 4
    """Optimisation epochs per batch."""
    ppo_minibatches: int = 4
    """Minibatches per epoch (of whole rollouts of a player)."""
    clip_eps: float = 0.2
    """PPO clip range."""
    target_kl: float = 0.05
    """Stop the epochs of a batch when the approximate KL passes this (0: never)."""

    def validate(self, run: Any = None) -> ProximalAdAlignConfig:
        super().validate(run)
        self.check_int_at_least(("ppo_epochs", "ppo_minibatches"), 1)
        self.check_finite(("target_kl",), 0.0)
        self.check_finite(("clip_eps",), 0.0, strict=True)
        need(self, self.clip_eps < 1, "clip_eps", "must be in (0, 1)")
        need(self, self.actor_updates == 1, "actor_updates", "must be 1 for proximal_adalign (its steps are ppo_epochs)")
        need(self, self.log_prob_floor is None, "log_prob_floor",
             "must be None for proximal_adalign (the clipped ratio bounds its steps)")
        return self


class ProximalAdAlign(AdAlign):
    """Proximal Advantage Alignment (see the module docstring)."""

    name = "proximal_adalign"
    Config = ProximalAdAlignConfig
    presets = {**PAPER_PRESETS, "commons_harvest_open": {**PAPER_PRESETS["commons_harvest_open"], "clip_eps": 0.1},
               # the released Negotiation run is AdAlign's; its two steps per batch are ppo_epochs here
               "negotiation": {**PAPER_PRESETS["negotiation"], "actor_updates": 1, "log_prob_floor": None}}
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/loss", "train/critic_loss")

    def update_actor(self, batch: Batch, est: Estimate, adv: Tensor, others: Tensor) -> dict[str, float]:
        cfg = self.cfg
        rows, learn = batch.learning()
        own, theirs = adv[learn], others[learn]
        targets = None if est.targets is None else est.targets[learn]
        beta, masks = self.beta, cfg.sign_masks or None

        def minibatch(idx: torch.Tensor) -> tuple[Tensor, dict[str, Any]]:
            part = rows.rows(idx)
            dist, values = self.actor.forward_sequence(part.memory, part.obs, part.starts)
            logp = dist.log_prob(part.actions)
            loss, info = losses.proximal_adalign_loss(logp, part.log_probs, own[idx], theirs[idx],
                                                      beta=beta, clip_eps=cfg.clip_eps, mode=cfg.aggregation,
                                                      gamma=cfg.gamma, masks=masks)
            ent = (entropy(dist) if cfg.entropy_bonus == "entropy" else -logp).mean()
            value_loss, value_info = self.critic.value_loss(values, None if targets is None else targets[idx])
            return loss - cfg.entropy_coef * ent + value_loss, {**info, "loss": loss, "entropy": ent, **value_info}

        return ppo_epochs(own.shape[0], cfg, self.action_gen, minibatch, self.actor_opt, list(self.actor.parameters()),
                          lambda total: self.check("actor loss", total))
