"""`make demo`: the scripted players of every game against each other.

Prints, for the IPD, the Coin Game and the Negotiation Game, the mean reward per step of
the row player against the column player (and the column player's in brackets), from
games played on the batched view.
"""

from __future__ import annotations

import time

import social_dilemmas
from social_dilemmas.match import play


def table(game_name: str, num_envs: int = 512) -> str:
    game = social_dilemmas.make_game(game_name)
    names = social_dilemmas.scripted_names(game)
    width = max(len(n) for n in names) + 2
    lines = [f"{game.title} ({game_name}, {game.max_steps} steps, {num_envs} games per pair)",
             " " * width + "".join(f"{n:>18}" for n in names)]
    for row in names:
        cells = []
        for col in names:
            players = [social_dilemmas.make_policy(row, game), social_dilemmas.make_policy(col, game)]
            res = play(game, players, num_envs=num_envs, seed=0)
            cells.append(f"{res.mean[0]:>8.3f} ({res.mean[1]:>6.3f})")
        lines.append(f"{row:<{width}}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def main() -> None:
    start = time.perf_counter()
    print("Mean reward per step: row player (column player)\n")
    for name in social_dilemmas.GAMES:
        print(table(name))
        print()
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
