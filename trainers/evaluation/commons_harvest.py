"""An agent in all seven seats of Commons Harvest Open: the trainers' periodic evaluation there.

Commons Harvest has no scripted opponents to exploit an agent; what its training reward
hides is the commons itself. An agent that strips the patches early earns more in its
first episodes and then less, with fewer patches ("bushes") left alive. The evaluation
plays the agent against itself on the same seeded episodes every time
(:func:`social_dilemmas.commons_harvest.self_play`) and reports what the commons became.
"""

from __future__ import annotations

from typing import Any

from social_dilemmas.policies import Policy

__all__ = ["harvest_evaluation"]


def harvest_evaluation(policy: Policy, run: Any) -> dict[str, float]:
    """``policy`` in all 7 seats for ``run.eval_games`` episodes of ``run.max_steps`` steps on
    the run's view (``run.env_kwargs``), seeded from ``run.seed`` (episode ``e`` is the game
    seeded ``seed + 1000 + e``, away from the training games).

    Returns ``eval/per_capita_return`` (the players' mean return over an episode),
    ``eval/final_patches_alive`` and ``eval/final_apples`` (at the episode's end), and
    ``eval/mean_patches_alive`` and ``eval/mean_apples`` (over its steps), means over the
    episodes. ``self_play("random", ...)`` with the same arguments gives the reference of
    uniform random play (README, "Commons Harvest CPU preset")."""
    from social_dilemmas.commons_harvest import self_play

    result = self_play(policy, episodes=run.eval_games, max_steps=run.max_steps, seed=run.seed, **run.env_kwargs)
    return {f"eval/{k}": v for k, v in result.summary().items()}
