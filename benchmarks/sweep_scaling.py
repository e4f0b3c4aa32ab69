"""How much a sweep on Ray gains over running its trials one after another, and what Ray's start-up costs.

Four equal trials (AdAlign on the IPD from the CPU preset, seeds 0-3, ``--iterations``
updates each, one torch thread) are trained, in every repeat:

* one after another in this process (:func:`trainers.run.train`): the sequential time;
* as a sweep on a local Ray of ``--cpus`` CPUs (:func:`trainers.sweep.sweep`), Ray already
  started: the parallel time. The speed-up is sequential / parallel (the target on 2 free
  CPUs: at least 1.7); the end-to-end speed-up also counts starting and stopping Ray;
  ``trials_at_once`` is the trials' seconds of training summed over the parallel time (2:
  two trials trained all the time) and ``trial_slowdown`` a trial's seconds in the sweep
  over its seconds alone (1 on free CPUs; more when other jobs take the CPUs);
* one trial alone, in this process and as a one-trial sweep that starts and stops Ray itself:
  the difference is Ray's overhead for a single trial (the target: at most 10 s).

Prints every repeat and the median and range of each figure, with the machine's load
average before and after (other jobs on the machine slow the parallel trials most).

    python benchmarks/sweep_scaling.py [--iterations 150] [--repeats 3] [--cpus 2]

Each trial's start-up (building its run, Tune's set-up of the trial) is paid in the parallel
time and not in the sequential one, so very short trials understate what a sweep gains:
on the free 2-core machine, 60-update trials (about 10 s each) gave 1.66x, 150-update
trials (about 26 s each, the default) 1.9x (see the README).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainers.presets import make_config
from trainers.ray_runner import ray_session
from trainers.run import train
from trainers.sweep import sweep


def trials(iterations: int, seeds: range) -> dict:
    return {f"ipd-adalign-s{s}": make_config("ipd", "adalign", fast=True, seed=s, iterations=iterations,
                                             tensorboard=False, device="cpu")
            for s in seeds}


def sequential(runs: dict, root: Path) -> float:
    start = time.perf_counter()
    for name, config in runs.items():
        train(config, root / name, progress=False)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=150, help="updates of each trial (150: about 26 s on a free core)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (and trials at once)")
    ap.add_argument("--trials", type=int, default=4)
    args = ap.parse_args(argv)
    import ray

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="sweep-scaling-"))
    figures: dict[str, list[float]] = {"sequential_s": [], "parallel_s": [], "ray_start_stop_s": [], "speedup": [],
                                       "trials_at_once": [], "trial_slowdown": [], "speedup_end_to_end": [], "one_trial_s": [], "one_trial_sweep_s": [],
                                       "overhead_s": []}
    load_before = os.getloadavg()
    try:
        autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        autogroup = False
    print(f"{args.trials} trials of {args.iterations} updates (IPD, AdAlign CPU preset), {args.cpus} CPUs; load average "
          f"{load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}", flush=True)
    try:
        for r in range(args.repeats):
            runs = trials(args.iterations, range(args.trials))
            seq = sequential(runs, root / f"seq-{r}")
            start = time.perf_counter()
            session = ray_session(root / "ray", cpus=args.cpus)  # as the sweep command starts it
            session.__enter__()
            started = time.perf_counter() - start
            try:
                start = time.perf_counter()
                result = sweep(root / f"par-{r}", trials=runs, verbose=False)
                par = time.perf_counter() - start
            finally:
                start = time.perf_counter()
                session.__exit__(None, None, None)
            start_stop = started + time.perf_counter() - start
            if result["errors"]:
                raise RuntimeError(f"trials failed: {result['errors']}")
            trial_s = [float(row["seconds"]) for row in result["rows"]]
            one = trials(args.iterations, range(1))
            alone = sequential(one, root / f"one-{r}")
            start = time.perf_counter()
            sweep(root / f"one-sweep-{r}", trials=one, cpus=args.cpus, verbose=False)
            one_sweep = time.perf_counter() - start
            row = {"sequential_s": seq, "parallel_s": par, "ray_start_stop_s": start_stop, "speedup": seq / par,
                   "trials_at_once": sum(trial_s) / par, "trial_slowdown": sum(trial_s) / seq,
                   "speedup_end_to_end": seq / (par + start_stop), "one_trial_s": alone,
                   "one_trial_sweep_s": one_sweep, "overhead_s": one_sweep - alone}
            for k, v in row.items():
                figures[k].append(v)
            print(f"repeat {r}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()), flush=True)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"\nover {args.repeats} repeats (median [min, max]); load average after {load_after[0]:.2f} "
          f"{load_after[1]:.2f} {load_after[2]:.2f}")
    for k, values in figures.items():
        print(f"{k:<20} {statistics.median(values):8.2f}  [{min(values):.2f}, {max(values):.2f}]")
    speedup = statistics.median(figures["speedup"])
    overhead = statistics.median(figures["overhead_s"])
    print(f"\nspeed-up of {args.trials} trials on {args.cpus} CPUs: {speedup:.2f}x (target >= 1.7: "
          f"{'met' if speedup >= 1.7 else 'not met'}); Ray's overhead for one trial: {overhead:.1f} s "
          f"(target <= 10 s: {'met' if overhead <= 10 else 'not met'})")
    if autogroup:
        print("note: the kernel schedules by session (sched_autogroup): on a machine busy with other sessions' jobs, "
              "this benchmark's processes share one session's part of the CPUs, however many run at once")
    return figures


if __name__ == "__main__":
    main()
