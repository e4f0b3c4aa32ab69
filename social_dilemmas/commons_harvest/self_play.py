"""One player in all seven seats of Commons Harvest Open, and what that does to the commons.

:func:`self_play` plays seeded episodes and records, every step, the per-capita return so
far, the apples on the map and the patches ("bushes") still holding an apple
(:func:`~social_dilemmas.commons_harvest.count_apples`; an emptied patch never regrows).
The training reward alone cannot tell an agent that harvests sustainably from one that
strips the patches early; these series can. Used by the trainers' periodic evaluation
(``--eval-every`` on ``commons_harvest_open``) and by ``examples/commons_harvest_compare.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from social_dilemmas.commons_harvest.apples import count_apples
from social_dilemmas.commons_harvest.parallel import CommonsHarvestOpen
from social_dilemmas.commons_harvest.players import resolve_commons_harvest_player

__all__ = ["SelfPlayResult", "self_play"]

#: Episode ``e`` of an evaluation seeded ``seed`` is the game seeded ``seed + EPISODE_SEED_OFFSET + e``
#: (away from the training games, which are seeded from ``seed`` upwards).
EPISODE_SEED_OFFSET = 1000


@dataclass
class SelfPlayResult:
    """Per episode and step (arrays ``[episodes, steps]``): the per-capita return so far (the
    players' mean return), the apples on the map and the patches alive; and the map's
    apple spawn points and patches at the start."""

    per_capita_return: np.ndarray
    apples: np.ndarray
    patches_alive: np.ndarray
    spawn_points: int
    patches: int

    def summary(self) -> dict[str, float]:
        """Means over the episodes: the per-capita return of an episode, the apples and patches
        alive at its end, and the apples and patches alive averaged over its steps."""
        return {"per_capita_return": float(self.per_capita_return[:, -1].mean()),
                "final_apples": float(self.apples[:, -1].mean()),
                "final_patches_alive": float(self.patches_alive[:, -1].mean()),
                "mean_apples": float(self.apples.mean()),
                "mean_patches_alive": float(self.patches_alive.mean())}


@torch.no_grad()
def self_play(player: Any, episodes: int = 1, max_steps: int = 1000, seed: int = 0,
              on_frame: Callable[[int, Any], None] | None = None, on_step: Callable[[], None] | None = None,
              **view: Any) -> SelfPlayResult:
    """``player`` (anything :func:`~social_dilemmas.commons_harvest.resolve_commons_harvest_player`
    takes: ``"random"``, a saved player's path, a ``Policy``) in all 7 seats for ``episodes``
    episodes of ``max_steps`` steps; ``view``: the players' view, :class:`CommonsHarvestOpen`'s
    ``resize``, ``grayscale`` and ``channels_first`` (those the player was trained on).

    Episode ``e`` is the game seeded ``seed + 1000 + e`` and the player's random draws come
    from a generator seeded the same, so two players are compared on the same games and an
    evaluation repeats exactly. ``on_frame(episode, frame)`` receives the world view after
    the reset and after every step (for a video); ``on_step()`` is called after every step
    (for a progress bar)."""
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes = {episodes!r} is invalid: must be an integer >= 1")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps = {max_steps!r} is invalid: must be an integer >= 1")
    env = CommonsHarvestOpen(max_steps=max_steps, **view)
    try:
        policy = resolve_commons_harvest_player(player, env.spec_info)
        out = {k: np.zeros((episodes, max_steps)) for k in ("per_capita_return", "apples", "patches_alive")}
        counted = None
        for ep in range(episodes):
            game_seed = seed + EPISODE_SEED_OFFSET + ep
            obs, _ = env.reset(seed=game_seed)
            policy.reset(len(env.possible_agents), "cpu", torch.Generator().manual_seed(game_seed))
            counted = count_apples(env)
            total = 0.0
            if on_frame is not None:
                on_frame(ep, env.frame())
            for t in range(max_steps):
                batch = torch.from_numpy(np.stack([obs[a] for a in env.possible_agents]))
                actions = torch.as_tensor(policy.act(batch)).reshape(-1).tolist()
                obs, rewards, terms, truncs, _ = env.step(dict(zip(env.possible_agents, actions)))
                total += sum(rewards.values())
                counted = count_apples(env, counted)
                out["per_capita_return"][ep, t] = total / len(env.possible_agents)
                out["apples"][ep, t] = counted.apples
                out["patches_alive"][ep, t] = counted.patches_alive
                if on_frame is not None:
                    on_frame(ep, env.frame())
                if on_step is not None:
                    on_step()
                if any(terms.values()) or any(truncs.values()):
                    break
            if t + 1 < max_steps:  # Melting Pot ended the episode early (only possible past 1000 steps)
                for v in out.values():
                    v[ep, t + 1:] = v[ep, t]
    finally:
        env.close()
    return SelfPlayResult(**out, spawn_points=int(counted.spawn_points), patches=int(counted.patches))
