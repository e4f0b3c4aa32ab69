"""POLA-DiCE, Proximal Learning with Opponent-Learning Awareness (Zhao et al., NeurIPS 2022; SPEC section 7b).

Two agents learn together, each with its own GRU policy and GRU critic (the authors' RNN:
``Linear -> ReLU -> GRU -> Linear``, :class:`~trainers.networks.recurrent.Actor` and
:class:`~trainers.networks.recurrent.Critic` without a time input). One update (the
authors' ``n_update`` loop) moves both agents from the same starting parameters
``theta_1, theta_2``; for agent ``i`` (the other ``j``):

* **outer loop**, ``outer_steps`` Adam steps (``outer_lr``; the optimiser's state starts
  afresh every update, as the authors' ``TrainState.create``) on agent ``i``'s parameters
  ``theta_i'`` (starting at ``theta_i``), each minimising
  ``-DiCE_i(theta_i', theta_j'') + outer_beta * KL(pi_{theta_i'} || pi_{theta_i})`` plus
  its critic's loss, on a fresh rollout of ``theta_i'`` against ``theta_j''``;
* **inner loop** (inside every outer step): ``theta_j''`` is the other agent's look-ahead,
  ``inner_steps`` plain gradient steps (``inner_lr``) from ``theta_j``, each on a fresh
  rollout, minimising ``-DiCE_j + inner_beta * KL(pi_{theta_j''} || pi_{theta_j})``; the
  steps are differentiated through (``torch.autograd.grad(..., create_graph=True)`` on
  functional parameters, :func:`torch.func.functional_call`), so the outer gradient
  sees how agent ``i``'s parameters move the other's learning. The other's critic copy
  takes one SGD step (``value_lr``) per inner step (not differentiated through).

``DiCE`` is :func:`trainers.dice.pola_dice_objective` (loaded DiCE with GAE advantages of
the player's critic; both players' log-probabilities are stochastic nodes), the proximal
term :func:`trainers.dice.pola_kl` on the states of the same rollout, the critic's loss
:func:`trainers.dice.pola_value_loss`. Every rollout is one whole episode of every game,
agent 1 in seat 0 and agent 2 in seat 1, actions drawn without gradient and the
log-probabilities recomputed with it.

**Players.** A checkpoint plays agent 1 (seat 0's agent) in whichever seat it is given,
as the published POLA set is played (:mod:`trainers.published`); both agents are saved
(``actor``, ``actor1``) for resume.

**Cost.** An update takes ``2 * outer_steps * (inner_steps + 1)`` rollouts and as many
second-order backward passes: the paper's settings are GPU settings; ``--fast`` is a
documented cheaper preset (see ``FAST_PRESETS``), and the README gives the measured times.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

import social_dilemmas
from social_dilemmas.policies import Policy
from trainers import dice
from trainers.algorithms.base import Algorithm
from trainers.common import check_finite
from trainers.config import Config, Section, need
from trainers.evaluation.scripted import scripted_evaluation
from trainers.networks import is_image_game
from trainers.networks.recurrent import Actor, Critic
from trainers.policy import AgentPolicy
from trainers.rollout import Batch, Rollouts

__all__ = ["POLA", "POLAConfig", "PAPER_PRESETS", "FAST_PRESETS"]

Params = dict[str, Tensor]


@dataclass
class POLAConfig(Section):
    """POLA-DiCE's settings (the authors' ``POLA_dice_jax.py`` flags in brackets)."""

    hidden: int = 64
    """Width of the policy's and the critic's Linear and GRU (hidden_size)."""
    actor_recurrent: bool = True
    """GRU policy over the whole history (the paper); false: a feed-forward policy of the last
    observation only (on the IPD a memory-one policy), a cheaper option that is not the paper's."""
    gamma: float = 0.96
    """Discount factor (gamma)."""
    gae_lambda: float = 1.0
    """GAE lambda of the loaded-DiCE advantages (gae_lambda)."""
    baseline: bool = True
    """Loaded DiCE with the critic's GAE advantages; false: plain DiCE on the rewards, no critic (no_baseline)."""
    outer_steps: int = 200
    """Adam steps of each agent's own policy per update (outer_steps)."""
    outer_lr: float = 0.003
    """Adam learning rate of the outer steps (lr_out)."""
    outer_beta: float = 100.0
    """Weight of the outer proximal term KL(new policy || the policy at the start of the update) (outer_beta)."""
    inner_steps: int = 2
    """Look-ahead steps of the other agent inside every outer step (inner_steps)."""
    inner_lr: float = 0.005
    """Learning rate of the look-ahead's plain gradient steps (lr_in)."""
    inner_beta: float = 10.0
    """Weight of the look-ahead's proximal term KL(look-ahead policy || the other's current policy) (inner_beta)."""
    value_lr: float = 0.0005
    """Learning rate of the critics: Adam in the outer loop, plain gradient steps in the look-ahead (lr_v)."""

    def validate(self, run: Any = None) -> POLAConfig:
        self.check_int_at_least(("hidden", "outer_steps", "inner_steps"), 1)
        self.check_finite(("outer_lr", "inner_lr", "value_lr"), 0.0, strict=True)
        self.check_finite(("outer_beta", "inner_beta"), 0.0)
        self.check_finite(("gamma", "gae_lambda"), 0.0)
        need(self, self.gamma <= 1, "gamma", "must be in [0, 1]")
        need(self, self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        for name in ("baseline", "actor_recurrent"):
            need(self, isinstance(getattr(self, name), bool), name, "must be true or false")
        if run is not None:
            game = social_dilemmas.spec(run.env, **run.game_kwargs())
            need(run, game.n_players == 2 and game.action_kind == "discrete" and not is_image_game(game), "env",
                 f"POLA is written for two players with discrete actions and vector observations (ipd, coin_game); "
                 f"{run.env} is not")
            need(run, run.whole_episodes, "rollout_steps", f"must be 0 or max_steps = {run.max_steps}: POLA's "
                 "DiCE objective sums whole episodes")
            need(run, run.time_limit == "terminate", "time_limit", "must be terminate: every rollout is a whole episode")
        return self


#: The authors' README commands (``jax_files/POLA_dice_jax.py``): Figure 4, IPD with full
#: history, POLA-DiCE (``--inner_steps 2 --outer_steps 200 --lr_in 0.005 --lr_out 0.003 --lr_v
#: 0.0005 --batch_size 2000 --rollout_len 50 --inner_beta 10 --outer_beta 100 --hidden_size 64
#: --layers_before_gru 1 --n_update 101``); Figure 5, the Coin Game, POLA-DiCE as edited on
#: July 3, 2023 (``--inner_steps 4 --outer_steps 200 --lr_in 0.01 --lr_out 0.003 --lr_v 0.0005
#: --batch_size 1000 --rollout_len 50 --outer_beta 150 --inner_beta 5 --n_update 251``);
#: gamma 0.96 and gae_lambda 1 in both.
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(num_games=2000, max_steps=50, iterations=101, hidden=64, gamma=0.96, gae_lambda=1.0, inner_steps=2,
                outer_steps=200, inner_lr=0.005, outer_lr=0.003, value_lr=0.0005, inner_beta=10.0, outer_beta=100.0),
    "coin_game": dict(num_games=1000, max_steps=50, iterations=251, hidden=64, gamma=0.96, gae_lambda=1.0,
                      inner_steps=4, outer_steps=200, inner_lr=0.01, outer_lr=0.003, value_lr=0.0005, inner_beta=5.0,
                      outer_beta=150.0),
}

