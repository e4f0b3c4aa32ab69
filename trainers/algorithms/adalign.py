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
    actor_updates: int = 1
    """Gradient steps of the actor on each batch (the released Negotiation run: 2)."""
    log_prob_floor: float | None = None
    """Clamp the log-probabilities in the loss from below (the released Negotiation run: -10; None: no clamp)."""
    entropy_bonus: Literal["entropy", "sample"] = "entropy"
    """The entropy bonus: entropy (exact for discrete actions, the latent normal's for proposals, which
    does not depend on the mean) or sample (minus the mean (clamped) log-probability of the actions
    taken, the released Negotiation run: it pulls proposals out of saturation at 5)."""
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
        self.check_int_at_least(("actor_updates",), 1)
        if self.log_prob_floor is not None:
            self.check_finite(("log_prob_floor",))
        need(self, self.entropy_bonus in ("entropy", "sample"), "entropy_bonus", "allowed values are entropy, sample")
        need(self, self.aggregation in losses.PAST_MODES, "aggregation", f"allowed values are {', '.join(losses.PAST_MODES)}")
        need(self, all(m in losses.SIGN_CASES for m in self.sign_masks), "sign_masks",
             f"allowed values are {list(losses.SIGN_CASES)}")
        return self


#: The published runs' agent replay and critic for the IPD and the Coin Game (SPEC section 7a;
#: paper Tables 1-2): every game of every update against its own snapshot of the agent
#: (current-agent fraction 0), the snapshot's critic giving that opponent's advantages; a
#: Q-critic with an EMA target of rate 0.01 (target decay 0.99) trained by TD(0), TD(0)
#: advantages from the online Q-values, no value normalisation.
_PUBLISHED_REPLAY_AND_CRITIC: dict[str, Any] = dict(
    self_play_prob=0.0, replay_groups=0, replay_critic=True, replay_capacity=10000,
    critic_kind="q", critic_target="td0", gae_lambda=0.0, target_tau=0.01, value_norm=False, advantage_values="online",
)

#: The paper's settings per game (SPEC section 7: the paper's tables and released configs).
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(gamma=0.9, actor_lr=1e-4, critic_lr=1e-3, entropy_coef=0.15, beta=0.3, grad_clip=0.0,
                **_PUBLISHED_REPLAY_AND_CRITIC, snapshot_every=1),
    "coin_game": dict(gamma=0.96, actor_lr=2e-3, critic_lr=5e-3, entropy_coef=0.1, beta=0.25, grad_clip=10.0,
                      **_PUBLISHED_REPLAY_AND_CRITIC, snapshot_every=10),
    "negotiation": dict(gamma=0.96, actor_lr=1e-3, critic_lr=1e-3, entropy_coef=0.005, beta=3.0, grad_clip=1.0,
                        trajectory_replay=0.05, critic_target="mc", value_norm=False, weight_decay=1e-4, log_std_min=-2.0,
                        log_std_max=10.0, atanh_limit=0.99, log_prob_floor=-10.0, entropy_bonus="sample",
                        actor_updates=2, trajectory_capacity=100000, trajectory_add=500, critic_time=False,
                        keep_best=True, shared_encoder=True),
    "commons_harvest_open": dict(gamma=0.99, actor_lr=1e-5, critic_lr=1e-5, entropy_coef=0.1, beta=1.0, grad_clip=10.0,
                                 normalize_advantages=True, hidden=192),
}

