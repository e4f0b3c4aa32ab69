"""Commons Harvest (Melting Pot): the world scaled up, and a score panel.

The world image is scaled by an integer factor (nearest neighbour, so every
world pixel becomes an exact ``f x f`` block); on the right, each player's
running return with a bar, in the player's avatar colour, and the collective
return of all players.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import _draw as d
from .frames import CommonsHarvestFrame

__all__ = ["render_commons_harvest", "commons_harvest_world_rect", "commons_harvest_image_size"]

_MARGIN = 20
_HEADER_H = 58
_WORLD_MAX_W = 576
_WORLD_MAX_H = 480
_PANEL_W = 224
_ROW_H = 40
_TOTAL_H = 74
_FRAME_COLOUR = (80, 88, 106)


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    scale: int
    world: tuple[int, int, int, int]  # x, y, w, h of the scaled world
    panel: tuple[int, int, int, int]
    row_h: int


@lru_cache(maxsize=32)
def _layout(world_h: int, world_w: int, n_players: int) -> _Layout:
    f = max(1, min(_WORLD_MAX_W // world_w, _WORLD_MAX_H // world_h))
    ww, wh = world_w * f, world_h * f
    panel_min = 70 + n_players * _ROW_H + _TOTAL_H
    height = _HEADER_H + max(wh, panel_min) + _MARGIN
    width = 2 * _MARGIN + ww + 16 + _PANEL_W
    panel = (_MARGIN + ww + 16, _HEADER_H, _PANEL_W, height - _HEADER_H - _MARGIN)
    row_h = max(_ROW_H, min(64, (panel[3] - 70 - _TOTAL_H) // max(1, n_players)))
    return _Layout(width, height, f, (_MARGIN, _HEADER_H, ww, wh), panel, row_h)


def commons_harvest_world_rect(world_shape: Sequence[int], n_players: int = 7) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in pixels of the scaled world; the scale factor is ``w // world_shape[1]``."""
    h, w = d.check_int("world_shape[0]", world_shape[0], 1), d.check_int("world_shape[1]", world_shape[1], 1)
    return _layout(h, w, d.check_int("n_players", n_players, 1)).world


def commons_harvest_image_size(world_shape: Sequence[int], n_players: int = 7) -> tuple[int, int]:
    """``(height, width)`` of the image :func:`render_commons_harvest` returns."""
    h, w = d.check_int("world_shape[0]", world_shape[0], 1), d.check_int("world_shape[1]", world_shape[1], 1)
    lay = _layout(h, w, d.check_int("n_players", n_players, 1))
    return lay.height, lay.width


_backgrounds: dict[tuple, tuple[Any, Any]] = {}


def _background(key: tuple, colours: tuple) -> tuple[Any, Any]:
    cached = _backgrounds.get(key)
    if cached is not None:
        return cached
    lay = _layout(*key[:3])
    bg = d.new_surface(lay.width, lay.height)
    bg.fill(d.BACKGROUND_COLOUR)
    d.blit_text(bg, "Commons Harvest", 32, d.TEXT_COLOUR, (_MARGIN, 18))
    x, y, w, h = lay.world
    d.rounded_rect(bg, _FRAME_COLOUR, (x - 3, y - 3, w + 6, h + 6), 6)
    d.panel(bg, lay.panel)
    px, py, pw, ph = lay.panel
    d.blit_text(bg, "returns", 20, d.MUTED_TEXT_COLOUR, (px + 16, py + 38))
    for i in range(key[2]):
        ry = py + 64 + i * lay.row_h
        d.pill(bg, f"player_{i}", 20, colours[i % len(colours)], (px + 14, ry))
    ty = py + ph - _TOTAL_H + 8
    bg.fill(d.PANEL_EDGE_COLOUR, (px + 12, ty, pw - 24, 1))
    d.blit_text(bg, "collective return", 20, d.MUTED_TEXT_COLOUR, (px + 16, ty + 14))
    canvas = d.Canvas(lay.width, lay.height)
    _backgrounds[key] = (canvas, bg)
    return canvas, bg


def render_commons_harvest(frame: CommonsHarvestFrame, colours: Sequence[d.Colour] | None = None) -> np.ndarray:
    """Draw a :class:`CommonsHarvestFrame`; returns ``uint8 [H, W, 3]`` (size fixed by the world shape).

    ``colours`` are the players' colours in the panel; by default
    :data:`COMMONS_HARVEST_COLOURS`, the colours Melting Pot gives the avatars.
    """
    world = np.asarray(frame.world)
    if world.ndim != 3 or world.shape[2] != 3 or world.shape[0] < 1 or world.shape[1] < 1:
        raise ValueError(f"frame.world must have shape [H, W, 3], got {list(world.shape)}")
    if world.dtype != np.uint8:
        raise ValueError(f"frame.world must be uint8, got {world.dtype}")
    scores = d.as_array("frame.scores", frame.scores, (None,))
    n = scores.shape[0]
    if n < 1:
        raise ValueError("frame.scores must hold at least one player")
    colours = tuple(tuple(int(v) for v in c) for c in (d.COMMONS_HARVEST_COLOURS if colours is None else colours))
    if not colours:
        raise ValueError("colours must not be empty")
    hw, ww = world.shape[:2]
    key = (hw, ww, n, colours)
    lay = _layout(hw, ww, n)
    canvas, bg = _background(key, colours)
    s = canvas.surface
    s.blit(bg, (0, 0))
    step, max_steps = int(frame.step), int(frame.max_steps)
    d.blit_text(s, f"Step {step} / {max_steps}", 28, d.TEXT_COLOUR, (lay.width - _MARGIN, 20), "topright")
    px, py, pw, ph = lay.panel
    d.progress_bar(s, (px + 16, py + 16, pw - 32, 8), step / max_steps if max_steps > 0 else 0.0)
    top = max(1.0, float(np.nanmax(np.abs(scores))) if np.isfinite(scores).any() else 1.0)
    bar_w = pw - 32
    for i in range(n):
        ry = py + 64 + i * lay.row_h
        colour = colours[i % len(colours)]
        d.blit_text(s, d.fmt(scores[i]), 28, d.TEXT_COLOUR, (px + pw - 16, ry + 12), "midright")
        v = float(scores[i])
        bw = int(round(min(1.0, abs(v) / top) * bar_w)) if np.isfinite(v) else 0
        s.fill(d.UNPLAYED_COLOUR, (px + 16, ry + 30, bar_w, 4))
        if bw:
            s.fill(colour, (px + 16, ry + 30, bw, 4))
    ty = py + ph - _TOTAL_H + 8
    d.blit_text(s, d.fmt(float(np.nansum(scores))), 32, d.TEXT_COLOUR, (px + pw - 16, ty + 50), "midright")

    out = canvas.to_array()
    x, y, w, h = lay.world
    f = lay.scale
    # Nearest-neighbour upscale: repeat columns once, then broadcast over the
    # f copies of each row (inner dimension contiguous, so this is fast).
    rows = np.repeat(world, f, axis=1) if f > 1 else world
    region = out[y:y + h, x:x + w].reshape(hw, f, w, 3)
    region[...] = rows[:, None]
    return out
