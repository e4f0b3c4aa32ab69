"""LOQA, Learning with Opponent Q-Learning Awareness (Aghajohari et al., ICLR 2024; SPEC section 7b).

The agent models the other player's policy as a softmax of the other's Q-values and
shapes it: the other's Q-value of the action it took is replaced by its return made
differentiable in the agent's policy (loaded DiCE, :func:`trainers.dice.loaded_dice_returns`),
and the agent follows the gradient of its own advantage times the other's modelled
log-probability of that action (:func:`trainers.dice.loqa_opponent_log_probs`), beside
its plain policy gradient (:func:`trainers.dice.loqa_loss`). The paper relates it to
Advantage Alignment (its Appendix A.3-A.4 and Theorem 2).

Per update, for every learning row (a seat of a game) and the other seat of its game:

* the agent's TD(0) advantages and the other's state values come from Q-critics
  (``V(s) = sum_a pi(a | s) Q(s, a)``): the other's from the agent's own critic in
  self-play, or from the critic of the past snapshot that played it (agent replay with
  ``replay_critic``);
* ``q_t = r'_t + gamma * G'_{t+1}`` (``G'`` the other's loaded-DiCE return; ``q = r'`` at
  the last step), ``log pi'_t = log softmax((Q'(s_t, .) with Q'(s_t, b_t) := q_t) / temperature)[b_t]``;
* loss = ``-mean(A log pi(a)) - shaping_weight * mean(A log pi'(b)) - entropy_coef * H``.

The rest (rollouts, the Q-critic, agent replay, checkpoints, players) is the on-policy
core's (:class:`~trainers.algorithms.base.OnPolicy`). LOQA needs whole-episode rollouts,
two players, discrete actions and a Q-critic (with ``value_norm`` its outputs are still in
return units: the other's Q-values enter the softmax as they are).

Presets (``PAPER_PRESETS``) follow the LOQA repository's documented commands (its README,
``conf/ipd_conf`` and ``conf/coin_conf/hp/loqa_iclr.yaml``); the README of this project
lists where they still differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainers import dice
from trainers.algorithms.base import OnPolicy, OnPolicyConfig
from trainers.common import clip_and_step
from trainers.config import need
from trainers.critics import Estimate
from trainers.networks.distributions import entropy
from trainers.rollout import Batch

__all__ = ["LOQA", "LOQAConfig", "PAPER_PRESETS", "FAST_PRESETS"]


@dataclass
class LOQAConfig(OnPolicyConfig):
    """LOQA: the on-policy core's settings and the shaping term's."""

    shaping_weight: float = 1.0
    """Weight of the opponent-shaping term (LOQA's opponent_differentiation_weight; 0: plain policy gradient)."""
    opponent_temperature: float = 1.0
    """Temperature of the softmax over the other player's Q-values that models its policy (op_softmax_temp)."""
    dice_discount: float = 0.9
    """Extra discount of the loaded-DiCE sum: how far ahead the agent's actions count in the other's
    differentiable return (differentiable_opponent.discount)."""

    def validate(self, run: Any = None) -> LOQAConfig:
        super().validate(run)
        self.check_finite(("shaping_weight",), 0.0)
        self.check_finite(("opponent_temperature",), 0.0, strict=True)
        self.check_finite(("dice_discount",), 0.0)
        need(self, self.dice_discount <= 1, "dice_discount", "must be in [0, 1]")
        need(self, self.critic_kind == "q", "critic_kind", "must be q: LOQA models the other player from its Q-values")
        need(self, not self.shared_encoder, "shared_encoder", "must be false: LOQA needs a separate Q-critic")
        need(self, self.trajectory_replay == 0, "trajectory_replay", "must be 0 (replayed games have no opponent critic)")
        need(self, self.self_play_prob == 1 or self.replay_critic, "replay_critic",
             "must be true with agent replay (self_play_prob < 1): a replayed opponent's Q-values come from its snapshot")
        if run is not None:
            import social_dilemmas

            n = social_dilemmas.spec(run.env, **run.game_kwargs()).n_players
            need(self, n == 2, "critic_kind", f"LOQA is written for two players; {run.env} has {n}")
        return self


#: The LOQA repository's documented runs (its README's commands; the configuration files
#: they name): the IPD from ``hp=logits`` (a table of logits per memory-one state,
#: ``actor_table``), self-play without agent replay, 20% random actions in the rollouts;
#: the Coin Game from ``hp=loqa_iclr`` with the command's overrides, agent replay of every
#: game against its own past snapshot (current-agent fraction 0), a snapshot every 10 updates.
_LOQA_CRITIC: dict[str, Any] = dict(critic_kind="q", critic_target="td0", gae_lambda=0.0, target_tau=0.01,
                                    value_norm=False, advantage_values="online", critic_time=True)
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(**_LOQA_CRITIC, gamma=0.96, actor_lr=1e-3, critic_lr=1e-2, entropy_coef=0.0, grad_clip=0.0,
                actor_recurrent=False, actor_table=True, self_play_prob=1.0, exploration_epsilon=0.2, dice_discount=0.9,
                opponent_temperature=1.0, shaping_weight=1.0, num_games=2048, max_steps=50),
    "coin_game": dict(**_LOQA_CRITIC, gamma=0.96, actor_lr=1e-3, critic_lr=1e-2, entropy_coef=0.1, grad_clip=1.0,
                      hidden=128, self_play_prob=0.0, replay_groups=0, replay_critic=True, replay_capacity=10000,
                      snapshot_every=10, dice_discount=0.9, opponent_temperature=1.0, shaping_weight=1.0,
                      num_games=512, max_steps=50),
}

