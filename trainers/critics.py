"""The critics of the on-policy core: how a batch's advantages are estimated and the critic trained.

* :class:`SeparateCritic` (games with vector observations, SPEC section 7): a network of
  its own over whole episodes, with the time step as an input, giving state values or
  action values (a Q-critic, ``V = sum_a pi(a) Q(a)``, the published IPD and Coin Game
  runs); an EMA target network; PopArt normalisation of the values (optional); TD(0) or
  Monte Carlo targets; GAE on the target network's values or its own; against replayed
  snapshots, the opponents' advantages from the snapshots' own critics; one Adam step per
  update.
* :class:`ValueHead` (image observations): the policy network's value head, its values
  recorded in the rollout; GAE over chunks of longer episodes (cut at episode ends,
  bootstrapped where an episode is truncated); the value loss joins the actor's loss.

Both give an :class:`Estimate`; normalising the advantages and summing the other players'
is the core's, the same for both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainers import losses
from trainers.advantages import gae, monte_carlo_returns, td0_targets
from trainers.common import check_finite, clip_and_step
from trainers.networks.grouped import grouped_call
from trainers.rollout import Batch

__all__ = ["Estimate", "SeparateCritic", "ValueHead", "ema_update_"]


@dataclass
class Estimate:
    """What a critic makes of a batch: the advantages ``[N, T]`` (no gradient), and what its
    training step needs (values with gradient and targets, or the returns of a value head)."""

    adv: Tensor
    values: Tensor | None = None
    targets: Tensor | None = None


class SeparateCritic:
    """A critic network of its own (see the module docstring). ``cfg``: an on-policy section."""

    def __init__(self, net: nn.Module, cfg: Any, max_steps: int, device: torch.device):
        self.net, self.cfg = net, cfg
        self.target = copy.deepcopy(net).requires_grad_(False)
        self.opt = torch.optim.Adam(net.parameters(), lr=cfg.critic_lr, weight_decay=cfg.weight_decay)
        self.time = torch.arange(max_steps, device=device, dtype=torch.float32) / max_steps

    @property
    def q(self) -> bool:
        """Whether the network gives action values (a Q-critic) rather than state values."""
        return self.net.n_actions is not None

    def state_values(self, out: Tensor, batch: Batch) -> Tensor:
        """State values from the network's output: itself, or for a Q-critic
        ``V(s) = sum_a pi(a | s) Q(s, a)`` with the acting policy's probabilities."""
        if not self.q:
            return out
        if batch.probs is None:
            raise ValueError("a Q-critic needs the acting policy's probabilities (Rollouts(record_probs=True))")
        return (batch.probs * out).sum(-1)

    def _advantages(self, batch: Batch, v: Tensor) -> Tensor:
        next_v = torch.cat((v[:, 1:], torch.zeros_like(v[:, :1])), dim=1)
        adv, _ = gae(batch.rewards, v, next_v, batch.dones, self.cfg.gamma, self.cfg.gae_lambda)
        return adv

    def estimate(self, batch: Batch, opponents: Any = None) -> Estimate:
        """Advantages, values and targets of ``batch``. With ``opponents`` (the rollout's
        :class:`~trainers.rollout.SnapshotOpponents` holding critics) the advantages of the rows
        that do not learn are those of each snapshot's own critic (:meth:`snapshot_advantages`)."""
        cfg = self.cfg
        N, T = batch.rewards.shape
        time = self.time.expand(N, T)
        dones = batch.dones
        with torch.no_grad():
            # the value normaliser follows the Monte Carlo returns of this batch
            returns = monte_carlo_returns(batch.rewards, dones, cfg.gamma)
            self.net.update_normalizer(returns)
            self.target.update_normalizer(returns)  # same statistics; each keeps its outputs
        out, _ = self.net(batch.obs, time)
        with torch.no_grad():
            # the target network runs only where its values are used: the advantages' values
            # (advantage_values "target") or TD(0) targets
            target_out = target_v = None
            if cfg.advantage_values == "target" or cfg.critic_target == "td0":
                target_out, _ = self.target(batch.obs, time)
                target_v = self.state_values(target_out, batch)
            v = target_v if cfg.advantage_values == "target" else self.state_values(out.detach(), batch)
            adv = self._advantages(batch, v)
            if opponents is not None and getattr(opponents, "critics", None) is not None:
                rows = (~batch.learn).nonzero().squeeze(1)
                adv[rows] = self.snapshot_advantages(batch.rows(rows), opponents)
            if cfg.critic_target == "td0":  # on the action taken next (Q-critic), or the next state's value
                next_t = (target_out.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1) if self.q else target_v)[:, 1:]
                targets = td0_targets(batch.rewards, torch.cat((next_t, torch.zeros_like(v[:, :1])), dim=1), dones,
                                      cfg.gamma)
            else:
                targets = monte_carlo_returns(batch.rewards, dones, cfg.gamma)
        values = out.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1) if self.q else out
        return Estimate(adv, values, targets)

    @torch.no_grad()
    def outputs(self, rows: Batch, opponents: Any = None) -> Tensor:
        """The critic's outputs for ``rows`` (a Q-critic's Q-values ``[M, T, n_actions]``): the
        current critic's or, with ``opponents`` (rows: the opponents' rows of a batch,
        game-major), those of the snapshot that played each group of them (``opponents.critics``)."""
        M, T = rows.rewards.shape
        time = self.time.expand(M, T)
        if opponents is None:
            return self.net(rows.obs, time)[0]
        G = opponents.groups
        out, _ = grouped_call(self.net, opponents.critics, rows.obs.unflatten(0, (G, -1)), time.unflatten(0, (G, -1)),
                              vmappable=True)
        return out.flatten(0, 1)

    @torch.no_grad()
    def snapshot_advantages(self, rows: Batch, opponents: Any) -> Tensor:
        """The advantages of ``rows`` (the opponents' rows of a batch, game-major) from the
        critic of the snapshot that played each group of them (``opponents.critics``)."""
        return self._advantages(rows, self.state_values(self.outputs(rows, opponents), rows))

    def step(self, est: Estimate, iteration: int, out: Any = None) -> dict[str, float]:
        """One Adam step on the Huber loss between the values and the targets (in the normaliser's units)."""
        loss = losses.critic_loss(self.net.normalized(est.values), self.net.normalized(est.targets))
        check_finite("critic loss", loss, iteration, out)
        norm = clip_and_step(self.opt, loss, self.net.parameters(), self.cfg.grad_clip)
        return {"train/critic_loss": loss.item(), "train/critic_grad_norm": norm}

    def value_loss(self, values: Tensor | None, targets: Tensor | None) -> tuple[Tensor | float, dict[str, Tensor]]:
        """Nothing joins the actor's loss: this critic learns in :meth:`step`."""
        return 0.0, {}

    def after_update(self) -> None:
        ema_update_(self.target, self.net, self.cfg.target_tau)

    def snapshot_source(self) -> nn.Module:
        """The network an agent-replay snapshot keeps: the one whose values give the advantages."""
        return self.target if self.cfg.advantage_values == "target" else self.net

    def modules(self) -> list[nn.Module]:
        return [self.net]

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.net.state_dict(), "critic_target": self.target.state_dict(),
                "critic_opt": self.opt.state_dict()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        self.net.load_state_dict(saved["critic"])
        self.target.load_state_dict(saved["critic_target"])
        self.opt.load_state_dict(saved["critic_opt"])


