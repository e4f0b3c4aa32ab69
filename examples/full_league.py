"""The paper's full Coin Game league (Fig. 7): every opponent-shaping method, the sign ablations, the scripted players.

Trains, for every seed, each player of the league through ``trainers.train`` and plays
every player against every player with ``trainers.evaluation.league`` (16-step games,
``--episodes`` games per pair of seeds, the paper's protocol):

* ``adalign``: Advantage Alignment from the Coin Game's CPU preset (as
  ``examples/reproduce_league.py`` trains it; ``--adalign-from DIR`` plays the runs of an
  earlier reproduction instead of training them again);
* the sign ablations of the alignment term (paper Fig. 7 and Fig. 1a): ``adalign_ce``,
  ``adalign_e``, ``adalign_s``, ``adalign_v``, ``adalign_vs`` mask the cooperative (C),
  empathetic (E), spiteful (S) and vengeful (V) cases, i.e. keep the others
  (``--sign-masks``, :data:`ABLATIONS`); otherwise AdAlign's preset and budget;
* ``loqa``, ``pola``, ``mfos``: the other opponent-shaping methods of the registry, from their
  Coin Game CPU preset where there is one (LOQA's, POLA's and M-FOS's ``--fast``), else their paper preset, with
  the budgets of :data:`BUDGETS` (those not registered in this
  installation, or that cannot train on the Coin Game, are left out, with the reason);
* ``always_cooperate``, ``always_defect``, ``random``; with ``--published DIR`` the
  authors' published AdAlign, AdAlign-NB, LOQA and POLA agents (:mod:`trainers.published`).

It writes under ``OUT``: the runs (``NAME-sK/``), ``league.csv`` / ``league.png`` (heatmap)
/ ``league.json``, ``self_play.csv`` (each trained seed against itself), ``times.csv`` (the
training time of every run) and ``league.md``: the table of every cell (row player's reward
/ column player's) with each trained player's training time per seed.

    python examples/full_league.py --seeds 10 --jobs 2 --published ../shared/published_league
    python examples/full_league.py --seeds 2 --players adalign_ce adalign_vs loqa --adalign-from runs/reproduce/coin_game
    python examples/full_league.py --seeds 10 --address HEAD_IP:6379 --out /shared/full_league   # on a Ray cluster

With ``--ray`` (Ray on this machine) or ``--address`` (a Ray cluster; ``OUT`` on a file
system every node shares) the runs are the trials of a sweep
(:func:`trainers.ray_runner.run_tune_trials`: a run whose worker dies continues from its
last checkpoint) and the league's cells are Ray tasks; without them, ``--jobs`` worker
processes of this machine (no Ray needed).

Finished runs in ``OUT`` with the same settings are reused, so the reproduction can be
stopped and started again; ``--league-only`` plays the runs in ``OUT`` as they are (trained
with other settings or by an earlier version) without training anything. The paper's Fig. 7 cannot be compared cell by cell: its matrix
is an image whose text in ``../shared/papers`` is scrambled (see the README).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import social_dilemmas
from trainers import algorithms
from trainers.config import Config
from trainers.evaluation.league import LeagueResult, format_table, same_seed_self_play
from trainers.losses import SIGN_CASES
from trainers.presets import make_config
from trainers.published import published_players

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduce_league import PUBLISHED_PREFIX, finished, train_and_play, write_self_play  # noqa: E402

#: The ablations of Fig. 7: the sign cases each one masks (removes) from the alignment term.
ABLATIONS: dict[str, tuple[str, ...]] = {
    "adalign_ce": ("cooperative", "empathetic"),
    "adalign_e": ("empathetic",),
    "adalign_s": ("spiteful",),
    "adalign_v": ("vengeful",),
    "adalign_vs": ("vengeful", "spiteful"),
}
#: Updates per seed of each trained player on a 2-core CPU (the command line overrides them).
#: AdAlign and its ablations: the Coin Game CPU preset's 2000 (examples/reproduce_league.py); LOQA: its
#: ``--fast`` preset's 1000; M-FOS: its ``--fast`` preset's 150 meta-episodes (32 games each against a fresh
#: naive PPO learner).
BUDGETS: dict[str, int] = {"adalign": 2000, "loqa": 1000, "pola": 100, "mfos": 150}
#: The registry's algorithm of each trained player that is not an AdAlign variant.
OTHERS = {"loqa": "loqa", "pola": "pola", "mfos": "mfos"}
SCRIPTED = ["always_cooperate", "always_defect", "random"]
#: Steps of a league game (the authors' 2024 league protocol; their 2023 one used 50).
LEAGUE_STEPS = 16


def kept_cases(masked: tuple[str, ...]) -> list[str]:
    """The sign cases an ablation keeps (``--sign-masks`` names the cases kept)."""
    return [c for c in SIGN_CASES if c not in masked]


def player_config(name: str, seed: int, iterations: int, device: str) -> Config:
    """The training configuration of the league's player ``name`` for ``seed``."""
    if name == "adalign" or name in ABLATIONS:
        extra = {"sign_masks": kept_cases(ABLATIONS[name])} if name in ABLATIONS else {}
        return make_config("coin_game", "adalign", fast=True, seed=seed, iterations=iterations, device=device,
                           save_every=50, **extra)
    algo = OTHERS[name]
    fast = "coin_game" in algorithms.get(algo).fast_presets  # the CPU preset where there is one (LOQA, POLA, M-FOS)
    return make_config("coin_game", algo, fast=fast, seed=seed, iterations=iterations, device=device, save_every=50)


