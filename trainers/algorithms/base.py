"""The algorithm interface, and the on-policy core that AdAlign and Proximal AdAlign are built on.

**The interface** (:class:`Algorithm`): what the run loop (:func:`trainers.run.train`)
drives and the players (:mod:`trainers.players`) load. An algorithm has a name, a
configuration section (:attr:`Algorithm.Config`), presets per game, and one instance per
run with ``train_step()`` (one update, returning its metrics), ``evaluate()``,
``state_dict()`` / ``load_state_dict()`` (everything to resume exactly) and the class
method ``player()`` (a checkpoint as a :class:`~social_dilemmas.policies.Policy`).

**The on-policy core** (:class:`OnPolicy`) owns what every on-policy algorithm of the
project shares, in one explicit loop per update (CleanRL style):

1. **rollout**: one rollout of every game of the batched view (``social_dilemmas.make_vec``:
   whole episodes of the batched games, chunks of Commons Harvest's worker processes),
   every player acting from its own seat; in self-play the current agent plays every
   seat, otherwise seat 0 plays past snapshots (agent replay: one snapshot for the batch,
   or one per group of games, :class:`~trainers.rollout.SnapshotOpponents`); trajectory
   replay mixes in games of earlier batches;
2. **advantages**: the critic (:mod:`trainers.critics`: a separate critic network, state
   or action values, with a target network, or the policy network's value head) estimates
   each row's advantages (a replayed opponent's from its snapshot's critic with
   ``replay_critic``), normalised if asked; each row's *other players'* advantages are summed;
3. **update**: the critic's step, then the algorithm's :meth:`OnPolicy.update_actor`
   (after ``critic_warmup`` updates), then the target network's EMA and a check that no
   weight became NaN or infinite;
4. the run loop logs, evaluates and saves.

Subclasses override :meth:`OnPolicy.update_actor` (and extend :class:`OnPolicyConfig`);
:func:`ppo_epochs` is the one PPO epoch / minibatch / KL-stop loop.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

import social_dilemmas
from social_dilemmas.policies import Policy
from trainers.advantages import normalize_advantages, others_sum
from trainers.common import check_finite, clip_and_step, resolve_device
from trainers.config import Config, Section, need
from trainers.critics import Estimate, SeparateCritic, ValueHead
from trainers.evaluation.scripted import scripted_evaluation
from trainers.networks import build_networks, is_image_game
from trainers.networks.recurrent import TableNet
from trainers.networks.vision import ARCHS
from trainers.policy import AgentPolicy
from trainers.rollout import AgentReplay, Batch, Rollouts, TrajectoryReplay

__all__ = ["Algorithm", "OnPolicy", "OnPolicyConfig", "ppo_epochs"]


class Algorithm:
    """Base of every algorithm: one instance is one run (see the module docstring).

    Class attributes: ``name`` (the registry's key, ``--algo``), ``Config`` (its section),
    ``presets`` and ``fast_presets`` (per game, the settings that differ from the
    defaults, run fields included; ``fast_presets`` are ``--fast``'s CPU presets),
    ``postfix`` (the metrics on the progress bar).
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[Section]] = Section
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    fast_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    postfix: ClassVar[tuple[str, ...]] = ("rollout/reward_per_step",)

    def __init__(self, config: Config, out: str | Path | None = None):
        self.config = config.validate()
        self.run, self.cfg = config.run, config.algorithm
        self.out = Path(out) if out is not None else None
        self.device = resolve_device(self.run.device)
        self.iteration = 0
        self.best_return = float("-inf")  # the highest training reward per step so far (keep_best)

    @property
    def steps_per_update(self) -> int:
        """Environment steps (of every game, all players at once) per update."""
        return self.run.num_games * self.run.steps_per_rollout

    def train_step(self) -> dict[str, float]:
        """One update; returns its metrics ``{"namespace/name": float}``."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, float]:
        """The current agent against itself and the game's scripted players (``eval/`` metrics)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly as an uninterrupted one."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def player_state(self) -> dict[str, Any]:
        """What :meth:`player` needs of the state (``best.pt``); all of it by default."""
        return self.state_dict()

    def export(self, out: Path) -> None:
        """Files written beside each checkpoint (Stable-Baselines3's ``model.zip``); none by default."""

    def close(self) -> None:
        """Release what the run holds (worker processes)."""

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        """The agent of a checkpoint (its ``config`` and ``state``) as a player of ``game``."""
        raise NotImplementedError


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


def ppo_epochs(rows: int, cfg: Any, generator: torch.Generator, minibatch: Callable[[Tensor], tuple[Tensor, dict]],
               optimizer: torch.optim.Optimizer, params: list[Tensor], check: Callable[[Tensor], None]) -> dict[str, float]:
    """The PPO loop: ``cfg.ppo_epochs`` epochs over ``cfg.ppo_minibatches`` minibatches of
    ``rows`` rows (shuffled with ``generator``), one optimiser step per minibatch on the loss
    that ``minibatch(idx)`` returns with its info (which must hold ``approx_kl``), stopping
    after an epoch whose mean approximate KL passes ``cfg.target_kl`` (0: never).

    Returns the means of the info values (and ``grad_norm``) as ``train/`` metrics, and
    ``train/epochs``."""
    size = max(1, rows // cfg.ppo_minibatches)
    device = generator.device
    stats: dict[str, list[float]] = {}
    epochs = 0
    for _ in range(cfg.ppo_epochs):
        order = torch.randperm(rows, generator=generator, device=device)
        kls = []
        for start in range(0, rows, size):
            total, info = minibatch(order[start:start + size])
            check(total)
            info["grad_norm"] = clip_and_step(optimizer, total, params, cfg.grad_clip)
            for k, v in info.items():
                stats.setdefault(k, []).append(float(v.detach()) if isinstance(v, Tensor) else float(v))
            kls.append(float(info["approx_kl"]))
        epochs += 1
        if cfg.target_kl > 0 and sum(kls) / len(kls) > cfg.target_kl:
            break
    out = {f"train/{k}": sum(v) / len(v) for k, v in stats.items()}
    out["train/epochs"] = float(epochs)
    return out


class OnPolicy(Algorithm):
    """The on-policy core (see the module docstring). Subclasses implement :meth:`update_actor`."""

    Config = OnPolicyConfig
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/critic_loss")

    def __init__(self, config: Config, out: str | Path | None = None):
        super().__init__(config, out)
        run, cfg = self.run, self.cfg
        torch.manual_seed(run.seed)
        # the fast path: the actions are sampled from the action space, valid by construction;
        # 0/1 observations as uint8 (the networks convert them), so the rollouts store a quarter of the bytes
        compact = getattr(social_dilemmas.GAMES.get(run.env), "compact_obs_dtypes", ())
        self.vec = social_dilemmas.make_vec(run.env, run.num_games, device=self.device, validate=False,
                                            obs_dtype=compact[0] if compact else None, **run.game_kwargs())
        try:
            self.game, self.n_players = self.vec.game, self.vec.n_players
            actor, critic = build_networks(self.game, cfg)
            self.actor = actor.to(self.device)
            if critic is not None:
                self.critic: SeparateCritic | ValueHead = SeparateCritic(critic.to(self.device), cfg, run.max_steps,
                                                                         self.device)
                self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, weight_decay=cfg.weight_decay)
            else:  # one network: its value head learns at the critic's rate
                self.critic = ValueHead(cfg)
                head = {id(p) for p in self.actor.value_parameters()}
                # images: the fused Adam (the same update, a third of the time on the vision network's 2.8M weights)
                self.actor_opt = torch.optim.Adam([
                    {"params": [p for p in self.actor.parameters() if id(p) not in head], "lr": cfg.actor_lr},
                    {"params": self.actor.value_parameters(), "lr": cfg.critic_lr},
                ], weight_decay=cfg.weight_decay, fused=True if is_image_game(self.game) else None)
            self.action_gen = torch.Generator(device=self.device)
            self.action_gen.manual_seed(run.seed + 1)
            self.rng = random.Random(run.seed + 2)
            self.rollouts = Rollouts(self.vec, self.actor, run.steps_per_rollout, run.time_limit, self.action_gen,
                                     self.device, run.seed, record_probs=cfg.critic_kind == "q",
                                     epsilon=cfg.exploration_epsilon)
            groups = cfg.replay_groups and max(g for g in range(1, min(cfg.replay_groups, run.num_games) + 1)
                                               if run.num_games % g == 0)
            self.agents = AgentReplay(cfg.self_play_prob, cfg.snapshot_every, cfg.replay_capacity, groups,
                                      cfg.replay_critic)
            self.opponent: Any = None
            self.trajectories = TrajectoryReplay(cfg.trajectory_replay, self.n_players, cfg.trajectory_capacity,
                                                 cfg.trajectory_add)
        except BaseException:
            self.vec.close()
            raise

    # -- 1. rollout ----------------------------------------------------------------------
    def collect(self) -> Batch:
        self.opponent = self.agents.opponent(self.actor, self.rng, self.run.num_games)
        return self.trajectories.mix(self.rollouts.collect(self.opponent), self.action_gen)

    def rollout_metrics(self, batch: Batch) -> dict[str, float]:
        r = batch.rewards.view(-1, self.n_players, batch.rewards.shape[1])
        out = {"rollout/reward_per_step": float(r.mean()), "rollout/reward_seat0": float(r[:, 0].mean())}
        out.update({f"rollout/{k}": v for k, v in self.game.action_metrics(batch.actions).items()})
        if self.rollouts.finished:
            out["rollout/episode_return"] = self.rollouts.finished_return
        if batch.values is not None:
            out["rollout/value_mean"] = float(batch.values.mean())
        return out

    # -- 2. advantages and 3. update --------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        est = self.critic.estimate(batch, self.opponent)
        metrics = self.critic.step(est, self.iteration, self.out)
        adv = normalize_advantages(est.adv) if self.cfg.normalize_advantages else est.adv
        others = others_sum(adv, self.n_players)
        if self.iteration >= self.cfg.critic_warmup:  # before: the critic learns alone, so the first advantages are sound
            self.actor.train()
            metrics.update(self.update_actor(batch, est, adv, others))
        self.critic.after_update()
        for name, module in (("actor", self.actor), *(("critic", m) for m in self.critic.modules())):
            if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
                self.check("a " + name + " weight", torch.tensor(float("nan")))
        metrics["train/advantage_std"] = float(adv.std())
        return metrics

    def update_actor(self, batch: Batch, est: Estimate, adv: Tensor, others: Tensor) -> dict[str, float]:
        """The algorithm's update of the actor from the batch, each row's advantages ``adv``
        ``[N, T]`` and its other players' summed advantages ``others`` (both without
        gradient). Train only the rows of ``batch.learn``; returns ``train/`` metrics."""
        raise NotImplementedError

    def check(self, what: str, value: Tensor) -> None:
        """Stop with :class:`~trainers.common.TrainingDiverged` if ``value`` is NaN or infinite."""
        check_finite(what, value, self.iteration, self.out)

    # -- the run interface ----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        if self.cfg.anneal_lr:
            self.actor_opt.param_groups[0]["lr"] = self.cfg.actor_lr * max(0.0, 1.0 - self.iteration / self.run.iterations)
        batch = self.collect()
        rollout_s = time.perf_counter() - start
        metrics = self.rollout_metrics(batch)
        metrics.update(self.update(batch))
        self.iteration += 1
        self.agents.after_update(self.iteration, self.actor, self.critic.snapshot_source())
        metrics["time/rollout_s"] = rollout_s
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The current actor against itself and the scripted players
        (:func:`trainers.evaluation.scripted.scripted_evaluation`, ``eval_games`` games per
        match). Draws no numbers from the training generators."""
        return scripted_evaluation(self.game, lambda seat: AgentPolicy(copy.deepcopy(self.actor)),
                                   games=self.run.eval_games, seed=self.run.seed, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic": self.critic.state_dict(),
            "snapshots": self.agents.snapshots,
            "critic_snapshots": self.agents.critic_snapshots,
            "trajectories": self.trajectories.state_dict(),
            "rollouts": self.rollouts.state_dict(),
            "action_gen": self.action_gen.get_state(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
        }

    def player_state(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        dev = self.device
        self.actor.load_state_dict(state["actor"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic.load_state_dict(state["critic"])
        self.agents.snapshots = [{k: v.to(dev) for k, v in s.items()} for s in state["snapshots"]]
        self.agents.critic_snapshots = [{k: v.to(dev) for k, v in s.items()} for s in state.get("critic_snapshots", [])]
        # checkpoints before the trajectory buffer kept the previous batch only ("replay")
        saved = state["trajectories"] if "trajectories" in state else {"previous": state["replay"]}
        self.trajectories.load_state_dict(saved, dev)
        self.rollouts.load_state_dict(state["rollouts"], seed=self.run.seed + self.iteration)
        self.action_gen.set_state(state["action_gen"])
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])

    def close(self) -> None:
        self.vec.close()

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        run = config.run
        trained_on = social_dilemmas.spec(run.env, **run.game_kwargs())
        channels_first = False
        if game is not None and tuple(game.obs_shape) != tuple(trained_on.obs_shape):
            h, w, c = trained_on.obs_shape if is_image_game(trained_on) else (None, None, None)
            if is_image_game(trained_on) and tuple(game.obs_shape) == (c, h, w):
                channels_first = True  # the same images, channels first
            elif is_image_game(trained_on):
                raise ValueError(f"the agent was trained on {run.env} observations of shape {trained_on.obs_shape} "
                                 f"(channels last), the view gives {tuple(game.obs_shape)}: make the view with "
                                 f"resize={h}, grayscale={c == 1}")
            else:
                raise ValueError(f"the agent was trained on {trained_on!r}, not on {game!r}")
        if game is not None and tuple(game.action_shape) != tuple(trained_on.action_shape):
            raise ValueError(f"the agent was trained on {trained_on!r}, not on {game!r}")
        actor, _ = build_networks(trained_on, config.algorithm, critic=False)
        actor.load_state_dict(state["actor"])
        shape = tuple(game.obs_shape) if game is not None else tuple(trained_on.obs_shape)
        return AgentPolicy(actor.to(device), name=name, greedy=greedy,
                           obs_shape=shape if is_image_game(trained_on) else None, channels_first=channels_first)
