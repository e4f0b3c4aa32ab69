"""An agent against the game's scripted players and against itself, and the exploitation measure.

Used by the trainers' periodic evaluation (``--eval-every``) and the reproduction scripts.
"""

from __future__ import annotations

from typing import Any

import torch

from social_dilemmas.core import BatchedGame
from social_dilemmas.match import play, reset_players
from social_dilemmas.policies import Policy, make_policy, scripted_names
from social_dilemmas.vector import VectorGame

__all__ = ["exploitation", "first_move", "scripted_evaluation"]


def exploitation(defector_vs_player: float, defector_vs_defector: float, defector_vs_cooperator: float) -> float:
    """How much Always Defect takes from a player, on a scale where 0 is what it earns against
    itself (mutual defection) and 1 what it earns against Always Cooperate::

        (defector_vs_player - defector_vs_defector) / (defector_vs_cooperator - defector_vs_defector)

    All three are Always Defect's own reward per step. NaN when the two references are equal.
    (Measured from mutual defection, not from 0: in the Negotiation game Always Defect keeps
    at least half of every item whatever the other does.)
    """
    span = defector_vs_cooperator - defector_vs_defector
    return (defector_vs_player - defector_vs_defector) / span if span != 0 else float("nan")


@torch.no_grad()
def first_move(game: BatchedGame, players: list[Policy], games: int = 64, seed: int = 0,
               device: str | torch.device = "cpu") -> dict[str, float]:
    """The game's action statistics (:meth:`BatchedGame.action_metrics`) of the first actions
    of ``players`` (one per seat) in ``games`` fresh games seeded with ``seed``."""
    vec = VectorGame(game, games, device=torch.device(device))
    obs, _ = vec.reset(seed=seed)
    reset_players(players, games, seed, torch.device(device))
    actions = torch.stack([p.act(obs[:, i]) for i, p in enumerate(players)], dim=1)
    return game.action_metrics(actions)


@torch.no_grad()
def scripted_evaluation(game: BatchedGame, agent: Any, games: int = 64, seed: int = 0,
                        device: str | torch.device = "cpu") -> dict[str, float]:
    """Play a two-player agent against itself and against every scripted player of ``game``.

    ``agent(seat)`` returns a fresh :class:`Policy` of the agent for that seat (seat 0
    plays the scripted players). Each match is ``games`` games of ``game.max_steps``
    steps, seeded with ``seed``, so the numbers of two evaluations differ only by the agent.

    Returns rewards per step, keyed for ``metrics.csv``: ``eval/self`` (the mean of the two
    seats in self-play), the game's action statistics of the first move in self-play
    (``eval/first_<name>``: on the IPD ``eval/first_cooperation``, the rate of cooperation in
    round 0, which tit-for-tat needs at 1), ``eval/vs_<name>`` (the agent's reward against a scripted player)
    and ``eval/<name>_gets`` (that player's reward against the agent), and, where the game
    has Always Defect and Always Cooperate, ``eval/exploitation`` (:func:`exploitation`).
    """
    if game.n_players != 2:
        raise ValueError(f"scripted_evaluation needs a two-player game; {game.name} has {game.n_players} players")
    names = scripted_names(game)

    def match(first: Policy, second: Policy) -> list[float]:
        return play(game, [first, second], num_envs=games, episodes=1, seed=seed, device=device).mean

    both = match(agent(0), agent(1))
    out = {"eval/self": (both[0] + both[1]) / 2}
    out.update({f"eval/first_{k}": v for k, v in first_move(game, [agent(0), agent(1)], games, seed, device).items()})
    for name in names:
        mine, theirs = match(agent(0), make_policy(name, game))
        out[f"eval/vs_{name}"], out[f"eval/{name}_gets"] = mine, theirs
    if {"always_defect", "always_cooperate"} <= set(names):
        floor = match(make_policy("always_defect", game), make_policy("always_defect", game))[1]
        top = match(make_policy("always_cooperate", game), make_policy("always_defect", game))[1]
        out["eval/exploitation"] = exploitation(out["eval/always_defect_gets"], floor, top)
    return out
