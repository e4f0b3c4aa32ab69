"""The Negotiation game as a PettingZoo family module, as PettingZoo's own games are::

    from social_dilemmas import negotiation_v0

    env = negotiation_v0.env(max_cycles=20)  # AEC: the agents act in turn
    par = negotiation_v0.parallel_env(max_cycles=20)  # parallel: every agent at once

``max_cycles`` is the game's ``max_steps``: the game is simultaneous-move, so one cycle
(every agent acts once) is one step of the game, and every agent is truncated after
``max_cycles`` cycles (default: the game's own ``max_steps``, 50). A ``max_steps``
that differs from ``max_cycles`` is refused with a ``ValueError``; an equal one is accepted.
Every other keyword argument is a constructor argument of :class:`social_dilemmas.Negotiation`
(``n_items``, ``item_pool``, ``value_low``, ``value_high``,
``max_proposal``; see its docstring for the rules). The same env as
``social_dilemmas.parallel_env("negotiation", ...)`` and the registered id
``social_dilemmas/Negotiation-v0``.
"""

from __future__ import annotations

from typing import Any

from social_dilemmas import family

__all__ = ["env", "parallel_env", "raw_env"]


def parallel_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The PettingZoo ``ParallelEnv`` (:class:`social_dilemmas.parallel.SocialDilemmaParallelEnv`).

    Arguments:
        max_cycles: episode length in steps (one step = every agent acts once); None keeps
            the game's ``max_steps`` (default 50). Sets ``max_steps``; a different
            ``max_steps`` is refused.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        **kwargs: constructor arguments of :class:`social_dilemmas.Negotiation`.
    """
    return family.make_parallel("negotiation", max_cycles, render_mode, kwargs)


def raw_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The AEC view of :func:`parallel_env`'s env (PettingZoo's ``parallel_to_aec_wrapper``),
    without the order-enforcing wrapper. Same arguments as :func:`parallel_env`."""
    return family.make_raw("negotiation", max_cycles, render_mode, kwargs)


def env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
    """The PettingZoo AEC env: :func:`parallel_env`'s env through ``pettingzoo.utils.parallel_to_aec``.
    The agents act in turn; the game steps once the last agent of a cycle has acted.
    Same arguments as :func:`parallel_env`."""
    return family.make_aec("negotiation", max_cycles, render_mode, kwargs)
