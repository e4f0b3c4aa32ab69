"""Play policies against each other on the batched view and measure their rewards."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from social_dilemmas.core import BatchedGame
from social_dilemmas.policies import Policy
from social_dilemmas.vector import VectorGame

__all__ = ["MatchResult", "play", "reset_players"]


@dataclass
class MatchResult:
    """Mean reward per step of each seat, and its standard deviation over games.

    ``per_game``: float ``[num_envs * episodes, n_players]``, each game's mean reward per step.
    """

    mean: list[float]
    std: list[float]
    per_game: torch.Tensor


def reset_players(players: list[Policy], num_envs: int, seed: int, device: torch.device) -> None:
    """Start ``players`` (one per seat) on ``num_envs`` fresh games, seat ``i`` drawing its
    actions from a generator seeded ``seed * 1000 + i + 1`` (so every match of the project
    with the same seed gives a player the same numbers)."""
    for i, p in enumerate(players):
        p.reset(num_envs, device, torch.Generator(device=device).manual_seed(seed * 1000 + i + 1))


@torch.no_grad()
def play(
    game: BatchedGame,
    players: list[Policy],
    num_envs: int = 256,
    episodes: int = 1,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> MatchResult:
    """Seat ``players[i]`` as ``player_i`` in ``num_envs`` games for ``episodes`` rounds of episodes.

    Every player acts on its own seat's observations; recurrent players are reset at the
    start of every episode. Randomness comes from ``seed`` only.
    """
    if len(players) != game.n_players:
        raise ValueError(f"players must hold one policy per seat ({game.n_players} for {game.name}), got {len(players)}")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes!r}")
    device = torch.device(device)
    vec = VectorGame(game, num_envs, device=device)
    obs, _ = vec.reset(seed=seed)
    reset_players(players, num_envs, seed, device)
    totals = []
    for _ in range(episodes):
        episode = torch.zeros(num_envs, game.n_players, device=device)
        for _ in range(game.max_steps):
            actions = torch.stack([p.act(obs[:, i]) for i, p in enumerate(players)], dim=1)
            obs, rewards, _, truncated, _ = vec.step(actions.to(game.action_dtype))
            episode += rewards
        for p in players:
            p.reset_envs(truncated)
        totals.append(episode / game.max_steps)
    per_game = torch.cat(totals).cpu()
    return MatchResult(per_game.mean(0).tolist(), per_game.std(0).tolist(), per_game)
