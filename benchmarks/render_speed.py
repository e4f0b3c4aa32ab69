"""Mean time to draw one ``rgb_array`` frame of each game.

Usage::

    SDL_VIDEODRIVER=dummy python benchmarks/render_speed.py [--frames 300]

Frames vary from one to the next (actions, positions, values, scores...), so
the text caches see realistic traffic.  The first frame of each game (fonts,
static background) is drawn before timing.  Target: 2 ms per frame for IPD,
Coin Game and Negotiation at their default sizes; Commons Harvest has none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from renderers import (  # noqa: E402
    CoinGameFrame,
    CommonsHarvestFrame,
    IPDFrame,
    NegotiationFrame,
    render,
)

TARGET_MS = 2.0


def ipd_frames(n: int, rng: np.random.Generator, max_steps: int = 16) -> list:
    frames, scores = [], np.zeros(2)
    payoff = np.array([[[-1, -1], [-3, 0]], [[0, -3], [-2, -2]]])
    actions = np.zeros((0, 2), int)
    for _ in range(n):
        if len(actions) == max_steps:
            actions, scores = np.zeros((0, 2), int), np.zeros(2)
            frames.append(IPDFrame(actions, max_steps, tuple(scores), None))
            continue
        a = rng.integers(0, 2, size=2)
        r = payoff[a[0], a[1]]
        actions = np.vstack([actions, a])
        scores = scores + r
        frames.append(IPDFrame(actions, max_steps, tuple(scores.tolist()), tuple(r.tolist())))
    return frames


def coin_frames(n: int, rng: np.random.Generator, size: int = 3) -> list:
    frames = []
    picked = np.zeros((2, 2), int)
    scores = np.zeros(2)
    for i in range(n):
        step = i % 16
        if step == 0:
            picked[:] = 0
            scores[:] = 0
        if rng.random() < 0.3:
            p, o = rng.integers(0, 2, size=2)
            picked[p, o] += 1
            scores[p] += 1
            if p != o:
                scores[o] -= 2
        frames.append(CoinGameFrame(size, rng.integers(0, size, size=(2, 2)), tuple(rng.integers(0, size, 2)),
                                    int(rng.integers(0, 2)), tuple(scores.tolist()), picked.copy(), step, 16))
    return frames


def negotiation_frames(n: int, rng: np.random.Generator, n_items: int = 3) -> list:
    frames = []
    scores = np.zeros(2)
    for i in range(n):
        step = i % 11
        values = rng.integers(1, 6, size=(2, n_items)).astype(float)
        if step == 0:
            scores[:] = 0
            frames.append(NegotiationFrame(np.ones(n_items), values, None, None, None, (0.0, 0.0), 0, 10))
            continue
        proposals = rng.uniform(0, 5, size=(2, n_items))
        shares = proposals / np.maximum(proposals.sum(0), 5.0)
        rewards = (shares * values).sum(1)
        scores += rewards
        frames.append(NegotiationFrame(np.ones(n_items), values, proposals, shares, rewards,
                                       tuple(scores.tolist()), step, 10))
    return frames


def commons_frames(n: int, rng: np.random.Generator) -> list:
    base = rng.integers(0, 256, size=(144, 192, 3), dtype=np.uint8)
    scores = np.zeros(7)
    frames = []
    for i in range(n):
        world = base.copy()
        world[rng.integers(0, 144, 50), rng.integers(0, 192, 50)] = 255
        scores = scores + (rng.random(7) < 0.1)
        frames.append(CommonsHarvestFrame(world, scores.copy(), i, 1000))
    return frames


def bench(frames: list) -> tuple[float, float, tuple[int, int]]:
    img = render(frames[0])  # warm-up: fonts, background
    times = []
    for f in frames:
        t = time.perf_counter()
        render(f)
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.fmean(times) * 1e3, times[int(0.95 * (len(times) - 1))] * 1e3, img.shape[:2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames per game (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    games = [
        ("IPD (16 rounds)", ipd_frames(args.frames, rng), TARGET_MS),
        ("Coin Game (3x3)", coin_frames(args.frames, rng), TARGET_MS),
        ("Negotiation (3 items)", negotiation_frames(args.frames, rng), TARGET_MS),
        ("Commons Harvest (144x192)", commons_frames(args.frames, rng), None),
    ]
    print(f"{'game':<26} {'size (HxW)':>11} {'mean ms':>8} {'p95 ms':>7} {'target':>7}  ok")
    print("-" * 68)
    for name, frames, target in games:
        mean, p95, (h, w) = bench(frames)
        ok = "-" if target is None else ("yes" if mean <= target else "NO")
        tgt = "-" if target is None else f"{target:.1f}"
        print(f"{name:<26} {f'{h}x{w}':>11} {mean:>8.3f} {p95:>7.3f} {tgt:>7}  {ok}")
    print(f"({args.frames} frames per game)")


if __name__ == "__main__":
    main()