def available_players(wanted: list[str] | None) -> list[str]:
    """The trained players of the league: ``wanted`` (checked) or every one whose algorithm is registered."""
    every = ["adalign", *ABLATIONS, *OTHERS]
    if wanted:
        bad = [p for p in wanted if p not in every]
        if bad:
            raise ValueError(f"--players {bad} is invalid: allowed values are {every}")
    registered = set(algorithms.names())
    out = []
    for name in wanted or every:
        if OTHERS.get(name, "adalign") not in registered:
            print(f"leaving out {name}: algorithm {OTHERS[name]!r} is not registered here", flush=True)
            continue
        try:
            player_config(name, 0, 1, "cpu")
        except ValueError as e:  # an algorithm that does not train on the Coin Game
            print(f"leaving out {name}: {e}", flush=True)
            continue
        out.append(name)
    return out


def league_table(res: LeagueResult, times: dict[str, list[float]]) -> str:
    """Markdown: every cell ``row / column`` reward per step, and the training time of each trained player."""
    head = "| row \\ column | " + " | ".join(res.names) + " | training time per seed |"
    lines = [head, "|" + "---|" * (len(res.names) + 2)]
    for r, name in enumerate(res.names):
        cells = [f"{res.row_reward[r, c]:.2f} / {res.col_reward[r, c]:.2f}" for c in range(len(res.names))]
        t = times.get(name)
        when = f"{sum(t) / len(t) / 60:.1f} min (mean of {len(t)})" if t else ""
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {when} |")
    return "\n".join(lines)


def read_times(path: Path) -> dict[str, list[float]]:
    """``times.csv`` as ``{player: [seconds of each run]}`` (empty if there is none)."""
    if not path.exists():
        return {}
    out: dict[str, list[float]] = {}
    with path.open() as f:
        for row in csv.DictReader(f):
            out.setdefault(row["player"], []).append(float(row["train_seconds"]))
    return out


