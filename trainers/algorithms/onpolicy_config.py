"""The on-policy core's configuration section (:class:`OnPolicyConfig`): networks,
optimisation, critic, exploration and replay, with its checks against the game.

Every on-policy algorithm's section extends it (:class:`trainers.algorithms.base.OnPolicy`
is the core that reads it); ``trainers.algorithms.base`` re-exports it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import social_dilemmas
from trainers.config import Section, need
from trainers.networks import is_image_game
from trainers.networks.recurrent import TableNet
from trainers.networks.vision import ARCHS

__all__ = ["OnPolicyConfig"]


@dataclass
class OnPolicyConfig(Section):
    """The settings of the on-policy core: networks, optimisation, critic and replay."""

    hidden: int = 64
    """Width of the networks: the GRU and encoders (vector observations); the CNN's output, the memory and the heads (images)."""
    actor_recurrent: bool = True
    """GRU actor (remembers the whole episode); false: a feed-forward actor that sees the current
    observation only (on the IPD a memory-one policy of the last round, which cannot count rounds)."""
    actor_table: bool = False
    """With actor_recurrent false: a table of independent logits per observation instead of the
    feed-forward network (LOQA's IPD actor: one entry per memory-one state, so a push in one state
    moves no other); games whose observations are 0/1 vectors of at most 15 entries (the IPD)."""
    vision_memory: Literal["gtrxl", "transformer", "gru"] = "gtrxl"
    """Images (Commons Harvest): the memory after the Nature CNN: gtrxl (GTrXL, Transformer-XL memory carried per seat),
    transformer (the same layers on a window recomputed at every step: the first version, for its checkpoints) or gru."""
    vision_layers: int = 3
    """Images: transformer layers (gtrxl, transformer; the GRU has one)."""
    vision_heads: int = 4
    """Images: attention heads of each transformer layer; must divide hidden."""
    vision_context: int = 15
    """Images: steps of the current episode each transformer layer sees (the current step included)."""
    vision_channels: tuple[int, int, int] = (32, 64, 64)
    """Images: channels of the Nature CNN's three convolutions."""
    gamma: float = 0.9
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    actor_lr: float = 1e-4
    """Actor learning rate (Adam; images: the encoder, memory and actor head)."""
    critic_lr: float = 1e-3
    """Critic learning rate (Adam; images: the value head)."""
    anneal_lr: bool = False
    """Decay the actor's learning rate linearly to 0 over the iterations (the policy settles instead of drifting)."""
    entropy_coef: float = 0.15
    """Weight of the entropy bonus."""
    grad_clip: float = 0.0
    """Gradient-norm clip of actor and critic (0: none)."""
    weight_decay: float = 0.0
    """Adam's weight decay (L2) on actor and critic (the released Negotiation run: 1e-4)."""
    log_std_min: float = -20.0
    """Negotiation: lower clamp of the proposals' log-std (the released run: -2)."""
    log_std_max: float = 20.0
    """Negotiation: upper clamp of the proposals' log-std (the released run: 10)."""
    atanh_limit: float = 1.0
    """Negotiation: a proposal's log-probability clamps |u| = |a / 2.5 - 1| to this before atanh
    (the released run: 0.99; 1: only keeps 0 and 5 finite)."""
    value_coef: float = 0.5
    """Weight of the value loss where actor and critic share a network (images)."""
    shared_encoder: bool = False
    """Vector games: the critic is a value head (two-layer MLP) on the actor's encoder, trained with the actor's
    loss (value_coef) on the rollout's own values (the released Negotiation run shares the encoder); false:
    a separate critic network."""
    critic_kind: Literal["value", "q"] = "value"
    """Separate critic's output: value (V(s)) or q (Q(s, a) of every action, V = sum_a pi(a) Q(a): the
    published IPD and Coin Game runs; discrete actions only). A Q-critic's TD(0) target is r + gamma Q_target(s', a')."""
    critic_time: bool = True
    """Separate critic sees the time step t / max_steps (the released Negotiation run's critic does not)."""
    critic_target: Literal["td0", "mc"] = "td0"
    """Separate critic's targets: td0 (one-step, from the target network) or mc (Monte Carlo returns)."""
    target_tau: float = 0.005
    """EMA rate of the separate critic's target network."""
    advantage_values: Literal["target", "online"] = "target"
    """Separate critic giving the values inside GAE: target (EMA network, as the released code) or online."""
    value_norm: bool = True
    """Separate critic predicts in units of running return statistics (PopArt); makes early advantages unbiased."""
    critic_warmup: int = 0
    """Updates at the start in which only the (separate) critic learns (unbiased advantages from the first actor update)."""
    normalize_advantages: bool = False
    """Normalise advantages (zero mean, unit std over the batch) before the other players' are summed."""
    self_play_prob: float = 1.0
    """Probability that an update plays the current agent against itself; otherwise the
    opponent is a past snapshot from the agent replay buffer (only seat 0 learns)."""
    snapshot_every: int = 10
    """Updates between snapshots added to the agent replay buffer."""
    replay_capacity: int = 10000
    """Most snapshots kept in the agent replay buffer (oldest dropped first)."""
    replay_groups: int = 1
    """Opponents of a replay update: the games split into this many equal groups (the largest divisor of
    num_games up to it), each against its own snapshot (1: one snapshot for the whole batch; 0: every game
    its own, the published set-up)."""
    replay_critic: bool = False
    """Keep each snapshot's critic too, and take a replayed opponent's advantages (in the alignment
    term) from its own snapshot's critic, as the published runs; false: from the current critic."""
    trajectory_replay: float = 0.0
    """Fraction of each batch's games replaced by games replayed from earlier batches (Negotiation: 0.05)."""
    trajectory_capacity: int = 0
    """Games kept for trajectory replay (the released Negotiation run: 100000); 0: the previous batch's only."""
    trajectory_add: int = 500
    """Games of each batch added to the trajectory replay buffer (with trajectory_capacity > 0)."""
    exploration_epsilon: float = 0.0
    """Discrete actions: the probability that a rollout replaces a player's sampled action by a uniformly
    random one (LOQA's IPD runs: 0.2; the losses use the log-probabilities of the actions played)."""

    def __post_init__(self) -> None:
        self.vision_channels = tuple(self.vision_channels)

    def validate(self, run: Any = None) -> OnPolicyConfig:
        self.check_int_at_least(("hidden", "vision_layers", "vision_heads", "vision_context", "snapshot_every",
                                 "replay_capacity"), 1)
        self.check_int_at_least(("critic_warmup", "replay_groups", "trajectory_capacity", "trajectory_add"), 0)
        need(self, len(self.vision_channels) == 3 and all(isinstance(c, int) and c >= 1 for c in self.vision_channels),
             "vision_channels", "must be three integers >= 1")
        need(self, self.vision_memory in ARCHS, "vision_memory", f"allowed values are {', '.join(ARCHS)}")
        need(self, self.vision_memory == "gru" or self.hidden % self.vision_heads == 0, "hidden",
             f"must be divisible by vision_heads = {self.vision_heads}")
        self.check_finite(("gamma", "target_tau"), 0.0, strict=True)
        need(self, self.gamma <= 1, "gamma", "must be in (0, 1]")
        need(self, self.target_tau <= 1, "target_tau", "must be in (0, 1]")
        self.check_finite(("gae_lambda", "self_play_prob", "trajectory_replay"), 0.0)
        need(self, self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        need(self, self.self_play_prob <= 1, "self_play_prob", "must be in [0, 1]")
        need(self, self.trajectory_replay < 1, "trajectory_replay", "must be in [0, 1)")
        self.check_finite(("exploration_epsilon",), 0.0)
        need(self, self.exploration_epsilon <= 1, "exploration_epsilon", "must be in [0, 1]")
        self.check_finite(("actor_lr", "critic_lr"), 0.0, strict=True)
        self.check_finite(("entropy_coef", "grad_clip", "value_coef", "weight_decay"), 0.0)
        self.check_finite(("log_std_min", "log_std_max"))
        need(self, self.log_std_min < self.log_std_max, "log_std_min", f"must be below log_std_max = {self.log_std_max}")
        self.check_finite(("atanh_limit",), 0.0, strict=True)
        need(self, self.atanh_limit <= 1, "atanh_limit", "must be in (0, 1]")
        need(self, self.critic_target in ("td0", "mc"), "critic_target", "allowed values are td0, mc")
        need(self, self.advantage_values in ("target", "online"), "advantage_values", "allowed values are target, online")
        need(self, self.critic_kind in ("value", "q"), "critic_kind", "allowed values are value, q")
        need(self, not self.shared_encoder or (self.self_play_prob == 1 and not self.replay_critic
                                                and self.critic_kind == "value" and self.critic_warmup == 0),
             "shared_encoder", "needs self_play_prob 1, no replay_critic, critic_kind value and critic_warmup 0 (the "
             "value head learns with the actor, and agent replay plays networks without one)")
        need(self, not self.actor_table or (not self.actor_recurrent and not self.shared_encoder), "actor_table",
             "needs actor_recurrent false and shared_encoder false")
        need(self, not self.replay_critic or self.trajectory_replay == 0, "replay_critic",
             "cannot be combined with trajectory_replay (replayed games have no snapshot critic)")
        if run is not None:
            image = is_image_game(social_dilemmas.spec(run.env, **run.game_kwargs()))
            discrete = social_dilemmas.spec(run.env, **run.game_kwargs()).action_kind == "discrete"
            if self.critic_kind == "q":
                need(self, discrete and not image,
                     "critic_kind", f"q needs discrete actions and a separate critic; {run.env} has neither")
            if self.actor_table:
                shape = social_dilemmas.spec(run.env, **run.game_kwargs()).observation_space().shape
                need(self, discrete and not image and math.prod(shape) <= TableNet.MAX_INPUTS, "actor_table",
                     f"needs discrete actions and 0/1 observations of at most {TableNet.MAX_INPUTS} entries; "
                     f"{run.env} has {math.prod(shape)}")
            need(self, self.exploration_epsilon == 0 or discrete, "exploration_epsilon",
                 f"must be 0 for {run.env}: exploration replaces discrete actions")
            if image:
                need(self, not self.replay_critic, "replay_critic", "must be false for image games (no agent replay)")
                need(self, self.critic_warmup == 0, "critic_warmup",
                     "must be 0 for image games (the value head learns with the actor)")
                need(self, self.self_play_prob == 1, "self_play_prob",
                     "must be 1 for image games (agent replay needs a network without a value head)")
            else:
                need(run, run.whole_episodes, "rollout_steps",
                     f"must be 0 or max_steps = {run.max_steps} for {run.env}: its separate critic learns from whole episodes")
                need(run, run.time_limit == "terminate", "time_limit",
                     f"must be terminate for {run.env}: its separate critic learns from whole episodes")
            need(self, run.whole_episodes or (self.self_play_prob == 1 and self.trajectory_replay == 0),
                 "self_play_prob", "must be 1 (and trajectory_replay 0) when rollouts are chunks of longer episodes")
        return self
