"""Melting Pot's Commons Harvest Open as a PettingZoo family module, as PettingZoo's own
games are::

    from social_dilemmas import commons_harvest_open_v0

    env = commons_harvest_open_v0.env(max_cycles=100)  # AEC: the agents act in turn
    par = commons_harvest_open_v0.parallel_env(max_cycles=100)  # parallel: every agent at once

Needs the Melting Pot extra (``python scripts/install_meltingpot.py``); importing this
module does not import Melting Pot, making an env does.

``max_cycles`` is the game's ``max_steps``: the seven players move simultaneously, so one
cycle (every agent acts once) is one step of the substrate, and every agent is truncated
after ``max_cycles`` cycles (default: the game's own ``max_steps``, 1000). A ``max_steps``
that differs from ``max_cycles`` is refused with a ``ValueError``; an equal one is accepted.
Every other keyword argument is a constructor argument of
:class:`social_dilemmas.commons_harvest.CommonsHarvestOpen` (``resize``, ``grayscale``,
``channels_first``, ``deterministic``; see its docstring for the game). The same env as
``social_dilemmas.parallel_env("commons_harvest_open", ...)`` and the registered id
``social_dilemmas/CommonsHarvestOpen-v0``.
"""

from __future__ import annotations

from social_dilemmas import family

__all__ = ["env", "parallel_env", "raw_env"]

env, parallel_env, raw_env = family.makers("commons_harvest_open", "social_dilemmas.commons_harvest.CommonsHarvestOpen", "social_dilemmas.commons_harvest.CommonsHarvestOpen", 1000)
