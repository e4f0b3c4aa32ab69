"""Cross-play leagues: every player against every player, a table, a CSV and a heatmap.

    python -m trainers league --env coin_game --seeds 3 --episodes 32 --out runs/league \\
        --players always_cooperate always_defect "runs/coin-adalign-s*/checkpoint.pt" runs/coin-ppo/model.zip

A player is a scripted player's name, a trainer checkpoint (``.pt``), a
Stable-Baselines3 model (``.zip``), an agent of the published Coin Game league (the
authors' AdAlign, LOQA and POLA files, :mod:`trainers.published`), or a glob standing for
several seeds of one player (``"runs/coin-adalign-s*/checkpoint.pt"``,
``"loqa=PATH/published_league/loqa/*"``; quote it so the shell leaves it alone). Its
display name is the common prefix of the matches (``coin-adalign``), or write
``NAME=SPEC`` to choose one. A player has up to ``seeds`` instances: the first ``seeds``
matches of a glob (in natural order), one instance for a single file, and ``seeds``
instances of a scripted player, which differ only in their random numbers.

Every ordered pair ``(row, col)`` of players, the self-pairs included, plays every
combination of their instances: ``episodes`` games per instance pair, on the batched
view (:func:`social_dilemmas.match.play`), the row player in the first seat(s). The
games of instance pair ``(a, b)`` are seeded with ``seed + 1000 * a + b`` (so every cell
uses the same game randomness for the same pair of instances). A cell reports each
side's mean reward per step (the mean over instance pairs of the mean over the games)
and its standard deviation over the instance pairs (population std: 0 for one pair).

**More than two players** (Commons Harvest): the *focal* population, the row player,
fills seats ``0 .. focal-1`` and the *background* population, the column player, the
other seats; ``row_reward`` is the focal players' per-capita reward per step and
``col_reward`` the background's. ``focal`` defaults to 1 for two-player games and to
``n_players - 2`` otherwise (Melting Pot's Commons Harvest scenarios: 5 focal players
and 2 background players of 7). The league plays on the batched view of a
``BatchedGame`` (:func:`social_dilemmas.match.play`); Commons Harvest, whose games run in
Melting Pot worker processes, is not playable here yet (the n-player path is tested on a
small public-goods game).

Outputs: ``DIR/league.csv`` (``row, col, row_reward, col_reward, row_std, col_std``),
``DIR/league.png`` (the row player's reward as colour, "row / col" rewards in each
cell, as the paper's Figs. 2 and 3a), ``DIR/league.json`` (the settings and the files of
every player's instances), and the table on standard output.
"""

from __future__ import annotations

import copy
import csv
import glob
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import social_dilemmas
from social_dilemmas.core import BatchedGame
from social_dilemmas.match import play
from social_dilemmas.policies import (
    Policy,
    load_saved_player,
    resolve_player,
    saved_player_format,
    saved_player_suffixes,
    scripted_names,
)

__all__ = ["LeaguePlayer", "LeagueResult", "parse_player", "run_league", "play_cell", "same_seed_self_play", "write_league",
           "format_table", "plot_heatmap", "league", "CSV_COLUMNS"]

CSV_COLUMNS = ["row", "col", "row_reward", "col_reward", "row_std", "col_std"]
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass
class LeaguePlayer:
    """One entry of the league: a display name and its instances (one per seed).

    An instance is anything :func:`social_dilemmas.policies.resolve_player` accepts: a
    scripted name, a path to a saved player, a :class:`Policy` (copied per seat) or a
    callable.
    """

    name: str
    instances: list[Any]
    scripted: bool = False


@dataclass
class LeagueResult:
    """Matrices ``[P, P]`` indexed ``[row, col]`` and the per-cell table rows."""

    names: list[str]
    row_reward: np.ndarray
    col_reward: np.ndarray
    row_std: np.ndarray
    col_std: np.ndarray
    focal: int
    rows: list[dict[str, Any]] = field(default_factory=list)


