"""Pictures of the social-dilemma games, drawn from plain data.

The environments describe one moment of a game as a small frozen dataclass
(:mod:`renderers.frames`); the functions here turn it into an RGB image,
``uint8 [H, W, 3]``, whose size is fixed for a given game configuration::

    from renderers import IPDFrame, render
    rgb = render(IPDFrame(actions=np.zeros((0, 2), int), max_steps=16, scores=(0, 0)))

The drawers reuse one cached surface per game configuration, so they are not
thread-safe; the arrays they return are fresh copies the caller owns.

This package imports nothing from the rest of the project.  pygame is imported
on the first drawing call, off screen (only its font module is initialised);
:class:`renderers.window.Window` shows frames in a window and
:mod:`renderers.video` writes them to ``.mp4`` / ``.gif``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._draw import (
    BACKGROUND_COLOUR,
    COMMONS_HARVEST_COLOURS,
    COOPERATE_COLOUR,
    DEFECT_COLOUR,
    PLAYER_COLOURS,
    TEXT_COLOUR,
    UNPLAYED_COLOUR,
)
from .coin_game import coin_game_cell_rect, coin_game_image_size, render_coin_game
from .commons_harvest import commons_harvest_image_size, commons_harvest_world_rect, render_commons_harvest
from .frames import CoinGameFrame, CommonsHarvestFrame, IPDFrame, NegotiationFrame
from .ipd import ipd_cell_rect, ipd_image_size, render_ipd
from .negotiation import negotiation_image_size, render_negotiation

__all__ = [
    "render",
    "RENDERERS",
    "IPDFrame",
    "CoinGameFrame",
    "NegotiationFrame",
    "CommonsHarvestFrame",
    "render_ipd",
    "render_coin_game",
    "render_negotiation",
    "render_commons_harvest",
    "ipd_cell_rect",
    "ipd_image_size",
    "coin_game_cell_rect",
    "coin_game_image_size",
    "negotiation_image_size",
    "commons_harvest_world_rect",
    "commons_harvest_image_size",
    "PLAYER_COLOURS",
    "COMMONS_HARVEST_COLOURS",
    "COOPERATE_COLOUR",
    "DEFECT_COLOUR",
    "UNPLAYED_COLOUR",
    "BACKGROUND_COLOUR",
    "TEXT_COLOUR",
]

#: Frame type -> drawing function.
RENDERERS: dict[type, Callable[[Any], np.ndarray]] = {
    IPDFrame: render_ipd,
    CoinGameFrame: render_coin_game,
    NegotiationFrame: render_negotiation,
    CommonsHarvestFrame: render_commons_harvest,
}


def render(frame: Any) -> np.ndarray:
    """Draw any game frame with the drawer for its type; ``uint8 [H, W, 3]``."""
    fn = RENDERERS.get(type(frame))
    if fn is None:
        for cls, f in RENDERERS.items():
            if isinstance(frame, cls):
                fn = f
                break
    if fn is None:
        names = ", ".join(c.__name__ for c in RENDERERS)
        raise TypeError(f"frame must be one of {names}; got {type(frame).__name__}")
    return fn(frame)
