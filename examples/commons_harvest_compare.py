"""Commons Harvest Open: Proximal AdAlign against PPO and shared-reward PPO (PPO-SR).

Trains the three learners in self-play (one network for the 7 players) on Commons Harvest
Open, each through ``trainers.train``: Proximal AdAlign
(``trainers.algorithms.proximal_adalign``, the CNN + GTrXL or GRU of SPEC 7)
and Stable-Baselines3's PPO and PPO-SR (``trainers.algorithms.ppo``, a Nature-CNN policy
without memory; PPO-SR gives every player the sum of the 7 rewards). Then each trained
agent plays all 7 seats for ``--episodes`` episodes, uniform random play as the
reference, and every step records the per-capita return so far (the players' mean
return), the apples on the map and the patches ("bushes") still holding an apple
(``social_dilemmas.commons_harvest.count_apples``; a patch with no apple left never
regrows). It writes under ``OUT``:

* ``proximal_adalign/``, ``ppo/``, ``ppo_sr/``: the runs (config, metrics, checkpoint; the
  PPO runs' ``model.zip`` is the player evaluated);
* ``compare.csv``: per player, the per-capita return of an episode, the apples and
  patches alive at its end, the mean apples and patches alive over it, training time;
* ``steps.csv``: the same per step (means over the episodes);
* ``apples.png``: apples and patches alive and the per-capita return over the episode;
* ``proximal_adalign.mp4``, ``ppo.mp4``, ``ppo_sr.mp4``, ``random.mp4``: the first
  evaluation episode of each;
* ``scenarios.csv``: Melting Pot's scenario scores (``commons_harvest__open_0``/``_1``,
  5 focal copies against the background bots) when the asset archive with the bots is
  installed; otherwise one line says why they are skipped.

    python examples/commons_harvest_compare.py                       # a few minutes on a CPU
    python examples/commons_harvest_compare.py --players fast=runs/ch-fast/checkpoint.pt --episodes 3 \\
        --resize 44 --out runs/ch-fast-eval                            # a saved player against random play
    python examples/commons_harvest_compare.py --iterations 2000 --network-arch gtrxl \\
        --network-width 192 --resize 88 --batch-size 6 --lr 1e-5 --out runs/ch-compare-long

With ``--players NAME=PATH ...`` nothing is trained: the saved players given (a trainer's
``checkpoint.pt``, an SB3 ``model.zip``, anything ``resolve_commons_harvest_player`` takes)
are evaluated the same way beside random play, their training time read from their run
folder when it is known (its ``metrics.csv``); ``--resize`` must be the view they were
trained on.

Runs that already finished in ``OUT`` with the same settings are reused; a run with the
same settings and fewer updates is continued (so a budget can be raised step by step);
delete a run's folder to retrain it. Runs saved by the first trainers (a flat
``config.json``) cannot be continued and are trained again. The defaults are a CPU-sized
budget: far too small for the agents to learn the restraint the paper reports (24 h on a
GPU).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from trainers.metrics import read_metrics, updates_done

#: the learners: name -> (trainer's algo, what the run saves)
ALGOS = {"proximal_adalign": ("proximal_adalign", "checkpoint.pt"), "ppo": ("ppo", "model.zip"),
         "ppo_sr": ("ppo_shared_reward", "model.zip")}
LABELS = {"proximal_adalign": "Proximal AdAlign", "ppo": "PPO", "ppo_sr": "PPO-SR", "random": "random"}
COLOURS = {"proximal_adalign": "tab:blue", "ppo": "tab:orange", "ppo_sr": "tab:green", "random": "0.45"}
SCENARIOS = ("commons_harvest__open_0", "commons_harvest__open_1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description, _, epilog = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=40,
                    help="updates of each learner (each: --chunk steps of --batch-size games of 7 players)")
    ap.add_argument("--network-arch", default="gru", choices=("gtrxl", "transformer", "gru"),
                    help="Proximal AdAlign's memory after the CNN (the PPO baselines have none): gtrxl (GTrXL with "
                         "memory, the trainer's default), transformer (the recomputed window) or gru")
    ap.add_argument("--network-width", type=int, default=64,
                    help="Proximal AdAlign's width (CNN output, memory, heads); the PPO heads' width")
    ap.add_argument("--max-steps", type=int, default=1000, help="episode length, in training and evaluation")
    ap.add_argument("--resize", type=int, default=44,
                    help="side of the players' square RGB view (88: Melting Pot's own; at least 36 for the CNNs)")
    ap.add_argument("--batch-size", type=int, default=2, help="games per update (one worker process each)")
    ap.add_argument("--chunk", type=int, default=15, help="rollout steps per update (the preset's 15)")
    ap.add_argument("--lr", type=float, default=None,
                    help="learning rate of every learner (default: the preset's 1e-5, the paper's)")
    ap.add_argument("--episodes", type=int, default=1, help="evaluation episodes of each player")
    ap.add_argument("--scenario-episodes", type=int, default=1, help="episodes of each Melting Pot scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (the small networks gain little from more; a busy CPU loses a lot)")
    ap.add_argument("--fps", type=float, default=8, help="frames per second of the videos")
    ap.add_argument("--out", type=Path, default=Path("runs/examples/commons_harvest_compare"))
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--players", nargs="+", default=None, metavar="NAME=PATH",
                    help="evaluate these saved players (a checkpoint.pt or model.zip each) beside random play "
                         "instead of training the three learners")
    args = ap.parse_args(argv)
    try:
        args.players = saved_players(args.players) if args.players else None
    except ValueError as e:
        ap.error(str(e))
    for name in ("iterations", "network_width", "max_steps", "batch_size", "chunk", "episodes", "scenario_episodes",
                 "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.chunk > args.max_steps:
        ap.error(f"--chunk must be at most --max-steps = {args.max_steps} (rollouts are parts of an episode), "
                 f"got {args.chunk}")
    if args.resize < 36:
        ap.error(f"--resize must be at least 36 (the Nature CNN's smallest input), got {args.resize}")
    if args.lr is not None and not args.lr > 0:
        ap.error(f"--lr must be positive, got {args.lr}")
    return args


# -- training -------------------------------------------------------------------------------------
def saved_players(specs: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` specs as ``{name: path}``, checked: each path exists, names are unique
    and not ``random`` (the reference every evaluation plays)."""
    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--players {spec!r} is invalid: expected NAME=PATH (e.g. fast=runs/ch-fast/checkpoint.pt)")
        if name == "random" or name in out:
            raise ValueError(f"--players {spec!r}: the name {name!r} is " +
                             ("reserved for random play" if name == "random" else "given twice"))
        if not Path(path).is_file():
            raise ValueError(f"--players {spec!r}: the file {path} does not exist")
        out[name] = Path(path)
    return out


