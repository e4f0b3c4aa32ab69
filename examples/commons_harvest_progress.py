"""Commons Harvest Open over training: what the agent does to the commons, update by update.

Reads the ``eval/`` columns that ``python -m trainers train --env commons_harvest_open
--eval-every N`` writes to each run's ``metrics.csv`` (the agent in all 7 seats on the same
seeded episodes at every evaluation: :func:`trainers.evaluation.commons_harvest.harvest_evaluation`),
plays uniform random play on those same episodes as the reference, and writes under ``OUT``:

* ``progress.png``: per-capita return, patches ("bushes") alive at the end of the episode
  and patches alive averaged over it, against the training update, one line per run and
  random play dashed;
* ``progress.csv``: the evaluations of every run, and random play's.

It prints the evaluations too, with each one's gain over random play. The goal the issue
sets for a CPU preset: more apples per capita than random play **and** patches kept alive
longer. An agent that has learned to harvest but not to spare the bushes shows the first
rising and the second falling.

    python -m trainers train --env commons_harvest_open --fast --eval-every 250 --eval-games 2 --out runs/ch/base
    python examples/commons_harvest_progress.py runs/ch/base [runs/ch/other ...] --out runs/ch/progress

The runs must share the evaluation's settings (``eval_games``, ``max_steps``, the view in
``env_kwargs``, ``seed``): random play is played once, on their episodes.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from trainers.metrics import read_metrics

#: the columns of an evaluation (``eval/<name>``) and their titles
KEYS = {"per_capita_return": "per-capita return of an episode", "final_patches_alive": "patches alive at the end",
        "mean_patches_alive": "patches alive, mean over the episode"}
#: the run settings that decide which episodes an evaluation plays
EVAL_SETTINGS = ("eval_games", "max_steps", "env_kwargs", "seed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    description, _, epilog = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders of commons_harvest_open trained with --eval-every")
    ap.add_argument("--out", type=Path, default=Path("runs/examples/commons_harvest_progress"))
    return ap.parse_args(argv)


def load_run(run: Path) -> tuple[dict, list[dict[str, float]]]:
    """A run's saved run settings and its evaluations (``iteration`` and the ``eval/`` values)."""
    config_path = run / "config.json"
    if not config_path.is_file():
        raise SystemExit(f"{run} is not a run folder: {config_path} does not exist")
    try:
        settings = json.loads(config_path.read_text())["run"]
    except (ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{config_path} is not a trainer's config.json ({type(e).__name__}: {e})") from None
    if settings.get("env") != "commons_harvest_open":
        raise SystemExit(f"{run} trained {settings.get('env')!r}, not commons_harvest_open")
    _, rows = read_metrics(run / "metrics.csv", upto=2**62)
    evals = [{"iteration": int(r["iteration"]), **{k: float(r[f"eval/{k}"]) for k in KEYS}}
             for r in rows if r.get(f"eval/{next(iter(KEYS))}") not in (None, "")]
    if not evals:
        raise SystemExit(f"{run / 'metrics.csv'} has no evaluations: train with --eval-every N")
    return settings, evals


def plot(curves: dict[str, list[dict[str, float]]], reference: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KEYS), figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, KEYS.items()):
        for name, evals in curves.items():
            ax.plot([e["iteration"] for e in evals], [e[key] for e in evals], marker="o", markersize=3, label=name)
        ax.axhline(reference[key], color="0.45", linestyle="--", label="random play")
        ax.set_title(title)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    axes[1].set_ylim(0, 6.3)
    axes[2].set_ylim(0, 6.3)
    axes[0].legend(loc="best")
    fig.suptitle("Commons Harvest Open: the agent in all 7 seats, evaluated during training")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from social_dilemmas.commons_harvest import self_play

    curves, settings = {}, None
    for run in args.runs:
        these, evals = load_run(run)
        mine = {k: these.get(k) for k in EVAL_SETTINGS}
        if settings is not None and mine != settings:
            raise SystemExit(f"{run} evaluated on other episodes ({mine}) than {args.runs[0]} ({settings})")
        settings, curves[run.name] = mine, evals
    played = self_play("random", episodes=settings["eval_games"], max_steps=settings["max_steps"],
                       seed=settings["seed"], **settings["env_kwargs"])
    reference = played.summary()
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "progress.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["run", "iteration", *KEYS])
        for name, evals in curves.items():
            w.writerows([name, e["iteration"], *(f"{e[k]:.4g}" for k in KEYS)] for e in evals)
        w.writerow(["random", 0, *(f"{reference[k]:.4g}" for k in KEYS)])
    plot(curves, reference, args.out / "progress.png")
    print(f"{settings['eval_games']} episode(s) of {settings['max_steps']} steps per evaluation; random play: "
          + ", ".join(f"{k} {reference[k]:.2f}" for k in KEYS))
    for name, evals in curves.items():
        print(f"{name}:")
        for e in evals:
            print(f"  update {e['iteration']:>6}: " + ", ".join(f"{k} {e[k]:.2f} ({e[k] - reference[k]:+.2f})"
                                                            for k in KEYS))
    print(f"wrote {args.out / 'progress.png'}, {args.out / 'progress.csv'}")
    return {"curves": curves, "random": reference}


if __name__ == "__main__":
    main()
