"""How an IPD agent plays: its first move, its reaction to the previous round (the paper's
Fig. 1b), what it earns against itself and what Always Defect takes from it.

The agent plays itself. Round 0 gives ``P(cooperate | start)``, the first move. At every
round ``t >= 1`` of every game, with the memory it has built over the real rounds so far,
the agent is also shown each of the four possible previous rounds ``x`` in {CC, CD, DC, DD}
(its own action first), and we read its probability of cooperating. Averaging over rounds
and games gives ``P(cooperate | previous round = x)`` for all four cases, even those that
self-play rarely visits.

Tit-for-tat (paper section 5.1) cooperates on the first move, then copies the other player:
high after ``start``, CC and DC, low after CD and DD. In self-play it earns -1 per step
(mutual cooperation); a policy that opens with defection falls into mutual defection (-2)
or alternation (-1.5). Always Defect earns -1.875 per step against it (0 in round 0, then
-2), -0 against Always Cooperate. :data:`TIT_FOR_TAT` holds the thresholds the project
checks (:func:`tit_for_tat_checks`).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import torch

import social_dilemmas
from social_dilemmas.match import play
from social_dilemmas.policies import load_saved_player, make_policy
from trainers.networks.distributions import sample_action
from trainers.policy import AgentPolicy

__all__ = ["CASES", "ROWS", "TIT_FOR_TAT", "cooperation_table", "ipd_report", "tit_for_tat_checks",
           "write_cooperation", "plot_cooperation"]

#: previous round from the agent's side: (my action, other's action), 0 = cooperate
CASES = {"CC": (0, 0), "CD": (0, 1), "DC": (1, 0), "DD": (1, 1)}
#: the rows of a cooperation table: the first move, then the four previous rounds
ROWS = ("start", *CASES)

#: What a tit-for-tat-like agent shows (issue 15): ``(metric, comparison, threshold)``; the
#: metrics are keys of :func:`ipd_report`'s result.
TIT_FOR_TAT: tuple[tuple[str, str, float], ...] = (
    ("start", ">=", 0.9),
    ("CC", ">=", 0.9),
    ("DC", ">=", 0.9),
    ("CD", "<=", 0.2),
    ("DD", "<=", 0.2),
    ("self_play", ">=", -1.1),
    ("always_defect_gets", "<=", -1.75),
)


def _policy_net(agent: Any) -> torch.nn.Module:
    if isinstance(agent, (str, Path)):
        agent_path = agent
        if Path(agent_path).is_dir():
            raise ValueError(f"agent {str(agent_path)!r} is a folder: give the checkpoint in it, "
                             f"{Path(agent_path) / 'checkpoint.pt'}")
        agent = load_saved_player(agent_path, social_dilemmas.make_game("ipd"))
        if not isinstance(agent, AgentPolicy):
            raise ValueError(f"{str(agent_path)!r} is not an agent of this project's trainers "
                             "(its policy network is needed)")
    if isinstance(agent, AgentPolicy):
        agent = agent.net
    return agent


@torch.no_grad()
def cooperation_table(agent: Any, num_games: int = 1024, seed: int = 0,
                      device: str | torch.device = "cpu") -> dict[str, tuple[float, float]]:
    """``{row: (mean P(cooperate), std over games)}`` for the rows :data:`ROWS` (``start``, then
    the previous rounds CC, CD, DC, DD), and ``{"self_play": (reward per step, std over games)}``.

    ``agent``: a saved IPD agent of the trainers (a path), its :class:`AgentPolicy`, or its
    policy network. The games and the actions are seeded with ``seed``."""
    if num_games < 1:
        raise ValueError(f"num_games must be an integer >= 1, got {num_games!r}")
    net = _policy_net(agent)
    was_training = net.training
    net.eval()
    game = social_dilemmas.make_game("ipd")
    device = torch.device(device)
    vec = social_dilemmas.make_vec("ipd", num_games, device=device)
    obs, _ = vec.reset(seed=seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    n = 2 * num_games
    state = net.begin(net.initial_memory(n, device))
    start = torch.ones(n, dtype=torch.bool, device=device)
    probes = {}
    for name, (me, other) in CASES.items():
        x = torch.zeros(4, device=device)
        x[me] = 1.0
        x[2 + other] = 1.0
        probes[name] = x.expand(n, 4)
    sums = {name: torch.zeros(n, device=device) for name in CASES}
    first = torch.zeros(n, device=device)
    reward = torch.zeros(n, device=device)
    for t in range(game.max_steps):
        if t >= 1:
            for name, x in probes.items():
                dist, _, _ = net.step(state, x, start)
                sums[name] += dist.probs[:, 0]
        dist, _, state = net.step(state, obs.flatten(0, 1).to(device), start)
        if t == 0:
            first = dist.probs[:, 0].clone()
        start = torch.zeros_like(start)
        action = sample_action(dist, gen)
        obs, rewards, *_ = vec.step(action.view(num_games, 2))
        reward += rewards.flatten().to(device)
    net.train(was_training)
    rounds = game.max_steps - 1
    out = {"start": (float(first.mean()), float(first.std()))}
    out.update({name: (float((s / rounds).mean()), float((s / rounds).std())) for name, s in sums.items()})
    per_game = (reward / game.max_steps).view(num_games, 2).mean(1)
    out["self_play"] = (float(per_game.mean()), float(per_game.std()))
    return out


@torch.no_grad()
def ipd_report(agent: Any, num_games: int = 1024, seed: int = 0, device: str | torch.device = "cpu",
               table: dict[str, tuple[float, float]] | None = None) -> dict[str, float]:
    """What a user sees of an IPD agent, as ``{metric: value}``: ``start``, ``CC``, ``CD``,
    ``DC``, ``DD`` (P(cooperate), :func:`cooperation_table`), ``self_play`` (its reward per
    step against itself) and ``always_defect_gets`` (Always Defect's reward per step against
    it, ``num_games`` games). ``table``: the agent's :func:`cooperation_table`, if already measured."""
    net = _policy_net(agent)
    table = table or cooperation_table(net, num_games, seed, device)
    report = {name: mean for name, (mean, _) in table.items()}
    game = social_dilemmas.make_game("ipd")
    was_training = net.training
    result = play(game, [AgentPolicy(net.eval()), make_policy("always_defect", game)], num_envs=num_games,
                  seed=seed, device=device)
    net.train(was_training)
    report["always_defect_gets"] = result.mean[1]
    return report


