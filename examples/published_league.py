"""The published Coin Game league in our Coin Game: the authors' AdAlign, LOQA and POLA agents.

Plays every published agent (10 seeds of each set) against every other and against
Always Cooperate, Always Defect and Random with the authors' league protocol (their
``league/run_league.py``, as their 2024 AdAlign leagues ran it: 16-step games, 32 games
per pair of seeds, every pair of seeds of two sets, actions sampled from the policies),
then sets the results beside the paper's figures. Writes under ``OUT``:

* ``league.csv``, ``league.png`` (heatmap), ``league.json``: the cross-play matrix;
* ``comparison.csv`` and ``comparison.md``: each set's self-play (every pair of seeds,
  and each seed against itself) and its play against Always Cooperate, Always Defect and
  Random, with the sampling error of each number (the standard error over the pairs of
  seeds), the paper's figure where the paper's text gives one, and whether they agree
  within sampling error.

    python examples/published_league.py --published ../shared/published_league --out runs/reproduce/published_league
    python examples/published_league.py --published ~/loqa/league/checkpoints --sets AdAlign LOQA

``--published`` is the project's copy of the agents (``../shared/published_league``) or
the ``league/checkpoints`` folder of a clone of the LOQA repository (``MiladInk/loqa``).
The agents are the authors'; credit them (Aghajohari et al., 2024; Duque et al., 2025)
where they appear in results.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import time
from pathlib import Path

import social_dilemmas
from trainers.evaluation.league import LeagueResult, format_table, league, same_seed_self_play
from trainers.published import PUBLISHED_SETS, published_players

#: The scripted players of the authors' league.
SCRIPTED = ["always_cooperate", "always_defect", "random"]
#: The paper's figures for the published agents in the Coin Game league, where its text
#: gives them (Fig. 2, read in SPEC section 8): (row, column) -> (row's, column's reward per
#: step). Fig. 7's matrix (every set against every set) is an image whose extracted text is
#: scrambled, so no LOQA or POLA figure can be read from it reliably.
PAPER = {
    ("AdAlign", "AdAlign"): (0.25, 0.25),
    ("AdAlign", "always_cooperate"): (0.45, 0.09),
    ("AdAlign", "always_defect"): (-0.10, 0.19),
}
#: Half the last digit of the paper's two-decimal figures.
PAPER_ROUNDING = 0.005
DEFAULT_PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "published_league"


def agreement_bound(se: float) -> float:
    """How far our number and the paper's may differ and still agree: two standard errors
    of their difference (the paper's number has the same protocol, so the same sampling
    error as ours: sqrt(2) * se) plus the paper's rounding."""
    return 2.0 * math.sqrt(2.0) * se + PAPER_ROUNDING


def _verdict(row: dict) -> bool | None:
    if row["paper_row"] is None:
        return None
    return (abs(row["row_reward"] - row["paper_row"]) <= agreement_bound(row["row_se"])
            and abs(row["col_reward"] - row["paper_col"]) <= agreement_bound(row["col_se"]))


def comparison(result: LeagueResult, sets: list[str], pairs: int, same_seed: dict[str, list[float]]) -> list[dict]:
    """Each published set against itself, Always Cooperate, Always Defect and Random: our
    rewards (row / column), their standard errors over the ``pairs`` pairs of seeds, the
    paper's figures (:data:`PAPER`) and whether they agree (:func:`agreement_bound`).
    Self-play comes twice: the league's cell (every pair of seeds) and ``same_seed`` (each
    seed against itself, :func:`~trainers.evaluation.league.same_seed_self_play`)."""
    i = {n: k for k, n in enumerate(result.names)}
    rows = []
    for name in sets:
        for other in (name, "always_cooperate", "always_defect", "random"):
            r, c = i[name], i[other]
            paper = PAPER.get((name, other), (None, None))
            rows.append({"row": name, "col": other if other != name else f"{name} (every pair of seeds)",
                         "row_reward": float(result.row_reward[r, c]), "col_reward": float(result.col_reward[r, c]),
                         "row_se": float(result.row_std[r, c]) / math.sqrt(pairs),
                         "col_se": float(result.col_std[r, c]) / math.sqrt(pairs),
                         "paper_row": paper[0], "paper_col": paper[1]})
            if other == name:
                values = same_seed[name]
                mean, se = sum(values) / len(values), statistics.pstdev(values) / math.sqrt(len(values))
                rows.append({"row": name, "col": f"{name} (each seed against itself)", "row_reward": mean,
                             "col_reward": mean, "row_se": se, "col_se": se, "paper_row": paper[0], "paper_col": paper[1]})
    for row in rows:
        row["agrees"] = _verdict(row)
    return rows


