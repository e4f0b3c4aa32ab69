"""Advantage Alignment and Proximal Advantage Alignment from Python, on every game.

A run is configured by ``trainers.presets.make_config(game, algo, **overrides)`` (the
paper's hyperparameters for the game, with your changes, each given by its name alone)
and trained by ``trainers.train(cfg, out)``, the one entry point of every algorithm,
which writes ``out/config.json``, ``out/metrics.csv`` and ``out/checkpoint.pt``. The
defaults here are a tiny budget that shows the API; the paper's runs use the preset's
number of games and about 500+ updates.

    python examples/train_adalign.py                                   # adalign, every game
    python examples/train_adalign.py --env ipd --algo proximal_adalign --iterations 200
    python examples/train_adalign.py --env coin_game --out runs/examples --seed 1

A checkpoint is a player everywhere a player is accepted (``examples/league.py``,
``examples/record_video.py``, ``gymnasium.make(..., opponent="runs/.../checkpoint.pt")``);
``train(out=run_folder, resume=True, iterations=N)`` continues a run where it stopped.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from trainers import train
from trainers.presets import make_config

GAMES = ("ipd", "coin_game", "negotiation")


def last_metrics(run: Path) -> dict[str, str]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))[-1]


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=list(GAMES), choices=GAMES, help="games (default: all)")
    parser.add_argument("--algo", default="adalign", choices=("adalign", "proximal_adalign"))
    parser.add_argument("--iterations", type=int, default=20, help="updates (one batch of whole episodes each)")
    parser.add_argument("--batch-size", type=int, default=128, help="parallel games per update (presets: 512-16384)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--out", type=Path, default=Path("runs/examples"), help="parent folder of the run folders")
    args = parser.parse_args(argv)

    for env in args.env:
        cfg = make_config(env, args.algo, iterations=args.iterations, num_games=args.batch_size,
                          seed=args.seed, device=args.device)
        run = args.out / f"{env}-{args.algo}-s{args.seed}"
        trained = train(cfg, run, progress=False)
        row = last_metrics(run)
        print(f"{env}: {trained.iteration} updates of {args.algo}; run folder {run}")
        print(f"  last metrics row (iteration {row.pop('iteration')}):")
        for key, value in row.items():
            if not key.startswith("time/"):
                print(f"    {key:<28} {value}")
        print(f"  checkpoint: {run / 'checkpoint.pt'}")


if __name__ == "__main__":
    main()
