"""What a Negotiation agent does, as the paper shows it: an episode of proposals (Fig. 3b),
training curves against the scripted players (Fig. 6), and whether an agent reciprocates.

* :func:`sample_episode` plays one game between two players and records, at every step,
  each player's values and proposals and rewards; :func:`plot_episode` draws it as two
  tables of rounded numbers (the paper's Fig. 3b), each proposal coloured by what it does
  to the other player: on an item the other values more (5 against the player's 1), a
  proposal of 2.5 or more takes it from them (red), less leaves it to them (green); on
  the player's own high-value items it is grey.
* :func:`plot_training_curves` reads ``eval/`` columns of runs trained with
  ``--eval-every`` and draws the mean and the spread over seeds of the agent's reward per
  step against Always Defect, against itself and against Always Cooperate (Fig. 6).
* :data:`RECIPROCAL` and :func:`is_reciprocal`: the issue's test of reciprocity, met when an
  agent earns at least 0.33 per step against itself (mutual defection earns 0.30) and
  Always Defect earns at most 0.425 per step against it (0.30 against itself, 0.55
  against Always Cooperate).
* :func:`bid_response`: whether the agent's bids depend on the other player at all. Those
  two rewards can be met by an agent that ignores the other: one that always bids 5 on
  its valuable items and, on the others, sometimes gives them away. A reciprocal agent
  gives items away to a cooperator and not to a defector: its mean bid on the items it
  values less is higher against Always Defect than against Always Cooperate.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

import social_dilemmas
from social_dilemmas.match import reset_players
from social_dilemmas.policies import Policy
from social_dilemmas.vector import VectorGame

__all__ = ["RECIPROCAL", "is_reciprocal", "bid_response", "sample_episode", "plot_episode", "read_curves", "plot_training_curves"]

#: ``(metric of scripted_evaluation, comparison, threshold)`` of a reciprocal Negotiation agent (issue 15)
RECIPROCAL = (("eval/self", ">=", 0.33), ("eval/always_defect_gets", "<=", 0.425))

#: Fig. 6's panels: (``eval/`` column, title)
CURVES = (("eval/vs_always_defect", "agent vs Always Defect"), ("eval/self", "agent vs itself"),
          ("eval/vs_always_cooperate", "agent vs Always Cooperate"))


def is_reciprocal(evaluation: dict[str, float]) -> bool:
    """Whether an agent's :func:`~trainers.evaluation.scripted.scripted_evaluation` meets :data:`RECIPROCAL`."""
    return all(evaluation[m] >= v if op == ">=" else evaluation[m] <= v for m, op, v in RECIPROCAL)


@torch.no_grad()
def bid_response(agent: Any, games: int = 128, seed: int = 0, device: str | torch.device = "cpu") -> dict[str, float]:
    """The agent's mean bid on the items it values less than the other player (1 against 5)
    over ``games`` games against Always Cooperate and against Always Defect, and the
    difference, ``retaliation`` (0: the agent does not respond to how the other plays).
    ``agent()`` returns a fresh :class:`Policy` of the agent."""
    from social_dilemmas.policies import make_policy

    game = social_dilemmas.make_game("negotiation")
    device = torch.device(device)
    out = {}
    for name in ("always_cooperate", "always_defect"):
        players = [agent(), make_policy(name, game)]
        vec = VectorGame(game, games, device=device)
        obs, _ = vec.reset(seed=seed)
        reset_players(players, games, seed, device)
        low = []
        for _ in range(game.max_steps):
            mine, theirs = obs[:, 0, 3:6], obs[:, 0, 9:12]  # this step's values (/ 10)
            actions = torch.stack([p.act(obs[:, i]) for i, p in enumerate(players)], dim=1)
            low.append(actions[:, 0][mine < theirs])
            obs, *_ = vec.step(actions.to(game.action_dtype))
        out[f"low_bid_vs_{name}"] = float(torch.cat(low).mean())
    out["retaliation"] = out["low_bid_vs_always_defect"] - out["low_bid_vs_always_cooperate"]
    return out


@torch.no_grad()
def sample_episode(players: list[Policy], seed: int = 0, device: str | torch.device = "cpu") -> list[dict[str, Any]]:
    """One Negotiation episode between ``players`` (two :class:`Policy`), seeded with ``seed``:
    per step, ``{"t", "values", "proposals", "rewards"}`` with ``values`` and ``proposals``
    ``[2][3]`` (player, item) and ``rewards`` ``[2]``."""
    game = social_dilemmas.make_game("negotiation")
    if len(players) != 2:
        raise ValueError(f"players must be two policies, got {len(players)}")
    device = torch.device(device)
    vec = VectorGame(game, 1, device=device)
    obs, _ = vec.reset(seed=seed)
    reset_players(players, 1, seed, device)
    steps = []
    for t in range(game.max_steps):
        values = (obs[0, :, 3:6] * 10).round()  # the values drawn for this step, each player's own
        actions = torch.stack([p.act(obs[:, i]) for i, p in enumerate(players)], dim=1)
        obs, rewards, *_ = vec.step(actions.to(game.action_dtype))
        steps.append({"t": t, "values": values.tolist(), "proposals": actions[0].tolist(),
                      "rewards": rewards[0].tolist()})
    return steps