def label(name: str) -> str:
    """The display name of a player (the learners' and random play's, else the name given)."""
    return LABELS.get(name, name)


def config(args: argparse.Namespace, algo: str):
    """The training configuration of one learner: ``--max-steps`` is the episode length,
    ``--chunk`` the steps of every game per update (``rollout_steps``), ``--network-width``
    the networks' width (``hidden``)."""
    from trainers.presets import make_config

    run = dict(seed=args.seed, iterations=args.iterations, num_games=args.batch_size, max_steps=args.max_steps,
               rollout_steps=args.chunk, device="cpu", env_kwargs={"resize": args.resize}, tensorboard=False,
               save_every=50, hidden=args.network_width)
    if algo == "proximal_adalign":
        lr = {} if args.lr is None else {"actor_lr": args.lr, "critic_lr": args.lr}
        heads = {"vision_heads": 4 if args.network_width % 4 == 0 else 1} if args.network_arch != "gru" else {}
        return make_config("commons_harvest_open", algo, vision_memory=args.network_arch, **run, **lr, **heads)
    lr = {} if args.lr is None else {"lr": args.lr}
    return make_config("commons_harvest_open", algo, **run, **lr)


def saved_config(run: Path):
    """The configuration saved in ``run`` (None when there is none, or when it is not of this
    version's layout: a run of the first trainers cannot be continued)."""
    from trainers.config import CONFIG_FORMAT
    from trainers.presets import config_from_dict

    path = run / "config.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
            return None
        return config_from_dict(data, where=str(path))
    except (ValueError, KeyError, TypeError):
        return None


