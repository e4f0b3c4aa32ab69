"""M-FOS's configuration section and presets, shared by its two meta-games.

:mod:`trainers.algorithms.mfos` (the IPD, and the registry's class) and
:mod:`trainers.algorithms.mfos_coin` (the Coin Game) both read this one section; the
fields whose meaning depends on the game say so. Defaults: the authors' IPD run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.config import Section, need
from trainers.losses import ppo_clip_loss

__all__ = ["MFOSConfig", "PAPER_PRESETS", "FAST_PRESETS", "GAMES", "meta_ppo_epochs"]

#: The games M-FOS plays here.
GAMES = ("ipd", "coin_game")


@dataclass
class MFOSConfig(Section):
    """M-FOS: the meta-game, the naive learner and the meta-agent's PPO (defaults: the authors' IPD run)."""

    opponent: Literal["nl", "self"] = "nl"
    """The meta-game: nl (against a naive learner, main_mfos_ppo.py / main_mfos_coin_game.py) or self (two
    meta-agents, M-FOS vs M-FOS, main_mfos_self.py, with naive-learner meta-episodes annealed away; IPD only)."""
    meta_steps: int = 100
    """IPD: rounds (inner policy updates) per meta-episode (num_steps). Coin Game: inner episodes per
    meta-episode (num_steps / inner_ep_len), the naive learner updating after each."""
    inner_gamma: float = 0.96
    """IPD: discount of the infinite inner IPD whose exact value is each round's reward (gamma_inner).
    Coin Game: the naive PPO learner's discount of its Monte Carlo returns."""
    opponent_lr: float = 1.0
    """IPD: the naive learner's step size of gradient ascent on its own discounted return (lr).
    Coin Game: the naive PPO learner's Adam learning rate (0.005)."""
    opponent_epochs: int = 80
    """Coin Game: the naive PPO learner's full-batch epochs after each inner episode (K_epochs)."""
    opponent_hidden: int = 8
    """Coin Game: the naive PPO learner's latent width (n_latent_var); its two convolutions have
    max(1, opponent_hidden // 4) channels."""
    opponent_clip: float = 0.2
    """Coin Game: the naive PPO learner's clip parameter (eps_clip)."""
    opponent_entropy: float = 0.01
    """Coin Game: the naive PPO learner's entropy bonus."""
    init_std: float = 1.0
    """IPD: standard deviation of the normal the inner logits start from (std)."""
    hidden: int = 256
    """IPD: width of the meta-agent's actor and critic (one tanh layer each). Coin Game: the meta-agent's
    convolution channels and GRU width (n_latent_var, 16)."""
    lr: float = 0.002
    """Adam learning rate of the meta-agent (actor and critic), betas (0.9, 0.999) (IPD self-play: 0.0002)."""
    ppo_epochs: int = 4
    """Full-batch PPO epochs per update (K_epochs)."""
    clip_eps: float = 0.2
    """PPO clip parameter (eps_clip)."""
    gamma: float = 0.99
    """Discount of the meta-returns over a meta-episode."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus of the meta-agent's policy (IPD: --entropy; Coin Game: 0, the authors')."""
    value_coef: float = 0.5
    """Weight of the critic's MSE on the normalised returns (the meta-agent's and the Coin Game's naive learner's)."""
    nl_prob_decay: float = 0.0015
    """Self-play: the probability of a naive-learner update starts at 1 and falls by this per update (lamb_anneal)."""

    def validate(self, run: Any = None) -> MFOSConfig:
        need(self, self.opponent in ("nl", "self"), "opponent", "allowed values are nl, self")
        self.check_int_at_least(("meta_steps", "hidden", "ppo_epochs", "opponent_epochs", "opponent_hidden"), 1)
        self.check_finite(("inner_gamma",), 0.0)
        need(self, self.inner_gamma < 1, "inner_gamma", "must be in [0, 1) (the inner IPD is infinite)")
        self.check_finite(("lr", "init_std"), 0.0, strict=True)
        self.check_finite(("opponent_lr", "clip_eps", "entropy_coef", "value_coef", "nl_prob_decay",
                           "opponent_clip", "opponent_entropy"), 0.0)
        self.check_finite(("gamma",), 0.0)
        need(self, self.gamma <= 1, "gamma", "must be in [0, 1]")
        if run is not None:
            need(run, run.env in GAMES, "env", f"M-FOS is implemented for {', '.join(GAMES)}")
            if run.env == "coin_game":
                need(self, self.opponent == "nl", "opponent",
                     "on coin_game the allowed value is nl (M-FOS self-play is built for ipd only)")
                need(self, self.opponent_lr > 0, "opponent_lr",
                     "must be > 0 on coin_game (the naive PPO learner's Adam learning rate)")
        return self


