"""Rollouts on the batched views, and the two replays of the on-policy core.

* :class:`Rollouts` plays ``steps`` steps of every game of a vector env
  (``social_dilemmas.make_vec``: the batched games, or Commons Harvest's worker processes)
  with a policy network, every player from its own seat, and returns a :class:`Batch`.
  A rollout is one whole episode of every game, or a chunk of longer episodes: the games
  and the network's memory carry on to the next rollout. Seat 0 of every game may be
  played against a past snapshot in the other seats (agent replay).
* :class:`AgentReplay`: snapshots of the actor (and critic), opponents for later rollouts:
  one snapshot for the whole batch, or every group of games its own
  (:class:`SnapshotOpponents`, the published runs: every game its own).
* :class:`TrajectoryReplay`: a fraction of each batch's games replaced by games of the
  previous batch or of a buffer of earlier games (the Negotiation's released set-up).

Rows are laid out ``game * n_players + seat`` everywhere; time is the second dimension.
"""

from __future__ import annotations

import copy
import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from trainers.networks.distributions import sample_action
from trainers.networks.grouped import grouped_call, stack_states

__all__ = ["Batch", "Rollouts", "AgentReplay", "SnapshotOpponents", "TrajectoryReplay"]


@dataclass
class Batch:
    """One rollout: ``N = num_games * n_players`` rows (``game * n_players + seat``), time second."""

    obs: Tensor  # [N, T, *obs_shape]
    actions: Tensor  # [N, T, *action_shape]
    log_probs: Tensor  # [N, T] log-probabilities under the acting policy
    rewards: Tensor  # [N, T]
    starts: Tensor  # [N, T] bool: obs[:, t] is the first observation of an episode
    dones: Tensor  # [N, T] bool: the episode ends after step t and nothing is bootstrapped past it
    truncated: Tensor  # [N, T] bool: the episode is cut after step t and bootstrapped from its last observation
    learn: Tensor  # [N] bool: rows the update trains on (seat 0 only against a snapshot)
    memory: tuple[Tensor, ...]  # the network's memory at the start of the rollout, per row
    values: Tensor | None = None  # [N, T] the acting network's values (networks with a value head)
    next_values: Tensor | None = None  # [N, T] the value after step t: 0 where done, the last observation's where truncated
    probs: Tensor | None = None  # [N, T, n_actions] the acting policy's probabilities (recorded for a Q-critic)

    def rows(self, idx: Tensor) -> Batch:
        """The rows ``idx`` of every per-row field."""
        return Batch(**{f.name: _index(getattr(self, f.name), idx) for f in dataclasses.fields(self)})

    def learning(self) -> tuple[Batch, Tensor | slice]:
        """The rows to train on and their index into the batch (all of them, without a copy, in self-play)."""
        if bool(self.learn.all()):
            return self, slice(None)
        return self.rows(self.learn), self.learn


def _index(x: Any, idx: Tensor) -> Any:
    if x is None:
        return None
    if isinstance(x, tuple):
        return tuple(m[idx] for m in x)
    return x[idx]


