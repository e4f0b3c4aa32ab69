"""Reproduce the paper's Negotiation results for AdAlign: reciprocal agents (Fig. 3a's AdAlign
rows), an AdAlign-vs-AdAlign episode (Fig. 3b) and the training curves against Always
Defect, itself and Always Cooperate (Fig. 6).

Trains ``--seeds`` AdAlign agents from scratch (the CPU preset, ``--fast``, by default;
``--preset paper`` for the released run's set-up at its full size), each with
``--eval-every`` so its metrics hold the curves, then plays each final agent 256 games
against itself, Always Defect and Always Cooperate (with ``keep_best``, its ``best.pt``: the
released run's choice, paper B.3), and measures its bids on the items it values less against
each (``bid_response``: ``retaliation`` is how much higher they are against Always Defect;
0 for an agent that ignores the other). An agent reciprocates by the issue's test
(``trainers.evaluation.negotiation.RECIPROCAL``) when it earns at least 0.33 per step
against itself (mutual defection: 0.30) and Always Defect earns at most 0.425 per step
against it (0.30 against itself, 0.55 against Always Cooperate); the target is at least 8
of 10 seeds. Writes under ``OUT``:

* ``seed_K/``: each run (config, metrics with ``eval/`` columns, checkpoint);
* ``reciprocity.csv``: per seed, the four rewards, the exploitation ratio, the bids and
  retaliation, whether it meets the test, the training time;
* ``fig6_training_curves.png``: mean and range over the seeds (paper Fig. 6);
* ``fig3b_episode.png`` and ``.csv``: seed 0 against itself, one episode (paper Fig. 3b).

    python examples/negotiation_reciprocity.py --seeds 10 --out runs/negotiation
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import social_dilemmas
from trainers import train
from trainers.evaluation.negotiation import (
    bid_response,
    is_reciprocal,
    plot_episode,
    plot_training_curves,
    sample_episode,
    write_episode,
)
from trainers.evaluation.scripted import scripted_evaluation
from trainers.players import load_player
from trainers.presets import make_config

COLUMNS = ("eval/self", "eval/always_defect_gets", "eval/vs_always_defect", "eval/vs_always_cooperate",
           "eval/exploitation", "low_bid_vs_always_cooperate", "low_bid_vs_always_defect", "retaliation")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--preset", choices=("fast", "paper"), default="fast")
    ap.add_argument("--iterations", type=int, default=None, help="updates per seed (default: the preset's)")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--set", default="{}", help='other settings as JSON, e.g. \'{"beta": 5.0}\'')
    ap.add_argument("--out", default="runs/negotiation")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1: far faster beside other jobs)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    game = social_dilemmas.make_game("negotiation")
    results, times = {}, {}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        overrides = dict(seed=seed, eval_every=args.eval_every, tensorboard=False, **json.loads(args.set))
        if args.iterations:
            overrides["iterations"] = args.iterations
        cfg = make_config("negotiation", "adalign", fast=args.preset == "fast", **overrides)
        start = time.perf_counter()
        train(cfg, out / f"seed_{seed}", progress=not args.no_progress)
        times[seed] = time.perf_counter() - start
        # with keep_best the released run's choice (paper B.3): the best training-return agent
        path = out / f"seed_{seed}" / ("best.pt" if cfg.run.keep_best else "checkpoint.pt")
        results[seed] = scripted_evaluation(game, lambda _seat, p=path: load_player(p, game), games=256, seed=0)
        results[seed].update(bid_response(lambda p=path: load_player(p, game)))
        r = results[seed]
        print(f"seed {seed}: self {r['eval/self']:.3f}  Always Defect gets {r['eval/always_defect_gets']:.3f}  "
              f"vs AD {r['eval/vs_always_defect']:.3f}  vs AC {r['eval/vs_always_cooperate']:.3f}  "
              f"exploitation {r['eval/exploitation']:.2f}  retaliation {r['retaliation']:+.2f}  "
              f"{'reciprocal' if is_reciprocal(r) else 'NOT reciprocal'} ({times[seed]:.0f} s)", flush=True)
    held = {s: is_reciprocal(r) for s, r in results.items()}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "reciprocity.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", *(c.split("/")[-1] for c in COLUMNS), "reciprocal", "train_seconds"])
        for s, r in results.items():
            w.writerow([s, *(f"{r[c]:.4f}" for c in COLUMNS), held[s], f"{times[s]:.0f}"])
    plot_training_curves([out / f"seed_{s}" for s in seeds], out / "fig6_training_curves.png",
                         title=f"AdAlign on the Negotiation ({args.preset} preset): mean and range over "
                               f"{len(results)} seeds")
    first = out / f"seed_{args.first_seed}" / ("best.pt" if cfg.run.keep_best else "checkpoint.pt")
    steps = sample_episode([load_player(first, game), load_player(first, game)], seed=0)
    write_episode(steps, out / "fig3b_episode.csv")
    plot_episode(steps, out / "fig3b_episode.png", names=("AdAlign", "AdAlign"),
                 title=f"AdAlign vs AdAlign (seed {args.first_seed}), the first 16 steps of an episode")
    met = sum(held.values())
    print(f"{met} of {len(held)} seeds reciprocate (target: at least 80%): "
          f"{'met' if met >= 0.8 * len(held) else 'not met'}")
    print(f"wrote {out / 'reciprocity.csv'}, {out / 'fig6_training_curves.png'}, {out / 'fig3b_episode.png'}")
    return {"results": results, "reciprocal": held, "times": times}


if __name__ == "__main__":
    main()
