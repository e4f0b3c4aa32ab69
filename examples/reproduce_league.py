"""Reproduce the paper's leagues: Coin Game (Fig. 2) and Negotiation (Fig. 3a).

For every seed this trains AdAlign (``trainers.algorithms.adalign``, from the game's CPU
preset ``FAST_PRESETS``; ``--paper-preset`` for the paper's), self-play PPO and PPO with
summed rewards (PPO-SR, ``trainers.algorithms.ppo``), all through ``trainers.train``, then
plays every player against every player, the scripted ones included (always cooperate,
always defect, and random for the Coin Game), with ``trainers.evaluation.league``. It
writes under ``OUT``:

* ``adalign-sK/``, ``ppo-sK/``, ``ppo_sr-sK/``: the runs (config, metrics, checkpoint; the
  PPO runs' ``model.zip`` is what plays in the league);
* ``league.csv``, ``league.png`` (heatmap), ``league.json``: the cross-play results;
* ``self_play.csv``: each trained seed against itself (the league's diagonal mixes seeds);
* ``targets.csv``: the paper's qualitative targets (SPEC section 8), measured, and
  whether each holds;
* with ``--published DIR`` (Coin Game): the authors' published AdAlign, LOQA and POLA agents
  (:mod:`trainers.published`) join the league as ``published AdAlign`` and so on, and
  ``versus_published.csv`` has every trained player against every published set, in both
  seat orders: the mean reward per step of each side and its spread (the standard
  deviation over the pairs of seeds);
* ``times.csv``: the training time of every run.

    python examples/reproduce_league.py --env coin_game --seeds 3 --out runs/reproduce/coin_game
    python examples/reproduce_league.py --env negotiation --seeds 10 --jobs 2
    python examples/reproduce_league.py --env coin_game --seeds 10 --jobs 2   # two runs at a time
    python examples/reproduce_league.py --env coin_game --seeds 10 --published ../shared/published_league
    python examples/reproduce_league.py --env coin_game --seeds 10 --ray --jobs 2   # Ray Tune trials, Ray tasks
    python examples/reproduce_league.py --env coin_game --seeds 10 --address HEAD_IP:6379   # on a Ray cluster

With ``--ray`` (Ray on this machine, ``--jobs`` CPUs) or ``--address`` (a Ray cluster; ``OUT``
on a file system every node shares) the runs are the trials of a sweep
(:func:`trainers.ray_runner.train_on_ray`: a run whose worker dies continues from its last
checkpoint) and the league's matches are Ray tasks; ``times.csv`` then has each run's
seconds of training. Without them, the runs train in this process or in ``--jobs`` worker
processes of this machine, which needs no Ray.

Runs that already finished in ``OUT`` with the same settings are reused (delete them to
retrain), so a long reproduction can be stopped and started again. Runs saved by the first
trainers (a flat ``config.json``) are trained again.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import social_dilemmas
from trainers import train
from trainers.algorithms.adalign import FAST_PRESETS
from trainers.config import CONFIG_FORMAT, Config
from trainers.evaluation.league import LeagueResult, format_table, league, same_seed_self_play
from trainers.evaluation.scripted import exploitation
from trainers.metrics import updates_done
from trainers.presets import config_from_dict, make_config
from trainers.published import published_players

#: Budgets of one seed on a 2-core CPU (see the README's Results); the command line overrides
#: them. ``batch`` None: the preset's. ``ppo``: the PPO and PPO-SR settings besides the game's
#: preset. For the Negotiation, SB3's Gaussian starts at a mean proposal of 0 and must move it
#: to 5: at lr 3e-4 and 4 minibatches (16 Adam steps per update) that takes thousands of
#: updates, at lr 1e-3 and 8 minibatches a few hundred.
DEFAULTS = {
    "coin_game": dict(adalign_iterations=2000, ppo_iterations=200, league_steps=16, batch=None, ppo_batch=512,
                      ppo=dict(lr=3e-4, entropy_coef=0.01)),
    "negotiation": dict(adalign_iterations=800, ppo_iterations=500, league_steps=50, batch=None, ppo_batch=256,
                        ppo=dict(lr=1e-3, entropy_coef=0.01, ppo_minibatches=8)),
}
#: Scripted players of each league (the paper's Figs. 2 and 3a).
SCRIPTED = {"coin_game": ["always_cooperate", "always_defect", "random"],
            "negotiation": ["always_cooperate", "always_defect"]}


#: What a ``--jobs`` worker process runs: one training run (any algorithm), on one torch thread.
WORKER = """
import json, sys, torch
torch.set_num_threads(1)
from trainers import train
from trainers.presets import config_from_dict
train(config_from_dict(json.loads(sys.argv[2])), sys.argv[1], progress=False)
"""


def train_all(jobs: list[tuple[str, int, Path, Config]], workers: int, progress: bool,
              logs: Path) -> list[tuple[str, int, float]]:
    """Train every ``(player, seed, run folder, config)``; ``workers`` > 1 runs that many at
    once, each in its own process on one torch thread (its output in ``logs/``).
    Returns ``(player, seed, seconds)`` of each run."""
    times = []
    if workers <= 1:
        for name, seed, run, cfg in jobs:
            start = time.perf_counter()
            train(cfg, run, progress=progress)
            times.append((name, seed, time.perf_counter() - start))
        return times
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < workers:
            name, seed, run, cfg = pending.pop(0)
            log = (logs / f"{name}-s{seed}.log").open("w")
            proc = subprocess.Popen([sys.executable, "-c", WORKER, str(run), cfg.to_json()], stdout=log,
                                    stderr=subprocess.STDOUT, env=env)
            running.append((proc, log, name, seed, time.perf_counter()))
            print(f"training {name} seed {seed} (log: {log.name})", flush=True)
        time.sleep(1)
        for job in [j for j in running if j[0].poll() is not None]:
            proc, log, name, seed, start = job
            running.remove(job)
            log.close()
            if proc.returncode != 0:
                for other in running:
                    other[0].terminate()
                tail = Path(log.name).read_text()[-3000:]
                raise RuntimeError(f"training {name} seed {seed} failed (exit {proc.returncode}); {log.name}:\n{tail}")
            times.append((name, seed, time.perf_counter() - start))
            print(f"trained {name} seed {seed} in {times[-1][2]:.0f} s", flush=True)
    return times


def trial_seconds(run: Path) -> float:
    """The seconds of training of a run trained as a Ray Tune trial (its ``sweep_trial.json``)."""
    try:
        return float(json.loads((run / "sweep_trial.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return float("nan")


def train_and_play(ap: argparse.ArgumentParser, args: argparse.Namespace, env: str,
                   jobs: list[tuple[str, int, Path, Config]], players: list[str], out: Path,
                   league_kwargs: dict) -> LeagueResult:
    """Train ``jobs`` and play the league of ``players``: with ``args.ray`` / ``args.address``
    the runs are the Tune trials of a sweep (:func:`trainers.ray_runner.run_tune_trials`,
    retried from their checkpoints) and the cells Ray tasks; otherwise :func:`train_all`
    (``args.jobs`` worker processes) and the league in this process. Appends each run's
    seconds to ``OUT/times.csv``; an unreachable cluster is ``ap.error``."""
    progress = not args.no_progress
    if args.ray or args.address:
        from trainers.ray_runner import ray_map, ray_session, run_tune_trials

        session = ray_session(out, address=args.address, cpus=args.jobs if args.jobs > 1 and not args.address else None)
        try:
            where = session.__enter__()
        except (ConnectionError, ImportError, ValueError) as e:
            ap.error(str(e))
        try:
            print(f"training {len(jobs)} runs as Ray Tune trials on {where}", flush=True)
            if jobs:
                errors = run_tune_trials({run.name: cfg for _, _, run, cfg in jobs}, out, verbose=progress)
                if errors:
                    raise RuntimeError("training failed: " + "; ".join(f"{n}: {e}" for n, e in errors.items()))
            times = [(name, seed, trial_seconds(run)) for name, seed, run, _ in jobs]
            result = league(env, players, out, map_cells=ray_map, **league_kwargs)
        finally:
            session.__exit__(None, None, None)
    else:
        times = train_all(jobs, args.jobs, progress, out / "logs")
        result = None
    if times:
        out.mkdir(parents=True, exist_ok=True)
        new = not (out / "times.csv").exists()
        with (out / "times.csv").open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["player", "seed", "train_seconds"])
            w.writerows((p, s, f"{t:.0f}") for p, s, t in times)
    return result if result is not None else league(env, players, out, **league_kwargs)


def write_self_play(out: Path, same: dict[str, list[float]]) -> None:
    """``OUT/self_play.csv``: each trained player's seeds against themselves (reward per step)."""
    with (out / "self_play.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["player", "seed", "reward_per_step"])
        w.writerows((name, s, f"{v:.4f}") for name, values in same.items() for s, v in enumerate(values))


#: Run settings that do not change what a run learns: a finished run that differs only in these is reused.
BOOKKEEPING = ("device", "save_every", "log_every", "tensorboard", "eval_every", "eval_games")


def finished(out: Path, artefact: str, cfg: Config) -> bool:
    """Whether ``out`` holds a finished run of ``cfg`` (:data:`BOOKKEEPING` aside): a run
    with other settings, say of an earlier preset, is trained again, not reused; so is a
    run saved by the first trainers (a flat ``config.json``, not ``{"format": 2, ...}``)."""
    cfg_path = out / "config.json"
    if not (out / artefact).exists() or not cfg_path.exists():
        return False
    try:
        data = json.loads(cfg_path.read_text())
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            return False
        saved = config_from_dict(data, where=str(cfg_path))
    except (ValueError, KeyError, TypeError):  # not JSON, or not a configuration of this version: train again
        return False
    saved.run = dataclasses.replace(saved.run, **{k: getattr(cfg.run, k) for k in BOOKKEEPING})
    # compared as JSON, so that a tuple and the list it was saved as are equal
    return json.loads(saved.to_json()) == json.loads(cfg.to_json()) and updates_done(out) >= cfg.run.iterations


#: The trained players of the league and the file each run saves.
TRAINED = {"adalign": "checkpoint.pt", "ppo": "model.zip", "ppo_sr": "model.zip"}


def self_play_by_seed(env: str, out: Path, seeds: int, episodes: int, steps: int) -> dict[str, list[float]]:
    """Reward per step (mean of both seats) of each trained player's seed against itself
    (:func:`trainers.evaluation.league.same_seed_self_play`: the league's same-seed pairs)."""
    game = social_dilemmas.make_game(env, max_steps=steps)
    return {name: same_seed_self_play(game, f"{name}={out}/{name}-s*/{artefact}", seeds, episodes)
            for name, artefact in TRAINED.items()}


#: The display name of a published set in this league (``published AdAlign``...).
PUBLISHED_PREFIX = "published "


def versus_published(res: LeagueResult) -> list[dict]:
    """Every trained player against every published set (:data:`PUBLISHED_PREFIX`), in both
    seat orders: each side's reward per step and its spread over the pairs of seeds."""
    i = {n: k for k, n in enumerate(res.names)}
    rows = []
    for ours in TRAINED:
        for theirs in (n for n in res.names if n.startswith(PUBLISHED_PREFIX)):
            a, b = i[ours], i[theirs]
            for first, r, c, flip in (("ours", a, b, False), ("theirs", b, a, True)):
                ours_reward, theirs_reward = float(res.row_reward[r, c]), float(res.col_reward[r, c])
                ours_std, theirs_std = float(res.row_std[r, c]), float(res.col_std[r, c])
                if flip:
                    ours_reward, theirs_reward, ours_std, theirs_std = theirs_reward, ours_reward, theirs_std, ours_std
                rows.append({"ours": ours, "theirs": theirs[len(PUBLISHED_PREFIX):], "first_seat": first,
                             "ours_reward": ours_reward, "theirs_reward": theirs_reward,
                             "ours_std": ours_std, "theirs_std": theirs_std})
    return rows


def targets(env: str, res: LeagueResult, same: dict[str, list[float]]) -> list[tuple[str, float, str, bool | None]]:
    """The paper's targets (SPEC section 8) as (what, measured, wanted, holds or None);
    ``same`` is :func:`self_play_by_seed`."""
    i = {n: k for k, n in enumerate(res.names)}
    row, col = res.row_reward, res.col_reward

    def self_play(name: str) -> float:
        return sum(same[name]) / len(same[name])

    aa, ac, ad = i["adalign"], i["always_cooperate"], i["always_defect"]
    aa_self, ppo_self = self_play("adalign"), self_play("ppo")
    ad_vs_ac = float(col[ac, ad])
    what_self = "AdAlign self-play (each seed against itself), reward per step of each"
    out = [(what_self, aa_self, ">= 0.2 (paper 0.25)", aa_self >= 0.2) if env == "coin_game" else
           (what_self, aa_self, f"> PPO self-play ({ppo_self:.3f})", aa_self > ppo_self)]
    n = len(same["adalign"])
    if n > 1:  # the league's diagonal cell is the mean over all n * n pairs of seeds
        diagonal = float(row[aa, aa] + col[aa, aa]) / 2
        cross = (n * n * diagonal - sum(same["adalign"])) / (n * n - n)
        out.append(("AdAlign against AdAlign of another seed, reward per step of each", cross,
                    "no target (the paper reports self-play)", None))
    if env == "coin_game":
        ad_vs_aa = float(col[aa, ad])
        out.append(("Always Defect vs AdAlign / vs Always Cooperate (exploitation ratio)",
                    ad_vs_aa / ad_vs_ac if ad_vs_ac > 0 else float("nan"), "<= 0.5 (not exploited)",
                    ad_vs_ac > 0 and ad_vs_aa <= 0.5 * ad_vs_ac))
        aa_vs_ac, ac_vs_aa = float(row[aa, ac]), float(col[aa, ac])
        out.append(("AdAlign vs Always Cooperate: AdAlign / Always Cooperate", aa_vs_ac,
                    f"both > 0 (AC gets {ac_vs_aa:.3f}; paper 0.45 / 0.09)", aa_vs_ac > 0 and ac_vs_aa > 0))
        return out
    # Negotiation: Always Defect bids 5 on every item, so it keeps at least half of every item
    # whatever the other does; its floor is mutual defection (0.30), not 0. Exploitation is
    # its gain over that floor as a share of its gain against Always Cooperate.
    ad_vs_ad = float(col[ad, ad])
    aa_exploit, sr_exploit = (exploitation(float(col[i[name], ad]), ad_vs_ad, ad_vs_ac) for name in ("adalign", "ppo_sr"))
    sr_self = self_play("ppo_sr")
    out += [("Always Defect's gain over mutual defection against AdAlign / against Always Cooperate "
             "(exploitation)", aa_exploit, "<= 0.5 (not exploited)", aa_exploit <= 0.5),
            ("PPO self-play (each seed against itself), reward per step of each", ppo_self,
             "within 0.05 of 0.30 (paper about 0.30)", abs(ppo_self - 0.30) <= 0.05),
            ("PPO-SR self-play (each seed against itself), reward per step of each", sr_self,
             ">= 0.4 (paper about 0.5)", sr_self >= 0.4),
            ("Always Defect's gain over mutual defection against PPO-SR / against Always Cooperate "
             "(exploitation)", sr_exploit, ">= 0.5 (exploited)", sr_exploit >= 0.5)]
    return out


def main(argv: list[str] | None = None) -> dict:
    description, _, epilog = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="coin_game", choices=tuple(DEFAULTS))
    ap.add_argument("--seeds", type=int, default=3, help="seeds of each trained player (the paper: 10)")
    ap.add_argument("--adalign-iterations", type=int, default=None, help="AdAlign updates per seed")
    ap.add_argument("--ppo-iterations", type=int, default=None, help="PPO and PPO-SR updates per seed")
    ap.add_argument("--batch-size", type=int, default=None, help="AdAlign games per update (default: per game)")
    ap.add_argument("--ppo-batch-size", type=int, default=None, help="PPO and PPO-SR games per update")
    ap.add_argument("--episodes", type=int, default=32, help="league games per pair of instances")
    ap.add_argument("--paper-preset", action="store_true",
                    help="train AdAlign from the paper's preset even where a CPU preset exists "
                    "(trainers.algorithms.adalign.FAST_PRESETS)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=None, help="default runs/reproduce/ENV")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 is far faster when other jobs share the cores)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="training runs at once, each in its own process on one torch thread (default 1: one at a "
                    "time, in this process); 2 on a 2-core CPU halves the wall-clock time")
    ap.add_argument("--published", type=Path, default=None,
                    help="Coin Game: the published agents' folder (../shared/published_league, or a clone's "
                    "league/checkpoints); they join the league")
    ap.add_argument("--ray", action="store_true",
                    help="train as Ray Tune trials and play the league as Ray tasks on this machine (--jobs CPUs "
                    "when above 1, else all of them; Ray's logs in OUT/ray_tmp)")
    ap.add_argument("--address", default=None,
                    help="as --ray, on the Ray cluster at HOST:PORT (ray start --head prints it)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    published: list[str] = []
    if args.published is not None:
        if args.env != "coin_game":
            ap.error(f"--published holds Coin Game agents; it cannot join the {args.env} league")
        try:
            published = published_players(args.published, prefix=PUBLISHED_PREFIX)
        except FileNotFoundError as e:
            ap.error(str(e))
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    d = DEFAULTS[args.env]
    out = args.out or Path("runs/reproduce") / args.env
    aa_its = args.adalign_iterations or d["adalign_iterations"]
    ppo_its = args.ppo_iterations or d["ppo_iterations"]
    batch = args.batch_size or d["batch"]
    ppo_batch = args.ppo_batch_size or d["ppo_batch"]
    progress = not args.no_progress
    fast = args.env in FAST_PRESETS and not args.paper_preset
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    jobs: list[tuple[str, int, Path, Config]] = []
    for seed in range(args.seeds):
        extra = {"num_games": batch} if batch else {}
        runs = [("adalign", make_config(args.env, "adalign", fast=fast, seed=seed, iterations=aa_its,
                                        device=args.device, save_every=50, **extra))]
        for algo, name in (("ppo", "ppo"), ("ppo_shared_reward", "ppo_sr")):
            runs.append((name, make_config(args.env, algo, seed=seed, iterations=ppo_its, num_games=ppo_batch,
                                           device="cpu", save_every=50, **d["ppo"])))
        for name, cfg in runs:
            run = out / f"{name}-s{seed}"
            if finished(run, TRAINED[name], cfg):
                print(f"reusing {run}")
            else:
                jobs.append((name, seed, run, cfg))
    jobs.sort(key=lambda job: job[0] != "adalign")  # the longest runs first
    players = [*(f"{name}={out}/{name}-s*/{artefact}" for name, artefact in TRAINED.items()), *published,
               *SCRIPTED[args.env]]
    league_kwargs = dict(seeds=args.seeds, episodes=args.episodes, progress=progress,
                         env_kwargs={"max_steps": d["league_steps"]})
    result = train_and_play(ap, args, args.env, jobs, players, out, league_kwargs)
    print(format_table(result))
    same = self_play_by_seed(args.env, out, args.seeds, args.episodes, d["league_steps"])
    write_self_play(out, same)
    checks = targets(args.env, result, same)
    with (out / "targets.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["what", "measured", "wanted", "holds"])
        for what, value, wanted, holds in checks:
            w.writerow([what, f"{value:.3f}", wanted, "" if holds is None else ("yes" if holds else "no")])
    for what, value, wanted, holds in checks:
        verdict = "" if holds is None else ("  [met]" if holds else "  [not met]")
        print(f"{what}: {value:.3f}  (target: {wanted}){verdict}")
    written = "league.csv, league.png, league.json, self_play.csv, targets.csv and times.csv"
    if published:
        rows = versus_published(result)
        with (out / "versus_published.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows)
        for r in rows:
            print(f"{r['ours']} vs published {r['theirs']} ({r['first_seat']} first): ours {r['ours_reward']:.3f} "
                  f"(std {r['ours_std']:.3f}), theirs {r['theirs_reward']:.3f} (std {r['theirs_std']:.3f})")
        written = "league.csv, league.png, league.json, self_play.csv, targets.csv, versus_published.csv and times.csv"
    print(f"wrote {out}/{written}")
    return {"result": result, "targets": checks, "all_met": all(h for *_, h in checks if h is not None)}


if __name__ == "__main__":
    main()
