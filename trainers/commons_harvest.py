"""Proximal Advantage Alignment on Commons Harvest Open (SPEC sections 6-7).

Self-play: one shared network plays all 7 players of ``cfg.batch_size`` games stepped in
worker processes (:class:`social_dilemmas.commons_harvest.CommonsHarvestVec`). Each update:

1. **rollout** of one chunk of ``cfg.max_steps`` (15) steps. Episodes (1000 steps, set by
   ``cfg.env_kwargs["max_steps"]``) run on across chunks; the network's memory (the last
   ``context - 1`` observations of each player for the transformer, the hidden state for
   the GRU) is carried from chunk to chunk and cleared when a game resets;
2. **advantages**: GAE per player (lambda ``cfg.gae_lambda``), bootstrapped from the value
   of the observation after the chunk. Episodes end by *truncation* at their last step:
   there the TD error bootstraps from the value of ``info["final_obs"]`` (seen with the
   finished episode's context) and the GAE recursion is cut, so nothing crosses an
   episode end; a true termination (none in this substrate) would not bootstrap. The
   advantages are normalised over the batch, and the other players' advantages are the
   sum over the 6 other players of the same game (the n-player form of Eq. 10);
3. **update**: ``losses.aligned_advantages`` + ``losses.ppo_clip_loss`` for
   ``cfg.ppo_epochs`` epochs over ``cfg.ppo_minibatches`` minibatches of player chunks,
   stopping when an epoch's mean approximate KL passes ``cfg.target_kl``; critic Huber
   loss on the lambda-returns, entropy bonus, gradient clipping, Adam (trunk and actor
   head at ``cfg.actor_lr``, critic head at ``cfg.critic_lr``).

Networks (SPEC 7): a Nature CNN encoder of the 88x88 RGB view, then either a gated
transformer (GTrXL-style: pre-LayerNorm, multi-head self-attention with a causal mask
over the last ``context`` steps of the same episode, learned relative-position biases,
GRU-type gating of both residual branches) or a GRU, then actor (8 logits) and critic
MLP heads. The transformer's output at step t depends on the observations t-context+1..t
of the current episode only: the training pass recomputes exactly what the rollout saw.
The sizes are the ``network_*`` fields of the configuration (``--network-arch gru``,
``--network-width``, ``--network-layers``, ``--network-heads``, ``--network-context``).

A checkpoint (``DIR/checkpoint.pt``) is a player: :func:`trainers.checkpoint.load_policy`
returns a :class:`CommonsHarvestPolicy`, which keeps each seat's memory between calls and
samples from the same distribution as the rollout.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from social_dilemmas.policies import Policy
from trainers import losses
from trainers.checkpoint import atomic_save
from trainers.config import TrainConfig
from trainers.runner import prepare_config, run_loop

__all__ = ["NatureCNN", "GatedTransformer", "CommonsHarvestNet", "CommonsHarvestTrainer", "train_commons_harvest",
           "CommonsHarvestPolicy", "load_commons_harvest_policy", "sample_actions", "network_from_config",
           "DEFAULT_NETWORK"]

N_PLAYERS = 7
N_ACTIONS = 8
#: Weight of the critic's Huber loss in the joint loss of the shared network.
VALUE_COEF = 0.5
#: SPEC section 7's network (the defaults of the configuration's ``network_*`` fields).
DEFAULT_NETWORK: dict[str, Any] = dict(arch="transformer", width=192, layers=3, heads=4, context=15,
                                       channels=(32, 64, 64))
#: The network's arguments that the configuration holds: argument -> ``TrainConfig`` field.
NETWORK_FIELDS: dict[str, str] = {"arch": "network_arch", "width": "network_width", "layers": "network_layers",
                                  "heads": "network_heads", "context": "network_context"}

Memory = tuple[Tensor, ...]


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


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
    def __init__(self, width: int, heads: int, context: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} must be divisible by heads {heads}")
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.rel_bias = nn.Parameter(torch.zeros(heads, context))  # by distance 0..context-1
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.ReLU(), nn.Linear(4 * width, width))
        self.gate1, self.gate2 = _Gate(width), _Gate(width)

    def forward(self, x: Tensor, allowed: Tensor, dist: Tensor) -> Tensor:
        K, C, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(K, C, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(D // self.heads) + self.rel_bias[:, dist]
        scores = scores.masked_fill(~allowed.unsqueeze(1), float("-inf"))
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(K, C, D)
        x = self.gate1(x, F.relu(self.proj(y)))
        return self.gate2(x, F.relu(self.ff(self.ln2(x))))


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
            x = layer(x, allowed, self.dist)
        return self.ln(x[:, -1])


class CommonsHarvestNet(nn.Module):
    """Encoder -> memory (``arch`` "transformer" or "gru") -> actor logits and critic value.

    Memory interface (first dim = player sequences M):

    * ``initial_memory(M, device)``: the memory of fresh players;
    * ``forward_chunk(memory, obs [M, T, H, W, C], starts [M, T]) -> (logits [M, T, 8], values [M, T])``,
      ``starts[m, t]`` True where ``obs[m, t]`` is the first observation of an episode;
    * ``rollout_state(memory)`` then ``step(rstate, obs [M, H, W, C], start [M]) -> (logits, value, rstate)``
      gives the same outputs one step at a time;
    * ``next_memory(memory, rstate, obs, starts)``: the memory after the chunk.
    """

    def __init__(self, arch: str = "transformer", width: int = 192, layers: int = 3, heads: int = 4,
                 context: int = 15, channels: tuple[int, int, int] = (32, 64, 64), image: int = 88,
                 n_actions: int = N_ACTIONS):
        super().__init__()
        if arch not in ("transformer", "gru"):
            raise ValueError(f"arch = {arch!r} is invalid: allowed values are 'transformer', 'gru'")
        if context < 1:
            raise ValueError(f"context = {context} is invalid: at least 1")
        self.arch, self.width, self.context = arch, width, context
        self.encoder = NatureCNN(width, tuple(channels), image)
        if arch == "transformer":
            self.core = GatedTransformer(width, layers, heads, context)
        else:
            self.core = nn.GRUCell(width, width)
        self.actor = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, n_actions))
        self.critic = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))

    def heads(self, z: Tensor) -> tuple[Tensor, Tensor]:
        return self.actor(z), self.critic(z).squeeze(-1)

    # -- memory ---------------------------------------------------------------------------
    def initial_memory(self, M: int, device: torch.device | str, obs_shape=(88, 88, 3)) -> Memory:
        if self.arch == "gru":
            return (torch.zeros(M, self.width, device=device),)
        P = self.context - 1
        return (torch.zeros(M, P, *obs_shape, dtype=torch.uint8, device=device),
                torch.full((M, P), -1, dtype=torch.long, device=device))

    def forward_chunk(self, memory: Memory, obs: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        M, T = starts.shape
        if self.arch == "gru":
            h = memory[0]
            emb = self.encoder(obs)
            outs = []
            for t in range(T):
                h = self.core(emb[:, t], h * (~starts[:, t]).unsqueeze(-1).to(h.dtype))
                outs.append(h)
            return self.heads(torch.stack(outs, 1))
        prefix, prefix_ids = memory
        emb = self.encoder(torch.cat((prefix, obs), 1))  # [M, P + T, D]
        ids = torch.cat((prefix_ids, torch.cumsum(starts.long(), 1)), 1)
        C = self.context
        win = emb.unfold(1, C, 1).permute(0, 1, 3, 2)  # [M, T, C, D]
        win_ids = ids.unfold(1, C, 1)  # [M, T, C]
        z = self.core(win.reshape(M * T, C, -1), win_ids.reshape(M * T, C))
        logits, values = self.heads(z.view(M, T, -1))
        return logits, values

    def rollout_state(self, memory: Memory) -> Memory:
        if self.arch == "gru":
            return memory
        prefix, ids = memory
        return self.encoder(prefix), ids

    def step(self, rstate: Memory, obs: Tensor, start: Tensor) -> tuple[Tensor, Tensor, Memory]:
        z = self.encoder(obs)
        if self.arch == "gru":
            h = self.core(z, rstate[0] * (~start).unsqueeze(-1).to(z.dtype))
            return *self.heads(h), (h,)
        emb, ids = rstate
        last = ids[:, -1] if ids.shape[1] else torch.zeros_like(start, dtype=torch.long)
        new_id = last.clamp(min=0) + start.long()
        win = torch.cat((emb, z.unsqueeze(1)), 1)
        win_ids = torch.cat((ids, new_id.unsqueeze(1)), 1)
        out = self.core(win, win_ids)
        return *self.heads(out), (win[:, 1:], win_ids[:, 1:])

    def next_memory(self, memory: Memory, rstate: Memory, obs: Tensor, starts: Tensor) -> Memory:
        if self.arch == "gru":
            return tuple(x.detach() for x in rstate)
        P = self.context - 1
        prefix, prefix_ids = memory
        all_obs = torch.cat((prefix, obs), 1)
        ids = torch.cat((prefix_ids, torch.cumsum(starts.long(), 1)), 1)
        L = ids.shape[1]
        keep = ids[:, L - P:] == ids[:, -1:]
        return all_obs[:, L - P:].contiguous(), torch.where(keep, 0, -1)


# --------------------------------------------------------------------------------------
# Trainer
# --------------------------------------------------------------------------------------


def _index(memory: Memory, idx: Tensor) -> Memory:
    return tuple(x[idx] for x in memory)


def network_from_config(cfg: TrainConfig, network: dict[str, Any] | None = None) -> dict[str, Any]:
    """The arguments of :class:`CommonsHarvestNet`: :data:`DEFAULT_NETWORK`, then the
    configuration's ``network_*`` fields, then ``network`` (which may also set ``channels``)."""
    out = {**DEFAULT_NETWORK, **{k: getattr(cfg, f) for k, f in NETWORK_FIELDS.items()}, **(network or {})}
    out["channels"] = list(out["channels"])
    return out


