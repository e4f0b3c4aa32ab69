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
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

import social_dilemmas
from social_dilemmas.policies import Policy
from trainers.advantages import normalize_advantages, others_sum
from trainers.algorithms.onpolicy_config import OnPolicyConfig
from trainers.common import check_finite, clip_and_step, resolve_device
from trainers.config import Config, Section
from trainers.critics import Estimate, SeparateCritic, ValueHead
from trainers.evaluation.commons_harvest import harvest_evaluation
from trainers.evaluation.scripted import scripted_evaluation
from trainers.networks import build_networks, is_image_game
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
        match); on Commons Harvest, in all 7 seats for ``eval_games`` episodes
        (:func:`trainers.evaluation.commons_harvest.harvest_evaluation`). Draws no numbers
        from the training generators."""
        if is_image_game(self.game):
            actor = copy.deepcopy(self.actor).cpu()
            return harvest_evaluation(AgentPolicy(actor, obs_shape=tuple(self.game.obs_shape)), self.run)
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
