"""`make demo`: a few minutes' tour of the project on a 2-core CPU.

1. trains Advantage Alignment (self-play) and PPO briefly on the Iterated Prisoner's Dilemma;
2. prints each agent's probability of cooperating after every previous round (the
   tit-for-tat table of the paper's Fig. 1b);
3. plays a small league of the two agents against the scripted players and writes its
   heatmap;
4. records an MP4 of a Coin Game episode;

and tells where everything was written (``runs/demo/`` by default).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# a demo should not fight itself for the two cores of a laptop
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from social_dilemmas.record import record  # noqa: E402
from trainers import train  # noqa: E402
from trainers.evaluation.cooperation import (  # noqa: E402
    ROWS,
    cooperation_table,
    ipd_report,
    plot_cooperation,
    tit_for_tat_checks,
)
from trainers.evaluation.league import format_table, league  # noqa: E402
from trainers.presets import make_config  # noqa: E402


def step(n: int, text: str) -> None:
    print(f"\n[{n}/4] {text}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/demo")
    ap.add_argument("--adalign-iterations", type=int, default=200)
    ap.add_argument("--ppo-iterations", type=int, default=40)
    args = ap.parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()

    step(1, f"training AdAlign ({args.adalign_iterations} updates) and PPO ({args.ppo_iterations} updates) on the IPD")
    cfg = make_config("ipd", "adalign", fast=True, iterations=args.adalign_iterations, seed=0, save_every=50)
    train(cfg, out / "ipd-adalign")
    ppo = make_config("ipd", "ppo", iterations=args.ppo_iterations, num_games=256, lr=3e-4, seed=0,
                      entropy_coef=0.01, save_every=20)
    train(ppo, out / "ipd-ppo")
    agents = {"adalign": out / "ipd-adalign" / "checkpoint.pt", "ppo": out / "ipd-ppo" / "model.zip"}

    step(2, "how the agent plays: P(cooperate) on its first move and after each previous round (its own side "
            "first), its reward against itself, what Always Defect gets from it; tit-for-tat targets")
    table = cooperation_table(agents["adalign"], num_games=512)
    report = ipd_report(agents["adalign"], num_games=512, table=table)
    print("round            " + "  ".join(f"{c:>5}" for c in ROWS))
    print("adalign          " + "  ".join(f"{table[c][0]:5.2f}" for c in ROWS))
    for metric, op, threshold, value, holds in tit_for_tat_checks(report):
        print(f"  {metric:<19} {value:7.3f}  (target {op} {threshold}: {'met' if holds else 'NOT MET'})")
    plot_cooperation({"adalign": table}, out / "cooperation.png")

    step(3, "a small league on the IPD (mean reward per step: row / column)")
    players = [f"adalign={agents['adalign']}", f"ppo={agents['ppo']}", "always_cooperate", "always_defect",
               "tit_for_tat", "random"]
    result = league("ipd", players, out / "league", seeds=1, episodes=256, progress=False)
    print(format_table(result))

    step(4, "recording a Coin Game episode")
    rec = record("coin_game", ["always_cooperate", "always_defect"], episodes=1, out=out / "coin_game.mp4", seed=0)

    print(f"\ndone in {time.perf_counter() - start:.0f} s. Written under {out}/:")
    for path in [out / "ipd-adalign", out / "ipd-ppo", out / "cooperation.png", out / "league" / "league.png",
                 out / "league" / "league.csv", Path(rec["path"])]:
        print(f"  {path}")
    print("next: python -m trainers train --help, python -m trainers league --help, examples/README.md")


if __name__ == "__main__":
    main()