def main(argv: list[str] | None = None) -> dict:
    description, _, epilog = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds of each trained player (the paper: 10)")
    ap.add_argument("--players", nargs="+", default=None,
                    help=f"trained players to include (default: every registered one of {['adalign', *ABLATIONS, *OTHERS]})")
    for name, its in BUDGETS.items():
        ap.add_argument(f"--{name}-iterations", type=int, default=its,
                        help=f"updates per seed of {name}" + (" and its ablations" if name == "adalign" else ""))
    ap.add_argument("--adalign-from", type=Path, default=None,
                    help="play the AdAlign runs of an earlier reproduction (DIR/adalign-sK/checkpoint.pt) "
                    "instead of training them")
    ap.add_argument("--episodes", type=int, default=32, help="league games per pair of seeds")
    ap.add_argument("--published", type=Path, default=None,
                    help="the published agents' folder (../shared/published_league); they join the league")
    ap.add_argument("--jobs", type=int, default=1, help="training runs at once, each in its own process")
    ap.add_argument("--ray", action="store_true",
                    help="train as Ray Tune trials and play the league as Ray tasks on this machine (--jobs CPUs "
                    "when above 1, else all of them; Ray's logs in OUT/ray_tmp)")
    ap.add_argument("--address", default=None, help="as --ray, on the Ray cluster at HOST:PORT")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads of this process")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=Path("runs/reproduce/full_league"))
    ap.add_argument("--league-only", action="store_true",
                    help="train nothing: play the league with the runs already in OUT (NAME-sK/checkpoint.pt), "
                    "whatever settings they were trained with")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    for flag, value in (("--seeds", args.seeds), ("--jobs", args.jobs), ("--episodes", args.episodes),
                        *((f"--{n}-iterations", getattr(args, f"{n}_iterations")) for n in BUDGETS)):
        if value < 1:
            ap.error(f"{flag} must be >= 1, got {value}")
    try:
        names = available_players(args.players)
        published = published_players(args.published, prefix=PUBLISHED_PREFIX) if args.published else []
    except (ValueError, FileNotFoundError) as e:
        ap.error(str(e))
    if args.adalign_from is not None and "adalign" in names:
        missing = [s for s in range(args.seeds) if not (args.adalign_from / f"adalign-s{s}" / "checkpoint.pt").exists()]
        if missing:
            ap.error(f"--adalign-from {args.adalign_from}: no adalign-sK/checkpoint.pt for seeds {missing}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(max(1, args.threads))
    out, progress = args.out, not args.no_progress
    jobs: list[tuple[str, int, Path, Config]] = []
    for seed in range(args.seeds):
        for name in names:
            if args.league_only:
                run = (args.adalign_from if name == "adalign" and args.adalign_from else out) / f"{name}-s{seed}"
                if not (run / "checkpoint.pt").exists():
                    ap.error(f"--league-only: {run}/checkpoint.pt does not exist (train it first)")
                continue
            if name == "adalign" and args.adalign_from is not None:
                continue
            budget = getattr(args, f"{name if name in BUDGETS else 'adalign'}_iterations")
            cfg = player_config(name, seed, budget, args.device)
            run = out / f"{name}-s{seed}"
            if finished(run, "checkpoint.pt", cfg):
                print(f"reusing {run}")
            else:
                jobs.append((name, seed, run, cfg))
    where = {n: (args.adalign_from if n == "adalign" and args.adalign_from is not None else out) for n in names}
    trained = [f"{n}={where[n]}/{n}-s*/checkpoint.pt" for n in names]
    players = [*trained, *published, *SCRIPTED]
    league_kwargs = dict(seeds=args.seeds, episodes=args.episodes, progress=progress,
                         env_kwargs={"max_steps": LEAGUE_STEPS})
    result = train_and_play(ap, args, "coin_game", jobs, players, out, league_kwargs)
    print(format_table(result))
    game = social_dilemmas.make_game("coin_game", max_steps=LEAGUE_STEPS)
    same = {n: same_seed_self_play(game, spec, args.seeds, args.episodes) for n, spec in zip(names, trained)}
    write_self_play(out, same)
    spent = read_times(out / "times.csv")
    if args.adalign_from is not None:
        spent["adalign"] = read_times(args.adalign_from / "times.csv").get("adalign", [])
    table = league_table(result, spent)
    (out / "league.md").write_text(table + "\n")
    print(f"wrote {out}/league.csv, league.png, league.json, league.md, self_play.csv and times.csv")
    return {"result": result, "self_play": same, "players": names}


if __name__ == "__main__":
    main()