#: The authors' runs. IPD: ``src/main_mfos_ppo.py --game=IPD --opponent=NL`` (and ``src/main_mfos_self.py
#: --game=IPD``), 4096 meta-episodes per update, 1024 updates. Coin Game: ``src/coin_game/main_mfos_coin_game.py``
#: with ``coin_game_envs.CoinGamePPO`` and ``coin_game_ppo_agent.PPO`` (the naive learner): 512 games, 1000
#: meta-episodes of 16 inner episodes of 15 moves (``CoinGameGPU(max_steps=inner_ep_len - 1)``) and a reset step.
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(num_games=4096, iterations=1024, opponent="nl", meta_steps=100, inner_gamma=0.96, opponent_lr=1.0,
                init_std=1.0, hidden=256, lr=0.002, ppo_epochs=4, clip_eps=0.2, gamma=0.99, entropy_coef=0.01,
                value_coef=0.5),
    "coin_game": dict(num_games=512, iterations=1000, max_steps=15, opponent="nl", meta_steps=16, inner_gamma=0.96,
                      opponent_lr=0.005, opponent_epochs=80, opponent_hidden=8, opponent_clip=0.2,
                      opponent_entropy=0.01, hidden=16, lr=0.0002, ppo_epochs=16, clip_eps=0.2, gamma=0.995,
                      entropy_coef=0.0, value_coef=0.5),
}
#: ``--fast``. IPD: the same meta-game on 256 meta-episodes per update (the authors: 4096), 300 updates (the slow
#: test). Coin Game: the same meta-game, meta-agent and naive learner on 32 games (the authors: 512) and 150
#: meta-episodes (1000); the README also measures ``--lr 0.002``, which learns about twice as fast.
FAST_PRESETS: dict[str, dict[str, Any]] = {"ipd": dict(num_games=256, iterations=300),
                                           "coin_game": dict(num_games=32, iterations=150)}


def meta_ppo_epochs(evaluate: Callable[[], tuple[Tensor, Tensor, Tensor]], optimizer: torch.optim.Optimizer,
                    old_log_probs: Tensor, returns: Tensor, cfg: MFOSConfig, check: Any = None) -> dict[str, float]:
    """The meta-agent's PPO epochs, the same on both games (the authors' ``ppo.py`` update):
    ``cfg.ppo_epochs`` full-batch steps of :func:`trainers.losses.ppo_clip_loss` with advantages
    ``returns - V`` (the values before each step, without gradient), plus ``value_coef`` times
    the value MSE minus ``entropy_coef`` times the mean entropy. ``evaluate()`` gives the
    current log-probabilities of the stored actions, the values and the entropies, shaped like
    ``returns``; ``check(what, loss)``: called on every loss. Returns the epochs' mean losses."""
    stats: dict[str, list[float]] = {}
    for _ in range(cfg.ppo_epochs):
        log_probs, values, entropy = evaluate()
        policy_loss, info = ppo_clip_loss(log_probs, old_log_probs, returns - values.detach(), cfg.clip_eps)
        value_loss = F.mse_loss(values, returns)
        ent = entropy.mean()
        loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * ent
        if check is not None:
            check("meta-agent loss", loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for k, v in {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": ent, **info}.items():
            stats.setdefault(k, []).append(float(v.detach()))
    return {f"train/{k}": sum(v) / len(v) for k, v in stats.items()}