class Rollouts:
    """Rollouts of ``steps`` steps of every game of ``vec`` played by ``net``.

    The games, the observations, the episode starts and the network's memory carry from
    one rollout to the next. ``time_limit`` is the run's: the end of an episode at its
    ``max_steps`` is a termination (``"terminate"``) or, for a network with a value head, a
    truncation bootstrapped from the value of its last observation (``"bootstrap"``).
    Actions are drawn with ``generator``; ``record_probs`` keeps every row's action
    probabilities (discrete actions) in :attr:`Batch.probs`. ``epsilon`` (discrete actions):
    every player's action is replaced, with that probability, by a uniformly random one (LOQA's
    IPD runs: 0.2); the log-probabilities are those of the actions played. After each rollout, ``finished`` holds the number
    of episodes that ended in it and ``finished_return`` their mean per-capita return (NaN
    when none ended).
    """

    def __init__(self, vec: Any, net: nn.Module, steps: int, time_limit: str, generator: torch.Generator,
                 device: torch.device, seed: int, record_probs: bool = False, epsilon: float = 0.0):
        self.vec, self.net, self.steps, self.time_limit = vec, net, steps, time_limit
        self.record_probs = record_probs
        self.epsilon = epsilon
        self.generator, self.device = generator, device
        self.game = vec.game
        self.n_players = vec.n_players
        self.rows = vec.num_envs * vec.n_players
        self.restart(seed)

    def restart(self, seed: int) -> None:
        """New episodes of every game, from ``seed``, and fresh memory."""
        obs, _ = self.vec.reset(seed=seed)
        self.obs = obs.to(self.device).flatten(0, 1)
        self.start = torch.ones(self.rows, dtype=torch.bool, device=self.device)
        self.memory = self.net.initial_memory(self.rows, self.device)
        self.episode_return = torch.zeros(self.rows, device=self.device)
        self.finished, self.finished_return = 0, float("nan")

    @torch.no_grad()
    def collect(self, opponent: nn.Module | None = None) -> Batch:
        """One rollout. With ``opponent`` (a network of the same interface) seat 0 of every game
        is played by the network and the other seats by ``opponent``, from fresh memory;
        only seat 0's rows are then marked to learn from."""
        T, M, n, dev = self.steps, self.rows, self.n_players, self.device
        game = self.game
        B = M // n
        net = self.net.eval()
        values_on = net.has_value_head
        if values_on and opponent is not None:
            raise ValueError("agent replay is for networks without a value head (the opponent's seats have no values)")
        obs_buf = torch.empty((T, M, *self.obs.shape[1:]), dtype=self.obs.dtype, device=dev)
        act_buf = torch.empty((T, M, *game.action_shape), dtype=game.action_dtype, device=dev)
        logp_buf = torch.empty((T, M), device=dev)
        rew_buf = torch.empty((T, M), device=dev)
        start_buf = torch.zeros((T, M), dtype=torch.bool, device=dev)
        term_buf = torch.empty((T, B), dtype=torch.bool, device=dev)  # per game: the episode ended after step t
        trunc_buf = torch.empty((T, B), dtype=torch.bool, device=dev)
        val_buf = torch.zeros((T, M), device=dev) if values_on else None
        next_buf = torch.zeros((T, M), device=dev) if values_on else None
        probs_buf = torch.empty((T, M, game.action_space().n), device=dev) if self.record_probs else None
        bootstrap = self.time_limit == "bootstrap"
        memory = self.memory
        state = net.begin(memory)
        own = torch.arange(B, device=dev) * n  # seat 0 of every game
        if opponent is not None:
            theirs = (torch.arange(B, device=dev).unsqueeze(1) * n + torch.arange(1, n, device=dev)).flatten()
            opp_state = opponent.begin(opponent.initial_memory(theirs.numel(), dev))
            own_state = tuple(x[own] for x in state)
        obs, start = self.obs, self.start  # start None: no episode starts at this step
        for t in range(T):
            obs_buf[t] = obs
            if start is not None:
                start_buf[t] = start
            if opponent is None:
                dist, value, state = net.step(state, obs, start)
                action = self._explore(sample_action(dist, self.generator))
                logp_buf[t] = dist.log_prob(action)
                if probs_buf is not None:
                    probs_buf[t] = dist.probs
            else:
                dist, value, own_state = net.step(own_state, obs[own], None if start is None else start[own])
                mine = self._explore(sample_action(dist, self.generator))
                odist, _, opp_state = opponent.step(opp_state, obs[theirs], None if start is None else start[theirs])
                other = self._explore(sample_action(odist, self.generator))
                action = torch.empty((M, *game.action_shape), dtype=mine.dtype, device=dev)
                action[own], action[theirs] = mine, other
                logp_buf[t, own] = dist.log_prob(mine)
                logp_buf[t, theirs] = odist.log_prob(other)
                if probs_buf is not None:
                    probs_buf[t, own], probs_buf[t, theirs] = dist.probs, odist.probs
            act_buf[t] = action
            next_obs, rewards, terminated, truncated, info = self.vec.step(action.view(B, n, *game.action_shape))
            rew_buf[t] = rewards.to(dev).flatten()
            term_buf[t], trunc_buf[t] = terminated, truncated
            # the vector envs give final_obs on the steps where a game ended (same-step autoreset):
            # knowing that on the host spares the networks a mask at every other step
            some_ended = "final_obs" in info
            if values_on:
                val_buf[t] = value
                if bootstrap and some_ended:  # the last observation's value, seen with the finished episode's memory
                    cut = (truncated & ~terminated).to(dev).repeat_interleave(n)
                    _, v_final, _ = net.step(state, info["final_obs"].to(dev).flatten(0, 1), None)
                    next_buf[t] = torch.where(cut, v_final, 0.0)
            obs = next_obs.to(dev).flatten(0, 1)
            start = (terminated | truncated).to(dev).repeat_interleave(n) if some_ended else None
        if opponent is not None:
            state = tuple(x.index_copy(0, own, y) for x, y in zip(state, own_state))
        # the episode ends, per row: terminated, or truncated and (time_limit) bootstrapped or not
        term = term_buf.repeat_interleave(n, dim=1)
        trunc = trunc_buf.repeat_interleave(n, dim=1) & ~term
        ended = term | trunc
        cut = trunc if bootstrap else torch.zeros_like(trunc)
        dones = ended & ~cut
        if values_on:
            _, v_last, _ = net.step(state, obs, start)
            following = torch.cat((val_buf[1:], v_last.unsqueeze(0)), 0)
            next_buf = torch.where(ended, next_buf, following)
        self.memory = net.end(memory, state, obs_buf.transpose(0, 1), start_buf.transpose(0, 1))
        self.obs = obs
        self.start = start if start is not None else torch.zeros(M, dtype=torch.bool, device=dev)
        self._count_episodes(rew_buf, ended)
        learn = torch.ones(M, dtype=torch.bool, device=dev)
        if opponent is not None:
            learn[theirs] = False

        def rows(x: Tensor | None) -> Tensor | None:  # [T, M, ...] -> [M, T, ...]
            return None if x is None else x.transpose(0, 1).contiguous()

        return Batch(rows(obs_buf), rows(act_buf), rows(logp_buf), rows(rew_buf), rows(start_buf), rows(dones),
                     rows(cut), learn, memory, rows(val_buf), rows(next_buf), rows(probs_buf))

    def _explore(self, action: Tensor) -> Tensor:
        """``action`` with each entry replaced, with probability ``epsilon``, by a uniformly random action."""
        if self.epsilon <= 0:
            return action
        n = int(self.game.action_space().n)
        swap = torch.rand(action.shape, generator=self.generator, device=action.device) < self.epsilon
        random_action = torch.randint(n, action.shape, generator=self.generator, device=action.device)
        return torch.where(swap, random_action.to(action.dtype), action)

    def _count_episodes(self, rewards: Tensor, ended: Tensor) -> None:
        """The episodes that ended in this rollout (``rewards``, ``ended``: ``[T, M]``): their number
        and mean per-capita return; the returns of the episodes still running carry on."""
        ended_f = ended.float()
        # a step belongs to an episode that ends in this rollout if an end comes at or after it
        finishing = ended_f.flip(0).cummax(0).values.flip(0)
        any_end = finishing[0]
        total = (rewards * finishing).sum() + (self.episode_return * any_end).sum()
        self.episode_return = (rewards * (1.0 - finishing)).sum(0) + self.episode_return * (1.0 - any_end)
        rows = int(ended_f.sum())
        self.finished = rows // self.n_players
        self.finished_return = float(total) / rows if rows else float("nan")

    def state_dict(self) -> dict[str, Any]:
        """The games (when the vector env can save them), the observations, starts and memory."""
        games = self.vec.state_dict() if hasattr(self.vec, "state_dict") else None
        return {"games": games, "obs": self.obs, "start": self.start, "memory": self.memory,
                "episode_return": self.episode_return}

    def load_state_dict(self, saved: dict[str, Any], seed: int) -> None:
        """Continue from :meth:`state_dict`; games that could not be saved (worker processes)
        start new episodes from ``seed`` instead."""
        if saved["games"] is None:
            self.restart(seed)
            return
        self.vec.load_state_dict(saved["games"])
        self.obs = saved["obs"].to(self.device)
        self.start = saved["start"].to(self.device)
        self.memory = tuple(x.to(self.device) for x in saved["memory"])
        self.episode_return = saved["episode_return"].to(self.device)