def tit_for_tat_checks(report: dict[str, float]) -> list[tuple[str, str, float, float, bool]]:
    """Each threshold of :data:`TIT_FOR_TAT` against ``report`` (:func:`ipd_report`):
    ``(metric, comparison, threshold, measured, holds)``."""
    rows = []
    for metric, op, threshold in TIT_FOR_TAT:
        value = report[metric]
        holds = value >= threshold if op == ">=" else value <= threshold
        rows.append((metric, op, threshold, value, bool(holds)))
    return rows


def write_cooperation(agent_path: str | Path, out: str | Path, num_games: int = 1024, seed: int = 0) -> dict:
    """Write ``out/cooperation.csv`` (P(cooperate) for :data:`ROWS`), ``out/tit_for_tat.csv``
    (:func:`tit_for_tat_checks`) and ``out/cooperation.png``; returns ``{"table", "report", "checks"}``."""
    out = Path(out)
    table = cooperation_table(agent_path, num_games, seed)
    report = ipd_report(agent_path, num_games, seed, table=table)
    checks = tit_for_tat_checks(report)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cooperation.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["previous_round", "p_cooperate", "std"])
        for name in ROWS:
            mean, std = table[name]
            w.writerow([name, f"{mean:.4f}", f"{std:.4f}"])
    with (out / "tit_for_tat.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "target", "measured", "holds"])
        for metric, op, threshold, value, holds in checks:
            w.writerow([metric, f"{op} {threshold}", f"{value:.4f}", holds])
    plot_cooperation({"agent": table}, out / "cooperation.png")
    return {"table": table, "report": report, "checks": checks}


def plot_cooperation(tables: dict[str, dict[str, tuple[float, float]]], path: str | Path, title: str | None = None) -> None:
    """Bar chart of P(cooperate) on the first move and after each previous round; several
    tables (e.g. seeds) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=120)
    cases = list(ROWS)
    width = 0.8 / max(1, len(tables))
    colours = ["#3b7dd8", "#e0823d", "#4caf6a", "#b55fc4", "#888888", "#d94b4b"]
    if len(tables) > len(colours):
        colours = [plt.cm.tab10(i % 10) for i in range(len(tables))]
    for i, (label, table) in enumerate(tables.items()):
        xs = np.arange(len(cases)) + (i - (len(tables) - 1) / 2) * width
        means = [table[c][0] for c in cases]
        stds = [table[c][1] for c in cases]
        ax.bar(xs, means, width * 0.95, yerr=stds, capsize=3, label=label, color=colours[i % len(colours)])
    ax.set_xticks(range(len(cases)), ["start\n(round 0)", *(f"{c}\n(me, other)" for c in CASES)])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("P(cooperate)")
    ax.set_xlabel("first move, then previous round")
    ax.set_title(title or "IPD: probability of cooperating")
    ax.axhline(0.5, color="#999999", lw=0.6, ls=":")
    if len(tables) > 1:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