#: ``--fast``: cheaper CPU presets (not the paper's; the README gives their measured times):
#: 256 (Coin Game 128) games of 16 rounds, a tenth (twentieth) of the outer steps with a ten
#: times larger outer learning rate (Adam moves each weight at most about ``lr`` per step, so an
#: update can move as far), a weaker outer proximal term, and a stronger look-ahead
#: (``inner_lr`` ten times the paper's, ``inner_beta`` a tenth). On the IPD, seed 0 reaches
#: tit-for-tat by update 5 and keeps it to update 10 (the slow test); seed 1 ends in
#: always-cooperate (the README lists the variants tried; none held tit-for-tat on both seeds).
FAST_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(num_games=256, max_steps=16, iterations=10, hidden=32, outer_steps=20, outer_lr=0.03,
                outer_beta=10.0, inner_steps=2, inner_lr=0.05, inner_beta=1.0, value_lr=0.005),
    "coin_game": dict(num_games=128, max_steps=16, iterations=100, hidden=32, outer_steps=10, outer_lr=0.03,
                      outer_beta=15.0, inner_steps=2, inner_lr=0.1, inner_beta=0.5, value_lr=0.005),
}


def _params(module: torch.nn.Module) -> Params:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


class POLA(Algorithm):
    """POLA-DiCE (see the module docstring)."""

    name = "pola"
    Config = POLAConfig
    presets = PAPER_PRESETS
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/kl_outer")

    def __init__(self, config: Config, out: str | Path | None = None):
        super().__init__(config, out)
        run, cfg = self.run, self.cfg
        torch.manual_seed(run.seed)
        self.vec = social_dilemmas.make_vec(run.env, run.num_games, device=self.device, validate=False,
                                            **run.game_kwargs())
        try:
            self.game = self.vec.game
            obs_dim = math.prod(self.game.observation_space().shape)
            n_actions = int(self.game.action_space().n)
            self.actors = [Actor(obs_dim, cfg.hidden, n_actions, recurrent=cfg.actor_recurrent).to(self.device)
                           for _ in range(2)]
            self.critics = [Critic(obs_dim, cfg.hidden, value_norm=False, time_input=False).to(self.device)
                            for _ in range(2)]
            # the networks that act in the rollouts, holding (detached) copies of the parameters played
            self.players = [copy.deepcopy(a).requires_grad_(False) for a in self.actors]
            self.action_gen = torch.Generator(device=self.device)
            self.action_gen.manual_seed(run.seed + 1)
            self.rollouts = Rollouts(self.vec, self.players[0], run.steps_per_rollout, "terminate", self.action_gen,
                                     self.device, run.seed)
        except BaseException:
            self.vec.close()
            raise
        rows = run.num_games * 2
        self.seats = [torch.arange(s, rows, 2, device=self.device) for s in range(2)]  # rows are game * 2 + seat

    @property
    def steps_per_update(self) -> int:
        """Environment steps per update: the metrics rollout, then ``2 * outer_steps * (inner_steps + 1)`` rollouts."""
        rollouts = 1 + 2 * self.cfg.outer_steps * (self.cfg.inner_steps + 1)
        return rollouts * self.run.num_games * self.run.steps_per_rollout

    # -- rollouts and their differentiable parts --------------------------------------------
    @torch.no_grad()
    def play(self, params: tuple[Params, Params]) -> Batch:
        """One whole episode of every game, seat ``s`` played with ``params[s]`` (values only)."""
        for net, p in zip(self.players, params):
            for name, w in net.named_parameters():
                w.copy_(p[name])
        return self.rollouts.collect(self.players[1])

    def logits(self, params: Params, obs: Tensor) -> Tensor:
        """The policy ``params``' logits ``[B, T, A]`` on whole episodes ``obs`` ``[B, T, ...]``
        from fresh memory, differentiable in ``params`` to any order."""
        net = self.actors[0]
        h = obs.new_zeros(obs.shape[0], net.net.hidden)
        outs = []
        for t in range(obs.shape[1]):
            out, _, h = functional_call(net, params, (obs[:, t], h))
            outs.append(out)
        return torch.stack(outs, 1)

    def seat_terms(self, batch: Batch, seat: int, params: Params) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Seat ``seat``'s observations, rewards, logits under ``params`` and log-probabilities of its actions."""
        idx = self.seats[seat]
        obs, rewards = batch.obs[idx], batch.rewards[idx]
        logits = self.logits(params, obs)
        logp = torch.log_softmax(logits, -1).gather(-1, batch.actions[idx].long().unsqueeze(-1)).squeeze(-1)
        return obs, rewards, logits, logp

    def values(self, critic: Critic, obs: Tensor) -> Tensor:
        return critic(obs, None)[0]

    def objective(self, batch: Batch, me: int, params: tuple[Params, Params], ref: Params, beta: float,
                  critic: Critic) -> tuple[Tensor, Tensor, Tensor]:
        """Player ``me``'s loss on ``batch``: ``-DiCE + beta * KL(pi || pi_ref)`` on its states,
        and its critic's loss (both players' log-probabilities with the gradients of ``params``)."""
        obs, rewards, logits, logp = self.seat_terms(batch, me, params[me])
        _, _, _, other_logp = self.seat_terms(batch, 1 - me, params[1 - me])
        with torch.no_grad():
            ref_logits = self.logits(ref, obs)
        if self.cfg.baseline:
            v = self.values(critic, obs)
            value_loss = dice.pola_value_loss(v, rewards, self.cfg.gamma)
        else:
            v, value_loss = None, torch.zeros((), device=self.device)
        objective = dice.pola_dice_objective(logp, other_logp, rewards, None if v is None else v.detach(),
                                             self.cfg.gamma, self.cfg.gae_lambda)
        kl = dice.pola_kl(logits, ref_logits)
        return -objective + beta * kl, value_loss, kl

    def look_ahead(self, me: int, mine: Params, theirs: Params) -> Params:
        """The other player's parameters after ``inner_steps`` proximal DiCE steps from ``theirs``
        against ``mine``, differentiable in ``mine`` (its critic, a copy, learns alongside)."""
        cfg, other = self.cfg, 1 - me
        critic = copy.deepcopy(self.critics[other])
        start = {k: v.detach() for k, v in theirs.items()}
        current = {k: v.detach().clone().requires_grad_(True) for k, v in theirs.items()}
        for _ in range(cfg.inner_steps):
            params = (mine, current) if me == 0 else (current, mine)
            batch = self.play(tuple({k: v.detach() for k, v in p.items()} for p in params))
            loss, value_loss, _ = self.objective(batch, other, params, start, cfg.inner_beta, critic)
            grads = torch.autograd.grad(loss, list(current.values()), create_graph=True)
            current = {k: v - cfg.inner_lr * g for (k, v), g in zip(current.items(), grads)}
            if cfg.baseline:
                vgrads = torch.autograd.grad(value_loss, list(critic.parameters()))
                with torch.no_grad():
                    for p, g in zip(critic.parameters(), vgrads):
                        p.sub_(cfg.value_lr * g)
        return current

    def update_agent(self, me: int, start: tuple[Params, Params]) -> tuple[Params, dict[str, Tensor], dict[str, float]]:
        """Agent ``me``'s outer loop from the parameters ``start``; returns its new policy and
        critic parameters and the metrics of its last outer step."""
        cfg = self.cfg
        mine = {k: v.clone().requires_grad_(True) for k, v in start[me].items()}
        critic = copy.deepcopy(self.critics[me])
        policy_opt = torch.optim.Adam(list(mine.values()), lr=cfg.outer_lr)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.value_lr)
        info: dict[str, float] = {}
        for _ in range(cfg.outer_steps):
            theirs = self.look_ahead(me, mine, start[1 - me])
            params = (mine, theirs) if me == 0 else (theirs, mine)
            batch = self.play(tuple({k: v.detach() for k, v in p.items()} for p in params))
            loss, value_loss, kl = self.objective(batch, me, params, start[me], cfg.outer_beta, critic)
            check_finite(f"agent {me + 1}'s outer loss", loss, self.iteration, self.out)
            policy_opt.zero_grad()
            critic_opt.zero_grad()
            loss.backward(inputs=list(mine.values()))
            if cfg.baseline:
                value_loss.backward(inputs=list(critic.parameters()))
            policy_opt.step()
            critic_opt.step()
            info = {"loss": float(loss.detach()), "value_loss": float(value_loss.detach()), "kl_outer": float(kl.detach())}
        self._last_batch = batch
        return {k: v.detach() for k, v in mine.items()}, critic.state_dict(), info

    # -- the run interface ----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        start = (_params(self.actors[0]), _params(self.actors[1]))
        before = self.play(start)
        metrics = self.rollout_metrics(before)
        results = [self.update_agent(me, start) for me in range(2)]  # both from the same start
        for me, (params, critic_state, info) in enumerate(results):
            with torch.no_grad():
                for name, w in self.actors[me].named_parameters():
                    w.copy_(params[name])
            self.critics[me].load_state_dict(critic_state)
            metrics.update({f"train/{k}_{me + 1}": v for k, v in info.items()})
            if not all(bool(torch.isfinite(p).all()) for p in self.actors[me].parameters()):
                check_finite(f"agent {me + 1}'s weights", torch.tensor(float("nan")), self.iteration, self.out)
        metrics["train/kl_outer"] = (metrics["train/kl_outer_1"] + metrics["train/kl_outer_2"]) / 2
        self.iteration += 1
        elapsed = time.perf_counter() - t0
        metrics["time/update_s"] = elapsed
        metrics["time/outer_step_s"] = elapsed / (2 * self.cfg.outer_steps)
        return metrics

    def rollout_metrics(self, batch: Batch) -> dict[str, float]:
        """The rewards and action statistics of a rollout of the two agents (before the update)."""
        r = batch.rewards.view(-1, 2, batch.rewards.shape[1])
        out = {"rollout/reward_per_step": float(r.mean()), "rollout/reward_seat0": float(r[:, 0].mean()),
               "rollout/reward_seat1": float(r[:, 1].mean())}
        out.update({f"rollout/{k}": v for k, v in self.game.action_metrics(batch.actions).items()})
        return out

    def evaluate(self) -> dict[str, float]:
        """Agent 1 against itself and the scripted players
        (:func:`trainers.evaluation.scripted.scripted_evaluation`)."""
        return scripted_evaluation(self.game, lambda seat: AgentPolicy(copy.deepcopy(self.actors[0])),
                                   games=self.run.eval_games, seed=self.run.seed, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actors[0].state_dict(), "actor1": self.actors[1].state_dict(),
                "critic": self.critics[0].state_dict(), "critic1": self.critics[1].state_dict(),
                "rollouts": self.rollouts.state_dict(), "action_gen": self.action_gen.get_state(),
                "torch_rng": torch.get_rng_state()}

    def player_state(self) -> dict[str, Any]:
        return {"actor": self.actors[0].state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for me, suffix in enumerate(("", "1")):
            self.actors[me].load_state_dict(state["actor" + suffix])
            self.critics[me].load_state_dict(state["critic" + suffix])
        self.rollouts.load_state_dict(state["rollouts"], seed=self.run.seed + self.iteration)
        self.action_gen.set_state(state["action_gen"])
        torch.set_rng_state(state["torch_rng"])

    def close(self) -> None:
        self.vec.close()

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        """Agent 1 of the checkpoint (``state["actor"]``) as a player of ``game`` (any seat)."""
        run, cfg = config.run, config.algorithm
        trained_on = social_dilemmas.spec(run.env, **run.game_kwargs())
        if game is not None and (tuple(game.obs_shape) != tuple(trained_on.obs_shape)
                                 or tuple(game.action_shape) != tuple(trained_on.action_shape)):
            raise ValueError(f"the agent was trained on {trained_on!r}, not on {game!r}")
        actor = Actor(math.prod(trained_on.observation_space().shape), cfg.hidden,
                      int(trained_on.action_space().n), recurrent=cfg.actor_recurrent)
        actor.load_state_dict(state["actor"])
        return AgentPolicy(actor.to(device), name=name, greedy=greedy)

