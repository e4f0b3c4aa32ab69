"""Peak process memory of one million Coin Games in the batched view, float32 against uint8
observations, above the memory of Python + torch alone.

Each measurement is a fresh process (one torch thread) that imports torch and
``social_dilemmas``, makes ``make_vec("coin_game", B, obs_dtype=...)``, resets it and steps it
``--steps`` times with random actions (drawn each step, as a trainer's sampler does; 32
steps cross two episode ends, so the autoreset and ``final_obs`` are included), then reads
its peak resident memory (``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` where there is
no ``/proc``). The baseline process does the same imports and makes no games. One repeat
measures the baseline and both dtypes back to back (order alternating); each dtype's
figure is its peak minus the same repeat's baseline. Prints the median and range over the
repeats, the peak after ``reset`` alone, and the bytes the tensors themselves hold
(state + observations + rewards), which is what the README quoted before.

Target (issue 20): uint8 observations at most 0.35 GiB above the baseline.

    python benchmarks/memory.py [--games 1000000] [--steps 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

GiB = 2**30
DTYPES = ("float32", "uint8")
TARGET_GIB = 0.35


def peak_bytes() -> int:
    """This process's peak resident memory so far."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def child(games: int, steps: int, obs_dtype: str) -> dict:
    """The measurement inside the fresh process (``obs_dtype`` "none": the baseline)."""
    import torch

    import social_dilemmas

    torch.set_num_threads(1)
    if obs_dtype == "none":
        return {"peak": peak_bytes()}
    vec = social_dilemmas.make_vec("coin_game", games, validate=False, obs_dtype=obs_dtype)
    obs, _ = vec.reset(seed=0)
    after_reset = peak_bytes()
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        obs, rewards, *_ = vec.step(torch.randint(4, (games, 2), generator=gen))
    state = [getattr(vec.state, f) for f in vec.state.__dataclass_fields__]
    tensor_bytes = sum(t.numel() * t.element_size() for t in (*state, obs, rewards))
    return {"peak": peak_bytes(), "after_reset": after_reset, "tensor_bytes": tensor_bytes}


def measure(games: int, steps: int, obs_dtype: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, __file__, "--child", obs_dtype, "--games", str(games), "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"measurement {obs_dtype} failed:\n{out.stderr[-2000:]}")


def span(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} GiB (range {min(values):.3f}-{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--games", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--child", choices=("none", *DTYPES), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.games < 1 or args.steps < 0 or args.repeats < 1:
        ap.error("--games and --repeats must be >= 1, --steps >= 0")
    if args.child:
        print(json.dumps(child(args.games, args.steps, args.child)))
        return
    runs: dict[str, list[dict]] = {name: [] for name in ("none", *DTYPES)}
    for i in range(args.repeats):
        order = ["none", *DTYPES]
        for name in order if i % 2 == 0 else order[::-1]:
            runs[name].append(measure(args.games, args.steps, name))
    base = [r["peak"] for r in runs["none"]]
    print(f"{args.games:,} Coin Games, {args.steps} steps, {args.repeats} repeats (fresh process each)")
    print(f"baseline (Python + torch + social_dilemmas): {span([b / GiB for b in base])} peak")
    for name in DTYPES:
        above = [(r["peak"] - b) / GiB for r, b in zip(runs[name], base)]
        at_reset = [(r["after_reset"] - b) / GiB for r, b in zip(runs[name], base)]
        tensors = runs[name][0]["tensor_bytes"]
        verdict = f"   target <= {TARGET_GIB} GiB  " + ("MET" if statistics.median(above) <= TARGET_GIB else "MISSED")
        print(f"obs {name:<8} peak above baseline {span(above)}{verdict if name == 'uint8' else ''}")
        print(f"{'':13}after reset alone {span(at_reset)}; tensors held {tensors / GiB:.3f} GiB "
              f"({tensors / args.games:.0f} bytes per game)")


if __name__ == "__main__":
    main()
