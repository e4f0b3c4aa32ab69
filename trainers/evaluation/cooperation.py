"""How an IPD agent reacts to the previous round (the paper's Fig. 1b).

The agent plays itself; at every round ``t >= 1`` of every game, with the memory it has
built over the real rounds so far, it is also shown each of the four possible previous
rounds ``x`` in {CC, CD, DC, DD} (its own action first), and we read its probability of
cooperating. Averaging over rounds and games gives ``P(cooperate | previous round = x)``
for all four cases, even those that self-play rarely visits. A tit-for-tat-like agent
cooperates after CC and DC (the other cooperated) and defects after CD and DD.
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

import social_dilemmas
from social_dilemmas.policies import load_saved_player
from trainers.networks.distributions import sample_action
from trainers.policy import AgentPolicy

__all__ = ["CASES", "cooperation_table", "write_cooperation"]

#: previous round from the agent's side: (my action, other's action), 0 = cooperate
CASES = {"CC": (0, 0), "CD": (0, 1), "DC": (1, 0), "DD": (1, 1)}


@torch.no_grad()
def cooperation_table(agent_path: str | Path, num_games: int = 1024, seed: int = 0) -> dict[str, tuple[float, float]]:
    """``{case: (mean P(cooperate), std over games)}`` for the IPD agent saved in ``agent_path``."""
    game = social_dilemmas.make_game("ipd")
    policy = load_saved_player(agent_path, game)
    if not isinstance(policy, AgentPolicy):
        raise ValueError(f"{str(agent_path)!r} is not an agent of this project's trainers (its policy network is needed)")
    net = policy.net.to("cpu")
    vec = social_dilemmas.make_vec("ipd", num_games)
    obs, _ = vec.reset(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    n = 2 * num_games
    state = net.begin(net.initial_memory(n, "cpu"))
    start = torch.ones(n, dtype=torch.bool)
    probes = {}
    for name, (me, other) in CASES.items():
        x = torch.zeros(4)
        x[me] = 1.0
        x[2 + other] = 1.0
        probes[name] = x.expand(n, 4)
    sums = {name: torch.zeros(n) for name in CASES}
    for t in range(game.max_steps):
        if t >= 1:
            for name, x in probes.items():
                dist, _, _ = net.step(state, x, start)
                sums[name] += dist.probs[:, 0]
        dist, _, state = net.step(state, obs.flatten(0, 1), start)
        start = torch.zeros_like(start)
        action = sample_action(dist, gen)
        obs, *_ = vec.step(action.view(num_games, 2))
    rounds = game.max_steps - 1
    return {name: (float((s / rounds).mean()), float((s / rounds).std())) for name, s in sums.items()}


def write_cooperation(agent_path: str | Path, out: str | Path, num_games: int = 1024, seed: int = 0) -> dict:
    """Write ``out/cooperation.csv`` and ``out/cooperation.png``; returns the table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = cooperation_table(agent_path, num_games, seed)
    with (out / "cooperation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["previous_round", "p_cooperate", "std"])
        for name, (mean, std) in table.items():
            w.writerow([name, f"{mean:.4f}", f"{std:.4f}"])
    plot_cooperation({"agent": table}, out / "cooperation.png")
    return table


def plot_cooperation(tables: dict[str, dict[str, tuple[float, float]]], path: str | Path, title: str | None = None) -> None:
    """Bar chart of P(cooperate | previous round); several tables (e.g. seeds) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=120)
    cases = list(CASES)
    width = 0.8 / max(1, len(tables))
    colours = ["#3b7dd8", "#e0823d", "#4caf6a", "#b55fc4", "#888888", "#d94b4b"]
    for i, (label, table) in enumerate(tables.items()):
        xs = np.arange(len(cases)) + (i - (len(tables) - 1) / 2) * width
        means = [table[c][0] for c in cases]
        stds = [table[c][1] for c in cases]
        ax.bar(xs, means, width * 0.95, yerr=stds, capsize=3, label=label, color=colours[i % len(colours)])
    ax.set_xticks(range(len(cases)), [f"{c}\n(me, other)" for c in cases])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("P(cooperate)")
    ax.set_xlabel("previous round")
    ax.set_title(title or "IPD: probability of cooperating after each previous round")
    ax.axhline(0.5, color="#999999", lw=0.6, ls=":")
    if len(tables) > 1:
        ax.legend(fontsize=7, ncol=min(5, len(tables)))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
