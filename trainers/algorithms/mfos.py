"""M-FOS, Model-Free Opponent Shaping (Lu et al., ICML 2022; SPEC section 7b), on the IPD.

The game M-FOS plays is a *meta-game*: one meta-episode is ``meta_steps`` rounds of the
infinite IPD between memory-one policies (the analytic game,
:func:`social_dilemmas.ipd.memory_one_values`, discount ``inner_gamma``), and in each round

* the **meta-agent** sees ``sigmoid`` of the inner policies' parameters played in the last
  round, its own first (``[10]``: five logits each, the order of
  :data:`social_dilemmas.ipd.MEMORY_ONE_STATES`), and outputs its inner policy's five
  logits for this round, sampled from a diagonal normal (mean and ``softplus`` variance
  from a ``Linear-tanh-Linear`` network);
* the **naive learner** (``opponent = "nl"``) plays its current logits and then takes one
  gradient-ascent step of size ``opponent_lr`` on its own exact discounted return;
* the meta-reward is the meta-agent's reward per step of the round, ``(1 - inner_gamma) V``.

A meta-episode starts from logits drawn from ``N(0, init_std^2)`` for both; against the
naive learner, as in the authors' code, it first plays once against the meta-agent's random
initial logits (so the naive learner has learned one step when the meta-agent first acts).
The meta-agent learns with PPO over whole meta-episodes (the authors' ``ppo.py``):
discounted Monte Carlo meta-returns (``gamma``), normalised over the batch, advantages
``returns - V(s)``, ``ppo_epochs`` full-batch epochs of :func:`trainers.losses.ppo_clip_loss`
plus ``value_coef`` times the value MSE minus ``entropy_coef`` times the entropy.

Self-play (``opponent = "self"``, the paper's M-FOS vs M-FOS, ``main_mfos_self.py``): two
meta-agents; in each update, with a probability that starts at 1 and falls by
``nl_prob_decay`` per update, each plays a meta-episode against naive learners, otherwise
they play one against each other; each learns from its own.

**The M-FOS player** (the league, the recorder, ``python -m trainers cooperation``): M-FOS
plays a fixed opponent in the league, where it cannot see the other's parameters, so its
player is the memory-one policy it has shaped its meta-game into: the inner policy its
meta-agent plays (mean action) in the last round of ``eval_games`` meta-episodes of its
training kind (against naive learners; in self-play against the second meta-agent), seeded
with the run's seed; game ``i`` of a match plays the policy of meta-episode ``i % K``
(:class:`ShapedPolicies`). They are saved in every checkpoint.

Presets (:data:`PAPER_PRESETS`): the authors' ``main_mfos_ppo.py`` / ``main_mfos_self.py``,
``ppo.py`` and ``environments.py``. The configuration section is
:mod:`trainers.algorithms.mfos_config`'s. On the Coin Game (``--env coin_game``) the registry's
:class:`MFOS` builds :class:`trainers.algorithms.mfos_coin.MFOSCoinGame` instead (its own
meta-game, module :mod:`trainers.algorithms.mfos_coin`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import social_dilemmas
from social_dilemmas.ipd import memory_one_values
from social_dilemmas.policies import MemoryOnePolicy, Policy, memory_one_cooperation
from trainers.advantages import monte_carlo_returns, normalize_advantages
from trainers.algorithms.base import Algorithm
from trainers.algorithms.mfos_coin import MFOSCoinGame
from trainers.algorithms.mfos_config import FAST_PRESETS, PAPER_PRESETS, MFOSConfig, meta_ppo_epochs
from trainers.common import check_finite
from trainers.config import Config
from trainers.evaluation.scripted import scripted_evaluation
from trainers.policy import AgentPolicy

__all__ = ["MFOS", "MFOSConfig", "MetaAgent", "ShapedPolicies", "PAPER_PRESETS", "FAST_PRESETS", "meta_episode", "meta_returns", "ppo_update"]

#: Parameters of a memory-one IPD policy (logits of cooperating: the start, CC, CD, DC, DD).
THETA = 5
#: Seed offset of the player's (and evaluation's) meta-episodes: they draw nothing from training.
_EVAL_SEED = 10**6


class MetaAgent(nn.Module):
    """The meta-agent: a diagonal normal over the five inner logits and a state value, from the
    ``[10]`` state (each ``Linear(10, hidden) - tanh - Linear``, the authors' ``ActorCritic``)."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(2 * THETA, hidden), nn.Tanh(), nn.Linear(hidden, 2 * THETA))
        self.critic = nn.Sequential(nn.Linear(2 * THETA, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, state: Tensor) -> tuple[torch.distributions.Normal, Tensor]:
        mean, var = self.actor(state).split(THETA, -1)
        return torch.distributions.Normal(mean, F.softplus(var).sqrt()), self.critic(state).squeeze(-1)


class ShapedPolicies(nn.Module):
    """The M-FOS player's network: memory-one policies ``coop`` ``[K, 5]`` behind the memory
    interface of :mod:`trainers.networks` (row ``r`` of a batch plays policy ``r % K``), so the
    player is an :class:`~trainers.policy.AgentPolicy` like every trained agent (the league, the
    recorder, ``python -m trainers cooperation``). It has no weights to learn."""

    def __init__(self, coop: Tensor):
        super().__init__()
        self.register_buffer("coop", torch.as_tensor(coop, dtype=torch.float32).reshape(-1, THETA))

    def initial_memory(self, rows: int, device: torch.device | str) -> tuple[Tensor]:
        return (torch.arange(rows, device=device),)  # each row's index: its policy

    def begin(self, memory: tuple[Tensor]) -> tuple[Tensor]:
        return memory

    def step(self, state: tuple[Tensor], obs: Tensor, start: Tensor | None):
        p = memory_one_cooperation(self.coop, obs, state[0]).clamp(0.0, 1.0)
        return torch.distributions.Categorical(probs=torch.stack((p, 1 - p), -1)), None, state


@dataclass
class Trajectory:
    """One meta-agent's side of a batch of meta-episodes, time first: ``states`` ``[T, B, 10]``,
    ``actions`` ``[T, B, 5]``, ``log_probs`` and ``rewards`` ``[T, B]``; the other's rewards
    ``other_rewards`` ``[T, B]``; the last round's inner cooperation probabilities of both,
    ``final`` ``[B, 2, 5]``; the discounted cooperation rate of the agent, ``cooperation`` ``[T, B]``."""

    states: Tensor
    actions: Tensor
    log_probs: Tensor
    rewards: Tensor
    other_rewards: Tensor
    final: Tensor
    cooperation: Tensor


@torch.no_grad()
def meta_episode(agents: list[MetaAgent | None], cfg: MFOSConfig, games: int, generator: torch.Generator,
                 payoff: Any, mean: bool = False) -> list[Trajectory | None]:
    """``games`` meta-episodes between the two seats ``agents`` (a :class:`MetaAgent`, or None
    for a naive learner; see the module docstring). ``mean``: the meta-agents play their mean
    action. Returns each meta-agent seat's :class:`Trajectory` (None for a naive learner)."""
    device = next(m for m in agents if m is not None).actor[0].weight.device
    logits = [torch.randn(games, THETA, generator=generator, device=device) * cfg.init_std for _ in agents]
    played = [x.clone() for x in logits]  # the logits of the last round, each seat's
    if any(a is None for a in agents):  # the authors' reset: one round against the initial logits
        logits = _naive_steps(agents, logits, cfg, payoff)[0]
    keys = ("states", "actions", "log_probs", "rewards", "other_rewards", "cooperation")
    rec: list[dict[str, list[Tensor]]] = [{k: [] for k in keys} for _ in agents]
    for _ in range(cfg.meta_steps):
        now = list(logits)
        for i, agent in enumerate(agents):
            if agent is not None:
                state = torch.sigmoid(torch.cat((played[i], played[1 - i]), -1))
                dist, _ = agent(state)
                now[i] = dist.mean if mean else _sample(dist, generator)
                rec[i]["states"].append(state)
                rec[i]["actions"].append(now[i])
                rec[i]["log_probs"].append(dist.log_prob(now[i]).sum(-1))
        logits, values, coop = _naive_steps(agents, now, cfg, payoff)
        played = now
        for i in range(2):
            rec[i]["rewards"].append((1 - cfg.inner_gamma) * values[:, i])
            rec[i]["other_rewards"].append((1 - cfg.inner_gamma) * values[:, 1 - i])
            rec[i]["cooperation"].append((1 - cfg.inner_gamma) * coop[:, i])
    final = torch.sigmoid(torch.stack(played, 1))
    return [None if agent is None else Trajectory(
        **{k: torch.stack(v) for k, v in rec[i].items()},
        final=final[:, [i, 1 - i]]) for i, agent in enumerate(agents)]


def _sample(dist: torch.distributions.Normal, generator: torch.Generator) -> Tensor:
    """A draw of ``dist`` from ``generator`` (torch's ``sample`` takes none)."""
    noise = torch.randn(dist.mean.shape, generator=generator, device=dist.mean.device)
    return dist.mean + dist.stddev * noise


def _naive_steps(agents: list[MetaAgent | None], logits: list[Tensor], cfg: MFOSConfig,
                 payoff: Any) -> tuple[list[Tensor], Tensor, Tensor]:
    """One round of the inner game with the seats' ``logits``: the naive learners' (seats whose
    agent is None) next logits, the exact discounted returns ``[B, 2]`` and the discounted
    cooperation rates ``[B, 2]``."""
    with torch.enable_grad():
        theta = [x.detach().requires_grad_(a is None) for x, a in zip(logits, agents)]
        values = memory_one_values(torch.sigmoid(theta[0]), torch.sigmoid(theta[1]), cfg.inner_gamma, payoff)
        learners = [i for i, a in enumerate(agents) if a is None]
        grads = torch.autograd.grad([values[:, i].sum() for i in learners], [theta[i] for i in learners]) \
            if learners else ()
    nxt = [x.detach() for x in theta]
    for i, g in zip(learners, grads):
        nxt[i] = nxt[i] + cfg.opponent_lr * g
    # the same chain with payoff 1 for cooperating: each player's discounted cooperation
    coop = memory_one_values(torch.sigmoid(theta[0].detach()),
                             torch.sigmoid(theta[1].detach()), cfg.inner_gamma, ((1.0, 1.0), (0.0, 0.0)))
    return nxt, values.detach(), coop


def meta_returns(rewards: Tensor, gamma: float) -> Tensor:
    """The normalised discounted meta-returns of whole meta-episodes: ``G_t = r_t + gamma G_{t+1}``
    (:func:`~trainers.advantages.monte_carlo_returns`, ``G_T = 0``), then zero mean and unit
    (population) std over the batch (:func:`~trainers.advantages.normalize_advantages`, eps 1e-5).
    ``rewards``: ``[T, B]``, time first; returns ``[T, B]``."""
    r = rewards.T  # [B, T]
    returns = monte_carlo_returns(r, torch.zeros_like(r, dtype=torch.bool), gamma)
    return normalize_advantages(returns, eps=1e-5).T


def ppo_update(agent: MetaAgent, optimizer: torch.optim.Optimizer, traj: Trajectory, cfg: MFOSConfig,
               check: Any = None) -> dict[str, float]:
    """The meta-agent's PPO update on a batch of whole meta-episodes (the module docstring):
    returns ``G_t = r_t + gamma G_{t+1}`` (:func:`~trainers.advantages.monte_carlo_returns`),
    normalised over the batch, advantages ``G - V(s)`` with the values before each epoch's
    step, ``ppo_epochs`` full-batch steps. ``check(what, loss)``: called on every loss."""
    def evaluate() -> tuple[Tensor, Tensor, Tensor]:
        dist, values = agent(traj.states)
        return dist.log_prob(traj.actions).sum(-1), values, dist.entropy().sum(-1)

    return meta_ppo_epochs(evaluate, optimizer, traj.log_probs, meta_returns(traj.rewards, cfg.gamma), cfg, check)


class MFOS(Algorithm):
    """M-FOS, model-free opponent shaping (see the module docstring): the registry's ``mfos``.

    On the IPD, one update is one batch of ``num_games`` meta-episodes per meta-agent and its
    PPO update. A configuration for the Coin Game builds a
    :class:`~trainers.algorithms.mfos_coin.MFOSCoinGame` (``MFOS(config)`` returns it, and
    :meth:`player` plays its checkpoints)."""

    name = "mfos"
    Config = MFOSConfig
    presets = PAPER_PRESETS
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/opponent_reward_per_step", "rollout/final_reward")

    def __new__(cls, config: Config, out: Any = None):
        if cls is MFOS and config.run.env == "coin_game":
            return MFOSCoinGame(config, out)  # not an MFOS: Python does not call __init__ again
        return super().__new__(cls)

    def __init__(self, config: Config, out: Any = None):
        super().__init__(config, out)
        run, cfg = self.run, self.cfg
        torch.manual_seed(run.seed)
        self.game = social_dilemmas.spec(run.env, **run.game_kwargs())
        self.payoff = self.game.payoff
        count = 2 if cfg.opponent == "self" else 1
        self.agents = [MetaAgent(cfg.hidden).to(self.device) for _ in range(count)]
        self.optimizers = [torch.optim.Adam(a.parameters(), lr=cfg.lr, betas=(0.9, 0.999)) for a in self.agents]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(run.seed + 1)

    @property
    def steps_per_update(self) -> int:
        """Rounds of the inner game (each an exact IPD value) of every meta-episode of an update."""
        return self.run.num_games * self.cfg.meta_steps * len(self.agents)

    def nl_prob(self) -> float:
        """Self-play: the probability that this update's meta-episodes are against naive learners."""
        return max(0.0, 1.0 - self.cfg.nl_prob_decay * (self.iteration + 1))

    def check(self, what: str, value: Tensor) -> None:
        check_finite(what, value, self.iteration, self.out)

    def train_step(self) -> dict[str, float]:
        cfg, games = self.cfg, self.run.num_games
        if cfg.opponent == "self" and float(torch.rand((), generator=self.generator, device=self.device)) \
                > self.nl_prob():
            trajs = meta_episode(self.agents, cfg, games, self.generator, self.payoff)
            kind = 0.0
        else:
            trajs = [meta_episode([agent, None], cfg, games, self.generator, self.payoff)[0] for agent in self.agents]
            kind = 1.0
        metrics: dict[str, float] = {"rollout/against_naive_learner": kind}
        for i, (agent, opt, traj) in enumerate(zip(self.agents, self.optimizers, trajs)):
            tag = "" if i == 0 else f"_{i}"
            metrics.update({
                f"rollout/reward_per_step{tag}": float(traj.rewards.mean()),
                f"rollout/opponent_reward_per_step{tag}": float(traj.other_rewards.mean()),
                f"rollout/final_reward{tag}": float(traj.rewards[-1].mean()),
                f"rollout/cooperation{tag}": float(traj.cooperation.mean()),
            })
            metrics.update({k + tag: v for k, v in ppo_update(agent, opt, traj, cfg, self.check).items()})
        self.iteration += 1
        return metrics

    def shaped_policies(self, games: int | None = None) -> tuple[Tensor, Trajectory]:
        """The inner policies the meta-agent plays (mean action) in the last round of ``games``
        (default ``eval_games``) meta-episodes of its training kind, seeded with the run's seed
        (draws nothing from training): cooperation probabilities ``[games, 5]``, and the trajectory."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.run.seed + _EVAL_SEED)
        seats = self.agents if self.cfg.opponent == "self" else [self.agents[0], None]
        traj = meta_episode(seats, self.cfg, games or self.run.eval_games, gen, self.payoff, mean=True)[0]
        return traj.final[:, 0].cpu(), traj

    def evaluate(self) -> dict[str, float]:
        """The meta-game with mean actions (``eval/meta_*``) and the M-FOS player (its shaped
        policies) against itself and the scripted players (:func:`scripted_evaluation`)."""
        policies, traj = self.shaped_policies()
        out = {"eval/meta_reward_per_step": float(traj.rewards.mean()),
               "eval/meta_opponent_reward_per_step": float(traj.other_rewards.mean()),
               "eval/meta_final_reward": float(traj.rewards[-1].mean())}
        out.update(scripted_evaluation(self.game, lambda seat: MemoryOnePolicy(policies, name="mfos"),
                                       games=self.run.eval_games, seed=self.run.seed, device=self.device))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"agents": [a.state_dict() for a in self.agents],
                "optimizers": [o.state_dict() for o in self.optimizers],
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(),
                **self.player_state()}

    def player_state(self) -> dict[str, Any]:
        return {"agent": self.agents[0].state_dict(), "shaped_policies": self.shaped_policies()[0]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for agent, saved in zip(self.agents, state["agents"], strict=True):
            agent.load_state_dict(saved)
        for opt, saved in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(saved)
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        if config.run.env == "coin_game":
            return MFOSCoinGame.player(config, state, game, device=device, greedy=greedy, name=name)
        if game is not None and getattr(game, "name", None) != "ipd":
            raise ValueError(f"an M-FOS agent plays the IPD, not {getattr(game, 'name', game)!r}")
        return AgentPolicy(ShapedPolicies(state["shaped_policies"]).to(device), name=name, greedy=greedy,
                           obs_shape=(4,))
