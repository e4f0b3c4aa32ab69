"""Coin Game: the grid, the players, the coin, and a score panel.

The grid is a checkerboard.  Each player is a rounded square with eyes in its
colour (the centre of the cell is the player's colour when the player is alone
there); players sharing a cell are drawn side by side, one vertical slice each
in player order.  The coin is a disc in its owner's colour with a gold rim,
centred in its cell (its centre pixel is the owner's colour) or, when a player
stands on it, small in the top-right corner of the cell.  The panel on the
right shows each player's score and the coins it picked up (its own and other
players').
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import _draw as d
from .frames import CoinGameFrame

__all__ = ["render_coin_game", "coin_game_cell_rect", "coin_game_image_size"]

_MIN_WIDTH = 640
_MARGIN = 20
_HEADER_H = 58
_GRID_PX = 336  # target grid size in pixels
_MIN_CELL = 12
_PANEL_W = 244
_PLAYER_BLOCK_H = 96  # minimum height of one player's block in the panel
_BLOCKS_Y = 86  # offset of the first player block inside the panel
_CHECKER = ((54, 60, 74), (62, 69, 84))
_GRID_EDGE = (80, 88, 106)
_EYE_WHITE = (248, 248, 250)
_PUPIL = (24, 26, 32)
_COIN_EDGE = (120, 92, 20)


@dataclass(frozen=True)
class _Layout:
    size: int
    n_players: int
    width: int
    height: int
    cell: int
    gx: int
    gy: int
    panel: tuple[int, int, int, int]
    block_h: int  # height of one player's block in the panel


@lru_cache(maxsize=32)
def _layout(size: int, n_players: int) -> _Layout:
    cell = max(_MIN_CELL, _GRID_PX // size)
    grid = cell * size
    width = max(_MIN_WIDTH, 2 * _MARGIN + grid + 20 + _PANEL_W)
    px = _MARGIN + grid + 20
    panel_h_min = _BLOCKS_Y + n_players * _PLAYER_BLOCK_H
    height = _HEADER_H + max(grid, panel_h_min) + _MARGIN
    panel = (px, _HEADER_H, width - _MARGIN - px, height - _HEADER_H - _MARGIN)
    block_h = min(2 * _PLAYER_BLOCK_H, (panel[3] - _BLOCKS_Y) // n_players)
    return _Layout(size, n_players, width, height, cell, _MARGIN, _HEADER_H, panel, block_h)


def coin_game_image_size(size: int = 3, n_players: int = 2) -> tuple[int, int]:
    """``(height, width)`` of the image :func:`render_coin_game` returns."""
    lay = _layout(d.check_int("size", size, 1), d.check_int("n_players", n_players, 1))
    return lay.height, lay.width


def coin_game_cell_rect(size: int, row: int, col: int, n_players: int = 2) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in pixels of grid cell ``(row, col)`` for a ``size x size`` grid."""
    size = d.check_int("size", size, 1)
    row, col = d.check_int("row", row, 0), d.check_int("col", col, 0)
    if row >= size or col >= size:
        raise ValueError(f"(row, col) must be inside the {size}x{size} grid, got ({row}, {col})")
    lay = _layout(size, d.check_int("n_players", n_players, 1))
    return (lay.gx + col * lay.cell, lay.gy + row * lay.cell, lay.cell, lay.cell)


_backgrounds: dict[tuple[int, int], tuple[Any, Any]] = {}


