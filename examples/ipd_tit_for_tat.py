"""Reproduce the paper's Fig. 1b: AdAlign self-play on the IPD learns a tit-for-tat-like policy.

Trains ``--seeds`` agents from scratch (one after another, each for ``--iterations``
updates), measures each one's probability of cooperating after every previous round
(CC, CD, DC, DD from its own side, see ``trainers.evaluation.cooperation``), and writes:

* ``OUT/seed_K/``: each run (config, metrics, checkpoint, cooperation.csv/png);
* ``OUT/tit_for_tat.csv``: per seed and on average, P(cooperate | previous round) and
  the training time;
* ``OUT/tit_for_tat.png``: the bar chart of all seeds.

The target (issue and paper): over 5 seeds, mean P(cooperate) at least 0.9 after the other
player cooperated (CC, DC) and at most 0.2 after it defected (CD, DD).

    python examples/ipd_tit_for_tat.py --seeds 5 --out runs/ipd-tft
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from trainers import train
from trainers.evaluation.cooperation import CASES, cooperation_table, plot_cooperation
from trainers.presets import make_config


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=200, help="updates per seed (the fast preset decays the actor lr to 0 over them)")
    ap.add_argument("--batch-size", type=int, default=None, help="games per update (default: the preset's)")
    ap.add_argument("--out", default="runs/ipd-tft")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    tables, times = {}, {}
    for seed in range(args.seeds):
        overrides = dict(seed=seed, iterations=args.iterations, device=args.device, save_every=100)
        if args.batch_size:
            overrides["num_games"] = args.batch_size
        cfg = make_config("ipd", "adalign", fast=True, **overrides)  # the paper's preset, fast on a CPU
        start = time.perf_counter()
        train(cfg, out / f"seed_{seed}", progress=not args.no_progress)
        times[seed] = time.perf_counter() - start
        tables[seed] = cooperation_table(out / f"seed_{seed}" / "checkpoint.pt")
        row = "  ".join(f"{c} {tables[seed][c][0]:.2f}" for c in CASES)
        print(f"seed {seed}: {row}   ({times[seed]:.0f} s)")
    mean = {c: sum(t[c][0] for t in tables.values()) / len(tables) for c in CASES}
    with (out / "tit_for_tat.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", *CASES, "train_seconds"])
        for seed, t in tables.items():
            w.writerow([seed, *(f"{t[c][0]:.3f}" for c in CASES), f"{times[seed]:.0f}"])
        w.writerow(["mean", *(f"{mean[c]:.3f}" for c in CASES), f"{sum(times.values()) / len(times):.0f}"])
    plot_cooperation({f"seed {s}": t for s, t in tables.items()}, out / "tit_for_tat.png",
                     title="AdAlign self-play on the IPD: P(cooperate | previous round)")
    ok = min(mean["CC"], mean["DC"]) >= 0.9 and max(mean["CD"], mean["DD"]) <= 0.2
    print("mean: " + "  ".join(f"{c} {mean[c]:.2f}" for c in CASES)
          + f"   target (CC, DC >= 0.9; CD, DD <= 0.2): {'met' if ok else 'not met'}")
    print(f"wrote {out / 'tit_for_tat.csv'} and {out / 'tit_for_tat.png'}")
    return {"tables": tables, "times": times, "mean": mean, "target_met": ok}


if __name__ == "__main__":
    main()