class ValueHead:
    """The policy network's value head (see the module docstring): GAE on the rollout's values,
    the critic trained by ``value_coef`` times the Huber loss to the lambda-returns (with
    ``critic_target mc`` and whole episodes, the Monte Carlo returns) inside the actor's loss."""

    def __init__(self, cfg: Any):
        self.cfg = cfg

    def estimate(self, batch: Batch, opponents: Any = None) -> Estimate:
        adv, returns = gae(batch.rewards, batch.values, batch.next_values, batch.dones, self.cfg.gamma,
                           self.cfg.gae_lambda, truncated=batch.truncated)
        if self.cfg.critic_target == "mc" and not bool(batch.truncated.any()):  # whole episodes: Monte Carlo targets
            returns = monte_carlo_returns(batch.rewards, batch.dones, self.cfg.gamma)
        return Estimate(adv, None, returns)

    def step(self, est: Estimate, iteration: int, out: Any = None) -> dict[str, float]:
        return {}

    def value_loss(self, values: Tensor | None, targets: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        """``value_coef`` times the Huber loss of the head's ``values`` to the lambda-returns
        ``targets`` (the rows the actor's loss is on), and that loss as a metric."""
        loss = losses.critic_loss(values, targets)
        return self.cfg.value_coef * loss, {"critic_loss": loss.detach()}

    def after_update(self) -> None:
        pass

    def snapshot_source(self) -> None:
        return None

    def modules(self) -> list[nn.Module]:
        return []

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        pass


def ema_update_(target_module: nn.Module, source_module: nn.Module, tau: float) -> None:
    """In-place exponential moving average of parameters, under ``torch.no_grad``::

        target = (1 - tau) * target + tau * source

    Applied to every parameter and to every floating-point buffer; non-floating
    buffers (e.g. BatchNorm's step counter) are copied. The modules must have the same
    parameter/buffer names and shapes (ValueError otherwise). ``tau`` in [0, 1]
    (SPEC: 0.005, i.e. target decay 0.995).
    """
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1]; got {tau}")
    tgt_p, src_p = list(target_module.named_parameters()), list(source_module.named_parameters())
    tgt_b, src_b = list(target_module.named_buffers()), list(source_module.named_buffers())
    for kind, tgt, src in (("parameters", tgt_p, src_p), ("buffers", tgt_b, src_b)):
        if [n for n, _ in tgt] != [n for n, _ in src]:
            raise ValueError(f"ema_update_: target and source {kind} differ in names")
        for (name, t), (_, s) in zip(tgt, src):
            if t.shape != s.shape:
                raise ValueError(f"ema_update_: shape mismatch for {name}: {tuple(t.shape)} vs {tuple(s.shape)}")
    with torch.no_grad():
        for (_, t), (_, s) in zip(tgt_p, src_p):
            t.lerp_(s.detach().to(device=t.device, dtype=t.dtype), tau)
        for (_, t), (_, s) in zip(tgt_b, src_b):
            if t.dtype.is_floating_point:
                t.lerp_(s.detach().to(device=t.device, dtype=t.dtype), tau)
            else:
                t.copy_(s)
