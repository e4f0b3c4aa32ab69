"""Advantage Alignment, REINFORCE form (SPEC section 5; Duque et al., ICLR 2025).

One gradient step per update on :func:`trainers.losses.adalign_loss`: the policy gradient
of the agent's own advantages plus ``beta`` times the alignment term, the product of the
agent's past advantages and the other players' present ones, minus the entropy bonus. The
rest (rollouts, critic, replay, checkpoints) is the on-policy core's
(:class:`~trainers.algorithms.base.OnPolicy`).

The presets (SPEC section 7) are the paper's set-ups as this project reads them;
``fast_presets`` (``--fast``) are the CPU presets of the README's Results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

from trainers import losses
from trainers.algorithms.base import OnPolicy, OnPolicyConfig
from trainers.common import clip_and_step
from trainers.config import need
from trainers.critics import Estimate
from trainers.networks.distributions import entropy
from trainers.rollout import Batch

__all__ = ["AdAlign", "AdAlignConfig", "PAPER_PRESETS", "FAST_PRESETS"]


@dataclass
class AdAlignConfig(OnPolicyConfig):
    """Advantage Alignment: the on-policy core's settings and the alignment term's."""

    beta: float = 0.3
    """Weight of the advantage-alignment term (0: the plain policy-gradient / PPO learner)."""
    aggregation: Literal["mean", "discounted"] = "mean"
    """Past own advantages: mean (running mean, the released code) or discounted (paper Eq. 8)."""
    sign_masks: list[Literal["cooperative", "empathetic", "vengeful", "spiteful"]] = field(default_factory=list)
    """Sign cases of the alignment term to keep (cooperative, empathetic, vengeful, spiteful); empty keeps all."""
    alignment_warmup: int = 0
    """Updates at the start in which the alignment term is off (beta 0): the agent first learns the
    selfish game, so the agent replay buffer holds selfish opponents to learn reciprocity against."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sign_masks = list(self.sign_masks)

    def validate(self, run: Any = None) -> AdAlignConfig:
        super().validate(run)
        self.check_finite(("beta",), 0.0)
        self.check_int_at_least(("alignment_warmup",), 0)
        need(self, self.aggregation in losses.PAST_MODES, "aggregation", f"allowed values are {', '.join(losses.PAST_MODES)}")
        need(self, all(m in losses.SIGN_CASES for m in self.sign_masks), "sign_masks",
             f"allowed values are {list(losses.SIGN_CASES)}")
        return self


#: The paper's settings per game (SPEC section 7: the paper's tables and released configs).
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(gamma=0.9, actor_lr=1e-4, critic_lr=1e-3, entropy_coef=0.15, beta=0.3, grad_clip=0.0),
    "coin_game": dict(gamma=0.96, actor_lr=2e-3, critic_lr=5e-3, entropy_coef=0.1, beta=0.25, grad_clip=10.0,
                      self_play_prob=0.5),
    "negotiation": dict(gamma=0.96, actor_lr=1e-3, critic_lr=1e-3, entropy_coef=0.005, beta=3.0, grad_clip=1.0,
                        trajectory_replay=0.05),
    "commons_harvest_open": dict(gamma=0.99, actor_lr=1e-5, critic_lr=1e-5, entropy_coef=0.1, beta=1.0, grad_clip=10.0,
                                 normalize_advantages=True, hidden=192),
}

