"""M-FOS on the Coin Game (Lu et al., ICML 2022, the authors' ``src/coin_game/``; SPEC section 7b).

**The meta-game** (``main_mfos_coin_game.py`` with ``CoinGamePPO``). A meta-episode is
``meta_steps`` (16) inner episodes of the project's Coin Game, ``num_games`` games at once,
between the meta-agent (seat 0) and one **naive learner**: a fresh PPO agent per
meta-episode (a small conv net, ``opponent_hidden`` latent units; the authors' inner
``PPO``) that plays every game of the batch and, after each inner episode, takes
``opponent_epochs`` full-batch PPO epochs on it (Monte Carlo returns with discount
``inner_gamma``, normalised; clip ``opponent_clip``, value MSE ``value_coef``, entropy
``opponent_entropy``, Adam ``opponent_lr``). An inner episode is ``max_steps`` (15) moves
plus one more meta-step on the final observation, whose action is ignored and whose reward
is 0 (the authors' reset step): 16 meta-steps, 256 per meta-episode.

**The meta-agent's observation** ``[7, n, n]``: its own view of the board (4 planes) and three
planes filled with the naive learner's reward of the last move, its own, and whether the
inner episode just ended (1 on the final observation). **The meta-agent**
(:class:`CoinMetaAgent`, the authors' ``ActorCriticMFOS``): actor and critic each a
conv-conv-linear encoder and a GRU whose state starts from zero in every inner episode; the
GRU's ReLU'd output is multiplied by a conditioning vector ``th`` before the head. ``th`` is
``sigmoid(Linear(m))``, ``m`` the mean over the games of the last output of a third encoder
and GRU run over the previous inner episode's observations; all ones in the first inner episode: through
``th`` the meta-agent carries what it learned of the learner from one inner episode to the
next. The critic sees ``th`` without its gradient.

**Its PPO** (``PPOMFOS.update``): discounted (``gamma``) Monte Carlo returns over the whole
meta-episode in which, at each inner-episode boundary, a game's own return is replaced by
the batch mean of the returns from there on (:func:`carried_returns`), normalised over the
meta-episode; ``ppo_epochs`` full-batch epochs of :func:`trainers.losses.ppo_clip_loss` plus
``value_coef`` times the value MSE (the authors' entropy term is commented out: preset 0).

**The M-FOS player** (:class:`CoinMetaPlayer`; the league, the recorder): the meta-agent's
actor with ``th`` fixed to the conditioning vector of the last inner episode of its latest
training meta-episode (saved in every checkpoint as ``th``): how M-FOS plays once it has
shaped a naive learner for a meta-episode. Its GRU starts from zero in each game; its reward
planes come from consecutive observations by the game's reward rule (the league gives a
player observations only), the done plane stays 0 (a league game's end is not observed).

Departures from the authors' set-up: the project's Coin Game (one coin whose owner
alternates, egocentric planes ``[me, other, my coin, other's coin]`` per seat; theirs has a
coin of each colour at once and one shared, non-egocentric board); returns and the learner's
advantages normalised with the population std (theirs: Bessel-corrected; the same to 1e-3 at
these sizes); every random draw comes from the run's seeded generators; the circular
convolutions are computed as a matrix product (:class:`CircularConv`, the same result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical

import social_dilemmas
from social_dilemmas.coin_game import coin_rewards  # the game's reward rule (one source of truth)
from social_dilemmas.policies import Policy
from trainers.advantages import monte_carlo_returns, normalize_advantages
from trainers.algorithms.base import Algorithm
from trainers.algorithms.mfos_config import FAST_PRESETS, PAPER_PRESETS, MFOSConfig, meta_ppo_epochs
from trainers.common import check_finite
from trainers.config import Config
from trainers.evaluation.scripted import scripted_evaluation
from trainers.losses import ppo_clip_loss
from trainers.networks.distributions import sample_action
from trainers.policy import AgentPolicy

__all__ = ["MFOSCoinGame", "CoinMetaAgent", "CoinMetaPlayer", "NaiveLearner", "CoinTrajectory",
           "carried_returns", "coin_meta_episode", "coin_ppo_update", "observed_pickups"]

BOARD = 4  #: planes of a player's view of the board
EXTRA = 3  #: the meta-agent's extra planes: the learner's reward, its own, done
ACTIONS = 4


class CircularConv(nn.Conv2d):
    """``nn.Conv2d(channels, width, 3, padding=1, padding_mode="circular")`` on ``size x size``
    boards (its weights, initialisation and result), computed as one matrix product with the
    dense ``[width n^2, channels n^2]`` matrix its kernel makes on the torus: on boards this
    small, 3 to 10 times faster than the padded convolution on a CPU."""

    def __init__(self, channels: int, width: int, size: int):
        super().__init__(channels, width, 3, padding=1, padding_mode="circular")
        cells, rows = size * size, torch.arange(size)
        near = (rows[:, None] + torch.arange(-1, 2)) % size  # [n, 3]: row i's neighbours, in kernel order
        source = (near[:, None, :, None] * size + near[None, :, None, :]).reshape(cells, 9)  # [cell, kernel tap]
        taps = torch.zeros(9, cells, cells)  # [tap, output cell, input cell]: 1 where the tap reads that cell
        taps.index_put_((torch.arange(9).expand(cells, 9), torch.arange(cells)[:, None].expand(cells, 9), source),
                        torch.ones(cells, 9), accumulate=True)
        self.register_buffer("taps", taps, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, n, _ = x.shape
        dense = torch.einsum("ock,kpq->opcq", self.weight.reshape(self.out_channels, c, 9), self.taps)
        out = torch.addmm(self.bias.repeat_interleave(n * n), x.reshape(b, c * n * n), dense.reshape(-1, c * n * n).T)
        return out.view(b, self.out_channels, n, n)


def _encoder(channels: int, width: int, size: int, out: int) -> nn.Sequential:
    """Two circular 3x3 convolutions (``width`` channels) and a linear layer to ``out``, ReLU after each."""
    return nn.Sequential(CircularConv(channels, width, size), nn.ReLU(), CircularConv(width, width, size), nn.ReLU(),
                         nn.Flatten(), nn.Linear(width * size * size, out), nn.ReLU())


def observed_pickups(prev: Tensor, obs: Tensor) -> tuple[Tensor, Tensor]:
    """Who picked up the coin between two consecutive views ``[B, 4, n, n]`` of one player
    (planes ``[me, other, my coin, other's coin]``): ``on_coin`` bool ``[B, 2]`` (me, other:
    standing on the old coin's cell), and the old coin's owner ``[B]`` (0 me, 1 the other)."""
    coin = prev[:, 2:4].sum(1, keepdim=True)  # [B, 1, n, n]: the old coin's cell
    on_coin = (obs[:, 0:2] * coin).sum((-1, -2)) > 0
    return on_coin, (prev[:, 3].sum((-1, -2)) > 0).long()


def _planes(other: Tensor, own: Tensor, done: bool, size: int) -> Tensor:
    """The meta-agent's extra planes ``[B, 3, n, n]``: the learner's reward, its own, done."""
    d = torch.full_like(own, float(done))
    return torch.stack((other, own, d), 1)[:, :, None, None].expand(-1, -1, size, size)


class NaiveLearner(nn.Module):
    """The naive learner's actor and critic (the authors' inner ``ActorCritic``): each an
    :func:`_encoder` (``max(1, hidden // 4)`` channels) and a linear head."""

    def __init__(self, size: int, hidden: int = 8):
        super().__init__()
        width = max(1, hidden // 4)
        self.actor = nn.Sequential(_encoder(BOARD, width, size, hidden), nn.Linear(hidden, ACTIONS))
        self.critic = nn.Sequential(_encoder(BOARD, width, size, hidden), nn.Linear(hidden, 1))


class InnerPPO:
    """A fresh naive PPO learner (module docstring): :meth:`act`, then :meth:`update` after each inner episode."""

    def __init__(self, cfg: MFOSConfig, size: int, device: torch.device):
        self.cfg = cfg
        self.net = NaiveLearner(size, cfg.opponent_hidden).to(device)  # the global torch RNG: saved with the run
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.opponent_lr, fused=True)
        self.obs: list[Tensor] = []
        self.actions: list[Tensor] = []
        self.log_probs: list[Tensor] = []
        self.rewards: list[Tensor] = []
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: Tensor, generator: torch.Generator) -> Tensor:
        dist = Categorical(logits=self.net.actor(obs))
        action = sample_action(dist, generator)
        self.obs.append(obs)
        self.actions.append(action)
        self.log_probs.append(dist.log_prob(action))
        return action

    def update(self) -> dict[str, float]:
        """``opponent_epochs`` full-batch PPO epochs on the inner episode just played, then forget it."""
        cfg = self.cfg
        rewards = torch.stack(self.rewards, 1)  # [B, T]
        returns = normalize_advantages(monte_carlo_returns(rewards, torch.zeros_like(rewards, dtype=torch.bool),
                                                           cfg.inner_gamma), eps=1e-5).flatten()
        obs, actions = torch.stack(self.obs, 1).flatten(0, 1), torch.stack(self.actions, 1).flatten()
        old = torch.stack(self.log_probs, 1).flatten()
        with torch.enable_grad():  # the meta-episode runs without gradients
            loss = self._epochs(obs, actions, old, returns)
        self.obs, self.actions, self.log_probs, self.rewards = [], [], [], []
        self.updates += 1
        return {"loss": float(loss)}

    def _epochs(self, obs: Tensor, actions: Tensor, old: Tensor, returns: Tensor) -> Tensor:
        cfg = self.cfg
        for _ in range(cfg.opponent_epochs):
            dist = Categorical(logits=self.net.actor(obs))
            values = self.net.critic(obs).squeeze(-1)
            policy_loss, _ = ppo_clip_loss(dist.log_prob(actions), old, returns - values.detach(), cfg.opponent_clip)
            loss = policy_loss + cfg.value_coef * F.mse_loss(values, returns) - cfg.opponent_entropy * dist.entropy().mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        return loss.detach()


class CoinMetaAgent(nn.Module):
    """The meta-agent (module docstring): ``enc_*`` / ``gru_*`` / ``head_*`` of the actor (a), the critic
    (v) and the conditioning (t), ``hidden`` channels and GRU units each."""

    def __init__(self, size: int, hidden: int = 16):
        super().__init__()
        self.hidden = hidden
        self.enc_a, self.enc_v, self.enc_t = (_encoder(BOARD + EXTRA, hidden, size, hidden) for _ in range(3))
        self.gru_a, self.gru_v, self.gru_t = (nn.GRU(hidden, hidden) for _ in range(3))
        self.head_a, self.head_v, self.head_t = nn.Linear(hidden, ACTIONS), nn.Linear(hidden, 1), nn.Linear(hidden, hidden)

    def condition(self, states: Tensor) -> Tensor:
        """``th`` ``[..., hidden]`` from inner episodes ``states`` ``[t, ..., B, 7, n, n]`` (time first,
        the batch of games last before the planes): the conditioning GRU's last output, averaged over the games."""
        t, rest = states.shape[0], states.shape[1:-3]
        x = self.enc_t(states.flatten(0, -4)).view(t, -1, self.hidden)
        out = self.gru_t(x)[0][-1].view(*rest, self.hidden)
        return torch.sigmoid(self.head_t(out.mean(-2)))

    def step(self, x: Tensor, memory: Tensor, th: Tensor) -> tuple[Categorical, Tensor]:
        """One step of the actor for ``x`` ``[B, 7, n, n]``: the action distribution and the GRU's next state ``[1, B, h]``."""
        out, memory = self.gru_a(self.enc_a(x)[None], memory)
        return Categorical(logits=self.head_a(F.relu(out[0]) * th)), memory

    def _run(self, enc: nn.Module, gru: nn.GRU, states: Tensor) -> Tensor:
        """The ReLU'd GRU outputs ``[E, t, B, h]`` of whole inner episodes ``states`` ``[E, t, B, 7, n, n]``."""
        e, t, b = states.shape[:3]
        x = enc(states.transpose(0, 1).flatten(0, 2)).view(t, e * b, self.hidden)
        return F.relu(gru(x)[0].view(t, e, b, self.hidden).transpose(0, 1))

    def evaluate(self, states: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log-probabilities, values and entropies ``[E, t, B]`` of a meta-episode's ``actions`` ``[E, t, B]``,
        each inner episode conditioned on the one before it (``th`` = ones in the first)."""
        th = self.condition(states.transpose(0, 1))  # [E, h]: from each episode, for the next
        th = torch.cat((torch.ones_like(th[:1]), th[:-1]))[:, None, None]
        dist = Categorical(logits=self.head_a(self._run(self.enc_a, self.gru_a, states) * th))
        values = self.head_v(self._run(self.enc_v, self.gru_v, states) * th.detach()).squeeze(-1)
        return dist.log_prob(actions), values, dist.entropy()


@dataclass
class CoinTrajectory:
    """A meta-episode, ``[E, t, B, ...]`` (inner episode, meta-step, game): the meta-agent's
    ``states`` ``[.., 7, n, n]``, ``actions``, ``log_probs``, ``rewards`` and the learner's
    ``other_rewards`` (0 on each final step), ``th`` ``[E, h]`` (each episode's conditioning),
    ``own_coins`` / ``other_coins`` ``[2]`` (coins the meta-agent, the learner picked up that were
    its own and the other's) and ``learner_updates``."""

    states: Tensor
    actions: Tensor
    log_probs: Tensor
    rewards: Tensor
    other_rewards: Tensor
    th: Tensor
    own_coins: Tensor
    other_coins: Tensor
    learner_updates: int


@torch.no_grad()
def coin_meta_episode(agent: CoinMetaAgent, cfg: MFOSConfig, vec: Any, generator: torch.Generator) -> CoinTrajectory:
    """One meta-episode of ``vec``'s games (module docstring) against a fresh naive learner."""
    size, device, moves = vec.game.size, vec.device, vec.max_steps
    learner = InnerPPO(cfg, size, device)
    obs = vec.reset(seed=int(torch.randint(2**62, (), generator=generator)))[0].float()
    keys = ("states", "actions", "log_probs", "rewards", "other_rewards")
    rec: dict[str, list[Tensor]] = {k: [] for k in keys}
    th = torch.ones(agent.hidden, device=device)
    ths, coins = [], torch.zeros(2, 2, device=device)  # [player, own / other's]
    for _ in range(cfg.meta_steps):
        planes = torch.zeros(vec.num_envs, EXTRA, size, size, device=device)
        memory = torch.zeros(1, vec.num_envs, agent.hidden, device=device)
        episode = {k: [] for k in keys}
        board = obs
        for s in range(moves + 1):
            x = torch.cat((board[:, 0], planes), 1)
            dist, memory = agent.step(x, memory, th)
            action = sample_action(dist, generator)
            episode["states"].append(x)
            episode["actions"].append(action)
            episode["log_probs"].append(dist.log_prob(action))
            if s == moves:  # the final observation: its action is ignored, its reward 0
                episode["rewards"].append(torch.zeros_like(planes[:, 0, 0, 0]))
                episode["other_rewards"].append(torch.zeros_like(planes[:, 0, 0, 0]))
                break
            other = learner.act(board[:, 1], generator)
            obs, rewards, _, _, info = vec.step(torch.stack((action, other), 1))
            obs = obs.float()
            after = info["final_obs"].float() if s == moves - 1 else obs
            on_coin, owner = observed_pickups(board[:, 0], after[:, 0])
            mine = torch.stack((owner == 0, owner == 1), 1)  # [B, 2]: the coin was the meta-agent's, the learner's
            coins[0] += (on_coin[:, :1] & mine).sum(0)
            coins[1] += (on_coin[:, 1:] & mine.flip(1)).sum(0)
            learner.rewards.append(rewards[:, 1])
            episode["rewards"].append(rewards[:, 0])
            episode["other_rewards"].append(rewards[:, 1])
            planes = _planes(rewards[:, 1], rewards[:, 0], s == moves - 1, size)
            board = after
        for k in keys:
            rec[k].append(torch.stack(episode[k]))
        ths.append(th)
        th = agent.condition(rec["states"][-1])
        learner.update()
    out = {k: torch.stack(v) for k, v in rec.items()}
    return CoinTrajectory(**out, th=torch.stack(ths), own_coins=coins[0], other_coins=coins[1],
                          learner_updates=learner.updates)


def carried_returns(rewards: Tensor, gamma: float, episode_len: int) -> Tensor:
    """The meta-returns before normalisation, ``rewards`` ``[T, B]`` time first, ``T`` a multiple
    of ``episode_len``: ``G_t = r_t + gamma G_{t+1}`` within an inner episode; on its last step
    ``G_t = r_t + gamma M_{t+1}`` with ``M_t = mean_b r_t + gamma M_{t+1}`` the batch mean of the
    returns from ``t`` on (``G_T = M_T = 0``), the authors' ``PPOMFOS.update``. Returns ``[T, B]``."""
    steps, games = rewards.shape
    if steps % episode_len:
        raise ValueError(f"carried_returns: {steps} steps are not whole inner episodes of {episode_len}")
    mean = rewards.mean(1)[None]
    future = monte_carlo_returns(mean, torch.zeros_like(mean, dtype=torch.bool), gamma)[0]  # [T]: M_t
    boot = torch.cat((future[episode_len::episode_len], future.new_zeros(1)))  # M at the next episode's start
    per = rewards.T.reshape(games, -1, episode_len).transpose(0, 1).reshape(-1, episode_len)  # rows (episode, game)
    g = monte_carlo_returns(per, torch.zeros_like(per, dtype=torch.bool), gamma, bootstrap=boot.repeat_interleave(games))
    return g.view(-1, games, episode_len).permute(0, 2, 1).reshape(steps, games)


def coin_ppo_update(agent: CoinMetaAgent, optimizer: torch.optim.Optimizer, traj: CoinTrajectory, cfg: MFOSConfig,
                    check: Any = None) -> dict[str, float]:
    """The meta-agent's PPO update on one meta-episode (module docstring). ``check(what, loss)``: called on every loss."""
    e, t, b = traj.rewards.shape
    returns = normalize_advantages(carried_returns(traj.rewards.flatten(0, 1), cfg.gamma, t), eps=1e-5).view(e, t, b)
    return meta_ppo_epochs(lambda: agent.evaluate(traj.states, traj.actions), optimizer, traj.log_probs, returns,
                           cfg, check)


class CoinMetaPlayer(nn.Module):
    """The M-FOS player's network (module docstring) behind the memory interface of
    :mod:`trainers.networks`: memory ``(GRU state [1, B, h], last view [B, 4, n, n])``."""

    def __init__(self, agent: CoinMetaAgent, th: Tensor, size: int, penalty: float):
        super().__init__()
        self.agent, self.size = agent, size
        self.register_buffer("th", torch.as_tensor(th, dtype=torch.float32).reshape(-1))
        self.penalty = penalty

    def initial_memory(self, rows: int, device: torch.device | str) -> tuple[Tensor, Tensor]:
        return (torch.zeros(1, rows, self.agent.hidden, device=device),
                torch.zeros(rows, BOARD, self.size, self.size, device=device))

    def begin(self, memory: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return memory

    def step(self, state: tuple[Tensor, Tensor], obs: Tensor, start: Tensor | None):
        obs = obs.float()
        memory, prev = state
        fresh = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device) if start is None else start
        on_coin, owner = observed_pickups(prev, obs)
        rewards = coin_rewards(on_coin, owner, self.penalty) * (~fresh)[:, None]  # [B, 2]: mine, the other's
        x = torch.cat((obs, _planes(rewards[:, 1], rewards[:, 0], False, obs.shape[-1])), 1)
        dist, memory = self.agent.step(x, memory * (~fresh)[None, :, None], self.th)
        return dist, None, (memory, obs)


class MFOSCoinGame(Algorithm):
    """M-FOS on the Coin Game (module docstring); one update is one meta-episode of ``num_games`` games
    and its PPO update. Built by the registry's :class:`~trainers.algorithms.mfos.MFOS` for ``coin_game``."""

    name = "mfos"
    Config = MFOSConfig
    presets = PAPER_PRESETS
    fast_presets = FAST_PRESETS
    postfix = ("rollout/reward_per_step", "rollout/opponent_reward_per_step", "rollout/own_coin_rate")

    def __init__(self, config: Config, out: Any = None):
        super().__init__(config, out)
        run, cfg = self.run, self.cfg
        torch.manual_seed(run.seed)
        self.vec = social_dilemmas.make_vec(run.env, run.num_games, device=self.device, validate=False,
                                            **run.game_kwargs())
        self.game = self.vec.game
        self.agent = CoinMetaAgent(self.game.size, cfg.hidden).to(self.device)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(run.seed + 1)
        self.th = torch.ones(cfg.hidden, device=self.device)  # the player's conditioning (ones before training)

    @property
    def steps_per_update(self) -> int:
        """Moves of every game of a meta-episode (the final observations' steps are not moves)."""
        return self.run.num_games * self.cfg.meta_steps * self.run.max_steps

    def check(self, what: str, value: Tensor) -> None:
        check_finite(what, value, self.iteration, self.out)

    def train_step(self) -> dict[str, float]:
        traj = coin_meta_episode(self.agent, self.cfg, self.vec, self.generator)
        moves = traj.rewards[:, :-1]  # the final observations' steps have no reward
        others = traj.other_rewards[:, :-1]
        metrics = {
            "rollout/reward_per_step": float(moves.mean()),
            "rollout/opponent_reward_per_step": float(others.mean()),
            "rollout/first_reward": float(moves[0].mean()),
            "rollout/final_reward": float(moves[-1].mean()),
            "rollout/opponent_first_reward": float(others[0].mean()),
            "rollout/opponent_final_reward": float(others[-1].mean()),
            "rollout/own_coin_rate": float(traj.own_coins[0] / traj.own_coins.sum().clamp(min=1)),
            "rollout/opponent_own_coin_rate": float(traj.other_coins[0] / traj.other_coins.sum().clamp(min=1)),
            "rollout/coins_per_step": float(traj.own_coins.sum() / moves.numel()),
        }
        self.th = traj.th[-1].clone()
        metrics.update(coin_ppo_update(self.agent, self.optimizer, traj, self.cfg, self.check))
        self.iteration += 1
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The M-FOS player against itself and the scripted players (:func:`scripted_evaluation`)."""
        return scripted_evaluation(self.game, lambda seat: self.player(self.config, self.player_state(), self.game,
                                                                       self.device, name="mfos"),
                                   games=self.run.eval_games, seed=self.run.seed, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "torch_rng": torch.get_rng_state(), "th": self.th.cpu()}

    def player_state(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "th": self.th.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.th = state["th"].to(self.device)

    def close(self) -> None:
        self.vec.close()

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        if game is not None and getattr(game, "name", None) != "coin_game":
            raise ValueError(f"this M-FOS agent plays the Coin Game, not {getattr(game, 'name', game)!r}")
        spec = social_dilemmas.spec("coin_game", **config.run.game_kwargs())
        agent = CoinMetaAgent(spec.size, config.algorithm.hidden)
        agent.load_state_dict(state["agent"])
        net = CoinMetaPlayer(agent, state["th"], spec.size, spec.penalty).to(device)
        return AgentPolicy(net, name=name, greedy=greedy, obs_shape=(BOARD, spec.size, spec.size))