def same_settings(saved, cfg) -> bool:
    """Whether ``saved`` is ``cfg`` apart from the number of updates (compared as JSON)."""
    if saved is None:
        return False
    saved.run.iterations = cfg.run.iterations
    return json.loads(saved.to_json()) == json.loads(cfg.to_json())


def train(name: str, args: argparse.Namespace, out: Path) -> tuple[Path, str]:
    """Trains (or reuses, or continues) one learner; returns its saved player and what was done."""
    from trainers import train as train_run

    algo, artefact = ALGOS[name]
    cfg, run = config(args, algo), out / name
    saved, done = None, 0
    if (run / artefact).exists() and (run / "checkpoint.pt").exists():
        saved, done = saved_config(run), updates_done(run)
    same = same_settings(saved, cfg)
    if same and done == cfg.run.iterations:
        return run / artefact, "reused"
    resume = same and 0 < done < cfg.run.iterations
    start = time.perf_counter()
    progress = not args.no_progress
    if resume:
        train_run(out=run, resume=True, iterations=cfg.run.iterations, progress=progress)
    else:
        train_run(cfg, run, progress=progress)
    seconds = time.perf_counter() - start
    with (run / "train_seconds.txt").open("a" if resume else "w") as f:
        f.write(f"{seconds:.1f}\n")
    how = f"continued from update {done}" if resume else "trained"
    return run / artefact, f"{how} in {seconds:.0f} s"


def train_seconds(run: Path) -> float:
    """Seconds spent training the run, over every invocation (nan when unknown)."""
    path = run / "train_seconds.txt"
    if not path.exists():
        return float("nan")
    return sum(float(x) for x in path.read_text().split())


def training_of(name: str, player: Path | None, out: Path, given: bool) -> dict[str, float]:
    """``train_updates`` and ``train_seconds`` of a row: a learner's run in ``out``; for a
    saved player given with ``--players``, its run folder's ``metrics.csv`` when it has one
    (updates logged and the sum of their ``time/iteration_s``: exact with the default
    ``log_every`` 1), else nan; 0 for random play."""
    if name == "random":
        return {"train_updates": 0, "train_seconds": 0.0}
    if not given:
        return {"train_updates": updates_done(out / name), "train_seconds": train_seconds(out / name)}
    _, logged = read_metrics(player.parent / "metrics.csv", upto=2**62)
    if not logged:
        return {"train_updates": float("nan"), "train_seconds": float("nan")}
    seconds = sum(float(r.get("time/iteration_s") or "nan") for r in logged)  # every invocation's updates
    return {"train_updates": int(logged[-1]["iteration"]), "train_seconds": seconds}


# -- evaluation -----------------------------------------------------------------------------------
def play(player, args: argparse.Namespace, video: Path | None, desc: str):
    """``player`` in all 7 seats for ``args.episodes`` episodes: the
    :class:`~social_dilemmas.commons_harvest.SelfPlayResult` of
    :func:`~social_dilemmas.commons_harvest.self_play`; the first episode filmed to ``video``."""
    from tqdm.auto import tqdm

    import renderers
    from renderers.video import VideoWriter
    from social_dilemmas.commons_harvest import self_play

    writer = VideoWriter(video, fps=args.fps) if video is not None else None
    bar = tqdm(total=args.episodes * args.max_steps, desc=desc, unit="step", disable=args.no_progress,
               dynamic_ncols=True)

    def film(episode: int, frame) -> None:
        if episode == 0:
            writer.append(renderers.render(frame))

    try:
        return self_play(player, episodes=args.episodes, max_steps=args.max_steps, resize=args.resize,
                        seed=args.seed, on_frame=film if writer is not None else None, on_step=lambda: bar.update(1))
    finally:
        bar.close()
        if writer is not None:
            writer.close()


