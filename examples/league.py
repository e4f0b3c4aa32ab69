"""A cross-play league: every player against every player, as a table, a CSV and a heatmap.

The players are the game's scripted players plus any saved players given on the command
line (trainer checkpoints ``.pt``, SB3 models ``.zip``, quoted globs of several seeds, or
``NAME=PATH`` to choose the display name). ``trainers.evaluation.league.league`` plays
every ordered pair on the batched view and writes ``OUT/league.csv``, ``OUT/league.png``
and ``OUT/league.json``.

    python examples/league.py                                          # IPD scripted players
    python examples/train_adalign.py --env ipd && \\
        python examples/league.py runs/examples/ipd-adalign-s0/checkpoint.pt
    python examples/league.py --env coin_game "adalign=runs/coin-adalign-s*/checkpoint.pt"
"""

from __future__ import annotations

import argparse
from pathlib import Path

import social_dilemmas
from trainers.evaluation.league import format_table, league


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("players", nargs="*", help="saved players (.pt, .zip, quoted globs, NAME=PATH)")
    parser.add_argument("--env", default="ipd", choices=("ipd", "coin_game", "negotiation"))
    parser.add_argument("--seeds", type=int, default=2, help="instances per player (seeds of a scripted player)")
    parser.add_argument("--episodes", type=int, default=32, help="games per pair of instances")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="output folder (default runs/examples/league-ENV)")
    args = parser.parse_args(argv)
    out = args.out or Path("runs/examples") / f"league-{args.env}"

    players = social_dilemmas.scripted_names(args.env) + args.players
    result = league(args.env, players, out, seeds=args.seeds, episodes=args.episodes, seed=args.seed, progress=False)
    print(format_table(result))
    # result.row_reward[i, j]: player i's reward per step against player j
    best = result.names[int(result.row_reward.mean(axis=1).argmax())]
    print(f"highest mean reward per step over all opponents: {best}")
    print(f"wrote {out / 'league.csv'}, {out / 'league.png'} and {out / 'league.json'}")


if __name__ == "__main__":
    main()
