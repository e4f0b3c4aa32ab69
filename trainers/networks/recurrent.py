"""Actor and critic networks of the games with vector observations (SPEC section 7).

* IPD and Coin Game: ``Linear -> ReLU -> GRU(64) -> Linear`` heads; the actor gives
  categorical logits, the critic a value and also sees the time step.
* Negotiation: ``2-layer MLP(64) -> GRU(64)`` encoder; the actor's ``MLP(128, 128)`` gives
  the mean ``m`` of a tanh-squashed normal proposal
  (:class:`trainers.networks.distributions.TanhNormal`) with one learned ``log_std``
  shared by the items; the critic has the same encoder.

The :class:`Actor` follows the memory interface of :mod:`trainers.networks` (one step at
a time in rollouts, whole sequences in updates; both give the same numbers). The
:class:`Critic` runs on whole episodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.networks.distributions import SCALE, TanhNormal

__all__ = ["RecurrentNet", "TableNet", "Actor", "Critic", "as_input"]


def as_input(obs: Tensor) -> Tensor:
    """Observations as the networks' float input: compact 0/1 planes (uint8, the batched
    view's ``obs_dtype="uint8"``) become float32 with the same values; floats pass unchanged."""
    return obs if obs.is_floating_point() else obs.float()


class RecurrentNet(nn.Module):
    """``encoder -> GRU -> head``. ``encoder`` maps ``[..., in_dim]`` to ``[..., hidden]``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, mlp_layers: int = 1, head_sizes: tuple[int, ...] = (),
                 recurrent: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim if recurrent else in_dim + 1  # feed-forward: plus a "not the first step" flag
        for _ in range(mlp_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.encoder = nn.Sequential(*layers)
        # without recurrence a feed-forward layer takes the GRU's place: the output depends
        # on the current input only, and the hidden state passes through unchanged
        self.recurrent = recurrent
        if recurrent:
            self.gru = nn.GRU(hidden, hidden, batch_first=True)
        else:
            self.feed_forward = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        head: list[nn.Module] = []
        width = hidden
        for size in head_sizes:
            head += [nn.Linear(width, size), nn.ReLU()]
            width = size
        head.append(nn.Linear(width, out_dim))
        self.head = nn.Sequential(*head)
        self.hidden = hidden

    def initial_state(self, batch: int, device: torch.device | str) -> Tensor:
        return torch.zeros(1, batch, self.hidden, device=device)

    def features(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x``: ``[B, T, in_dim]`` -> (the encoder's and GRU's output ``[B, T, hidden]``, the
        head's input; final hidden ``[1, B, hidden]``)."""
        if not self.recurrent:
            # the only memory is whether the episode has started: the hidden state is 0 before
            # the first step and 1 after it, so the first step has its own input (like the
            # start state of a memory-one policy) and sequences and single steps agree
            started = torch.ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
            started[:, 0] = 0.0 if h is None else h[0, :, :1]
            z = self.feed_forward(self.encoder(torch.cat((x, started), dim=-1)))
            h_next = torch.ones(1, x.shape[0], self.hidden, dtype=x.dtype, device=x.device)
            return z, h_next
        return self.gru(self.encoder(x), h)

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x``: ``[B, T, in_dim]`` -> (``[B, T, out_dim]``, final hidden ``[1, B, hidden]``)."""
        z, h = self.features(x, h)
        return self.head(z), h

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step: ``x`` ``[B, in_dim]`` -> (``[B, out_dim]``, new hidden)."""
        out, h = self.forward(x.unsqueeze(1), h)
        return out.squeeze(1), h

    def cell(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One step written with elementwise operations and ``F.linear`` only, so that
        ``torch.func.vmap`` runs it for many weight sets at once (``nn.GRU`` has no batching
        rule): ``x`` ``[B, in_dim]``, ``h`` ``[B, hidden]`` -> (``[B, out_dim]``, ``[B, hidden]``).
        The same function as :meth:`step` (the GRU equations of ``torch.nn.GRU``)."""
        if not self.recurrent:
            z = self.feed_forward(self.encoder(torch.cat((x, h[:, :1]), dim=-1)))
            return self.head(z), torch.ones_like(h)
        g = self.gru
        gi = F.linear(self.encoder(x), g.weight_ih_l0, g.bias_ih_l0)
        gh = F.linear(h, g.weight_hh_l0, g.bias_hh_l0)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        h = (1.0 - z) * n + z * h
        return self.head(h), h


class TableNet(nn.Module):
    """Independent outputs for every observation of a game whose observations are 0/1 vectors
    (LOQA's IPD actor, ``hp=logits``: one pair of logits per memory-one state). Like the
    feed-forward :class:`RecurrentNet`, the memory is whether the episode has started, so the
    first step has its own entry; on the IPD the table has the 5 states start, CC, CD, DC, DD
    (and unused entries for impossible observations). The outputs start at 0 (a uniform policy).
    Another value than 0 or 1 in an observation is a ``ValueError``."""

    #: The most observation entries a table can index (``2 ** (entries + 1)`` rows).
    MAX_INPUTS = 15

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 1):
        super().__init__()
        if in_dim > self.MAX_INPUTS:
            raise ValueError(f"actor_table needs observations of at most {self.MAX_INPUTS} entries (a table of "
                             f"2 ** (entries + 1) rows), this game has {in_dim}; use the network actor")
        self.rows = 2 ** (in_dim + 1)
        self.table = nn.Parameter(torch.zeros(self.rows, out_dim))
        self.register_buffer("powers", 2 ** torch.arange(in_dim + 1), persistent=False)
        self.hidden = hidden

    def initial_state(self, batch: int, device: torch.device | str) -> Tensor:
        return torch.zeros(1, batch, self.hidden, device=device)

    def index(self, x: Tensor, started: Tensor) -> Tensor:
        """The table's row of each observation ``x`` ``[..., in_dim]`` and started flag ``[..., 1]``."""
        bits = torch.cat((x, started), dim=-1)
        if not torch.compiler.is_compiling() and bool(((bits != 0) & (bits != 1)).any()):
            raise ValueError("actor_table: an observation has another value than 0 or 1; the table indexes 0/1 "
                             "observations only (use the network actor)")
        return (bits.long() * self.powers).sum(-1)

    def forward(self, x: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x``: ``[B, T, in_dim]`` -> (``[B, T, out_dim]``, final "started" state ``[1, B, hidden]``)."""
        started = torch.ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
        started[:, 0] = 0.0 if h is None else h[0, :, :1]
        out = self.table[self.index(x, started)]
        return out, torch.ones(1, x.shape[0], self.hidden, dtype=x.dtype, device=x.device)

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        out, h = self.forward(x.unsqueeze(1), h)
        return out.squeeze(1), h

    def cell(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`step` with a one-hot product instead of indexing, so that ``torch.func.vmap``
        runs it for many tables at once: ``x`` ``[B, in_dim]``, ``h`` ``[B, hidden]``."""
        bits = torch.cat((x, h[:, :1]), dim=-1)
        idx = (bits * self.powers.to(bits.dtype)).sum(-1, keepdim=True)
        one_hot = (idx == torch.arange(self.rows, device=x.device, dtype=bits.dtype)).to(bits.dtype)
        return one_hot @ self.table, torch.ones_like(h)


class Actor(nn.Module):
    """The policy. Discrete games: categorical logits. Negotiation: tanh-normal proposals.

    Memory: ``(h,)`` with ``h`` ``[M, hidden]``, the GRU's state (the feed-forward actor's
    "episode started" flag, see :class:`RecurrentNet`). With ``value_head`` (the released
    Negotiation run's shared encoder) a two-layer MLP on the encoder's output gives state
    values too (``has_value_head``; its weights are :meth:`value_parameters`). Proposals: the
    log-std is clamped to ``log_std_bounds``, and log-probabilities clamp ``|u|`` to
    ``atanh_limit`` before atanh (:class:`~trainers.networks.distributions.TanhNormal`'s ``eps``).
    """

    def __init__(self, obs_dim: int, hidden: int, n_actions: int | None = None, action_dim: int | None = None,
                 recurrent: bool = True, log_std_bounds: tuple[float, float] = (-20.0, 20.0), atanh_limit: float = 1.0,
                 value_head: bool = False, table: bool = False):
        super().__init__()
        self.has_value_head = value_head
        if value_head:
            self.value_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.discrete = n_actions is not None
        self.log_std_bounds = log_std_bounds
        # proposals are clamped this far inside [0, 5] before atanh (|u| <= atanh_limit)
        self.proposal_margin = max(1e-6, SCALE * (1.0 - atanh_limit))
        if table:
            if not self.discrete or recurrent or value_head:
                raise ValueError("actor_table needs discrete actions, actor_recurrent false and no shared_encoder")
            self.net = TableNet(obs_dim, n_actions, hidden)
        elif self.discrete:
            self.net = RecurrentNet(obs_dim, hidden, n_actions, recurrent=recurrent)
        else:
            self.net = RecurrentNet(obs_dim, hidden, action_dim, mlp_layers=2, head_sizes=(128, 128), recurrent=recurrent)
            self.log_std = nn.Parameter(torch.zeros(()))  # one log-std shared by the items

    def distribution(self, out: Tensor, log_std: Tensor | None = None):
        """The policy from the head's output (``log_std``: per row, instead of the parameter)."""
        if self.discrete:
            return torch.distributions.Categorical(logits=out)
        log_std = self.log_std.expand(out.shape[-1]) if log_std is None else log_std
        return TanhNormal(out, log_std.clamp(*self.log_std_bounds), eps=self.proposal_margin)

    def forward(self, obs: Tensor, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step in vmappable operations (:meth:`RecurrentNet.cell`), for many snapshots at
        once (:func:`trainers.networks.grouped.grouped_call`): ``obs`` ``[B, *obs_shape]``, ``h``
        ``[B, hidden]`` (cleared where an episode starts) -> (head output, the log-std per row
        ``[B, action_dim]`` (zeros ``[B, 0]`` for discrete actions), new ``h``)."""
        out, h = self.net.cell(as_input(obs).flatten(1), h)
        if self.discrete:
            return out, out.new_zeros(out.shape[0], 0), h
        return out, self.log_std.expand(out.shape), h

    def value_parameters(self) -> list[nn.Parameter]:
        """The value head's weights (empty without one)."""
        return list(self.value_head.parameters()) if self.has_value_head else []

    def _run(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        """``x`` ``[B, T, in_dim]`` -> (head output, values ``[B, T]`` or None, final hidden)."""
        if not self.has_value_head:
            out, h = self.net(x, h)
            return out, None, h
        z, h = self.net.features(x, h)
        return self.net.head(z), self.value_head(z).squeeze(-1), h

    # -- the memory interface of trainers.networks ----------------------------------------
    def initial_memory(self, rows: int, device: torch.device | str) -> tuple[Tensor]:
        return (torch.zeros(rows, self.net.hidden, device=device),)

    def begin(self, memory: tuple[Tensor]) -> tuple[Tensor]:
        return memory

    def step(self, state: tuple[Tensor], obs: Tensor, start: Tensor | None):
        """One step: ``obs`` ``[M, *obs_shape]``, ``start`` ``[M]`` (True: first step of an
        episode, the memory is cleared; None: no row starts) -> (distribution, value or None, new state)."""
        h = (state[0] if start is None else state[0].masked_fill(start.unsqueeze(-1), 0.0)).unsqueeze(0)
        obs = as_input(obs)
        if not self.has_value_head:
            out, h = self.net.step(obs.flatten(1), h)
            return self.distribution(out), None, (h.squeeze(0),)
        out, value, h = self._run(obs.flatten(1).unsqueeze(1), h)
        return self.distribution(out.squeeze(1)), value.squeeze(1), (h.squeeze(0),)

    def end(self, memory: tuple[Tensor], state: tuple[Tensor], obs: Tensor, starts: Tensor) -> tuple[Tensor]:
        return tuple(x.detach() for x in state)

    def forward_sequence(self, memory: tuple[Tensor], obs: Tensor, starts: Tensor):
        """Whole sequences: ``obs`` ``[M, T, *obs_shape]`` -> (distribution over ``[M, T]``,
        values ``[M, T]`` or None)."""
        obs = as_input(obs)
        if bool(starts[:, 1:].any()):  # episodes start inside the sequence: step through it
            state, outs, values = memory, [], []
            for t in range(obs.shape[1]):
                h = state[0].masked_fill(starts[:, t].unsqueeze(-1), 0.0).unsqueeze(0)
                out, value, h = self._run(obs[:, t].flatten(1).unsqueeze(1), h)
                outs.append(out.squeeze(1))
                values.append(None if value is None else value.squeeze(1))
                state = (h.squeeze(0),)
            return self.distribution(torch.stack(outs, 1)), None if values[0] is None else torch.stack(values, 1)
        h = memory[0].masked_fill(starts[:, :1], 0.0).unsqueeze(0)
        out, values, _ = self._run(obs.flatten(2), h)
        return self.distribution(out), values


class Critic(nn.Module):
    """State value from the player's observations and the time step ``t / max_steps`` (unless
    ``time_input`` is false: the released Negotiation run's critic has none); with
    ``n_actions`` the action values ``Q(s, a)`` of every action instead (the published IPD and
    Coin Game runs: ``V(s) = sum_a pi(a | s) Q(s, a)``).

    With ``value_norm`` the network predicts values in units of running statistics of
    the targets (PopArt, van Hasselt et al. 2016): :meth:`update_normalizer` moves the
    statistics and rescales the last layer so the predicted values do not change, and
    :meth:`normalized` expresses values and targets in those units for the loss. Adam
    moves each weight by about the learning rate per step whatever the scale of the
    returns, so without it a critic needs hundreds of updates just to reach returns of
    -10 (the IPD), and the biased advantages of that time push the policy astray.
    """

    def __init__(self, obs_dim: int, hidden: int, mlp_layers: int = 1, value_norm: bool = True,
                 n_actions: int | None = None, time_input: bool = True):
        super().__init__()
        self.n_actions = n_actions
        self.time_input = time_input
        self.net = RecurrentNet(obs_dim + int(time_input), hidden, n_actions or 1, mlp_layers=mlp_layers)
        self.value_norm = value_norm
        self.register_buffer("ret_mean", torch.zeros(()))
        self.register_buffer("ret_sq", torch.ones(()))
        self.register_buffer("ret_count", torch.zeros(()))

    @property
    def ret_std(self) -> Tensor:
        return (self.ret_sq - self.ret_mean**2).clamp(min=1e-4).sqrt()

    def forward(self, obs: Tensor, time: Tensor, h: Tensor | None = None, vmappable: bool = False) -> tuple[Tensor, Tensor]:
        """``obs`` ``[B, T, ...]``, ``time`` ``[B, T]`` in [0, 1] -> values ``[B, T]`` (action
        values ``[B, T, n_actions]``). ``vmappable``: step through time with
        :meth:`RecurrentNet.cell` (for :func:`trainers.networks.grouped.grouped_call`; ``h`` None)."""
        obs = as_input(obs)
        x = torch.cat((obs.flatten(2), time.unsqueeze(-1)), dim=-1) if self.time_input else obs.flatten(2)
        if vmappable:
            h = x.new_zeros(x.shape[0], self.net.hidden)
            outs = []
            for t in range(x.shape[1]):
                out, h = self.net.cell(x[:, t], h)
                outs.append(out)
            v = torch.stack(outs, dim=1)
        else:
            v, h = self.net(x, h)
        if self.n_actions is None:
            v = v.squeeze(-1)
        if self.value_norm:
            v = v * self.ret_std + self.ret_mean
        return v, h

    def normalized(self, values: Tensor) -> Tensor:
        """Values in the units the network predicts in (identity without ``value_norm``)."""
        return (values - self.ret_mean) / self.ret_std if self.value_norm else values

    @torch.no_grad()
    def update_normalizer(self, targets: Tensor, decay: float = 0.99) -> None:
        """Move the running mean and second moment towards ``targets``, preserving outputs."""
        if not self.value_norm:
            return
        old_mean, old_std = self.ret_mean.clone(), self.ret_std.clone()
        first = bool(self.ret_count == 0)
        w = 1.0 if first else 1.0 - decay
        self.ret_mean.lerp_(targets.mean(), w)
        self.ret_sq.lerp_((targets**2).mean(), w)
        self.ret_count += 1
        if first:  # an untrained network has nothing to preserve: start at the mean return
            return
        last = self.net.head[-1]
        new_std = self.ret_std
        last.weight.mul_(old_std / new_std)
        last.bias.mul_(old_std).add_(old_mean - self.ret_mean).div_(new_std)