def _coin(surface: Any, colour: d.Colour, centre: tuple[int, int], radius: int) -> None:
    """A disc of ``colour`` with a gold rim; the centre pixel is ``colour``."""
    draw = d.pg().draw
    rim = max(2, radius // 4)
    draw.aacircle(surface, _COIN_EDGE, centre, radius + 1)
    draw.aacircle(surface, d.COIN_RIM_COLOUR, centre, radius)
    draw.aacircle(surface, colour, centre, max(1, radius - rim))


def _background(size: int, n: int) -> tuple[Any, Any]:
    key = (size, n)
    cached = _backgrounds.get(key)
    if cached is not None:
        return cached
    lay = _layout(size, n)
    bg = d.new_surface(lay.width, lay.height)
    bg.fill(d.BACKGROUND_COLOUR)
    d.blit_text(bg, "Coin Game", 32, d.TEXT_COLOUR, (_MARGIN, 18))
    c = lay.cell
    grid_rect = (lay.gx - 3, lay.gy - 3, c * size + 6, c * size + 6)
    d.rounded_rect(bg, _GRID_EDGE, grid_rect, 8)
    for r in range(size):
        for col in range(size):
            bg.fill(_CHECKER[(r + col) % 2], (lay.gx + col * c, lay.gy + r * c, c, c))
    px, py, pw, ph = lay.panel
    d.panel(bg, lay.panel)
    y = py + _BLOCKS_Y
    for i in range(n):
        bg.fill(d.PANEL_EDGE_COLOUR, (px + 12, y - 12, pw - 24, 1))
        d.pill(bg, f"player_{i}", 22, d.player_colour(i), (px + 16, y + 4))
        d.blit_text(bg, "score", 18, d.MUTED_TEXT_COLOUR, (px + pw - 16, y), "topright")
        d.blit_text(bg, "coins picked up", 18, d.MUTED_TEXT_COLOUR, (px + 16, y + 46))
        y += lay.block_h
    canvas = d.Canvas(lay.width, lay.height)
    _backgrounds[key] = (canvas, bg)
    return canvas, bg


def _token(surface: Any, colour: d.Colour, rect: tuple[int, int, int, int], radius: int) -> None:
    """A player: rounded square with two eyes in its upper part."""
    draw = d.pg().draw
    x, y, w, h = rect
    d.rounded_rect(surface, colour, rect, radius)
    d.rounded_rect(surface, d.mix(colour, (0, 0, 0), 0.35), rect, radius, max(1, min(w, h) // 28))
    er = int(min(w * 0.14, h * 0.1))
    if er >= 2:
        ey = y + int(h * 0.3)
        for ex in (x + int(w * 0.3), x + w - int(w * 0.3)):
            draw.circle(surface, _EYE_WHITE, (ex, ey), er)
            draw.circle(surface, _PUPIL, (ex, ey + max(1, er // 4)), max(1, (er * 3) // 5))


def render_coin_game(frame: CoinGameFrame) -> np.ndarray:
    """Draw a :class:`CoinGameFrame`; returns ``uint8 [H, W, 3]`` (size fixed by ``size`` and the player count)."""
    size = d.check_int("frame.size", frame.size, 1)
    pos = d.as_array("frame.positions", frame.positions, (None, 2), np.int64)
    n = pos.shape[0]
    if n < 1:
        raise ValueError("frame.positions must hold at least one player")
    if (pos < 0).any() or (pos >= size).any():
        raise ValueError(f"frame.positions must lie inside the {size}x{size} grid, got {pos.tolist()}")
    if len(frame.coin) != 2:
        raise ValueError(f"frame.coin must be (row, col), got {frame.coin!r}")
    coin = (d.check_int("frame.coin[0]", frame.coin[0], 0), d.check_int("frame.coin[1]", frame.coin[1], 0))
    if coin[0] >= size or coin[1] >= size:
        raise ValueError(f"frame.coin must lie inside the {size}x{size} grid, got {coin}")
    owner = d.check_int("frame.coin_owner", frame.coin_owner, 0)
    if owner >= n:
        raise ValueError(f"frame.coin_owner must be < {n} (number of players), got {owner}")
    if len(frame.scores) != n:
        raise ValueError(f"frame.scores must have {n} entries (one per player), got {len(frame.scores)}")
    picked = d.as_array("frame.coins_picked", frame.coins_picked, (n, n), np.int64)

    lay = _layout(size, n)
    canvas, bg = _background(size, n)
    s = canvas.surface
    s.blit(bg, (0, 0))
    c = lay.cell

    # Players, grouped by cell so that players sharing a cell are side by side.
    cells: dict[tuple[int, int], list[int]] = {}
    for i in range(n):
        cells.setdefault((int(pos[i, 0]), int(pos[i, 1])), []).append(i)
    inset = max(1, int(round(c * 0.13)))
    radius = max(0, int(c * 0.2))
    coin_covered = coin in cells
    if not coin_covered:
        cx, cy = lay.gx + coin[1] * c + c // 2, lay.gy + coin[0] * c + c // 2
        _coin(s, d.player_colour(owner), (cx, cy), max(2, int(c * 0.27)))
    for (r, col), players in cells.items():
        x0, y0 = lay.gx + col * c + inset, lay.gy + r * c + inset
        inner = c - 2 * inset
        k = len(players)
        gap = max(1, c // 28) if k > 1 else 0
        slot = (inner - gap * (k - 1)) / k
        for j, i in enumerate(players):
            xa = x0 + int(round(j * (slot + gap)))
            xb = x0 + int(round(j * (slot + gap) + slot))
            _token(s, d.player_colour(i), (xa, y0, max(1, xb - xa), inner), min(radius, int(slot // 2)))
    if coin_covered:
        cr = max(2, int(c * 0.15))
        cx = lay.gx + coin[1] * c + c - cr - max(1, c // 20)
        cy = lay.gy + coin[0] * c + cr + max(1, c // 20)
        _coin(s, d.player_colour(owner), (cx, cy), cr)

    # Header and panel.
    step, max_steps = int(frame.step), int(frame.max_steps)
    d.blit_text(s, f"Step {step} / {max_steps}", 28, d.TEXT_COLOUR, (lay.width - _MARGIN, 20), "topright")
    px, py, pw, ph = lay.panel
    d.progress_bar(s, (px + 16, py + 16, pw - 32, 8), step / max_steps if max_steps > 0 else 0.0)
    _coin(s, d.player_colour(owner), (px + 30, py + 50), 12)
    d.blit_text(s, f"coin of player_{owner}", 22, d.TEXT_COLOUR, (px + 52, py + 50), "midleft")
    y = py + _BLOCKS_Y
    for i in range(n):
        d.blit_text(s, d.fmt(frame.scores[i]), 40, d.TEXT_COLOUR, (px + pw - 16, y + 16), "topright")
        own = int(picked[i, i])
        other = int(picked[i].sum()) - own
        ly = y + 76
        _coin(s, d.player_colour(i), (px + 24, ly), 7)
        r = d.blit_text(s, f"{own} own", 20, d.TEXT_COLOUR, (px + 37, ly), "midleft")
        oc = d.player_colour(1 - i) if n == 2 else d.UNPLAYED_COLOUR
        _coin(s, oc, (r.right + 22, ly), 7)
        d.blit_text(s, f"{other} other's", 20, d.TEXT_COLOUR, (r.right + 35, ly), "midleft")
        y += lay.block_h
    return canvas.to_array()