def scenario_scores(players: dict[str, Path], args: argparse.Namespace) -> list[dict] | str:
    """Melting Pot's scenario scores of each player, or the reason they are skipped."""
    from social_dilemmas.commons_harvest import MeltingPotAssetsMissing, evaluate_scenario

    rows = []
    for name, path in players.items():
        for scenario in SCENARIOS:
            try:
                r = evaluate_scenario(str(path), scenario, episodes=args.scenario_episodes, seed=args.seed,
                                      resize=args.resize)
            except MeltingPotAssetsMissing as e:
                return str(e)
            rows.append({"player": name, "scenario": scenario, "episodes": r.episodes,
                         "focal_per_capita_return": r.focal_per_capita_return,
                         "normalised_score": r.normalised_score})
            print(f"  {label(name):<17} {scenario}: focal per-capita return {r.focal_per_capita_return:.2f}, "
                  f"normalised score {r.normalised_score:.3f}")
    return rows


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    any_result = next(iter(results.values()))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = (("apples", f"apples on the map (of {int(any_result.spawn_points)})"),
              ("patches_alive", f"patches alive (of {int(any_result.patches)})"),
              ("per_capita_return", "per-capita return so far"))
    steps = np.arange(1, args.max_steps + 1)
    for ax, (key, title) in zip(axes, panels):
        for name, res in results.items():
            ax.plot(steps, getattr(res, key).mean(0), label=label(name), color=COLOURS.get(name),
                    linestyle="--" if name == "random" else "-", linewidth=1.6)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].set_ylim(bottom=0, top=int(any_result.patches) + 0.5)
    axes[0].set_ylim(0, int(any_result.spawn_points) * 1.04)
    axes[0].legend(loc="lower left")
    episodes = f"mean of {args.episodes} episodes" if args.episodes > 1 else "one episode"
    fig.suptitle(f"Commons Harvest Open, self-play of each agent in all 7 seats ({episodes}; "
                 + ("saved players)" if args.players else f"{args.iterations} updates of training)"))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from social_dilemmas.commons_harvest import import_meltingpot

    import_meltingpot()  # a clear ImportError saying how to install Melting Pot when it is absent
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    players: dict[str, Path] = {}
    if args.players:
        players = dict(args.players)
    else:
        for name in ALGOS:
            players[name], how = train(name, args, out)
            print(f"{LABELS[name]}: {how} ({players[name]})", flush=True)

    results = {}
    for name, player in [*players.items(), ("random", "random")]:
        results[name] = play(player, args, out / f"{name}.mp4", desc=f"self-play {label(name)}")

    rows = []
    for name, res in results.items():
        rows.append({"player": name, "episodes": args.episodes, "steps": args.max_steps,
                     **res.summary(),
                     **training_of(name, players.get(name), out, bool(args.players))})
    with (out / "compare.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    with (out / "steps.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["player", "step", "per_capita_return", "apples", "patches_alive"])
        for name, res in results.items():
            means = [getattr(res, k).mean(0) for k in ("per_capita_return", "apples", "patches_alive")]
            w.writerows([name, t + 1, *(f"{m[t]:.4g}" for m in means)] for t in range(args.max_steps))
    plot(results, args, out / "apples.png")

    total = results["random"].spawn_points
    print(f"\nself-play in all 7 seats, {args.episodes} episode(s) of {args.max_steps} steps "
          f"({total} apple spawn points in {results['random'].patches} patches at the start):")
    print(f"  {'player':<17} {'per-capita return':>17} {'final apples':>12} {'final patches':>13} "
          f"{'mean apples':>11} {'train (s)':>9}")
    for r in rows:
        secs = "" if math.isnan(r["train_seconds"]) or r["player"] == "random" else f"{r['train_seconds']:.0f}"
        print(f"  {label(r['player']):<17} {r['per_capita_return']:>17.2f} {r['final_apples']:>12.1f} "
              f"{r['final_patches_alive']:>13.1f} {r['mean_apples']:>11.1f} {secs:>9}")

    scores = scenario_scores(players, args)
    if isinstance(scores, str):
        print(f"scenario scores skipped: {scores}")
    else:
        with (out / "scenarios.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(scores[0]))
            w.writeheader()
            w.writerows(scores)
    written = ["compare.csv", "steps.csv", "apples.png", *(f"{n}.mp4" for n in results)]
    if not isinstance(scores, str):
        written.append("scenarios.csv")
    print(f"wrote {', '.join(str(out / n) for n in written)}")
    return {"rows": rows, "results": results, "scenarios": scores}


if __name__ == "__main__":
    main()
