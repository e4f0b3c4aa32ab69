"""What the PettingZoo family modules (``ipd_v0``, ``coin_game_v0``, ``negotiation_v0``,
``commons_harvest_open_v0``) share: ``max_cycles`` onto the game's ``max_steps``, and the
AEC view through PettingZoo's own ``parallel_to_aec`` conversion.

PettingZoo's own families are one module per game with ``env()`` (AEC), ``parallel_env()``
and ``raw_env()``, all taking ``max_cycles`` (``pettingzoo.test.max_cycles_test`` calls
``mod.parallel_env(max_cycles=4)`` and ``mod.env(max_cycles=4)``). Our games are
simultaneous-move: one cycle (every agent acts once) is one step of the game, so
``max_cycles`` is the game's ``max_steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pettingzoo.utils.conversions import parallel_to_aec, parallel_to_aec_wrapper

from social_dilemmas.core import check_positive_int

__all__ = ["game_kwargs", "make_parallel", "make_raw", "make_aec", "makers"]


def game_kwargs(name: str, max_cycles: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``max_steps`` set from ``max_cycles`` (left as given when
    ``max_cycles`` is None). A ``max_steps`` that differs from ``max_cycles`` is refused:
    both name the same episode length."""
    kwargs = dict(kwargs)
    if max_cycles is None:
        return kwargs
    max_cycles = check_positive_int("max_cycles", max_cycles)
    if "max_steps" in kwargs and kwargs["max_steps"] != max_cycles:
        raise ValueError(
            f"{name}_v0: max_cycles={max_cycles} and max_steps={kwargs['max_steps']!r} conflict; both set the "
            "episode length (one cycle is one step of every agent): pass only one of them, or equal values"
        )
    kwargs["max_steps"] = max_cycles
    return kwargs


def make_parallel(name: str, max_cycles: Any, render_mode: str | None, kwargs: dict[str, Any]):
    """The PettingZoo ``ParallelEnv`` of game ``name`` (:func:`social_dilemmas.parallel_env`)
    with ``max_cycles`` mapped onto ``max_steps``."""
    import social_dilemmas

    return social_dilemmas.parallel_env(name, render_mode=render_mode, **game_kwargs(name, max_cycles, kwargs))


def make_raw(name: str, max_cycles: Any, render_mode: str | None, kwargs: dict[str, Any]):
    """The AEC view of :func:`make_parallel`'s env without PettingZoo's order-enforcing wrapper."""
    return parallel_to_aec_wrapper(make_parallel(name, max_cycles, render_mode, kwargs))


def make_aec(name: str, max_cycles: Any, render_mode: str | None, kwargs: dict[str, Any]):
    """The AEC view of :func:`make_parallel`'s env, as ``pettingzoo.utils.parallel_to_aec``
    gives it (with the order-enforcing wrapper)."""
    return parallel_to_aec(make_parallel(name, max_cycles, render_mode, kwargs))


def makers(name: str, game_class: str, env_class: str, default_steps: int) -> tuple[Callable, Callable, Callable]:
    """A family module's ``(env, parallel_env, raw_env)`` for game ``name``: each takes
    ``max_cycles``, ``render_mode`` and the constructor arguments of ``game_class`` (for the
    docstrings, as is ``env_class``, the ParallelEnv's class, and ``default_steps``, the
    game's own ``max_steps``)."""
    module = f"social_dilemmas.{name}_v0"

    def parallel_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
        return make_parallel(name, max_cycles, render_mode, kwargs)

    def raw_env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
        return make_raw(name, max_cycles, render_mode, kwargs)

    def env(max_cycles: int | None = None, render_mode: str | None = None, **kwargs: Any):
        return make_aec(name, max_cycles, render_mode, kwargs)

    parallel_env.__doc__ = f"""The PettingZoo ``ParallelEnv`` (:class:`{env_class}`).

    Arguments:
        max_cycles: episode length in steps (one step = every agent acts once); None keeps
            the game's ``max_steps`` (default {default_steps}). Sets ``max_steps``; a different
            ``max_steps`` is refused.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        **kwargs: constructor arguments of :class:`{game_class}`.
    """
    raw_env.__doc__ = """The AEC view of :func:`parallel_env`'s env (PettingZoo's ``parallel_to_aec_wrapper``),
    without the order-enforcing wrapper. Same arguments as :func:`parallel_env`."""
    env.__doc__ = """The PettingZoo AEC env: :func:`parallel_env`'s env through ``pettingzoo.utils.parallel_to_aec``.
    The agents act in turn; the game steps once the last agent of a cycle has acted.
    Same arguments as :func:`parallel_env`."""
    for fn in (parallel_env, raw_env, env):
        fn.__module__, fn.__qualname__ = module, fn.__name__
    return env, parallel_env, raw_env