#: Changes to the paper's presets that make a run learn in minutes on a CPU instead of
#: an hour on a GPU (README, "Results"). For the IPD (200 updates, about 40 s on one core):
#:
#: * advantages from the online critic, trained on Monte Carlo returns with a larger
#:   learning rate and a short warm-up, so the first advantages the actor sees are not
#:   biased by an untrained critic;
#: * a feed-forward (memory-one) actor: with the GRU the agent can count the 16 rounds
#:   and the alignment term teaches it to punish on the running mean of the whole past,
#:   which gives grim-trigger-like agents that do not forgive;
#: * beta 3 (at 0.3 the policy-gradient term wins and the agent always defects), half of
#:   the updates against past snapshots (agent replay);
#: * actor lr 1e-2 decayed linearly to 0 over the 200 updates. Adam moves each weight by
#:   about the learning rate per step, so at 1.5e-3 the policy was still far from
#:   deterministic when the rate reached 0: the reaction to the previous round was learnt
#:   (0.97 / 0.14 / 0.97 / 0.03) but not the first move (P(C | start) 0.35 on seed 0, -1.48
#:   per step in self-play). At 1e-2 all ten seeds cooperate first (0.90-1.00) and earn
#:   -1.00 to -1.09 per step against themselves (README, "IPD").
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
#: For the Negotiation (800 updates of 256 games, about 4.5 minutes on one CPU core):
#:
#: * the same fast critic. With the paper's lagging target critic the advantages of an
#:   improving agent are biased upwards, the alignment term then rewards giving in every
#:   state, and the agent becomes an unconditional cooperator that Always Defect exploits;
#: * a feed-forward (memory-one) actor that sees the other's last proposal, 256 games per
#:   update;
#: * beta 10 and actor lr 5e-4: the policy gradient always pushes every bid up, and the
#:   alignment term needs a large weight to hold against it (at beta 3 and lr 3e-3 the agent
#:   bids 5 on everything within 50 updates);
#: * the published runs' agent replay of the IPD and the Coin Game (the released Negotiation
#:   run had none): every update against 16 past snapshots, each opponent's advantages from
#:   its own snapshot's critic, and the best-return agent kept (best.pt). With half of the
#:   updates against one snapshot for the whole batch, 3 of 10 seeds passed the issue's test
#:   of reciprocity and the others bid 5 on everything; with this replay, 10 of 10
#:   (README, "Negotiation"). None of them responds much to how the other plays, though.
#:
#: For Commons Harvest Open (450 updates of 6 games x 15 steps: 9 minutes on the 2-core CPU
#: beside another run, 50 on a shared one; README, "Commons Harvest CPU preset"): the paper's
#: network shape (Nature CNN, GTrXL with memory: 3 layers, 4 heads, context 15) at width
#: 64 on 44-pixel views (a quarter of the CNN's work of 88 pixels), and learning rates of
#: 2.5e-4 with an entropy weight of 0.01: the paper's 1e-5 and 0.1 are set for 24
#: GPU-hours, and in the CPU budget the policy would hardly move. The agents learn to
#: harvest (more apples per capita than random play) but strip the patches; by 500 updates
#: every patch is gone and they harvest less than random play. A larger alignment weight
#: keeps the patches (beta 3 or 5, entropy 0.1), but then they harvest about as much as
#: random play and keep about as many patches alive (3 seeds at beta 3). Beta 2 (one seed,
#: 1250 updates) harvests 61% more than random play and keeps 4.3 of 6 patches (random: 5.3).
#: Every 150 updates the agent is evaluated in all 7 seats (2 episodes): the reward alone
#: does not show what it does to the commons.
_FAST_CRITIC: dict[str, Any] = dict(
    advantage_values="online", critic_target="mc", critic_lr=1e-2, critic_warmup=30,
    # the CPU presets keep the project's own critic and replay, not the published ones above:
    # a state-value critic with PopArt, GAE(0.95), one snapshot for the whole batch
    critic_kind="value", value_norm=True, gae_lambda=0.95, target_tau=0.005, replay_groups=1, replay_critic=False,
    snapshot_every=10,
)
FAST_PRESETS: dict[str, dict[str, Any]] = {
    "commons_harvest_open": dict(env_kwargs={"resize": 44}, vision_memory="gtrxl", hidden=64, vision_heads=4,
                                 actor_lr=2.5e-4, critic_lr=2.5e-4, entropy_coef=0.01, iterations=450,
                                 eval_every=150, eval_games=2),
    "ipd": dict(**_FAST_CRITIC, actor_recurrent=False, num_games=1024, actor_lr=1e-2, beta=3.0,
                self_play_prob=0.5, anneal_lr=True, iterations=200),
    "coin_game": dict(**_FAST_CRITIC, alignment_warmup=150, beta=1.0, self_play_prob=0.5),
    "negotiation": {**_FAST_CRITIC, **dict(
        actor_recurrent=False, num_games=256, actor_lr=5e-4, beta=10.0, iterations=800,
        # the published runs' agent replay: every update against past snapshots, one per group of
        # games, a snapshot after every update, each opponent's advantages from its snapshot's critic
        self_play_prob=0.0, replay_groups=16, replay_critic=True, snapshot_every=1, trajectory_replay=0.0,
        keep_best=True,  # the released run's best-return agent (paper B.3)
        weight_decay=0.0, log_std_min=-20.0, log_std_max=20.0, atanh_limit=1.0, log_prob_floor=None,
        entropy_bonus="entropy", actor_updates=1, trajectory_capacity=0, critic_time=True, shared_encoder=False)},
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
        targets = None if est.targets is None else est.targets[learn]
        for _ in range(cfg.actor_updates):
            dist, values = self.actor.forward_sequence(rows.memory, rows.obs, rows.starts)
            logp = dist.log_prob(rows.actions)
            if cfg.log_prob_floor is not None:
                logp = logp.clamp(min=cfg.log_prob_floor)
            bonus = entropy(dist) if cfg.entropy_bonus == "entropy" else -logp
            loss, info = losses.adalign_loss(
                adv[learn], others[learn], logp, bonus, beta=self.beta, entropy_coef=cfg.entropy_coef,
                mode=cfg.aggregation, gamma=cfg.gamma, masks=cfg.sign_masks or None,
            )
            value_loss, value_info = self.critic.value_loss(values, targets)
            loss = loss + value_loss
            self.check("actor loss", loss)
            norm = clip_and_step(self.actor_opt, loss, self.actor.parameters(), cfg.grad_clip)
        return {"train/actor_grad_norm": norm, **{f"train/{k}": float(v) for k, v in {**info, **value_info}.items()}}
