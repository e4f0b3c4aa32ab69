"""Our batched Coin Game against JaxMARL's (vmapped and jitted), with the same threads on
both sides, in interleaved pairs.

Every measurement runs in a fresh process pinned to the same CPU core (``taskset``, where
available; ``--cpu -1`` leaves the processes unpinned) with one thread on each side by
default: torch ``set_num_threads``, and for XLA
``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``. One pair measures
ours (float32 observations, the default, and uint8, the trainers') and JaxMARL back to back,
the order alternating from pair to pair, so load from other processes hits both sides
alike. Each pair gives a ratio; the median and the range over the pairs are printed, with
each side's median env-steps per second.

Targets (issue 20): ours at least 4x JaxMARL at B = 4096 and 5x at B = 65536 (median).
``--other PATH`` adds a fourth side to every pair: the batched Coin Game of another
checkout (say the previous release, to see a change's effect under the same load).

    python benchmarks/compare_jaxmarl.py [--batches 4096 65536] [--pairs 7] [--seconds 2]
        [--threads 1] [--cpu 0] [--jax-python .venv-bench/bin/python] [--other PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {4096: 4.0, 65536: 5.0}
OURS = ("float32", "uint8")


def run_child(cmd: list[str], threads: int, cpu: int, tree: Path = HERE.parent) -> dict:
    """Run one measurement process (importing ``social_dilemmas`` from ``tree``); its JSON line."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]))
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    if cpu >= 0 and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"measurement {' '.join(cmd)} failed:\n{out.stderr[-2000:]}")


def pairs(batch: int, n_pairs: int, seconds: float, threads: int, cpu: int, jax_python: str,
          other: Path | None = None) -> dict[str, list[float]]:
    """Env-steps per second of each side, one entry per pair (order alternating)."""
    ours = [sys.executable, str(HERE / "_torch_coin.py"), str(batch), str(seconds)]
    sides = {f"ours {d}": ([*ours, d, str(threads)], HERE.parent) for d in OURS}
    if other is not None:
        sides["other float32"] = ([*ours, "default", str(threads)], other)
    sides["jaxmarl"] = ([jax_python, str(HERE / "_jaxmarl_coin.py"), str(batch), str(seconds)], HERE.parent)
    names = list(sides)
    out: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n_pairs):
        for name in names if i % 2 == 0 else names[::-1]:
            cmd, tree = sides[name]
            out[name].append(run_child(cmd, threads, cpu, tree)["steps_per_s"])
    return out


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}x (range {min(values):.2f}-{max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--pairs", type=int, default=7, help="interleaved pairs per batch size")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    ap.add_argument("--threads", type=int, default=1, help="threads on each side (torch and XLA)")
    ap.add_argument("--cpu", type=int, default=0, help="the core every process is pinned to (-1: not pinned)")
    ap.add_argument("--jax-python", default=".venv-bench/bin/python", help="interpreter with jaxmarl installed")
    ap.add_argument("--other", type=Path, default=None, help="another checkout measured in the same pairs")
    args = ap.parse_args()
    if args.pairs < 1 or args.threads < 1 or args.seconds <= 0:
        ap.error("--pairs and --threads must be >= 1 and --seconds > 0")
    if not Path(args.jax_python).exists():
        sys.exit(f"no interpreter at --jax-python {args.jax_python} (`make bench` installs .venv-bench with jaxmarl)")
    pinned = f"pinned to core {args.cpu}" if args.cpu >= 0 and shutil.which("taskset") else "not pinned"
    print(f"{args.threads} thread(s) each side, {pinned}, {args.pairs} interleaved pairs of {args.seconds:g} s, "
          f"{os.cpu_count()} cores")
    for batch in args.batches:
        res = pairs(batch, args.pairs, args.seconds, args.threads, args.cpu, args.jax_python, args.other)
        jax = res["jaxmarl"]
        print(f"\nB = {batch}: env-steps/s, median (range)")
        for name, vals in res.items():
            print(f"  {name:<14}{statistics.median(vals):>14,.0f}  ({min(vals):,.0f} - {max(vals):,.0f})")
        target = TARGETS.get(batch)
        for name in res:
            if name == "jaxmarl":
                continue
            ratios = [a / b for a, b in zip(res[name], jax)]
            verdict = "" if target is None or not name.startswith("ours") else (
                f"   target >= {target:g}x  " + ("MET" if statistics.median(ratios) >= target else "MISSED"))
            print(f"  {name} / JaxMARL: {summary(ratios)}{verdict}")


if __name__ == "__main__":
    main()