#: Changes to the paper's presets that make a run learn in minutes on a CPU instead of
#: an hour on a GPU (README, "Results"). For the IPD:
#:
#: * advantages from the online critic, trained on Monte Carlo returns with a larger
#:   learning rate and a short warm-up, so the first advantages the actor sees are not
#:   biased by an untrained critic;
#: * a feed-forward (memory-one) actor: with the GRU the agent can count the 16 rounds
#:   and the alignment term teaches it to punish on the running mean of the whole past,
#:   which gives grim-trigger-like agents that do not forgive;
#: * beta 3 (at 0.3 the policy-gradient term wins and the agent always defects), half of
#:   the updates against past snapshots (agent replay), actor lr 1.5e-3 decayed linearly
#:   to 0 over the run so the reciprocal policy found after 100-150 updates settles.
#:
#: For the Coin Game (2000 updates, about 20 minutes on one CPU core):
#:
#: * the same fast critic (online values, Monte Carlo targets, lr 1e-2, 30 warm-up updates);
#: * an alignment warm-up of 150 updates: the agent first learns the selfish game, so the
#:   agent replay buffer holds coin-grabbing snapshots. Without it the agent goes straight
#:   to unconditional cooperation and Always Defect keeps about 80% of what it takes from
#:   Always Cooperate; with it the agent learns to grab back from a grabber;
#: * beta 1 instead of 0.25, so cooperation grows after the warm-up (at 0.25 with the
#:   fast critic the agent stays selfish).
#:
#: For the Negotiation (800 updates of 256 games, about 4 minutes on one CPU core):
#:
#: * the same fast critic. With the paper's lagging target critic the advantages of an
#:   improving agent are biased upwards, the alignment term then rewards giving in every
#:   state, and the agent becomes an unconditional cooperator that Always Defect exploits;
#: * a feed-forward (memory-one) actor that sees the other's last proposal, half of the
#:   updates against past snapshots, 256 games per update;
#: * beta 10 and actor lr 5e-4: with unbiased advantages the alignment term is a
#:   reciprocity signal (give after the other gave, take after it took) that needs a large
#:   weight to hold against the policy gradient, which always pushes every bid up (at beta 3
#:   and lr 3e-3 the agent bids 5 on everything within 50 updates; at beta 10 and lr 1e-3 it
#:   cooperates for a while and falls back there after 500 updates).
_FAST_CRITIC: dict[str, Any] = dict(advantage_values="online", critic_target="mc", critic_lr=1e-2, critic_warmup=30)
FAST_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(**_FAST_CRITIC, actor_recurrent=False, num_games=1024, actor_lr=1.5e-3, beta=3.0,
                self_play_prob=0.5, anneal_lr=True),
    "coin_game": dict(**_FAST_CRITIC, alignment_warmup=150, beta=1.0),
    "negotiation": dict(**_FAST_CRITIC, actor_recurrent=False, num_games=256, actor_lr=5e-4, self_play_prob=0.5,
                        beta=10.0),
}


class AdAlign(OnPolicy):
    """Advantage Alignment, REINFORCE form (see the module docstring)."""

    name = "adalign"
    Config = AdAlignConfig
    presets = PAPER_PRESETS
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/loss_aa", "train/critic_loss")

    @property
    def beta(self) -> float:
        """Weight of the alignment term in this update: 0 during ``alignment_warmup``, then ``beta``."""
        return self.cfg.beta if self.iteration >= self.cfg.alignment_warmup else 0.0

    def update_actor(self, batch: Batch, est: Estimate, adv: Tensor, others: Tensor) -> dict[str, float]:
        cfg = self.cfg
        rows, learn = batch.learning()
        dist, values = self.actor.forward_sequence(rows.memory, rows.obs, rows.starts)
        logp = dist.log_prob(rows.actions)
        loss, info = losses.adalign_loss(
            adv[learn], others[learn], logp, entropy(dist), beta=self.beta, entropy_coef=cfg.entropy_coef,
            mode=cfg.aggregation, gamma=cfg.gamma, masks=cfg.sign_masks or None,
        )
        value_loss, value_info = self.critic.value_loss(values, None if est.targets is None else est.targets[learn])
        loss = loss + value_loss
        self.check("actor loss", loss)
        norm = clip_and_step(self.actor_opt, loss, self.actor.parameters(), cfg.grad_clip)
        return {"train/actor_grad_norm": norm, **{f"train/{k}": float(v) for k, v in {**info, **value_info}.items()}}