def write_episode(steps: list[dict[str, Any]], path: str | Path) -> None:
    """The episode as CSV: one row per step and player."""
    with Path(path).open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "player", "values", "proposals", "reward"])
        for s in steps:
            for i in range(2):
                w.writerow([s["t"], i, " ".join(f"{v:.0f}" for v in s["values"][i]),
                            " ".join(f"{p:.2f}" for p in s["proposals"][i]), f"{s['rewards'][i]:.3f}"])


def plot_episode(steps: list[dict[str, Any]], path: str | Path, names: tuple[str, str] = ("agent", "agent"),
                 first: int = 16, title: str | None = None) -> None:
    """Fig. 3b: the first ``first`` steps of an episode, per player a table of the three items'
    values (top) and proposals (bottom) rounded to integers, proposals coloured as in the
    module docstring."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = steps[:first]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.45 * len(steps) + 1.5), 4.2), dpi=120)
    for i, ax in enumerate(axes):
        ax.set_xlim(-0.5, len(steps) - 0.5)
        ax.set_ylim(-0.5, 5.5)
        ax.invert_yaxis()
        for t, s in enumerate(steps):
            mine, theirs = s["values"][i], s["values"][1 - i]
            for k in range(3):
                ax.text(t, k, f"{mine[k]:.0f}", ha="center", va="center", fontsize=7, color="#555555")
                p = s["proposals"][i][k]
                colour = "#dddddd" if mine[k] >= theirs[k] else ("#e06666" if p >= 2.5 else "#6aa84f")
                ax.add_patch(plt.Rectangle((t - 0.45, 3 + k - 0.45), 0.9, 0.9, color=colour))
                ax.text(t, 3 + k, f"{p:.0f}", ha="center", va="center", fontsize=7)
        ax.set_yticks([0, 1, 2, 3, 4, 5], ["value 1", "value 2", "value 3", "proposal 1", "proposal 2", "proposal 3"],
                      fontsize=6)
        ax.set_xticks(range(len(steps)), [str(s["t"]) for s in steps], fontsize=6)
        ax.set_ylabel(f"player {i}: {names[i]}", fontsize=7)
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[-1].set_xlabel("step (red: takes an item the other values more; green: leaves it)", fontsize=7)
    fig.suptitle(title or f"Negotiation: {names[0]} vs {names[1]}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def read_curves(run_dirs: list[str | Path]) -> dict[str, dict[int, list[float]]]:
    """``{column: {iteration: [value of each run]}}`` of the :data:`CURVES` columns of the runs'
    ``metrics.csv`` (rows where the run evaluated). A run without them raises ``ValueError``
    naming its file and the option that writes them."""
    curves: dict[str, dict[int, list[float]]] = {c: {} for c, _ in CURVES}
    for run in run_dirs:
        path = Path(run) / "metrics.csv"
        if not path.exists():
            raise FileNotFoundError(f"{str(path)!r} does not exist")
        with path.open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("eval/self")]
        if not rows:
            raise ValueError(f"{str(path)!r} has no eval/ columns: train with --eval-every N")
        for r in rows:
            for column, _ in CURVES:
                curves[column].setdefault(int(r["iteration"]), []).append(float(r[column]))
    return curves


def plot_training_curves(run_dirs: list[str | Path], path: str | Path, title: str | None = None) -> dict:
    """Fig. 6: per panel of :data:`CURVES`, the mean over the runs (line) and their range
    (band) against the update; returns the curves (:func:`read_curves`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = read_curves(run_dirs)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=120)
    for ax, (column, label) in zip(axes, CURVES):
        its = sorted(curves[column])
        values = [curves[column][i] for i in its]
        mean = [sum(v) / len(v) for v in values]
        ax.fill_between(its, [min(v) for v in values], [max(v) for v in values], color="#3b7dd8", alpha=0.2, lw=0)
        ax.plot(its, mean, color="#3b7dd8", lw=1.5)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("update")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("reward per step")
    fig.suptitle(title or f"Negotiation training curves, mean and range over {len(run_dirs)} runs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return curves