class SnapshotOpponents:
    """The other seats of every game played by past snapshots of the actor, the games split
    into ``len(states)`` equal groups in order, group ``g`` against snapshot ``g`` (all of them
    in one call per step, :func:`~trainers.networks.grouped.grouped_call`). Follows the memory
    interface of :mod:`trainers.networks` over the opponents' rows, game-major as in a batch.

    ``critics``: the snapshots' critic weights, one per group (the opponents' advantages
    then come from their own critic), or None."""

    has_value_head = False

    def __init__(self, template: nn.Module, states: list[dict[str, Tensor]],
                 critics: list[dict[str, Tensor]] | None = None):
        self.template = template
        self.groups = len(states)
        self.stacked = stack_states(states)
        self.critics = stack_states(critics) if critics else None

    def initial_memory(self, rows: int, device: torch.device | str) -> tuple[Tensor, ...]:
        if rows % self.groups:
            raise ValueError(f"{rows} opponent rows do not split into {self.groups} equal groups")
        return self.template.initial_memory(rows, device)

    def begin(self, memory: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return memory

    def step(self, state: tuple[Tensor, ...], obs: Tensor, start: Tensor | None):
        h = state[0] if start is None else state[0].masked_fill(start.unsqueeze(-1), 0.0)
        G = self.groups
        out, log_std, h = grouped_call(self.template, self.stacked, obs.unflatten(0, (G, -1)), h.unflatten(0, (G, -1)))
        out, log_std, h = (x.flatten(0, 1) for x in (out, log_std, h))
        return self.template.distribution(out, log_std if log_std.shape[-1] else None), None, (h,)


class AgentReplay:
    """Snapshots of the actor's weights (every ``every`` updates, the oldest dropped past
    ``capacity``), and with ``with_critic`` of the critic's; each rollout plays the current
    agent against itself with probability ``self_play_prob``, else seat 0 against snapshots
    drawn with ``rng``: one for the whole batch (``groups`` 1), or one per group of games
    (``groups`` > 1; 0: one per game, the published set-up)."""

    def __init__(self, self_play_prob: float, every: int, capacity: int, groups: int = 1, with_critic: bool = False):
        self.self_play_prob, self.every, self.capacity = self_play_prob, every, capacity
        self.groups, self.with_critic = groups, with_critic
        self.snapshots: list[dict[str, Tensor]] = []
        self.critic_snapshots: list[dict[str, Tensor]] = []

    def opponent(self, actor: nn.Module, rng: random.Random, num_games: int = 1) -> nn.Module | SnapshotOpponents | None:
        """The opponents of the next rollout (see the class docstring), or None for self-play."""
        if not self.snapshots or rng.random() < self.self_play_prob:
            return None
        groups = self.groups or num_games
        if groups == 1 and not self.with_critic:  # one snapshot: the network itself, as before groups existed
            opponent = copy.deepcopy(actor)
            opponent.load_state_dict(rng.choice(self.snapshots))
            return opponent
        chosen = [rng.randrange(len(self.snapshots)) for _ in range(groups)]
        critics = [self.critic_snapshots[i] for i in chosen] if self.with_critic else None
        return SnapshotOpponents(actor, [self.snapshots[i] for i in chosen], critics)

    def after_update(self, iteration: int, actor: nn.Module, critic: nn.Module | None = None) -> None:
        """Take a snapshot every ``every`` updates (of ``critic`` too, with ``with_critic``)."""
        if iteration % self.every == 0:
            self.snapshots.append({k: v.detach().clone() for k, v in actor.state_dict().items()})
            if self.with_critic:
                self.critic_snapshots.append({k: v.detach().clone() for k, v in critic.state_dict().items()})
            drop = max(0, len(self.snapshots) - self.capacity)
            del self.snapshots[:drop], self.critic_snapshots[:drop]


class TrajectoryReplay:
    """Replace a ``fraction`` of the games of each batch by games of earlier batches.

    ``capacity`` 0: the same games of the previous batch. ``capacity`` > 0 (the released
    Negotiation run: 100000 games, 500 added per update): a buffer of up to ``capacity``
    games, the oldest overwritten first; each batch takes random games from it, then
    ``add`` random games of the fresh batch join it."""

    def __init__(self, fraction: float, n_players: int, capacity: int = 0, add: int = 500):
        self.fraction, self.n_players = fraction, n_players
        self.capacity, self.add = capacity, add
        self.previous: Batch | None = None
        self.buffer: Batch | None = None  # capacity * n_players rows
        self.size = 0  # games stored
        self.cursor = 0  # the game slot written next

    def _game_rows(self, games: Tensor) -> Tensor:
        n = self.n_players
        return (games.unsqueeze(1) * n + torch.arange(n, device=games.device)).flatten()

    def mix(self, batch: Batch, generator: torch.Generator) -> Batch:
        if self.capacity > 0:
            return self._mix_buffer(batch, generator)
        previous, self.previous = self.previous, batch
        if self.fraction <= 0 or previous is None:
            return batch
        games = batch.rewards.shape[0] // self.n_players
        k = max(1, int(round(self.fraction * games)))
        chosen = torch.randperm(games, generator=generator, device=batch.rewards.device)[:k]
        rows = self._game_rows(chosen)
        return _replace_rows(batch, rows, previous, rows)

    def _mix_buffer(self, batch: Batch, generator: torch.Generator) -> Batch:
        device = batch.rewards.device
        games = batch.rewards.shape[0] // self.n_players
        mixed = batch
        if self.fraction > 0 and self.size > 0:
            k = max(1, int(round(self.fraction * games)))
            chosen = torch.randperm(games, generator=generator, device=device)[:k]
            stored = torch.randint(self.size, (k,), generator=generator, device=device)
            mixed = _replace_rows(batch, self._game_rows(chosen), self.buffer, self._game_rows(stored))
        k = min(self.add, games, self.capacity)
        fresh = torch.randperm(games, generator=generator, device=device)[:k]
        slots = (self.cursor + torch.arange(k, device=device)) % self.capacity
        if self.buffer is None:
            self.buffer = _empty_like(batch, self.capacity * self.n_players)
        self.buffer = _replace_rows(self.buffer, self._game_rows(slots), batch, self._game_rows(fresh), copy=False)
        self.cursor = int((self.cursor + k) % self.capacity)
        self.size = min(self.capacity, self.size + k)
        return mixed

    def state_dict(self) -> dict[str, Any]:
        def plain(b: Batch | None) -> dict[str, Any] | None:
            return None if b is None else dict(b.__dict__)

        return {"previous": plain(self.previous), "buffer": plain(self.buffer), "size": self.size, "cursor": self.cursor}

    def load_state_dict(self, saved: dict[str, Any], device: torch.device) -> None:
        def batch(d: dict[str, Any] | None) -> Batch | None:
            if d is None:
                return None
            return Batch(**{k: (tuple(m.to(device) for m in v) if isinstance(v, tuple) else
                                None if v is None else v.to(device)) for k, v in d.items()})

        self.previous, self.buffer = batch(saved["previous"]), batch(saved.get("buffer"))
        self.size, self.cursor = int(saved.get("size", 0)), int(saved.get("cursor", 0))


def _replace_rows(dest: Batch, rows: Tensor, src: Batch, src_rows: Tensor, copy: bool = True) -> Batch:
    """``dest`` with its per-row fields at ``rows`` taken from ``src`` at ``src_rows`` (a copy
    of ``dest``, or ``dest`` itself changed in place with ``copy=False``)."""
    out = {}
    for f in dataclasses.fields(dest):
        new, old = getattr(dest, f.name), getattr(src, f.name)
        if isinstance(new, Tensor):
            new = new.clone() if copy else new
            new[rows] = old[src_rows].to(new.dtype)
        elif isinstance(new, tuple):
            new = tuple((x.clone() if copy else x).index_copy_(0, rows, y[src_rows]) for x, y in zip(new, old))
        out[f.name] = new
    return Batch(**out)


def _empty_like(batch: Batch, rows: int) -> Batch:
    """A batch of ``rows`` zero rows shaped like ``batch``'s."""
    def empty(x: Any) -> Any:
        if x is None:
            return None
        if isinstance(x, tuple):
            return tuple(torch.zeros((rows, *m.shape[1:]), dtype=m.dtype, device=m.device) for m in x)
        return torch.zeros((rows, *x.shape[1:]), dtype=x.dtype, device=x.device)

    return Batch(**{f.name: empty(getattr(batch, f.name)) for f in dataclasses.fields(batch)})