def _natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _file_name(path: str) -> str:
    """The display name of one saved player: its run folder for ``checkpoint.pt`` / ``model.zip``."""
    p = Path(path)
    if p.stem in ("checkpoint", "model") and p.parent.name:
        return p.parent.name
    return p.stem


def _common_name(paths: Sequence[str], pattern: str) -> str:
    """The common prefix of the first path component where the matches differ, without a
    trailing seed marker (``-s``, ``_seed3``...) or separators; the pattern if nothing is left."""
    if len(paths) == 1:
        return _file_name(paths[0])
    parts = [Path(p).parts for p in paths]
    prefix = ""
    for comps in zip(*parts):
        if len(set(comps)) > 1:
            prefix = os.path.commonprefix(list(comps))
            break
    name = re.sub(r"([-_.](seed|s)\d*)?[-_.]*$", "", prefix)
    parents = {Path(p).parent for p in paths}
    if len(parents) == 1 and name in ("", "model", "model_player", "checkpoint"):
        name = next(iter(parents)).name  # several files of one run folder (independent learners' seats)
    return name or pattern


def parse_player(spec: Any, game: BatchedGame, seeds: int = 3) -> LeaguePlayer:
    """A :class:`LeaguePlayer` from a command-line player (see the module docstring)."""
    if isinstance(spec, LeaguePlayer):
        return spec
    if not isinstance(spec, (str, Path)):
        p = resolve_player(spec, game)
        return LeaguePlayer(getattr(p, "name", type(p).__name__), [p])
    text = str(spec)
    label = None
    head, sep, tail = text.partition("=")
    if sep and head and "/" not in head and os.sep not in head and tail:
        label, text = head, tail
    if _GLOB_CHARS.search(text):
        matches = sorted(glob.glob(text), key=_natural_key)
        if not matches:
            raise FileNotFoundError(f"player {text!r} matches no file")
        matches = matches[:seeds]
        return LeaguePlayer(label or _common_name(matches, text), matches)
    if saved_player_format(text) is not None:
        if not Path(text).exists():
            raise FileNotFoundError(f"player file {text!r} does not exist")
        return LeaguePlayer(label or _file_name(text), [text])
    try:
        allowed = scripted_names(game)
    except ValueError:
        allowed = []
    if text not in allowed:
        raise ValueError(
            f"unknown player {text!r} for {game.name}: a player is a scripted name ({', '.join(allowed) or 'none'}), "
            f"a saved player ({', '.join(saved_player_suffixes())}) or a glob of saved players"
        )
    return LeaguePlayer(label or text, [text] * seeds, scripted=True)


def _unique_names(players: list[LeaguePlayer]) -> None:
    seen: dict[str, int] = {}
    for p in players:
        if p.name in seen:
            seen[p.name] += 1
            p.name = f"{p.name} ({seen[p.name]})"
        else:
            seen[p.name] = 1


def _load(instance: Any, game: BatchedGame, greedy: bool) -> Policy:
    if isinstance(instance, (str, Path)):
        if greedy and saved_player_format(instance) is not None:
            return load_saved_player(instance, game, greedy=True)
        return resolve_player(instance, game)
    return copy.deepcopy(resolve_player(instance, game))


