"""Command line of the trainers.

    python -m trainers train --env ipd --algo adalign --seed 0 --iterations 500 --out runs/ipd
    python -m trainers train --resume runs/ipd [--iterations 1000]
    python -m trainers cooperation --agent runs/ipd/checkpoint.pt --out runs/ipd/cooperation

Every field of the training configuration is an option (``train --help`` lists them with
their meaning); options not given take the preset of the chosen game (SPEC section 7).
"""

from __future__ import annotations

import argparse
import sys

from trainers.config import add_config_arguments, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainers", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an agent", description="Train an agent; options default to the game's preset.")
    p.add_argument("--out", default=None, help="run folder for config.json, metrics.csv, tb/ and checkpoint.pt "
                   "(default runs/ENV-ALGO-sSEED)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_arguments(p)

    c = sub.add_parser("cooperation", help="P(cooperate | previous round) of an IPD agent in self-play (Fig. 1b)")
    c.add_argument("--agent", required=True, help="trainer checkpoint (DIR/checkpoint.pt)")
    c.add_argument("--out", required=True, help="folder for cooperation.csv and cooperation.png")
    c.add_argument("--games", type=int, default=1024, help="self-play games to average over")
    c.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        from trainers.adalign import TrainingDiverged, train

        try:
            if args.resume:
                trainer = train(out=args.resume, resume=True, progress=not args.no_progress,
                                iterations=args.iterations)
            else:
                cfg = config_from_args(args)
                out = args.out or f"runs/{cfg.env}-{cfg.algo}-s{cfg.seed}"
                trainer = train(cfg, out, progress=not args.no_progress)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except TrainingDiverged as e:
            print(f"error: {e}", file=sys.stderr)
            return 3
        print(f"trained {trainer.iteration} updates; run folder: {trainer.out}")
        return 0
    if args.command == "cooperation":
        from trainers.cooperation import write_cooperation

        table = write_cooperation(args.agent, args.out, args.games, args.seed)
        print("previous round   P(cooperate)")
        for name, (mean, std) in table.items():
            print(f"{name:<16} {mean:.3f} +- {std:.3f}")
        print(f"wrote {args.out}/cooperation.csv and {args.out}/cooperation.png")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
