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

from typing import Any

from social_dilemmas import family

__all__ = ["env", "parallel_env", "raw_env"]


def parallel_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The PettingZoo ``ParallelEnv`` (:class:`social_dilemmas.commons_harvest.CommonsHarvestOpen`).

    Arguments:
        max_cycles: episode length in steps (one step = every agent acts once); None keeps
            the game's ``max_steps`` (default 1000). Sets ``max_steps``; a different
            ``max_steps`` is refused.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        **kwargs: constructor arguments of :class:`~social_dilemmas.commons_harvest.CommonsHarvestOpen`.
    """
    return family.make_parallel("commons_harvest_open", max_cycles, render_mode, kwargs)


def raw_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The AEC view of :func:`parallel_env`'s env (PettingZoo's ``parallel_to_aec_wrapper``),
    without the order-enforcing wrapper. Same arguments as :func:`parallel_env`."""
    return family.make_raw("commons_harvest_open", max_cycles, render_mode, kwargs)


def env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The PettingZoo AEC env: :func:`parallel_env`'s env through ``pettingzoo.utils.parallel_to_aec``.
    The agents act in turn; the substrate steps once the last agent of a cycle has acted.
    Same arguments as :func:`parallel_env`."""
    return family.make_aec("commons_harvest_open", max_cycles, render_mode, kwargs)
