"""Record videos of scripted or trained players with ``social_dilemmas.record.record``.

Each seat is played by a scripted player's name, a trained player's file (a trainer
checkpoint ``.pt`` or an SB3 ``model.zip``), or, from Python, any callable
``obs -> action`` or ``Policy``. The episodes are drawn with the game's renderer and
written to ``.gif`` or ``.mp4`` (by the suffix of ``--out``).

    python examples/record_video.py                                    # Coin Game: cooperator vs defector
    python examples/record_video.py --env ipd --players tit_for_tat always_defect --out ipd.mp4
    python examples/record_video.py --env ipd --players runs/examples/ipd-adalign-s0/checkpoint.pt tit_for_tat

From Python, any callable ``obs -> action`` is a player too; here, in the IPD, one that
defects right after it cooperated (``obs[0]`` is 1 when it cooperated last round)::

    from social_dilemmas.record import record
    record("ipd", [lambda obs: int(obs[0] > 0.5), "tit_for_tat"], episodes=1, out="alternate.gif")
"""

from __future__ import annotations

import argparse
from pathlib import Path

from social_dilemmas.record import record, summary

DEFAULT_PLAYERS = {
    "ipd": ["tit_for_tat", "always_defect"],
    "coin_game": ["always_cooperate", "always_defect"],
    "negotiation": ["always_cooperate", "always_defect"],
}


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="coin_game", choices=list(DEFAULT_PLAYERS))
    parser.add_argument("--players", nargs=2, default=None, metavar="PLAYER",
                        help="player_0 and player_1: scripted names or saved players (.pt, .zip)")
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--max-steps", type=int, default=None, help="steps per episode (default: the game's own)")
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default: the game's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help=".gif or .mp4 (default runs/examples/ENV.gif)")
    args = parser.parse_args(argv)
    players = args.players or DEFAULT_PLAYERS[args.env]
    out = args.out or Path("runs/examples") / f"{args.env}.gif"

    env_kwargs = {} if args.max_steps is None else {"max_steps": args.max_steps}
    result = record(args.env, players, args.episodes, out, seed=args.seed, fps=args.fps, env_kwargs=env_kwargs)
    print(summary(result))
    for episode, returns in enumerate(result["returns"]):
        print(f"  episode {episode}: returns " + ", ".join(
            f"{agent} {r:+.2f}" for agent, r in zip(result["agents"], returns)))


if __name__ == "__main__":
    main()