def run_league(
    game: str | BatchedGame,
    players: Sequence[Any],
    seeds: int = 3,
    episodes: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    focal: int | None = None,
    greedy: bool = False,
    progress: bool = False,
    map_cells: Callable[..., list[dict[str, float]]] | None = None,
    **env_kwargs: Any,
) -> LeagueResult:
    """Play every ordered pair of ``players`` (see the module docstring) and return the matrices.

    ``game`` is a game's name (with ``env_kwargs``) or a ``BatchedGame``; ``greedy``
    makes trained players (``.pt``, ``.zip``) play their most likely action. ``map_cells``
    plays the cells elsewhere: ``map_cells(play_cell, [args of each cell], done)`` returns
    :func:`play_cell` of every cell in order and calls ``done()`` as each ends (Ray tasks:
    :func:`trainers.ray_runner.ray_map`); the results are the same as here.
    """
    if isinstance(game, str):
        game = social_dilemmas.make_game(game, **env_kwargs)
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an integer >= 1, got {seeds!r}")
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    n = game.n_players
    if focal is None:
        focal = 1 if n == 2 else n - 2
    if not 1 <= focal < n:
        raise ValueError(f"focal must be in [1, {n - 1}] for {game.name} ({n} players), got {focal!r}")
    entries = [parse_player(p, game, seeds) for p in players]
    if not entries:
        raise ValueError("the league needs at least one player")
    _unique_names(entries)
    P = len(entries)
    mats = {k: np.zeros((P, P)) for k in ("row_reward", "col_reward", "row_std", "col_std")}
    cells = [(r, c) for r in range(P) for c in range(P)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cells), unit="cell", desc=f"league {game.name}")
    done = bar.update if bar is not None else (lambda n=1: None)
    if map_cells is None:  # here, each policy loaded once
        cache: dict[tuple[int, int, int], Policy] = {}
        values = []
        for r, c in cells:
            values.append(play_cell(game, entries, r, c, episodes, seed, device, focal, greedy, cache))
            done()
    else:
        values = map_cells(play_cell, [(game, entries, r, c, episodes, seed, device, focal, greedy) for r, c in cells],
                           done)
    rows = []
    for (r, c), cell in zip(cells, values):
        for k, v in cell.items():
            mats[k][r, c] = v
        rows.append({"row": entries[r].name, "col": entries[c].name, **{k: float(v) for k, v in cell.items()}})
    if bar is not None:
        bar.close()
    return LeagueResult([e.name for e in entries], focal=focal, rows=rows, **mats)


def play_cell(game: BatchedGame, entries: Sequence[LeaguePlayer], r: int, c: int, episodes: int, seed: int,
              device: str | torch.device, focal: int, greedy: bool,
              cache: dict[tuple[int, int, int], Policy] | None = None) -> dict[str, float]:
    """The league's cell ``(r, c)``: every instance of player ``r`` (seats ``0 .. focal-1``)
    against every instance of player ``c``, ``episodes`` games each; each side's mean reward
    per step and its standard deviation over the instance pairs. ``cache``: policies already
    loaded, by ``(player, instance, seat)``."""
    cache = {} if cache is None else cache

    def policy(player: int, instance: int, seat: int) -> Policy:
        key = (player, instance, seat)
        if key not in cache:
            cache[key] = _load(entries[player].instances[instance], game, greedy)
        return cache[key]

    row_means, col_means = [], []
    for a in range(len(entries[r].instances)):
        for b in range(len(entries[c].instances)):
            seats = [policy(r, a, s) if s < focal else policy(c, b, s) for s in range(game.n_players)]
            result = play(game, seats, num_envs=episodes, episodes=1, seed=seed + 1000 * a + b, device=device)
            row_means.append(float(np.mean(result.mean[:focal])))
            col_means.append(float(np.mean(result.mean[focal:])))
    return {"row_reward": float(np.mean(row_means)), "col_reward": float(np.mean(col_means)),
            "row_std": float(np.std(row_means)), "col_std": float(np.std(col_means))}


def same_seed_self_play(game: str | BatchedGame, player: Any, seeds: int = 3, episodes: int = 32, seed: int = 0,
                        device: str | torch.device = "cpu", **env_kwargs: Any) -> list[float]:
    """Each instance of ``player`` (a league player, see :func:`parse_player`) against
    itself: per instance, the mean over the seats of the reward per step. These are the
    games of the league's pair ``(a, a)`` (same game seed); the league's diagonal cell
    averages every pair of instances, so it mixes self-play with play against other seeds."""
    if isinstance(game, str):
        game = social_dilemmas.make_game(game, **env_kwargs)
    entry = parse_player(player, game, seeds)
    values = []
    for a, instance in enumerate(entry.instances):
        seats = [_load(instance, game, False) for _ in range(game.n_players)]
        result = play(game, seats, num_envs=episodes, episodes=1, seed=seed + 1000 * a + a, device=device)
        values.append(float(np.mean(result.mean)))
    return values