def markdown(rows: list[dict]) -> str:
    """:func:`comparison` as a Markdown table."""
    lines = ["| row | column | here: row / column (± standard error) | paper | within sampling error |",
             "|---|---|---|---|---|"]
    for r in rows:
        here = f"{r['row_reward']:.3f} ± {r['row_se']:.3f} / {r['col_reward']:.3f} ± {r['col_se']:.3f}"
        paper = "" if r["paper_row"] is None else f"{r['paper_row']:.2f} / {r['paper_col']:.2f}"
        verdict = "" if r["agrees"] is None else ("yes" if r["agrees"] else "**no**")
        lines.append(f"| {r['row']} | {r['col']} | {here} | {paper} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    description, _, epilog = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--published", type=Path, default=DEFAULT_PUBLISHED,
                    help="the published agents' folder (default: the project's ../shared/published_league)")
    ap.add_argument("--sets", nargs="+", choices=tuple(PUBLISHED_SETS), default=list(PUBLISHED_SETS),
                    help="the published sets to play (default: all)")
    ap.add_argument("--seeds", type=int, default=10, help="seeds of each set (the authors' league: 10)")
    ap.add_argument("--episodes", type=int, default=32, help="games per pair of seeds (the authors' league: 32)")
    ap.add_argument("--steps", type=int, default=16, help="steps per game (the 2024 AdAlign leagues: 16; 2023 LOQA: 50)")
    ap.add_argument("--seed", type=int, default=0, help="the league's game seed")
    ap.add_argument("--out", type=Path, default=Path("runs/reproduce/published_league"))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--ray", action="store_true",
                    help="play the matches as Ray tasks on this machine (Ray's logs in OUT/ray_tmp)")
    ap.add_argument("--address", default=None, help="play the matches as Ray tasks on the Ray cluster at HOST:PORT")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    for flag in ("seeds", "episodes", "steps", "threads"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    import torch

    torch.set_num_threads(args.threads)
    try:
        players = published_players(args.published, tuple(args.sets))
    except FileNotFoundError as e:
        ap.error(str(e))
    start = time.perf_counter()
    kwargs = dict(seeds=args.seeds, episodes=args.episodes, seed=args.seed, progress=not args.no_progress,
                  env_kwargs={"max_steps": args.steps})
    if args.ray or args.address:
        from trainers.ray_runner import ray_map, ray_session

        session = ray_session(args.out, address=args.address)
        try:
            session.__enter__()
        except (ConnectionError, ImportError) as e:
            ap.error(str(e))
        try:
            result = league("coin_game", [*players, *SCRIPTED], args.out, map_cells=ray_map, **kwargs)
        finally:
            session.__exit__(None, None, None)
    else:
        result = league("coin_game", [*players, *SCRIPTED], args.out, **kwargs)
    seconds = time.perf_counter() - start
    print(format_table(result))
    game = social_dilemmas.make_game("coin_game", max_steps=args.steps)
    same = {p.split("=", 1)[0]: same_seed_self_play(game, p, args.seeds, args.episodes, args.seed) for p in players}
    rows = comparison(result, list(args.sets), args.seeds * args.seeds, same)
    with (args.out / "comparison.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    table = markdown(rows)
    (args.out / "comparison.md").write_text(table + "\n")
    print(table)
    print(f"played in {seconds:.0f} s; wrote {args.out}/league.csv, league.png, league.json, comparison.csv, comparison.md")
    return {"result": result, "comparison": rows, "seconds": seconds}


if __name__ == "__main__":
    main()
