"""The network of image observations (Commons Harvest Open, SPEC section 7): a Nature CNN, then a memory, then actor and critic heads.

The memory is one of three (``arch``):

* ``"gtrxl"``: GTrXL (Parisotto et al., 2019) with Transformer-XL memory. Each layer keeps
  its inputs of the last ``context - 1`` steps of the episode (without gradient) and the
  current step attends over them and itself; the rollout carries that memory per seat
  (like a GRU's state) and the update runs a stored rollout as one segment that attends
  over the previous segment's stored states (the memory at the rollout's start) and,
  causally, within itself. Each step encodes its image once and runs each layer once.
  Its feed-forward width is ``width`` (the paper's 192 at width 192).
* ``"transformer"``: the same layers on a recomputed window: the output at step t is the
  last position of the window of the observations t-context+1..t of the current episode,
  recomputed from the images at every step (the first version of this network;
  feed-forward width ``4 * width``).
* ``"gru"``: a GRU cell.

Both transformers: pre-LayerNorm, multi-head self-attention, learned relative-position
biases (one scalar per head and distance 0..context-1, in place of Transformer-XL's
sinusoidal relative encodings), ReLU on each sublayer's output and GRU-type gating of
both residual branches, nothing attended across an episode start.

:class:`VisionNet` follows the memory interface of :mod:`trainers.networks`, with a value
head (actor and critic share the encoder and the memory).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NatureCNN", "GatedTransformer", "GatedTransformerXL", "VisionNet", "ARCHS", "N_ACTIONS"]

#: Actions of Commons Harvest Open (Melting Pot's action set of the substrate).
N_ACTIONS = 8

#: The memories of :class:`VisionNet` (``arch``).
ARCHS = ("gtrxl", "transformer", "gru")

Memory = tuple[Tensor, ...]


class NatureCNN(nn.Module):
    """Conv 8x8/4 -> 4x4/2 -> 3x3/1 (ReLU) -> Linear(width) -> ReLU on uint8 ``[..., H, W, C]``."""

    def __init__(self, width: int, channels: tuple[int, int, int] = (32, 64, 64), image: int = 88, in_ch: int = 3):
        super().__init__()
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, c1, 8, 4), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2), nn.ReLU(), nn.Conv2d(c2, c3, 3, 1), nn.ReLU(),
            nn.Flatten())
        with torch.no_grad():
            n = self.conv(torch.zeros(1, in_ch, image, image)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n, width), nn.ReLU())

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0
        return self.fc(self.conv(x)).view(*lead, -1)


class _Gate(nn.Module):
    """GRU-type gating of a residual (GTrXL): ``(1 - z) * x + z * tanh(W y + U (r * x))``."""

    def __init__(self, width: int, bias: float = 2.0):
        super().__init__()
        self.w = nn.Linear(width, 3 * width, bias=False)
        self.u = nn.Linear(width, 2 * width, bias=False)
        self.ug = nn.Linear(width, width, bias=False)
        self.bias = nn.Parameter(torch.full((width,), bias))  # starts close to the identity

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        wr, wz, wg = self.w(y).chunk(3, -1)
        ur, uz = self.u(x).chunk(2, -1)
        r = torch.sigmoid(wr + ur)
        z = torch.sigmoid(wz + uz - self.bias)
        h = torch.tanh(wg + self.ug(r * x))
        return (1 - z) * x + z * h


class _GatedLayer(nn.Module):
    """One GTrXL layer: ``x + attention`` and ``x + feed-forward`` through GRU-type gates.

    ``ff``: the feed-forward's hidden width (None: ``4 * width``)."""

    def __init__(self, width: int, heads: int, context: int, ff: int | None = None):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, context))  # by distance 0..context-1
        ff = 4 * width if ff is None else ff
        self.ff = nn.Sequential(nn.Linear(width, ff), nn.ReLU(), nn.Linear(ff, width))
        self.gate1, self.gate2 = _Gate(width), _Gate(width)

    def _split(self, y: Tensor) -> Tensor:
        """``[K, N, D]`` -> ``[K, heads, N, D / heads]``."""
        K, N, D = y.shape
        return y.view(K, N, self.heads, D // self.heads).transpose(1, 2)

    def keys(self, x: Tensor) -> Tensor:
        """Keys and values ``[K, N, 2 D]`` (keys first) of the inputs ``x`` ``[K, N, D]``."""
        D = x.shape[-1]
        return F.linear(self.ln1(x), self.qkv.weight[D:], self.qkv.bias[D:])

    def forward(self, x: Tensor, allowed: Tensor, dist: Tensor, memory: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` ``[K, C, D]``; ``memory``: keys and values ``[K, P, 2 D]`` of P earlier positions
        (:meth:`keys`), attended before ``x``'s own; ``allowed`` ``[K, C, P + C]`` and ``dist``
        ``[C, P + C]`` (distances, for the relative biases) over them -> (output ``[K, C, D]``,
        the keys and values of ``x`` ``[K, C, 2 D]``)."""
        K, C, D = x.shape
        qkv = self.qkv(self.ln1(x))
        q, k, v = (self._split(y) for y in qkv.chunk(3, -1))
        scores = q @ k.transpose(-1, -2)
        if memory is not None:  # the memory's scores and values apart: no copy of its keys per step
            mk, mv = (self._split(y) for y in memory.chunk(2, -1))
            scores = torch.cat((q @ mk.transpose(-1, -2), scores), -1)
        scores = scores / math.sqrt(D // self.heads) + self.rel_bias[:, dist]
        p = scores.masked_fill(~allowed.unsqueeze(1), float("-inf")).softmax(-1)
        y = p @ v if memory is None else p[..., :-C] @ mv + p[..., -C:] @ v
        x = self.gate1(x, F.relu(self.proj(y.transpose(1, 2).reshape(K, C, D))))
        return self.gate2(x, F.relu(self.ff(self.ln2(x)))), qkv[..., D:]


class GatedTransformer(nn.Module):
    """Stack of GTrXL layers applied to windows of ``context`` steps; returns the last step's output.

    ``forward(x [K, C, D], ids [K, C])``: position i attends to j <= i with ``ids[j] == ids[i]``
    (same episode; padding has id -1). The result ``[K, D]`` is the output at position C-1.
    """

    def __init__(self, width: int, layers: int, heads: int, context: int):
        super().__init__()
        self.context = context
        self.layers = nn.ModuleList(_GatedLayer(width, heads, context) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        idx = torch.arange(context)
        self.register_buffer("dist", (idx.view(-1, 1) - idx.view(1, -1)).clamp(min=0), persistent=False)
        self.register_buffer("causal", idx.view(1, -1) <= idx.view(-1, 1), persistent=False)

    def forward(self, x: Tensor, ids: Tensor) -> Tensor:
        allowed = self.causal & (ids.unsqueeze(1) == ids.unsqueeze(2))
        for layer in self.layers:
            x = layer(x, allowed, self.dist)[0]
        return self.ln(x[:, -1])


class GatedTransformerXL(nn.Module):
    """GTrXL layers with Transformer-XL memory of ``context - 1`` steps per layer.

    The memory of a row is ``(h [L, P, D], ids [P])``: each layer's inputs at the last P
    steps (no gradient) and their episode ids (-1: empty). A position attends to itself and
    to the P positions before it (memory, then the segment, causally) with the same
    episode id, so nothing is attended across an episode start. The feed-forward's width
    is ``width`` (the paper's feedforward dimension 192 at width 192).
    """

    def __init__(self, width: int, layers: int, heads: int, context: int):
        super().__init__()
        self.context, self.width, self.n_layers = context, width, layers
        self.layers = nn.ModuleList(_GatedLayer(width, heads, context, ff=width) for _ in range(layers))
        self.ln = nn.LayerNorm(width)

    def forward(self, x: Tensor, ids: Tensor, mem: Tensor, mem_ids: Tensor) -> Tensor:
        """A segment: ``x`` ``[K, T, D]`` with episode ids ``ids`` ``[K, T]`` (>= 0), after the
        memory ``mem`` ``[K, L, P, D]``, ``mem_ids`` ``[K, P]`` -> outputs ``[K, T, D]``."""
        P, T = mem.shape[2], x.shape[1]
        dist = torch.arange(P, P + T, device=x.device).view(-1, 1) - torch.arange(P + T, device=x.device)
        band = (dist >= 0) & (dist < self.context)
        allowed = band & (torch.cat((mem_ids, ids), 1).unsqueeze(1) == ids.unsqueeze(2))
        dist = dist.clamp(0, self.context - 1)
        for i, layer in enumerate(self.layers):
            x = layer(x, allowed, dist, layer.keys(mem[:, i]) if P else None)[0]
        return self.ln(x)

    def begin(self, mem: Tensor, mem_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The rollout's state of a memory: the memory, its ids and each layer's keys and
        values of it ``[K, L, P, 2 D]``, so that a step projects its own position only."""
        kv = torch.stack([layer.keys(mem[:, i]) for i, layer in enumerate(self.layers)], 1)
        return mem, mem_ids, kv

    def step(self, x: Tensor, new_id: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One step of every row: ``x`` ``[K, D]`` with episode id ``new_id`` ``[K]`` -> (output
        ``[K, D]``, the state with this step appended and the oldest dropped)."""
        mem, mem_ids, kv = state
        P = mem.shape[2]
        allowed = torch.cat((mem_ids == new_id.unsqueeze(1), torch.ones_like(mem_ids[:, :1], dtype=torch.bool)), 1)
        dist = torch.arange(P, -1, -1, device=x.device).view(1, -1)
        x = x.unsqueeze(1)
        inputs, keys = [], []
        for i, layer in enumerate(self.layers):
            inputs.append(x)
            x, k = layer(x, allowed.unsqueeze(1), dist, kv[:, i] if P else None)
            keys.append(k)
        if P:  # drop the oldest position, append this step's (not in place: a state may be stepped twice)
            state = (torch.cat((mem[:, :, 1:], torch.stack(inputs, 1)), 2),
                     torch.cat((mem_ids[:, 1:], new_id.unsqueeze(1)), 1), torch.cat((kv[:, :, 1:], torch.stack(keys, 1)), 2))
        return self.ln(x[:, 0]), state


class VisionNet(nn.Module):
    """Encoder -> memory (``arch``: one of :data:`ARCHS`) -> actor logits and critic value.

    Observations are uint8 images ``[..., image, image, 3]`` (channels last). Memory (first
    dim = the rows M): gtrxl: each layer's inputs at the last ``context - 1`` steps
    ``[M, layers, context - 1, width]`` and their episode ids ``[M, context - 1]`` (-1:
    empty); transformer: the last ``context - 1`` observations of the episode and their
    episode ids; gru: the GRU cell's state. The rollout's state (:meth:`begin`) holds the
    gtrxl memory with each layer's keys and values, or the transformer's window already
    encoded, so each step encodes one image.
    """

    has_value_head = True

    def __init__(self, arch: str = "gtrxl", width: int = 192, layers: int = 3, heads: int = 4,
                 context: int = 15, channels: tuple[int, int, int] = (32, 64, 64), image: int = 88,
                 n_actions: int = N_ACTIONS, in_channels: int = 3):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch = {arch!r} is invalid: allowed values are {', '.join(map(repr, ARCHS))}")
        if context < 1:
            raise ValueError(f"context = {context} is invalid: at least 1")
        self.arch, self.width, self.context = arch, width, context
        self.obs_shape = (image, image, in_channels)
        self.encoder = NatureCNN(width, tuple(channels), image, in_channels)
        if arch == "gtrxl":
            self.core = GatedTransformerXL(width, layers, heads, context)
        elif arch == "transformer":
            self.core = GatedTransformer(width, layers, heads, context)
        else:
            self.core = nn.GRUCell(width, width)
        self.actor = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_actions))
        self.critic = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.actor(z), self.critic(z).squeeze(-1)

    @staticmethod
    def distribution(logits: Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=logits)

    def value_parameters(self) -> list[nn.Parameter]:
        """The critic head's parameters (an optimiser may give them their own learning rate)."""
        return list(self.critic.parameters())

    # -- the memory interface of trainers.networks ----------------------------------------
    def initial_memory(self, rows: int, device: torch.device | str) -> Memory:
        if self.arch == "gru":
            return (torch.zeros(rows, self.width, device=device),)
        P = self.context - 1
        if self.arch == "gtrxl":
            return (torch.zeros(rows, self.core.n_layers, P, self.width, device=device),
                    torch.full((rows, P), -1, dtype=torch.long, device=device))
        return (torch.zeros(rows, P, *self.obs_shape, dtype=torch.uint8, device=device),
                torch.full((rows, P), -1, dtype=torch.long, device=device))

    def forward_sequence(self, memory: Memory, obs: Tensor, starts: Tensor):
        """``obs`` ``[M, T, H, W, C]``, ``starts`` ``[M, T]`` -> (distribution over ``[M, T]``, values ``[M, T]``)."""
        logits, values = self._logits_values(memory, obs, starts)
        return self.distribution(logits), values

    def _logits_values(self, memory: Memory, obs: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        M, T = starts.shape
        if self.arch == "gru":
            h = memory[0]
            emb = self.encoder(obs)
            outs = []
            for t in range(T):
                h = self.core(emb[:, t], h * (~starts[:, t]).unsqueeze(-1).to(h.dtype))
                outs.append(h)
            return self.heads(torch.stack(outs, 1))
        if self.arch == "gtrxl":
            return self.heads(self.core(self.encoder(obs), torch.cumsum(starts.long(), 1), *memory))
        prefix, prefix_ids = memory
        emb = self.encoder(torch.cat((prefix, obs), 1))  # [M, P + T, D]
        ids = torch.cat((prefix_ids, torch.cumsum(starts.long(), 1)), 1)
        C = self.context
        win = emb.unfold(1, C, 1).permute(0, 1, 3, 2)  # [M, T, C, D]
        win_ids = ids.unfold(1, C, 1)  # [M, T, C]
        z = self.core(win.reshape(M * T, C, -1), win_ids.reshape(M * T, C))
        logits, values = self.heads(z.view(M, T, -1))
        return logits, values

    def begin(self, memory: Memory) -> Memory:
        if self.arch == "gru":
            return memory
        if self.arch == "gtrxl":
            return self.core.begin(*memory)
        prefix, ids = memory
        return self.encoder(prefix), ids

    def step(self, rstate: Memory, obs: Tensor, start: Tensor | None):
        """One step: ``obs`` ``[M, H, W, C]``, ``start`` ``[M]`` (None: no row starts) -> (distribution,
        value ``[M]``, new state)."""
        logits, value, rstate = self.step_logits(rstate, obs, start)
        return self.distribution(logits), value, rstate

    def step_logits(self, rstate: Memory, obs: Tensor, start: Tensor | None) -> tuple[Tensor, Tensor, Memory]:
        z = self.encoder(obs)
        if self.arch == "gru":
            h = rstate[0] if start is None else rstate[0] * (~start).unsqueeze(-1).to(z.dtype)
            h = self.core(z, h)
            return *self.heads(h), (h,)
        ids = rstate[1]
        last = ids[:, -1] if ids.shape[1] else torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device)
        new_id = last.clamp(min=0) + (0 if start is None else start.long())
        if self.arch == "gtrxl":
            out, rstate = self.core.step(z, new_id, rstate)
            return *self.heads(out), rstate
        emb = rstate[0]
        win = torch.cat((emb, z.unsqueeze(1)), 1)
        win_ids = torch.cat((ids, new_id.unsqueeze(1)), 1)
        out = self.core(win, win_ids)
        return *self.heads(out), (win[:, 1:], win_ids[:, 1:])

    def end(self, memory: Memory, rstate: Memory, obs: Tensor, starts: Tensor) -> Memory:
        """The memory after a rollout of ``obs`` ``[M, T, ...]`` that started with ``memory``."""
        if self.arch == "gru":
            return tuple(x.detach() for x in rstate)
        P = self.context - 1
        if self.arch == "gtrxl":  # the rollout's state holds the last P steps already
            h, ids = rstate[:2]
            return h.detach(), torch.where(ids == ids[:, -1:], 0, -1) if P else ids
        prefix, prefix_ids = memory
        all_obs = torch.cat((prefix, obs), 1)
        ids = torch.cat((prefix_ids, torch.cumsum(starts.long(), 1)), 1)
        L = ids.shape[1]
        keep = ids[:, L - P:] == ids[:, -1:]
        return all_obs[:, L - P:].contiguous(), torch.where(keep, 0, -1)