#: CPU presets (``--fast``). IPD: the paper preset with a critic that is right before the actor
#: moves: Monte Carlo Q-targets (no lagging TD(0) bootstrap) with value normalisation (without
#: it our GRU Q-critic settles on one value for every step of the game, measured: README) learnt
#: alone for 200 updates, then actor lr 1e-2 and 1024 games. The shaping term weighs the agent's future moves by its past
#: advantages, so a critic whose values are still biased (TD(0) moves them back one step per
#: update and the returns are about -37 per game) makes those advantages negative in every state
#: and the term pushes to defection everywhere (measured: README); with it right, the term pushes
#: to cooperation after the other's C and to defection after its D.
#: Coin Game: the same critic recipe (Monte Carlo targets, value normalisation, 200 critic-only
#: updates) with the paper's actor, 256 games, and agent replay in 16 groups of games (each
#: group against its own past snapshot, instead of every game its own: the paper's one
#: snapshot per game evaluates up to 512 snapshot networks per update), 1000 updates; with
#: the paper's TD(0) critic the same budget gives a cooperator that Always Defect exploits
#: (measured: README).
FAST_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(critic_target="mc", value_norm=True, critic_warmup=200, actor_lr=1e-2, num_games=1024,
                iterations=600),
    "coin_game": dict(critic_target="mc", value_norm=True, critic_warmup=200, replay_groups=16, num_games=256,
                      iterations=1000),
}


class LOQA(OnPolicy):
    """LOQA (see the module docstring)."""

    name = "loqa"
    Config = LOQAConfig
    presets = PAPER_PRESETS
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/loss_shaping", "train/critic_loss")

    def opponent_log_probs(self, batch: Batch, mine: Tensor, log_probs: Tensor) -> Tensor:
        """The other players' modelled log-probabilities of their actions, for the learning
        rows ``mine`` (indices into ``batch``) whose log-probabilities are ``log_probs``."""
        cfg = self.cfg
        theirs = mine ^ 1  # rows are game * 2 + seat: the other seat of the same game
        other = batch.rows(theirs)
        snapshots = self.opponent if not bool(batch.learn[theirs].any()) else None
        if snapshots is not None and getattr(snapshots, "critics", None) is None:
            raise RuntimeError("LOQA's replayed opponents need their critics (replay_critic)")
        q = self.critic.outputs(other, snapshots)
        values = (other.probs * q).sum(-1)
        loaded = dice.loaded_dice_returns(other.rewards, log_probs, values, other.dones, cfg.gamma, cfg.dice_discount)
        following = torch.cat((loaded[:, 1:], torch.zeros_like(loaded[:, :1])), 1)
        q_taken = other.rewards + cfg.gamma * torch.where(other.dones, torch.zeros_like(following), following)
        return dice.loqa_opponent_log_probs(q, other.actions, q_taken, cfg.opponent_temperature)

    def update_actor(self, batch: Batch, est: Estimate, adv: Tensor, others: Tensor) -> dict[str, float]:
        cfg = self.cfg
        if bool(batch.starts[:, 1:].any()):
            raise ValueError("LOQA needs whole-episode rollouts (rollout_steps 0 or max_steps)")
        rows, learn = batch.learning()
        mine = torch.arange(batch.rewards.shape[0], device=batch.rewards.device)[learn]
        dist, _ = self.actor.forward_sequence(rows.memory, rows.obs, rows.starts)
        logp = dist.log_prob(rows.actions)
        op_logp = self.opponent_log_probs(batch, mine, logp)
        loss, info = dice.loqa_loss(adv[learn], logp, op_logp, entropy(dist), cfg.entropy_coef, cfg.shaping_weight)
        self.check("actor loss", loss)
        norm = clip_and_step(self.actor_opt, loss, self.actor.parameters(), cfg.grad_clip)
        return {"train/actor_grad_norm": norm, **{f"train/{k}": float(v) for k, v in info.items()}}
