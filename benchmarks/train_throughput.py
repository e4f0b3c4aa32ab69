"""Training throughput of the AdAlign trainer: env-steps per second, rollout and update included.

For each game, the preset's batch (or ``--batch-size``) is trained for a few updates on
each available device (CPU, and CUDA when present); an env-step is one joint move of one
game. The updates measured come after the agent replay holds its first snapshot, so a
preset that plays past snapshots (the IPD's and the Coin Game's: every game against its
own) is timed doing so. Prints a table with the time split between rollout and update.

    python benchmarks/train_throughput.py [--updates 5] [--algo adalign] [--envs ipd coin_game]
"""

from __future__ import annotations

import argparse
import time

import torch

from trainers import algorithms
from trainers.presets import make_config


def measure(env: str, device: str, updates: int, algo: str, batch_size: int | None) -> dict[str, float]:
    overrides = {"device": device, "tensorboard": False}
    if batch_size:
        overrides["num_games"] = batch_size
    config = make_config(env, algo, **overrides)
    trainer = algorithms.get(algo)(config)  # a run without a folder: nothing is written
    try:
        # warm-up (allocations, CUDA kernels), until agent replay has a snapshot to play
        warmup = config.algorithm.snapshot_every if config.algorithm.self_play_prob < 1 else 1
        for _ in range(warmup):
            trainer.train_step()
        if device == "cuda":
            torch.cuda.synchronize()
        rollout = update = 0.0
        start = time.perf_counter()
        for _ in range(updates):
            step_start = time.perf_counter()
            m = trainer.train_step()
            step = time.perf_counter() - step_start
            rollout += m["time/rollout_s"]
            update += step - m["time/rollout_s"]  # as the run loop's time/update_s
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    finally:
        trainer.close()
    steps = trainer.steps_per_update * updates
    return {"batch": config.run.num_games, "steps_per_s": steps / elapsed, "s_per_update": elapsed / updates,
            "rollout_share": rollout / (rollout + update)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--updates", type=int, default=5)
    ap.add_argument("--algo", default="adalign", choices=["adalign", "proximal_adalign"])
    ap.add_argument("--batch-size", type=int, default=None, help="games per update (default: each preset's)")
    ap.add_argument("--envs", nargs="+", default=["ipd", "coin_game", "negotiation"],
                    choices=["ipd", "coin_game", "negotiation"])
    args = ap.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", CUDA: {torch.cuda.get_device_name()}" if "cuda" in devices else ", no CUDA"))
    print(f"{'game':<12}{'device':<8}{'batch':>8}{'env-steps/s':>14}{'s/update':>10}{'rollout':>9}")
    for env in args.envs:
        for device in devices:
            r = measure(env, device, args.updates, args.algo, args.batch_size)
            print(f"{env:<12}{device:<8}{r['batch']:>8}{r['steps_per_s']:>14,.0f}{r['s_per_update']:>10.2f}"
                  f"{r['rollout_share']:>8.0%}")


if __name__ == "__main__":
    main()