def sample_actions(logits: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Actions ``[M]`` drawn from the categorical distributions of ``logits [M, 8]`` with
    ``generator``, and their log-probabilities (the rollout's and the player's sampling)."""
    logp_all = torch.log_softmax(logits, -1)
    action = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(-1)
    return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)


class CommonsHarvestTrainer:
    """One run of Proximal AdAlign self-play on Commons Harvest Open (run interface of
    :func:`trainers.runner.run_loop`).

    The network is built from the configuration's ``network_*`` fields; ``network``
    overrides them (and sets ``channels``). ``self.cfg`` is ``cfg`` with the ``network_*``
    fields of the network actually built, so the saved configuration describes it.
    """

    def __init__(self, cfg: TrainConfig, out: str | Path | None = None, network: dict[str, Any] | None = None):
        from social_dilemmas.commons_harvest import CommonsHarvestVec
        from trainers.adalign import resolve_device

        self.cfg = cfg.validate()
        if cfg.env != "commons_harvest_open":
            raise ValueError(f"env = {cfg.env!r} is invalid for this trainer: it trains commons_harvest_open")
        self.device = resolve_device(cfg.device)
        self.out = Path(out) if out is not None else None
        self.network = network_from_config(cfg, network)
        self.cfg = dataclasses.replace(cfg, **{f: self.network[k] for k, f in NETWORK_FIELDS.items()}).validate()
        torch.manual_seed(cfg.seed)
        self.vec = CommonsHarvestVec(cfg.batch_size, **cfg.env_kwargs)
        obs_shape = tuple(self.vec.obs_format.shape)
        if obs_shape[-1] != 3 or obs_shape[0] != obs_shape[1]:
            raise ValueError(f"the network needs square channels-last RGB observations, got {obs_shape}")
        self.obs_shape = obs_shape
        self.net = CommonsHarvestNet(**self.network, image=obs_shape[0]).to(self.device)
        critic_params = list(self.net.critic.parameters())
        ids = {id(p) for p in critic_params}
        self.opt = torch.optim.Adam([
            {"params": [p for p in self.net.parameters() if id(p) not in ids], "lr": cfg.actor_lr},
            {"params": critic_params, "lr": cfg.critic_lr},
        ])
        self.action_gen = torch.Generator(device=self.device)
        self.action_gen.manual_seed(cfg.seed + 1)
        self.iteration = 0
        self.M = cfg.batch_size * N_PLAYERS
        self._start_games(cfg.seed)

    def _start_games(self, seed: int) -> None:
        obs, _ = self.vec.reset(seed=seed)
        self.obs = obs.to(self.device).flatten(0, 1)  # [M, H, W, C]
        self.start = torch.ones(self.M, dtype=torch.bool, device=self.device)
        self.memory = self.net.initial_memory(self.M, self.device, self.obs_shape)
        self.episode_return = torch.zeros(self.M, device=self.device)
        self.finished_returns: list[float] = []

    def close(self) -> None:
        self.vec.close()

    # -- 1. rollout -----------------------------------------------------------------------
    def _sample(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        return sample_actions(logits, self.action_gen)

    @torch.no_grad()
    def rollout(self) -> dict[str, Tensor]:
        T, M, dev = self.cfg.max_steps, self.M, self.device
        B = self.cfg.batch_size
        net = self.net.eval()
        memory = self.memory
        obs_buf = torch.empty((M, T, *self.obs_shape), dtype=torch.uint8, device=dev)
        zeros = lambda dtype=torch.float32: torch.zeros((M, T), dtype=dtype, device=dev)  # noqa: E731
        act, logp, val, rew, next_val = zeros(torch.long), zeros(), zeros(), zeros(), zeros()
        starts, term, trunc = zeros(torch.bool), zeros(torch.bool), zeros(torch.bool)
        rstate = net.rollout_state(memory)
        self.finished_returns = []
        for t in range(T):
            obs_buf[:, t], starts[:, t] = self.obs, self.start
            logits, value, new_state = net.step(rstate, self.obs, self.start)
            action, lp = self._sample(logits)
            obs, rewards, terminated, truncated, info = self.vec.step(action.view(B, N_PLAYERS).cpu())
            act[:, t], logp[:, t], val[:, t] = action, lp, value
            rew[:, t] = rewards.to(dev).flatten()
            te = terminated.to(dev).repeat_interleave(N_PLAYERS)
            tr = truncated.to(dev).repeat_interleave(N_PLAYERS) & ~te
            term[:, t], trunc[:, t] = te, tr
            self.episode_return += rew[:, t]
            done = te | tr
            if bool(tr.any()):  # bootstrap from the final observation, seen with the finished episode's context
                final = info["final_obs"].to(dev).flatten(0, 1)
                _, v_final, _ = net.step(new_state, final, torch.zeros_like(self.start))
                next_val[:, t] = torch.where(tr, v_final, 0.0)
            if bool(done.any()):
                self.finished_returns += self.episode_return[done].view(-1, N_PLAYERS).mean(1).tolist()
                self.episode_return[done] = 0.0
            rstate = new_state
            self.obs, self.start = obs.to(dev).flatten(0, 1), done
        _, v_last, _ = net.step(rstate, self.obs, self.start)
        following = torch.cat((val[:, 1:], v_last.unsqueeze(1)), 1)
        ended = term | trunc
        next_val = torch.where(ended, next_val, following)
        self.memory = net.next_memory(memory, rstate, obs_buf, starts)
        return dict(memory=memory, obs=obs_buf, starts=starts, actions=act, log_probs=logp, values=val,
                    rewards=rew, next_values=next_val, terminated=term, truncated=trunc)

    # -- 2. advantages --------------------------------------------------------------------
    def advantages(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """(own advantages ``[M, T]`` (normalised if configured), the other 6 players' sum, returns)."""
        cfg = self.cfg
        adv, returns = losses.gae(batch["rewards"], batch["values"], batch["next_values"], batch["terminated"],
                                  cfg.gamma, cfg.gae_lambda, truncated=batch["truncated"])
        if cfg.normalize_advantages:
            adv = losses.normalize_advantages(adv)
        T = adv.shape[1]
        per_game = adv.view(-1, N_PLAYERS, T)
        others = (per_game.sum(1, keepdim=True) - per_game).reshape(-1, T)
        return adv, others, returns

    # -- 3. update ------------------------------------------------------------------------
    def update(self, batch: dict[str, Tensor]) -> dict[str, float]:
        cfg = self.cfg
        adv, others, returns = self.advantages(batch)
        beta = cfg.beta if self.iteration >= cfg.alignment_warmup else 0.0  # no alignment term during the warm-up
        aligned = losses.aligned_advantages(adv, others, beta=beta, mode=cfg.aggregation, gamma=cfg.gamma,
                                            masks=cfg.sign_masks or None)
        self.net.train()
        M = self.M
        size = max(1, M // cfg.ppo_minibatches)
        clip = cfg.grad_clip if cfg.grad_clip > 0 else math.inf
        stats: dict[str, list[float]] = {}
        epochs = 0
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(M, generator=self.action_gen, device=self.device)
            kls = []
            for s in range(0, M, size):
                idx = order[s:s + size]
                logits, values = self.net.forward_chunk(_index(batch["memory"], idx), batch["obs"][idx],
                                                        batch["starts"][idx])
                logp_all = torch.log_softmax(logits, -1)
                logp = logp_all.gather(-1, batch["actions"][idx].unsqueeze(-1)).squeeze(-1)
                entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
                pg, info = losses.ppo_clip_loss(logp, batch["log_probs"][idx], aligned[idx], cfg.clip_eps)
                vloss = losses.critic_loss(values, returns[idx])
                total = pg - cfg.entropy_coef * entropy + VALUE_COEF * vloss
                if not bool(torch.isfinite(total)):
                    from trainers.adalign import TrainingDiverged

                    raise TrainingDiverged(f"loss is {total.item()} at update {self.iteration + 1}; stopping")
                self.opt.zero_grad(set_to_none=True)
                total.backward()
                norm = float(torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip))
                self.opt.step()
                for k, v in {**info, "loss": pg, "entropy": entropy, "critic_loss": vloss, "grad_norm": norm}.items():
                    stats.setdefault(k, []).append(float(v.detach()) if isinstance(v, Tensor) else float(v))
                kls.append(float(info["approx_kl"]))
            epochs += 1
            if cfg.target_kl > 0 and sum(kls) / len(kls) > cfg.target_kl:
                break
        out = {f"train/{k}": sum(v) / len(v) for k, v in stats.items()}
        out["train/epochs"] = float(epochs)
        out["train/advantage_std"] = float(adv.std())
        out["train/aligned_advantage_std"] = float(aligned.std())
        return out

    # -- 4. run interface -----------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        start = time.perf_counter()
        batch = self.rollout()
        rollout_s = time.perf_counter() - start
        r = batch["rewards"]
        metrics = {"rollout/reward_per_step": float(r.mean()),
                   "rollout/apples_per_episode": (sum(self.finished_returns) / len(self.finished_returns)
                                                  if self.finished_returns else float("nan")),
                   "rollout/value_mean": float(batch["values"].mean())}
        metrics.update(self.update(batch))
        self.iteration += 1
        elapsed = time.perf_counter() - start
        steps = self.cfg.batch_size * self.cfg.max_steps
        metrics["time/env_steps_per_s"] = steps / elapsed
        metrics["time/rollout_env_steps_per_s"] = steps / rollout_s
        metrics["time/rollout_s"] = rollout_s
        metrics["time/update_s"] = elapsed - rollout_s
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"format": 1, "trainer": "commons_harvest", "config": self.cfg.to_json(), "network": self.network,
                "obs_shape": list(self.obs_shape), "iteration": self.iteration, "model": self.net.state_dict(),
                "optimizer": self.opt.state_dict(),
                "action_gen": self.action_gen.get_state(), "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restores the weights, optimiser and counters. The worker games cannot be saved:
        the run goes on with new episodes (reset with seed ``cfg.seed + iteration``)."""
        self.iteration = ckpt["iteration"]
        self.net.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.action_gen.set_state(ckpt["action_gen"])
        torch.set_rng_state(ckpt["torch_rng"])
        self._start_games(self.cfg.seed + self.iteration)

    def save(self) -> None:
        if self.out is not None:
            atomic_save(self.state_dict(), self.out / "checkpoint.pt")


def train_commons_harvest(cfg: TrainConfig | None = None, out: str | Path = "runs/commons_harvest",
                          resume: bool = False, progress: bool = True, iterations: int | None = None,
                          network: dict[str, Any] | None = None) -> CommonsHarvestTrainer:
    """Train (or, with ``resume=True``, continue the run in ``out``) and return the trainer.

    Writes ``out/config.json``, ``out/network.json`` (the network's arguments),
    ``out/metrics.csv``, TensorBoard logs and ``out/checkpoint.pt`` (model, optimiser,
    iteration, network arguments). ``network`` overrides the configuration's ``network_*``
    fields (see :class:`CommonsHarvestTrainer`). Resuming restores the weights, optimiser
    and iteration count but starts *new episodes*: the Melting Pot games live in worker
    processes and cannot be saved.
    """
    out = Path(out)
    cfg = prepare_config(cfg, out, resume, iterations)
    ckpt = None
    if resume:
        if (out / "network.json").exists():
            network = json.loads((out / "network.json").read_text())
        if (out / "checkpoint.pt").exists():
            ckpt = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)
            network = ckpt.get("network", network)
    trainer = CommonsHarvestTrainer(cfg, out, network)
    (out / "config.json").write_text(trainer.cfg.to_json())  # with the network_* fields of the network built
    (out / "network.json").write_text(json.dumps(trainer.network, indent=2))
    try:
        if ckpt is not None:
            trainer.load_state_dict(ckpt)
        run_loop(trainer, trainer.cfg, out, resume, progress, desc=f"{cfg.algo} {cfg.env}",
                 postfix=("rollout/reward_per_step", "rollout/apples_per_episode", "train/critic_loss"))
    finally:
        trainer.close()
    return trainer


# --------------------------------------------------------------------------------------
# A trained network as a player
# --------------------------------------------------------------------------------------


class CommonsHarvestPolicy(Policy):
    """A :class:`CommonsHarvestNet` playing a batch of seats of Commons Harvest Open.

    Observations are the views' uint8 images ``[B, H, W, 3]`` (``[B, 3, H, W]`` with
    ``channels_first=True``), of the size the network was trained on. The policy keeps
    each seat's memory between :meth:`act` calls exactly as the trainer's rollout does:
    the last ``context - 1`` observations of the episode (transformer) or the hidden state
    (GRU). :meth:`reset` starts fresh games and :meth:`reset_envs` starts a new episode for
    the seats of the mask, so their next observation is the first of an episode.

    Actions (int64 ``[B]``) are drawn from the rollout's distribution with the generator
    given to :meth:`reset` (a generator seeded 0 when none is given); ``greedy=True`` takes
    the most likely action.
    """

    def __init__(self, net: CommonsHarvestNet, name: str = "agent", greedy: bool = False,
                 obs_shape: tuple[int, int, int] = (88, 88, 3), channels_first: bool = False):
        self.net = net.eval()
        self.name = name
        self.greedy = greedy
        self.obs_shape = tuple(obs_shape)
        self.channels_first = channels_first
        self.rstate: Memory | None = None
        self.start: Tensor | None = None
        self.generator: torch.Generator | None = None

    def reset(self, num_envs: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> None:
        super().reset(num_envs, device, generator)
        self.net.to(self.device)
        with torch.no_grad():
            self.rstate = self.net.rollout_state(self.net.initial_memory(num_envs, self.device, self.obs_shape))
        self.start = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0)
        self.generator = generator

    def reset_envs(self, mask: torch.Tensor) -> None:
        if self.start is not None:
            self.start = self.start | mask.to(self.start.device)  # not in place: may hold an inference tensor

    @torch.no_grad()
    def logits(self, obs: Tensor) -> Tensor:
        """The action logits ``[B, 8]`` of the seats for ``obs``; advances their memory by one step."""
        if obs.dim() != 4 or tuple(obs.shape[1:]) != self.expected_shape:
            raise ValueError(f"{self.name} takes observations [B, {', '.join(map(str, self.expected_shape))}] "
                             f"(the view it was trained on), got {list(obs.shape)}")
        if self.rstate is None or self.start is None or self.start.shape[0] != obs.shape[0]:
            self.reset(obs.shape[0], obs.device, self.generator if self.rstate is not None else None)
        x = obs.to(self.device)
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        logits, _, self.rstate = self.net.step(self.rstate, x, self.start)
        self.start = torch.zeros_like(self.start)
        return logits

    @property
    def expected_shape(self) -> tuple[int, int, int]:
        h, w, c = self.obs_shape
        return (c, h, w) if self.channels_first else (h, w, c)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        logits = self.logits(obs)
        if self.greedy:
            action = logits.argmax(-1)
        else:
            gen = self.generator
            action, _ = sample_actions(logits if gen is None else logits.to(gen.device), gen)
        return action.to(obs.device)


def load_commons_harvest_policy(ckpt: dict[str, Any], game: Any = None, device: torch.device | str = "cpu",
                                greedy: bool = False, name: str = "agent") -> CommonsHarvestPolicy:
    """The network of a Commons Harvest checkpoint (a :meth:`CommonsHarvestTrainer.state_dict`)
    as a :class:`CommonsHarvestPolicy`. ``game`` (a
    :class:`~social_dilemmas.commons_harvest.CommonsHarvestSpec`, optional) is the view the
    policy will play: its observations must be the trained size in RGB, channels last or
    first. Use :func:`trainers.checkpoint.load_policy` to load from a file."""
    cfg = TrainConfig.from_json(ckpt["config"])
    network = network_from_config(cfg, ckpt.get("network"))
    if "obs_shape" in ckpt:
        obs_shape = tuple(ckpt["obs_shape"])
    else:  # checkpoints written before the shape was saved: the trainer's view of env_kwargs
        from social_dilemmas.commons_harvest import ObsFormat

        kw = cfg.env_kwargs
        obs_shape = ObsFormat(kw.get("resize"), kw.get("grayscale", False), kw.get("channels_first", False)).shape
    channels_first = False
    if game is not None:
        shape = tuple(game.obs_shape)
        h, w, c = obs_shape
        if shape == (c, h, w) and shape != obs_shape:
            channels_first = True
        elif shape != obs_shape:
            raise ValueError(
                f"the agent was trained on Commons Harvest observations of shape {obs_shape} (channels last), "
                f"the view gives {shape}: make the view with resize={h}, grayscale=False")
    net = CommonsHarvestNet(**network, image=obs_shape[0])
    net.load_state_dict(ckpt["model"])
    return CommonsHarvestPolicy(net.to(device), name=f"{cfg.algo}:{name}", greedy=greedy, obs_shape=obs_shape,
                                channels_first=channels_first)
