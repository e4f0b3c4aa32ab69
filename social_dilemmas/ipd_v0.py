"""The Iterated Prisoner's Dilemma as a PettingZoo family module, as PettingZoo's own games are::

    from social_dilemmas import ipd_v0

    env = ipd_v0.env(max_cycles=20)  # AEC: the agents act in turn
    par = ipd_v0.parallel_env(max_cycles=20)  # parallel: every agent at once

``max_cycles`` is the game's ``max_steps``: the game is simultaneous-move, so one cycle
(every agent acts once) is one step of the game, and every agent is truncated after
``max_cycles`` cycles (default: the game's own ``max_steps``, 16). A ``max_steps``
that differs from ``max_cycles`` is refused with a ``ValueError``; an equal one is accepted.
Every other keyword argument is a constructor argument of :class:`social_dilemmas.IPD`
(``payoff``; see its docstring for the rules). The same env as
``social_dilemmas.parallel_env("ipd", ...)`` and the registered id
``social_dilemmas/IPD-v0``.
"""

from __future__ import annotations

from social_dilemmas import family

__all__ = ["env", "parallel_env", "raw_env"]

env, parallel_env, raw_env = family.makers("ipd", "social_dilemmas.IPD", "social_dilemmas.parallel.SocialDilemmaParallelEnv", 16)
