"""Environment throughput, printed as figures next to references measured in the same run.

For each game:
  * env-steps per second of the batched view (``make_vec``) at B = 1, 4096 and 65536 on
    the CPU, and on CUDA when present (an env-step is one joint move of one game; random
    actions are drawn inside the timed loop, as in the JaxMARL reference);
  * the time of one step of the PettingZoo view;
  * the memory per game (state + observations + rewards) and for one million Coin Games.

References measured in the same run:
  * JaxMARL's Coin Game, vmapped and jitted on the same CPU at B = 4096 (runs in the
    interpreter given by ``--jax-python``; ``make bench`` builds ``.venv-bench`` for it);
  * PettingZoo's own ``rps_v2`` parallel env (one step).

Targets: batched Coin Game at B = 4096 at least 3x JaxMARL's env-steps per second; a
PettingZoo-view step of IPD and Coin Game no slower than ``rps_v2``'s; one million Coin
Games, observations included, within 1 GiB of device memory.

Usage: ``python benchmarks/env_throughput.py [--seconds 2] [--jax-python PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import social_dilemmas

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


def batched_steps_per_second(name: str, batch: int, device: str, seconds: float) -> float:
    # the trainers' path: actions valid by construction, not checked (as JaxMARL does not check them)
    vec = social_dilemmas.make_vec(name, batch, device=device, validate=False)
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


def bytes_per_game(name: str, batch: int, device: str) -> tuple[float, int]:
    """(bytes per game of state + obs + rewards, peak device bytes for ``batch`` games on CUDA or tensor bytes on CPU)."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    vec = social_dilemmas.make_vec(name, batch, device=device, validate=False)
    obs, _ = vec.reset(seed=0)
    acts = torch.zeros((batch, vec.n_players, *vec.game.action_shape), dtype=vec.game.action_dtype, device=device)
    obs, rewards, *_ = vec.step(acts)
    state = vec.state
    tensors = [getattr(state, f) for f in state.__dataclass_fields__] + [obs, rewards]
    total = sum(t.numel() * t.element_size() for t in tensors)
    peak = torch.cuda.max_memory_allocated() - base if device == "cuda" else total
    del vec, obs, rewards, state, tensors
    return total / batch, peak


def jaxmarl_reference(python: str | None, seconds: float) -> dict | None:
    if python is None or not Path(python).exists():
        return None
    script = Path(__file__).with_name("_jaxmarl_coin.py")
    env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([python, str(script), "4096", str(seconds)], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    print(f"JaxMARL reference failed:\n{out.stderr[-2000:]}", file=sys.stderr)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    ap.add_argument("--jax-python", default=".venv-bench/bin/python", help="interpreter with jaxmarl installed")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {os.cpu_count()} cores"
          + (f", CUDA: {torch.cuda.get_device_name()}" if "cuda" in devices else ", no CUDA"))

    print("\n== Batched view (make_vec): env-steps per second")
    header = f"{'game':<12}{'device':<8}" + "".join(f"{'B=' + str(b):>14}" for b in BATCHES)
    print(header)
    results = {}
    for device in devices:
        for name in GAMES:
            row = [batched_steps_per_second(name, b, device, args.seconds) for b in BATCHES]
            results[(name, device)] = row
            print(f"{name:<12}{device:<8}" + "".join(f"{v:>14,.0f}" for v in row))

    print("\n== PettingZoo view: time per step (one game, numpy)")
    from pettingzoo.classic import rps_v2

    rps = pettingzoo_step_seconds(rps_v2.parallel_env(), args.seconds)
    print(f"{'rps_v2 (reference)':<22}{rps * 1e6:>9.1f} us")
    pz = {}
    for name in GAMES:
        pz[name] = pettingzoo_step_seconds(social_dilemmas.parallel_env(name), args.seconds)
        print(f"{name:<22}{pz[name] * 1e6:>9.1f} us   {rps / pz[name]:>5.2f}x rps_v2's speed")

    print("\n== Memory")
    for name in GAMES:
        per_game, _ = bytes_per_game(name, 4096, "cpu")
        print(f"{name:<12} {per_game:>6.0f} bytes per game (state + observations + rewards)")
    for device in devices:
        _, peak = bytes_per_game("coin_game", 1_000_000, device)
        kind = "peak allocated" if device == "cuda" else "tensor bytes"
        print(f"1,000,000 Coin Games on {device}: {peak / 2**30:.3f} GiB ({kind})   target <= 1 GiB")

    print("\n== References and targets")
    jax = jaxmarl_reference(args.jax_python, args.seconds)
    coin_cpu = results[("coin_game", "cpu")][1]
    if jax is None:
        print(f"JaxMARL reference not run (no interpreter at {args.jax_python}; `make bench` installs one)")
    else:
        ratio = coin_cpu / jax["steps_per_s"]
        print(f"JaxMARL Coin Game (jax {jax['jax']}, vmap+jit, CPU, B=4096): {jax['steps_per_s']:,.0f} env-steps/s")
        print(f"ours, Coin Game, CPU, B=4096: {coin_cpu:,.0f} env-steps/s = {ratio:.2f}x JaxMARL   target >= 3x  "
              + ("PASS" if ratio >= 3 else "MISS"))
    for name in ("ipd", "coin_game"):
        ok = pz[name] <= rps
        print(f"PettingZoo view {name}: {pz[name] * 1e6:.1f} us vs rps_v2 {rps * 1e6:.1f} us   target <= rps_v2  "
              + ("PASS" if ok else "MISS"))


if __name__ == "__main__":
    main()
