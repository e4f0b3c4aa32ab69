"""The PPO baselines from Python: self-play PPO and PPO with shared rewards (PPO-SR).

``trainers.train(make_config(env, "ppo"), out)`` trains Stable-Baselines3's PPO with one
network playing every seat of every game; ``"ppo_shared_reward"`` gives every player the
sum of both players' rewards (the paper's PPO-SR, a fully cooperative learner). It writes
``out/config.json``, ``out/metrics.csv``, ``out/checkpoint.pt`` (to resume) and
``out/model.zip`` (the model as SB3 saves it). A ``model.zip`` is a player
like any other: here each trained model plays itself on the batched view
(``social_dilemmas.match.play``).

    python examples/baselines.py                                       # IPD, tiny budget
    python examples/baselines.py --env negotiation --iterations 200 --batch-size 1024
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import social_dilemmas
from social_dilemmas.match import play
from social_dilemmas.policies import resolve_player
from trainers import train
from trainers.presets import make_config


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="ipd", choices=("ipd", "coin_game", "negotiation"))
    parser.add_argument("--algos", nargs="+", default=["ppo", "ppo_shared_reward"], choices=("ppo", "ppo_shared_reward"))
    parser.add_argument("--iterations", type=int, default=30, help="PPO updates (one episode of every game each)")
    parser.add_argument("--batch-size", type=int, default=64, help="parallel games")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/examples"), help="parent folder of the run folders")
    args = parser.parse_args(argv)

    game = social_dilemmas.make_game(args.env)
    for algo in args.algos:
        cfg = make_config(args.env, algo, iterations=args.iterations, num_games=args.batch_size,
                          seed=args.seed, device="cpu")
        out = args.out / f"{args.env}-{algo}-s{args.seed}"
        run = train(cfg, out, progress=False)
        with (out / "metrics.csv").open(newline="") as f:
            last = list(csv.DictReader(f))[-1]
        model = out / "model.zip"
        selfplay = play(game, [resolve_player(model, game) for _ in range(2)], num_envs=256, seed=args.seed)
        coop = f", cooperation {float(last['rollout/cooperation']):.2f}" if "rollout/cooperation" in last else ""
        print(f"{algo}: {run.iteration} updates; run folder {out}")
        print(f"  last update: reward per step {float(last['rollout/reward_per_step']):+.3f}{coop}")
        print(f"  {model} in self-play: reward per step {selfplay.mean[0]:+.3f} / {selfplay.mean[1]:+.3f}")


if __name__ == "__main__":
    main()
