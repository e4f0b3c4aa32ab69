"""The training loop of Advantage Alignment and Proximal Advantage Alignment.

One explicit loop (CleanRL style), in four visible sections per update:

1. **rollout**: ``batch_size`` whole episodes on the batched view, on the training
   device, every player acting from its own seat; in self-play the current agent plays
   every seat, otherwise seat 0 plays a past snapshot drawn from the agent replay buffer;
2. **advantages**: critic values (and the EMA target critic's), GAE per seat, and each
   seat's *other players'* advantages from the same critic on their seats;
3. **update**: the AdAlign loss (REINFORCE form) or the Proximal AdAlign loss (PPO
   epochs with early stop on the approximate KL), the critic's Huber loss, gradient
   clipping, the target network's EMA;
4. **logging and checkpoints**: ``metrics.csv``, TensorBoard, a progress bar, and an
   atomic ``checkpoint.pt`` that ``--resume`` continues exactly.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import social_dilemmas
from trainers import losses
from trainers.checkpoint import atomic_save, load_checkpoint
from trainers.config import TrainConfig
from trainers.networks import build_networks, sample_action
from trainers.runner import prepare_config, run_loop

__all__ = ["Trainer", "TrainingDiverged", "train", "resolve_device"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is invalid: CUDA is not available here; use auto or cpu")
    return torch.device(name)


def make_training_game(cfg: TrainConfig):
    kwargs = dict(cfg.env_kwargs)
    kwargs["max_steps"] = cfg.max_steps
    if cfg.env == "commons_harvest_open":
        raise ValueError("env = 'commons_harvest_open' is not trainable by this trainer yet: it needs the Melting Pot view")
    return social_dilemmas.make_game(cfg.env, **kwargs)


@dataclass
class Batch:
    """One rollout, per seat trajectory: ``N = batch_size * n_players`` rows, time second."""

    obs: Tensor  # [N, T, *obs_shape]
    actions: Tensor  # [N, T, *action_shape]
    log_probs: Tensor  # [N, T] log-probabilities under the acting policy
    rewards: Tensor  # [N, T]
    learn: Tensor  # [N] bool: rows the update trains on


class Trainer:
    """Holds the networks, optimisers, environments and random generators of one run."""

    def __init__(self, cfg: TrainConfig, out: str | Path | None = None):
        self.cfg = cfg.validate()
        self.device = resolve_device(cfg.device)
        self.out = Path(out) if out is not None else None
        self.game = make_training_game(cfg)
        self.n_players = self.game.n_players
        torch.manual_seed(cfg.seed)
        self.actor, self.critic = build_networks(self.game, cfg.hidden, value_norm=cfg.value_norm,
                                                     actor_recurrent=cfg.actor_recurrent)
        self.actor.to(self.device)
        self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.critic_lr)
        self.vec = social_dilemmas.make_vec(cfg.env, cfg.batch_size, device=self.device,
                                            **{**cfg.env_kwargs, "max_steps": cfg.max_steps})
        self.obs, _ = self.vec.reset(seed=cfg.seed)
        self.action_gen = torch.Generator(device=self.device)
        self.action_gen.manual_seed(cfg.seed + 1)
        self.rng = random.Random(cfg.seed + 2)
        self.snapshots: list[dict[str, Tensor]] = []
        self.replay: Batch | None = None
        self.iteration = 0
        self.time = torch.arange(cfg.max_steps, device=self.device, dtype=torch.float32) / cfg.max_steps
        self.masks = cfg.sign_masks or None

    # -- 1. rollout -----------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self) -> Batch:
        cfg, game, B, n = self.cfg, self.game, self.cfg.batch_size, self.n_players
        self_play = not self.snapshots or self.rng.random() < cfg.self_play_prob
        opponent = None
        if not self_play:
            opponent = copy.deepcopy(self.actor)
            opponent.load_state_dict(self.rng.choice(self.snapshots))
        T = cfg.max_steps
        obs_buf = torch.empty((T, B, n, *game.obs_shape), device=self.device)
        act_buf = torch.empty((T, B, n, *game.action_shape), dtype=game.action_dtype, device=self.device)
        logp_buf = torch.empty((T, B, n), device=self.device)
        rew_buf = torch.empty((T, B, n), device=self.device)
        h = self.actor.initial_state(B * n, self.device)
        h_opp = opponent.initial_state(B * (n - 1), self.device) if opponent is not None else None
        obs = self.obs
        for t in range(T):
            obs_buf[t] = obs
            if opponent is None:
                dist, h = self.actor.step(obs.flatten(0, 1), h)
                action = sample_action(dist, self.action_gen)
                logp = dist.log_prob(action)
                actions = action.view(B, n, *game.action_shape)
                logp_buf[t] = logp.view(B, n)
            else:
                dist, h_own = self.actor.step(obs[:, 0], h[:, :B])
                h = torch.cat((h_own, h[:, B:]), dim=1)
                mine = sample_action(dist, self.action_gen)
                odist, h_opp = opponent.step(obs[:, 1:].flatten(0, 1), h_opp)
                theirs = sample_action(odist, self.action_gen)
                actions = torch.cat((mine.unsqueeze(1), theirs.view(B, n - 1, *game.action_shape)), dim=1)
                logp_buf[t, :, 0] = dist.log_prob(mine)
                logp_buf[t, :, 1:] = odist.log_prob(theirs).view(B, n - 1)
            act_buf[t] = actions
            obs, rewards, _, _, _ = self.vec.step(actions)
            rew_buf[t] = rewards
        self.obs = obs  # the games were reset on the last step: the next rollout starts fresh

        def rows(x: Tensor) -> Tensor:  # [T, B, n, ...] -> [B * n, T, ...]
            return x.transpose(0, 1).transpose(1, 2).flatten(0, 1)

        learn = torch.ones(B, n, dtype=torch.bool, device=self.device)
        if opponent is not None:
            learn[:, 1:] = False
        return Batch(rows(obs_buf), rows(act_buf), rows(logp_buf), rows(rew_buf), learn.flatten())

    def mix_replay(self, batch: Batch) -> Batch:
        """Replace a ``trajectory_replay`` fraction of the games with games of the previous batch."""
        frac = self.cfg.trajectory_replay
        previous, self.replay = self.replay, batch
        if frac <= 0 or previous is None:
            return batch
        B, n = self.cfg.batch_size, self.n_players
        k = max(1, int(round(frac * B)))
        games = torch.randperm(B, generator=self.action_gen, device=self.device)[:k]
        rows = (games.unsqueeze(1) * n + torch.arange(n, device=self.device)).flatten()
        mixed = Batch(*(x.clone() for x in (batch.obs, batch.actions, batch.log_probs, batch.rewards, batch.learn)))
        for name in ("obs", "actions", "log_probs", "rewards", "learn"):
            getattr(mixed, name)[rows] = getattr(previous, name)[rows]
        return mixed

    # -- 2. advantages --------------------------------------------------------------------
    def advantages(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(own advantages ``[N, T]``, sum of the other seats' advantages ``[N, T]``,
        critic values with gradient ``[N, T]``, critic targets ``[N, T]``)."""
        cfg = self.cfg
        N, T = batch.rewards.shape
        time = self.time.expand(N, T)
        with torch.no_grad():
            # the value normaliser follows the Monte Carlo returns of this batch
            returns = losses.monte_carlo_returns(batch.rewards, self._dones(N, T), cfg.gamma)
            self.critic.update_normalizer(returns)
            self.critic_target.update_normalizer(returns)  # same statistics; each keeps its outputs
        values, _ = self.critic(batch.obs, time)
        with torch.no_grad():
            target_values, _ = self.critic_target(batch.obs, time)
            v = target_values if cfg.advantage_values == "target" else values.detach()
            next_v = torch.cat((v[:, 1:], torch.zeros_like(v[:, :1])), dim=1)
            dones = self._dones(N, T)
            adv, _ = losses.gae(batch.rewards, v, next_v, dones, cfg.gamma, cfg.gae_lambda)
            if cfg.critic_target == "td0":
                next_t = torch.cat((target_values[:, 1:], torch.zeros_like(v[:, :1])), dim=1)
                targets = losses.td0_targets(batch.rewards, next_t, dones, cfg.gamma)
            else:
                targets = losses.monte_carlo_returns(batch.rewards, dones, cfg.gamma)
            if cfg.normalize_advantages:
                adv = losses.normalize_advantages(adv)
            per_game = adv.view(-1, self.n_players, T)
            others = (per_game.sum(1, keepdim=True) - per_game).reshape(N, T)
        return adv, others, values, targets

    def _dones(self, N: int, T: int) -> Tensor:
        dones = torch.zeros((N, T), dtype=torch.bool, device=self.device)
        dones[:, -1] = True  # the games end after max_steps: no bootstrap past the last step
        return dones

    @property
    def beta(self) -> float:
        """Weight of the alignment term in this update: 0 during ``alignment_warmup``, then ``cfg.beta``."""
        return self.cfg.beta if self.iteration >= self.cfg.alignment_warmup else 0.0

    # -- 3. update ------------------------------------------------------------------------
    def _entropy(self, dist) -> Tensor:
        return dist.base_entropy() if hasattr(dist, "base_entropy") else dist.entropy()

    def _step_critic(self, values: Tensor, targets: Tensor) -> dict[str, float]:
        loss = losses.critic_loss(self.critic.normalized(values), self.critic.normalized(targets))
        self._check_finite("critic loss", loss)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = self._clip(self.critic)
        self.critic_opt.step()
        return {"train/critic_loss": loss.item(), "train/critic_grad_norm": norm}

    def _clip(self, module: torch.nn.Module) -> float:
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        return float(torch.nn.utils.clip_grad_norm_(module.parameters(), clip))

    def _check_finite(self, what: str, value: Tensor) -> None:
        if not bool(torch.isfinite(value)):
            raise TrainingDiverged(
                f"{what} is {value.item()} at update {self.iteration + 1}; stopping. The last good checkpoint"
                + (f" in {self.out} is kept" if self.out else " is kept") + "; lower the learning rates or clip gradients."
            )

    def update(self, batch: Batch) -> dict[str, float]:
        cfg = self.cfg
        adv, others, values, targets = self.advantages(batch)
        metrics = self._step_critic(values, targets)
        learn = batch.learn
        if self.iteration < cfg.critic_warmup:
            pass  # the critic learns alone first, so the first advantages the actor sees are not biased
        elif cfg.algo == "adalign":
            dist, _ = self.actor(batch.obs[learn])
            logp = dist.log_prob(batch.actions[learn])
            entropy = self._entropy(dist)
            loss, info = losses.adalign_loss(
                adv[learn], others[learn], logp, entropy, beta=self.beta, entropy_coef=cfg.entropy_coef,
                mode=cfg.aggregation, gamma=cfg.gamma, masks=self.masks,
            )
            self._check_finite("actor loss", loss)
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
            metrics["train/actor_grad_norm"] = self._clip(self.actor)
            self.actor_opt.step()
            metrics.update({f"train/{k}": float(v) for k, v in info.items()})
        else:
            metrics.update(self._proximal_update(batch, adv[learn], others[learn]))
        losses.ema_update_(self.critic_target, self.critic, cfg.target_tau)
        for name, module in (("actor", self.actor), ("critic", self.critic)):
            if not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
                self._check_finite(f"a {name} weight", torch.tensor(float("nan")))
        metrics["train/advantage_std"] = float(adv.std())
        return metrics

    def _proximal_update(self, batch: Batch, adv: Tensor, others: Tensor) -> dict[str, float]:
        cfg = self.cfg
        learn = batch.learn
        obs, actions, old_logp = batch.obs[learn], batch.actions[learn], batch.log_probs[learn]
        aligned = losses.aligned_advantages(adv, others, beta=self.beta, mode=cfg.aggregation, gamma=cfg.gamma,
                                            masks=self.masks)
        n = obs.shape[0]
        size = max(1, n // cfg.ppo_minibatches)
        stats: dict[str, list[float]] = {}
        epochs_done = 0
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n, generator=self.action_gen, device=self.device)
            kl_sum, count = 0.0, 0
            for start in range(0, n, size):
                idx = order[start:start + size]
                dist, _ = self.actor(obs[idx])
                logp = dist.log_prob(actions[idx])
                loss, info = losses.ppo_clip_loss(logp, old_logp[idx], aligned[idx], cfg.clip_eps)
                entropy = self._entropy(dist).mean()
                total = loss - cfg.entropy_coef * entropy
                self._check_finite("actor loss", total)
                self.actor_opt.zero_grad(set_to_none=True)
                total.backward()
                self._clip(self.actor)
                self.actor_opt.step()
                for k, v in {**info, "loss": loss, "entropy": entropy}.items():
                    stats.setdefault(k, []).append(float(v.detach()) if isinstance(v, Tensor) else float(v))
                kl_sum, count = kl_sum + float(info["approx_kl"]), count + 1
            epochs_done += 1
            if cfg.target_kl > 0 and kl_sum / count > cfg.target_kl:
                break
        out = {f"train/{k}": sum(v) / len(v) for k, v in stats.items()}
        out["train/epochs"] = float(epochs_done)
        return out

    # -- 4. logging and checkpoints -------------------------------------------------------
    def rollout_metrics(self, batch: Batch) -> dict[str, float]:
        r = batch.rewards.view(-1, self.n_players, batch.rewards.shape[1])
        out = {"rollout/reward_per_step": float(r.mean()), "rollout/reward_seat0": float(r[:, 0].mean())}
        if self.cfg.env == "ipd":
            out["rollout/cooperation"] = float((batch.actions == 0).float().mean())
        return out

    def state_dict(self) -> dict[str, Any]:
        vec = self.vec
        return {
            "format": 1,
            "config": self.cfg.to_json(),
            "iteration": self.iteration,
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "snapshots": self.snapshots,
            "replay": None if self.replay is None else self.replay.__dict__,
            "env": {"state": vec.state.__dict__, "t": vec._t, "obs": self.obs,
                    "generator": vec.generator.get_state()},
            "action_gen": self.action_gen.get_state(),
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        self.iteration = ckpt["iteration"]
        self.actor.load_state_dict(ckpt["actor"])
        self.critic.load_state_dict(ckpt["critic"])
        self.critic_target.load_state_dict(ckpt["critic_target"])
        self.actor_opt.load_state_dict(ckpt["actor_opt"])
        self.critic_opt.load_state_dict(ckpt["critic_opt"])
        self.snapshots = [{k: v.to(self.device) for k, v in s.items()} for s in ckpt["snapshots"]]
        self.replay = None if ckpt["replay"] is None else Batch(**{k: v.to(self.device) for k, v in ckpt["replay"].items()})
        env = ckpt["env"]
        self.vec.state = type(self.vec.state)(**{k: v.to(self.device) for k, v in env["state"].items()})
        self.vec._t = env["t"]
        self.vec.generator.set_state(env["generator"])
        self.obs = env["obs"].to(self.device)
        self.action_gen.set_state(ckpt["action_gen"])
        self.rng.setstate(ckpt["rng"])
        torch.set_rng_state(ckpt["torch_rng"])

    def save(self) -> None:
        if self.out is not None:
            atomic_save(self.state_dict(), self.out / "checkpoint.pt")

    def train_step(self) -> dict[str, float]:
        """One update: rollout, advantages, update. Returns the metrics of the update."""
        start = time.perf_counter()
        if self.cfg.anneal_lr:
            for group in self.actor_opt.param_groups:
                group["lr"] = self.cfg.actor_lr * max(0.0, 1.0 - self.iteration / self.cfg.iterations)
        batch = self.mix_replay(self.rollout())
        rollout_s = time.perf_counter() - start
        metrics = self.rollout_metrics(batch)
        metrics.update(self.update(batch))
        self.iteration += 1
        if self.iteration % self.cfg.snapshot_every == 0:
            self.snapshots.append({k: v.detach().clone() for k, v in self.actor.state_dict().items()})
            del self.snapshots[: max(0, len(self.snapshots) - self.cfg.replay_capacity)]
        elapsed = time.perf_counter() - start
        steps = self.cfg.batch_size * self.cfg.max_steps
        metrics["time/env_steps_per_s"] = steps / elapsed
        metrics["time/rollout_s"] = rollout_s
        metrics["time/update_s"] = elapsed - rollout_s
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The current actor against itself and the scripted players
        (:func:`trainers.league.scripted_evaluation`, ``cfg.eval_games`` games per match).
        Draws no numbers from the training generators."""
        from trainers.checkpoint import AgentPolicy
        from trainers.league import scripted_evaluation

        return scripted_evaluation(self.game, lambda seat: AgentPolicy(copy.deepcopy(self.actor)),
                                   games=self.cfg.eval_games, seed=self.cfg.seed, device=self.device)


def train(cfg: TrainConfig | None = None, out: str | Path = "runs/train", resume: bool = False,
          progress: bool = True, iterations: int | None = None) -> Trainer:
    """Train (or, with ``resume=True``, continue the run in ``out``) and return the trainer.

    Writes ``out/config.json``, ``out/metrics.csv`` (one row per ``log_every`` updates),
    TensorBoard logs under ``out/tb`` and ``out/checkpoint.pt`` every ``save_every``
    updates and at the end. ``iterations`` overrides the configured total (useful to
    extend a resumed run).
    """
    out = Path(out)
    saved = out / "config.json"
    if (TrainConfig.load(saved).env if resume and saved.exists() else getattr(cfg, "env", None)) == "commons_harvest_open":
        from trainers.commons_harvest import train_commons_harvest  # the Melting Pot trainer (worker processes)
        return train_commons_harvest(cfg, out, resume=resume, progress=progress, iterations=iterations)
    cfg = prepare_config(cfg, out, resume, iterations)
    ckpt = load_checkpoint(out / "checkpoint.pt") if resume and (out / "checkpoint.pt").exists() else None
    trainer = Trainer(cfg, out)
    if ckpt is not None:
        trainer.load_state_dict(ckpt)
    run_loop(trainer, cfg, out, resume, progress, desc=f"{cfg.algo} {cfg.env}",
             postfix=("rollout/reward_per_step", "rollout/cooperation", "train/loss_aa", "train/critic_loss"))
    return trainer
