"""Environment throughput, printed as figures next to references measured in the same run.

For each game:
  * env-steps per second of the batched view (``make_vec``) at B = 1, 4096 and 65536 on
    the CPU, and on CUDA when present (an env-step is one joint move of one game; random
    actions are drawn inside the timed loop, as in the JaxMARL reference); float32
    observations, and the Coin Game's and the IPD's uint8 ones (the trainers');
  * the time of one step of the PettingZoo view;
  * the bytes per game the tensors hold (state + observations + rewards). The process's
    peak memory, which is what a machine must have, is ``benchmarks/memory.py``'s.

References measured in the same run:
  * JaxMARL's Coin Game, vmapped and jitted on the same CPU at B = 4096, in interleaved
    pairs with the same threads on both sides (``compare_jaxmarl.py``, whose own run also
    covers B = 65536; the interpreter given by ``--jax-python``, ``make bench`` builds
    ``.venv-bench`` for it);
  * PettingZoo's own ``rps_v2`` parallel env (one step).

Targets: batched Coin Game at B = 4096 at least 4x JaxMARL's env-steps per second (median,
one thread each); a PettingZoo-view step of IPD and Coin Game no slower than ``rps_v2``'s.

Usage: ``python benchmarks/env_throughput.py [--seconds 2] [--threads 1] [--pairs 3] [--jax-python PATH]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import social_dilemmas

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_jaxmarl  # noqa: E402  (the benchmark next to this one)

GAMES = ("ipd", "coin_game", "negotiation")
BATCHES = (1, 4096, 65536)


def timed(fn, seconds: float, sync=lambda: None) -> float:
    """Mean seconds per call of ``fn`` over about ``seconds`` (after one warm-up call)."""
    fn()
    sync()
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(5):
            fn()
        n += 5
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / n


def random_actions(game, batch: int, device, gen):
    shape = (batch, game.n_players)
    if game.action_kind == "discrete":
        return torch.randint(int(game.action_space().n), shape, device=device, generator=gen)
    return torch.rand((*shape, *game.action_shape), device=device, generator=gen) * float(game.action_space().high[0])


def batched_steps_per_second(name: str, batch: int, device: str, seconds: float, obs_dtype: str = "float32") -> float:
    # the trainers' path: actions valid by construction, not checked (as JaxMARL does not check them)
    vec = social_dilemmas.make_vec(name, batch, device=device, validate=False, obs_dtype=obs_dtype)
    vec.reset(seed=0)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        vec.step(random_actions(vec.game, batch, device, gen))

    return batch / timed(step, seconds, sync)


def pettingzoo_step_seconds(env, seconds: float) -> float:
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    agents = env.possible_agents
    spaces = {a: env.action_space(a) for a in agents}
    for s in spaces.values():
        s.seed(int(rng.integers(1 << 31)))
    # actions drawn beforehand, so only the step is timed
    pool = [{a: spaces[a].sample() for a in agents} for _ in range(256)]
    i = 0

    def step():
        nonlocal i
        if not env.agents:
            env.reset()
        env.step(pool[i % 256])
        i += 1

    return timed(step, seconds)


def bytes_per_game(name: str, batch: int, device: str, obs_dtype: str = "float32") -> float:
    """Bytes per game the tensors hold after a step: state + observations + rewards."""
    vec = social_dilemmas.make_vec(name, batch, device=device, validate=False, obs_dtype=obs_dtype)
    vec.reset(seed=0)
    acts = torch.zeros((batch, vec.n_players, *vec.game.action_shape), dtype=vec.game.action_dtype, device=device)
    obs, rewards, *_ = vec.step(acts)
    tensors = [getattr(vec.state, f) for f in vec.state.__dataclass_fields__] + [obs, rewards]
    return sum(t.numel() * t.element_size() for t in tensors) / batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--jax-python", default=".venv-bench/bin/python", help="interpreter with jaxmarl installed")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads, and XLA's in the reference (default 1)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved pairs against JaxMARL")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores"
          + (f", CUDA: {torch.cuda.get_device_name()}" if "cuda" in devices else ", no CUDA"))

    print("\n== Batched view (make_vec): env-steps per second")
    header = f"{'game':<12}{'obs':<9}{'device':<8}" + "".join(f"{'B=' + str(b):>14}" for b in BATCHES)
    print(header)
    for device in devices:
        for name in GAMES:
            game = social_dilemmas.make_game(name)
            for dtype in ("float32", *(str(d).removeprefix("torch.") for d in game.compact_obs_dtypes)):
                row = [batched_steps_per_second(name, b, device, args.seconds, dtype) for b in BATCHES]
                print(f"{name:<12}{dtype:<9}{device:<8}" + "".join(f"{v:>14,.0f}" for v in row))

    print("\n== PettingZoo view: time per step (one game, numpy)")
    from pettingzoo.classic import rps_v2

    rps = pettingzoo_step_seconds(rps_v2.parallel_env(), args.seconds)
    print(f"{'rps_v2 (reference)':<22}{rps * 1e6:>9.1f} us")
    pz = {}
    for name in GAMES:
        pz[name] = pettingzoo_step_seconds(social_dilemmas.parallel_env(name), args.seconds)
        print(f"{name:<22}{pz[name] * 1e6:>9.1f} us   {rps / pz[name]:>5.2f}x rps_v2's speed")

    print("\n== Tensor bytes per game (state + observations + rewards; peak process memory: benchmarks/memory.py)")
    for name in GAMES:
        game = social_dilemmas.make_game(name)
        for dtype in ("float32", *(str(d).removeprefix("torch.") for d in game.compact_obs_dtypes)):
            print(f"{name:<12} obs {dtype:<8} {bytes_per_game(name, 4096, 'cpu', dtype):>6.0f} bytes per game")

    print("\n== References and targets")
    if not Path(args.jax_python).exists():
        print(f"JaxMARL reference not run (no interpreter at {args.jax_python}; `make bench` installs one)")
    else:
        res = compare_jaxmarl.pairs(4096, args.pairs, args.seconds, args.threads, 0, args.jax_python)
        jax = res["jaxmarl"]
        print(f"JaxMARL Coin Game (vmap+jit, CPU, B=4096, {args.threads} thread(s) each side, pinned to core 0, "
              f"{args.pairs} interleaved pairs): {statistics.median(jax):,.0f} env-steps/s")
        for dtype in compare_jaxmarl.OURS:
            ratios = [a / b for a, b in zip(res[f"ours {dtype}"], jax)]
            met = statistics.median(ratios) >= compare_jaxmarl.TARGETS[4096]
            print(f"ours, obs {dtype}: {statistics.median(res[f'ours {dtype}']):,.0f} env-steps/s = "
                  f"{compare_jaxmarl.summary(ratios)} JaxMARL   target >= 4x  " + ("PASS" if met else "MISS"))
    for name in ("ipd", "coin_game"):
        ok = pz[name] <= rps
        print(f"PettingZoo view {name}: {pz[name] * 1e6:.1f} us vs rps_v2 {rps * 1e6:.1f} us   target <= rps_v2  "
              + ("PASS" if ok else "MISS"))


if __name__ == "__main__":
    main()