def format_table(result: LeagueResult) -> str:
    """The league as text: one line per row player, "row / col" rewards per column player."""
    names = result.names
    width = max(12, *(len(x) for x in names)) + 2
    cell = 17
    head = " " * width + "".join(f"{x[:cell - 1]:>{cell}}" for x in names)
    lines = ["row player (reward per step) / column player" + (
        f"   [focal: seats 0..{result.focal - 1}]" if result.focal > 1 else ""), head]
    for i, x in enumerate(names):
        cells = "".join(f"{result.row_reward[i, j]:>8.3f} /{result.col_reward[i, j]:>7.3f}" for j in range(len(names)))
        lines.append(f"{x:<{width}}{cells}")
    return "\n".join(lines)


def plot_heatmap(result: LeagueResult, path: str | Path, title: str | None = None) -> None:
    """A heatmap of the row player's reward per step with "row / col" in every cell."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    names = result.names
    P = len(names)
    size = max(4.0, 1.25 * P + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    im = ax.imshow(result.row_reward, cmap="viridis")
    lo, hi = float(np.min(result.row_reward)), float(np.max(result.row_reward))
    mid = (lo + hi) / 2
    for i in range(P):
        for j in range(P):
            v = result.row_reward[i, j]
            ax.text(j, i, f"{v:.2f} / {result.col_reward[i, j]:.2f}", ha="center", va="center",
                    fontsize=9 if P <= 6 else 7, color="black" if v > mid else "white")
    ax.set_xticks(range(P), labels=names, rotation=35, ha="right")
    ax.set_yticks(range(P), labels=names)
    ax.set_xlabel("column player" if result.focal == 1 else "background population")
    ax.set_ylabel("row player" if result.focal == 1 else "focal population")
    ax.set_title(title or "reward per step (row / column)")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("row player's reward per step" if result.focal == 1 else "focal per-capita reward per step")
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def write_league(result: LeagueResult, out: str | Path, title: str | None = None,
                 settings: dict[str, Any] | None = None) -> None:
    """``out/league.csv``, ``out/league.png`` and (with ``settings``) ``out/league.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "league.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for r in result.rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    plot_heatmap(result, out / "league.png", title)
    if settings is not None:
        (out / "league.json").write_text(json.dumps(settings, indent=2, default=str))


def league(env: str, players: Sequence[str], out: str | Path, seeds: int = 3, episodes: int = 32, seed: int = 0,
           device: str = "cpu", focal: int | None = None, greedy: bool = False, progress: bool = True,
           env_kwargs: dict[str, Any] | None = None,
           map_cells: Callable[..., list[dict[str, float]]] | None = None) -> LeagueResult:
    """The ``league`` command: play, write the outputs, return the result (``map_cells``:
    see :func:`run_league`)."""
    game = social_dilemmas.make_game(env, **(env_kwargs or {}))
    entries = [parse_player(p, game, seeds) for p in players]
    result = run_league(game, entries, seeds=seeds, episodes=episodes, seed=seed, device=device, focal=focal,
                        greedy=greedy, progress=progress, map_cells=map_cells)
    settings = {"env": env, "env_kwargs": env_kwargs or {}, "seeds": seeds, "episodes": episodes, "seed": seed,
                "focal": result.focal, "greedy": greedy,
                "players": {e.name: [str(i) for i in e.instances] for e in entries}}
    title = f"{game.title}: reward per step (row / column)"
    write_league(result, out, title, settings)
    return result
