"""Command line of the trainers.

    python -m trainers train --env ipd --algo adalign --seed 0 --iterations 500 --out runs/ipd
    python -m trainers train --env ipd --fast --iterations 200 --out runs/ipd-fast   # CPU preset: tit-for-tat in ~1 min
    python -m trainers train --resume runs/ipd [--iterations 1000]
    python -m trainers cooperation --agent runs/ipd/checkpoint.pt --out runs/ipd/cooperation
    python -m trainers train --env negotiation --algo ppo_shared_reward --out runs/neg-ppo-sr   # SB3 baselines
    python -m trainers league --env ipd --players always_defect tit_for_tat "runs/ipd-s*/checkpoint.pt" --out runs/league

Every field of the training configuration is an option (``train --help`` lists them with
their meaning); options not given take the preset of the chosen game (SPEC section 7).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainers.config import add_config_arguments, config_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainers", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an agent", description="Train an agent; options default to the game's preset.")
    p.add_argument("--out", default=None, help="run folder for config.json, metrics.csv, tb/ and checkpoint.pt "
                   "(model.zip for ppo and ppo_shared_reward; default runs/ENV-ALGO-sSEED)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR exactly where it stopped")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads of torch (default: torch's own choice); 1 is much faster on a machine "
                   "busy with other jobs, where threads fight over the cores")
    p.add_argument("--fast", action="store_true",
                   help="start from the game's CPU preset (trainers.config.FAST) instead of the paper's: the IPD "
                   "(memory-one actor, beta 3, agent replay, annealed actor lr; tit-for-tat in about a minute) "
                   "the Coin Game (fast critic, 150 selfish warm-up updates, beta 1; reciprocity in 2000 updates) "
                   "and the Negotiation (fast critic, memory-one actor, beta 10, 256 games; about 4 minutes)")
    p.add_argument("--independent", action="store_true",
                   help="ppo, ppo_shared_reward: one model per seat, stepped in lockstep (default: one shared network)")
    p.add_argument("--time-limit", default="terminate", choices=("terminate", "bootstrap"),
                   help="ppo, ppo_shared_reward: the end of an episode at max_steps is a termination (default) or a "
                   "time-limit truncation that SB3 bootstraps from the last observation's value")
    add_config_arguments(p)

    c = sub.add_parser("cooperation", help="P(cooperate | previous round) of an IPD agent in self-play (Fig. 1b)")
    c.add_argument("--agent", required=True, help="trainer checkpoint (DIR/checkpoint.pt)")
    c.add_argument("--out", required=True, help="folder for cooperation.csv and cooperation.png")
    c.add_argument("--games", type=int, default=1024, help="self-play games to average over")
    c.add_argument("--seed", type=int, default=0)

    lg = sub.add_parser("league", help="cross-play every player against every player: table, league.csv, heatmap",
                        description="Play every ordered pair of players (scripted names, .pt checkpoints, .zip SB3 "
                        "models, or quoted globs of several seeds, optionally NAME=SPEC) and write DIR/league.csv, "
                        "DIR/league.png and DIR/league.json.")
    lg.add_argument("--env", required=True, help="game: ipd, coin_game, negotiation")
    lg.add_argument("--players", required=True, nargs="+", metavar="PLAYER")
    lg.add_argument("--seeds", type=int, default=3, help="instances per player: glob matches, or seeds of a scripted player")
    lg.add_argument("--episodes", type=int, default=32, help="games per pair of instances")
    lg.add_argument("--out", required=True, help="folder for league.csv, league.png and league.json")
    lg.add_argument("--seed", type=int, default=0, help="base seed of the games")
    lg.add_argument("--device", default="cpu")
    lg.add_argument("--focal", type=int, default=None,
                    help="games of more than two players: seats of the row (focal) player (default n_players - 2)")
    lg.add_argument("--greedy", action="store_true", help="trained players play their most likely action")
    lg.add_argument("--env-kwargs", type=json.loads, default=None, metavar="JSON",
                    help='arguments of the game\'s constructor, e.g. \'{"max_steps": 16}\'')
    lg.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _sb3_run(args: argparse.Namespace) -> bool:
    """Whether a ``train`` command is for the SB3 baselines (its algo, or the resumed run's)."""
    sb3_algos = ("ppo", "ppo_shared_reward")  # trainers.sb3.SB3_ALGOS, without importing SB3 here
    if args.resume:
        path = Path(args.resume) / "config.json"
        return path.exists() and json.loads(path.read_text()).get("algo") in sb3_algos
    return args.algo in sb3_algos


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            print(f"error: --threads must be an integer >= 1, got {threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(threads)
    if args.command == "train" and getattr(args, "fast", False) and (args.resume or _sb3_run(args)):
        print("error: --fast applies to new adalign and proximal_adalign runs (a resumed run keeps its config.json)",
              file=sys.stderr)
        return 2
    if args.command == "train" and _sb3_run(args):
        from trainers import sb3

        try:
            if args.resume:
                run = sb3.train(out=args.resume, resume=True, progress=not args.no_progress, iterations=args.iterations)
            else:
                cfg = config_from_args(args)
                out = args.out or f"runs/{cfg.env}-{cfg.algo}-s{cfg.seed}"
                run = sb3.train(cfg, out, progress=not args.no_progress, independent=args.independent,
                                time_limit=args.time_limit)
        except (ValueError, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"trained {run.iteration} updates; run folder: {run.out}")
        return 0
    if args.command == "league":
        from trainers.league import format_table, league

        try:
            result = league(args.env, args.players, args.out, seeds=args.seeds, episodes=args.episodes, seed=args.seed,
                            device=args.device, focal=args.focal, greedy=args.greedy, progress=not args.no_progress,
                            env_kwargs=args.env_kwargs)
        except (ValueError, FileNotFoundError, TypeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(format_table(result))
        print(f"wrote {args.out}/league.csv, {args.out}/league.png and {args.out}/league.json")
        return 0
    if args.command == "train" and (args.independent or args.time_limit != "terminate"):
        print("error: --independent and --time-limit apply to --algo ppo and ppo_shared_reward", file=sys.stderr)
        return 2
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
