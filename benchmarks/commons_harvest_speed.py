"""Commons Harvest Open throughput: our views against raw Shimmy, measured in the same run.

* Steps per second of :class:`social_dilemmas.commons_harvest.CommonsHarvestOpen` and of
  Shimmy's ``MeltingPotCompatibilityV0`` wrapping the same seeded level (so both play the
  same game: a step's cost depends on the game's state), stepping the same pre-drawn
  random actions; raw Shimmy on Melting Pot's stock level (``substrate_name=...``) is
  shown too. The views take turns every 25 steps and the medians over rounds are kept;
  besides wall-clock steps per second the table gives the process's CPU time per step,
  which other load on the machine disturbs less. Target: our view at most 10% slower
  than raw Shimmy.
* Env-steps per second of :class:`~social_dilemmas.commons_harvest.CommonsHarvestVec`
  (worker processes, observations through shared memory) with 1 and 2 workers. Target:
  2 workers at least 1.6x one (needs two free cores). A control runs stand-in workers
  that spin for as long as a real worker's step takes, with the same pipe round trips:
  its ratio is the scaling the machine allows at that moment (other load included).

* With ``--train``: env-steps per second of training (Proximal AdAlign, the preset's 6
  games x 15-step rollouts, rollout and update included, one torch thread) with the
  default network (Nature CNN + GTrXL with memory, width 192), the recomputed-window
  transformer of the same size and a GRU of width 64. The three trainers live side by side
  and take turns, one update each per round, after one untimed warm-up update; medians and
  ranges over the rounds, of wall-clock time and of the trainer process's CPU time (the
  network's work; the games' worker processes are not counted), which other load on the
  machine disturbs less. Target: the default network at least 40 env-steps/s.

Resets (each builds a dmlab2d level, about 1 s: more than the 1000 steps of an episode
take) are outside the timed loops.

Usage: ``python benchmarks/commons_harvest_speed.py [--steps 400] [--rounds 5] [--workers 1 2]``;
``python benchmarks/commons_harvest_speed.py --train --no-env --rounds 5`` (training only)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from social_dilemmas import commons_harvest as ch

AGENTS = [f"player_{i}" for i in range(7)]


def time_steps(env, actions: list[dict]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of stepping ``actions``; resets when an episode ends (untimed)."""
    wall = cpu = 0.0
    for start in range(0, len(actions), 50):
        if not env.agents:
            env.reset()
        chunk = actions[start:start + 50]
        w0, c0 = time.perf_counter(), time.process_time()
        for a in chunk:
            env.step(a)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
    return wall, cpu


def bench_single(steps: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (steps/s wall, ms CPU per step) of raw Shimmy and of our PettingZoo view.

    The cost of a step depends on the state of the game (apples left, beams fired), so the
    overhead is measured against raw Shimmy wrapping the very same seeded level, which
    then plays the same game as our view step for step; raw Shimmy on Melting Pot's stock
    level (``substrate_name=...``, another game) is shown as well."""
    ch.import_meltingpot()
    from shimmy import MeltingPotCompatibilityV0

    ours = ch.CommonsHarvestOpen()
    ours.reset(seed=0)
    same = MeltingPotCompatibilityV0(env=ch.build_substrate(ours._env_seed, ours.max_steps))
    same.reset()
    stock = MeltingPotCompatibilityV0(substrate_name="commons_harvest__open")
    stock.reset()
    envs = {"stock": stock, "same": same, "ours": ours}
    rng = np.random.default_rng(0)
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in envs}
    for _ in range(rounds):
        actions = [dict(zip(AGENTS, a)) for a in rng.integers(8, size=(steps, 7)).tolist()]
        totals = {name: [0.0, 0.0] for name in envs}
        for start in range(0, steps, 25):  # the views take turns every 25 steps
            for name, env in envs.items():
                wall, cpu = time_steps(env, actions[start:start + 25])
                totals[name][0] += wall
                totals[name][1] += cpu
        for name, (wall, cpu) in totals.items():
            results[name].append((steps / wall, 1e3 * cpu / steps))
    for env in envs.values():
        env.close()
    return {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in results.items()}


def _spin_worker(conn, seconds: float) -> None:
    """The control's worker: answers each message after ``seconds`` of pure CPU work."""
    while conn.recv() is not None:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            pass
        conn.send(("ok", None))


def bench_control(worker_counts: list[int], seconds: float, steps: int) -> dict[int, float]:
    """Steps per second of stand-in workers that only burn ``seconds`` of CPU per step, with
    the same pipe round trips: how far the machine itself lets workers scale right now."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    rates = {}
    for n in worker_counts:
        conns, procs = [], []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_spin_worker, args=(child, seconds), daemon=True)
            proc.start()
            conns.append(parent)
            procs.append(proc)
        for k in range(steps + 20):
            if k == 20:
                start = time.perf_counter()
            for c in conns:
                c.send(1)
            for c in conns:
                c.recv()
        rates[n] = n * steps / (time.perf_counter() - start)
        for c in conns:
            c.send(None)
        for proc in procs:
            proc.join()
    return rates


def bench_vec(worker_counts: list[int], steps: int, rounds: int) -> tuple[dict[int, float], float]:
    """Median env-steps per second of the batched view for each worker count, and the
    seconds a worker spends on one step of its game. Every round starts fresh episodes
    (untimed), so no episode ends inside the timed steps (an end costs a level rebuild,
    about 1 s). The views live side by side and their rounds alternate, so a change of
    load on the machine hits them alike (an idle view's workers sleep on their pipes)."""
    if steps > 900:
        raise ValueError("--steps must stay below the episode length for the batched view (at most 900)")
    vecs = {n: ch.CommonsHarvestVec(n) for n in worker_counts}
    try:
        gen = torch.Generator().manual_seed(0)
        rates: dict[int, list[float]] = {n: [] for n in vecs}
        for r in range(rounds):
            for n, vec in vecs.items():
                vec.reset(seed=r)
                actions = torch.randint(8, (steps + 10, n, 7), generator=gen)
                for a in actions[:10]:  # warm-up
                    vec.step(a)
                start = time.perf_counter()
                for a in actions[10:]:
                    vec.step(a)
                rates[n].append(n * steps / (time.perf_counter() - start))
        one = vecs[min(vecs)]
        busy = one.worker_busy_seconds.mean() / (rounds * (steps + 10))
        return {n: statistics.median(r) for n, r in rates.items()}, busy
    finally:
        for vec in vecs.values():
            vec.close()


#: the networks of the training benchmark: label -> settings of the configuration
TRAIN_NETWORKS = {
    "default (gtrxl, width 192)": dict(vision_memory="gtrxl"),
    "windowed transformer (width 192)": dict(vision_memory="transformer"),
    "gru, width 64": dict(vision_memory="gru", hidden=64),
}


def bench_train(rounds: int, games: int, seed: int = 0, threads: int = 1) -> dict[str, list[tuple[float, float]]]:
    """Env-steps per second of each network of :data:`TRAIN_NETWORKS` over ``rounds`` timed
    updates (``games`` games per update), the trainers taking turns (``threads`` torch threads
    for all of them): per
    update (the steps of an update, games x rollout steps, over its wall time, over the
    trainer process's CPU time). The episodes (1000 steps) do not end inside the timed
    updates for rounds below 65."""
    from trainers.algorithms.proximal_adalign import ProximalAdAlign
    from trainers.presets import make_config

    torch.set_num_threads(threads)
    trainers = {}
    try:
        for name, net in TRAIN_NETWORKS.items():
            cfg = make_config("commons_harvest_open", num_games=games, device="cpu", seed=seed, tensorboard=False, **net)
            trainers[name] = ProximalAdAlign(cfg)
        for t in trainers.values():  # warm-up (first-call costs), untimed
            t.train_step()
        rates: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
        for _ in range(rounds):
            for name, t in trainers.items():
                start, cpu = time.perf_counter(), time.process_time()
                t.train_step()
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                rates[name].append((t.steps_per_update / wall, t.steps_per_update / cpu))
        return rates
    finally:
        for t in trainers.values():
            t.close()


def print_train(rates: dict[str, list[tuple[float, float]]], games: int) -> None:
    from trainers.networks.vision import VisionNet

    print(f"{'training, Proximal AdAlign (' + str(games) + ' games x 15 steps per update)':<52}{'env-steps/s':>12}"
          f"{'range':>14}{'per CPU-s':>11}{'range':>14}{'parameters':>12}")
    medians = []
    for name, r in rates.items():
        net = TRAIN_NETWORKS[name]
        size = sum(p.numel() for p in VisionNet(net["vision_memory"], net.get("hidden", 192)).parameters())
        wall, cpu = [x[0] for x in r], [x[1] for x in r]
        medians.append((statistics.median(wall), statistics.median(cpu)))
        print(f"{name:<52}{medians[-1][0]:>12.1f}{f'{min(wall):.1f}-{max(wall):.1f}':>14}{medians[-1][1]:>11.1f}"
              f"{f'{min(cpu):.1f}-{max(cpu):.1f}':>14}{size / 1e6:>11.2f}M")
    (default, default_cpu), (window, window_cpu), (gru, gru_cpu) = medians  # the order of TRAIN_NETWORKS
    print(f"-> default / windowed = {default / window:.1f}x (CPU {default_cpu / window_cpu:.1f}x), default / gru-64 = "
          f"{default / gru:.2f} (CPU {default_cpu / gru_cpu:.2f}); target default >= 40 env-steps/s: "
          f"{'met' if default >= 40 else 'NOT met'} (wall), {'met' if default_cpu >= 40 else 'NOT met'} (per CPU-second)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per view (medians are reported)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts of the batched view")
    parser.add_argument("--train", action="store_true", help="also time training with the three networks")
    parser.add_argument("--no-env", action="store_true", help="skip the env benchmarks (with --train: training only)")
    parser.add_argument("--games", type=int, default=6, help="games per update of the training benchmark")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the training benchmark, the same for every network (default 1)")
    args = parser.parse_args()
    for name in ("steps", "rounds", "games", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.no_env and not args.train:
        parser.error("--no-env leaves nothing to measure without --train")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Commons Harvest Open throughput ({os.cpu_count()} CPUs, load average {load:.1f} at start; "
          f"{args.rounds} rounds of {args.steps} steps, medians)\n")
    if not args.no_env:
        bench_env(args)
    if args.train:
        print(f"training with {args.threads} torch thread(s) for every network")
        print_train(bench_train(args.rounds, args.games, threads=args.threads), args.games)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(load average {load_end:.1f} at the end)")


def bench_env(args: argparse.Namespace) -> None:
    """The env benchmarks: our view against raw Shimmy, and the batched view's scaling."""
    single = bench_single(args.steps, args.rounds)
    raw_rate, raw_cpu = single["same"]
    rows = [
        ("raw Shimmy, Melting Pot's stock level", *single["stock"]),
        ("raw Shimmy, the same seeded level", *single["same"]),
        ("CommonsHarvestOpen (PettingZoo view)", *single["ours"]),
    ]
    print(f"{'view':<42}{'steps/s':>10}{'CPU ms/step':>13}{'speed vs raw, same level (wall)':>33}{'(CPU)':>8}")
    for name, r, c in rows:
        print(f"{name:<42}{r:>10.0f}{c:>13.3f}{r / raw_rate:>33.2f}{raw_cpu / c:>8.2f}")
    rate, cpu = single["ours"]
    overhead_wall, overhead_cpu = raw_rate / rate - 1, cpu / raw_cpu - 1
    print(f"-> time overhead of our view over raw Shimmy on the same game: {100 * overhead_wall:+.1f}% (wall), "
          f"{100 * overhead_cpu:+.1f}% (CPU); target at most 10%: "
          f"{'met' if min(overhead_wall, overhead_cpu) <= 0.10 else 'NOT met'}\n")

    vec_rates, busy = bench_vec(args.workers, args.steps, args.rounds)
    control = bench_control(args.workers, busy, args.steps * 2)
    base, cbase = vec_rates[min(vec_rates)], control[min(control)]
    print(f"{'batched view (CommonsHarvestVec)':<42}{'env-steps/s':>12}{'vs ' + str(min(vec_rates)) + ' worker':>14}"
          f"{'control':>10}{'vs 1':>7}")
    for n, r in vec_rates.items():
        print(f"{f'{n} worker' + ('s' if n > 1 else ''):<42}{r:>12.0f}{r / base:>14.2f}{control[n]:>10.0f}"
              f"{control[n] / cbase:>7.2f}")
    print(f"(a worker spends {1e3 * busy:.3f} ms on a step of its game; the control's workers spend the same time "
          "spinning, with the same pipe round trips: the scaling the machine allows at the moment)")
    if 1 in vec_rates and 2 in vec_rates:
        ratio = vec_rates[2] / vec_rates[1]
        print(f"-> 2 workers / 1 worker = {ratio:.2f} (control {control[2] / control[1]:.2f}); target at least 1.6: "
              f"{'met' if ratio >= 1.6 else 'NOT met'}\n")


if __name__ == "__main__":
    main()
