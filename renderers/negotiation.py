"""Negotiation: values, proposals and the resulting split of each item.

Left, a grouped bar chart: for every item, each player's value (solid bar in
the player's colour) and proposal (light bar with an outline in the player's
colour), with the item's quantity underneath and, below it, the split of the
item as a bar: player_0's share from the left, player_1's from the right, the
unallocated rest grey in the middle.  Right, each player's running score and
reward this round.  Header: round number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import _draw as d
from .frames import NegotiationFrame

__all__ = ["render_negotiation", "negotiation_image_size"]

_WIDTH = 640
_HEIGHT = 440
_MARGIN = 20
_HEADER_H = 58
_SIDE_W = 188
_PLOT_TOP = 52  # offset of the plot area inside the chart panel
_PLOT_H = 200
_AXIS_W = 34
_SPLIT_H = 20
_MIN_Y_MAX = 5


@dataclass(frozen=True)
class _Layout:
    n_items: int
    chart: tuple[int, int, int, int]
    side: tuple[int, int, int, int]
    plot_x: int
    plot_y: int  # top of the plot area
    plot_w: int
    group_w: float
    bar_w: int
    split_y: int


@lru_cache(maxsize=32)
def _layout(n_items: int) -> _Layout:
    chart_w = _WIDTH - 2 * _MARGIN - _SIDE_W - 12
    chart = (_MARGIN, _HEADER_H, chart_w, _HEIGHT - _HEADER_H - _MARGIN)
    side = (_MARGIN + chart_w + 12, _HEADER_H, _SIDE_W, chart[3])
    plot_x = chart[0] + 14 + _AXIS_W
    plot_w = chart[0] + chart_w - 12 - plot_x
    group_w = plot_w / n_items
    bar_w = max(1, min(26, int((group_w - 18) / 4.5)))
    split_y = _HEADER_H + _PLOT_TOP + _PLOT_H + 46
    return _Layout(n_items, chart, side, plot_x, _HEADER_H + _PLOT_TOP, plot_w, group_w, bar_w, split_y)


def negotiation_image_size(n_items: int = 3) -> tuple[int, int]:
    """``(height, width)`` of the image :func:`render_negotiation` returns (the same for any item count)."""
    d.check_int("n_items", n_items, 1)
    return _HEIGHT, _WIDTH


def _bar_xs(lay: _Layout, item: int) -> tuple[int, int, int, int]:
    """Left x of the four bars of ``item``: p0 value, p0 proposal, p1 value, p1 proposal."""
    bw = lay.bar_w
    gap_pair = max(1, bw // 2)
    total = 4 * bw + gap_pair
    x = int(round(lay.plot_x + item * lay.group_w + (lay.group_w - total) / 2))
    return (x, x + bw, x + 2 * bw + gap_pair, x + 3 * bw + gap_pair)


_backgrounds: dict[tuple[int, int], tuple[Any, Any]] = {}


def _background(n_items: int, y_max: int) -> tuple[Any, Any]:
    key = (n_items, y_max)
    cached = _backgrounds.get(key)
    if cached is not None:
        return cached
    lay = _layout(n_items)
    bg = d.new_surface(_WIDTH, _HEIGHT)
    bg.fill(d.BACKGROUND_COLOUR)
    d.blit_text(bg, "Negotiation", 32, d.TEXT_COLOUR, (_MARGIN, 18))
    d.panel(bg, lay.chart)
    d.panel(bg, lay.side)
    cx, cy, cw, ch = lay.chart
    # Legend.
    x = d.legend_swatch(bg, d.MUTED_TEXT_COLOUR, "value", (cx + 14, cy + 14), 20) + 18
    x = d.legend_swatch(bg, d.mix(d.MUTED_TEXT_COLOUR, d.PANEL_COLOUR, 0.6), "proposal", (x, cy + 14), 20,
                        outline=d.MUTED_TEXT_COLOUR) + 18
    # Axis and grid lines.
    step = 1 if y_max <= 10 else math.ceil(y_max / 10)
    for v in range(0, y_max + 1, step):
        y = lay.plot_y + _PLOT_H - int(round(v / y_max * _PLOT_H))
        colour = d.PANEL_EDGE_COLOUR if v else d.MUTED_TEXT_COLOUR
        bg.fill(colour, (lay.plot_x - 4, y, lay.plot_w + 4, 1))
        d.blit_text(bg, str(v), 18, d.MUTED_TEXT_COLOUR, (lay.plot_x - 8, y), "midright")
    d.blit_text(bg, "split", 18, d.MUTED_TEXT_COLOUR, (cx + 14, lay.split_y + _SPLIT_H // 2), "midleft")
    ly = lay.split_y + _SPLIT_H + 14
    x = d.legend_swatch(bg, d.player_colour(0), "player_0", (lay.plot_x, ly), 18, 12) + 16
    x = d.legend_swatch(bg, d.UNPLAYED_COLOUR, "unallocated", (x, ly), 18, 12) + 16
    d.legend_swatch(bg, d.player_colour(1), "player_1", (x, ly), 18, 12)
    sx, sy, sw, sh = lay.side
    for p in range(2):
        y = sy + 14 + p * (sh // 2)
        if p:
            bg.fill(d.PANEL_EDGE_COLOUR, (sx + 12, y - 14, sw - 24, 1))
        d.pill(bg, f"player_{p}", 22, d.player_colour(p), (sx + 14, y))
        d.blit_text(bg, "score", 18, d.MUTED_TEXT_COLOUR, (sx + 14, y + 42))
        d.blit_text(bg, "this round", 18, d.MUTED_TEXT_COLOUR, (sx + 14, y + 96))
    canvas = d.Canvas(_WIDTH, _HEIGHT)
    _backgrounds[key] = (canvas, bg)
    return canvas, bg


def _fmt1(x: float) -> str:
    x = float(x)
    return str(int(round(x))) if abs(x - round(x)) < 0.05 else f"{x:.1f}"


def render_negotiation(frame: NegotiationFrame) -> np.ndarray:
    """Draw a :class:`NegotiationFrame`; returns ``uint8 [440, 640, 3]``."""
    pool = d.as_array("frame.item_pool", frame.item_pool, (None,))
    n_items = pool.shape[0]
    if n_items < 1:
        raise ValueError("frame.item_pool must hold at least one item")
    values = d.as_array("frame.values", frame.values, (2, n_items))
    proposals = None if frame.proposals is None else d.as_array("frame.proposals", frame.proposals, (2, n_items))
    shares = None if frame.shares is None else d.as_array("frame.shares", frame.shares, (2, n_items))
    rewards = None if frame.rewards is None else d.as_array("frame.rewards", frame.rewards, (2,))
    if len(frame.scores) != 2:
        raise ValueError(f"frame.scores must have 2 entries, got {len(frame.scores)}")

    top = float(np.nanmax(values)) if values.size else 0.0
    if proposals is not None and proposals.size:
        top = max(top, float(np.nanmax(proposals)))
    y_max = max(_MIN_Y_MAX, int(math.ceil(top - 1e-9)) if math.isfinite(top) else _MIN_Y_MAX)

    lay = _layout(n_items)
    canvas, bg = _background(n_items, y_max)
    s = canvas.surface
    s.blit(bg, (0, 0))
    step, max_steps = int(frame.step), int(frame.max_steps)
    d.blit_text(s, f"Round {step} / {max_steps}", 28, d.TEXT_COLOUR, (_WIDTH - _MARGIN, 20), "topright")

    base = lay.plot_y + _PLOT_H
    bw = lay.bar_w
    show_numbers = bw >= 14
    for i in range(n_items):
        xs = _bar_xs(lay, i)
        for p in range(2):
            colour = d.player_colour(p)
            for kind, v in ((0, values[p, i]), (1, None if proposals is None else proposals[p, i])):
                x = xs[2 * p + kind]
                if v is None or not math.isfinite(v):
                    continue
                h = int(round(min(max(float(v), 0.0), y_max) / y_max * _PLOT_H))
                rect = (x + 1, base - h, bw - 2, h)
                if kind == 0:
                    if h:
                        s.fill(colour, rect)
                else:
                    if h:
                        s.fill(d.mix(colour, d.PANEL_COLOUR, 0.6), rect)
                        d.rounded_rect(s, colour, rect, 0, 2 if bw >= 10 else 1)
                if show_numbers:
                    d.blit_text(s, _fmt1(v), 16, d.MUTED_TEXT_COLOUR, (x + bw // 2, base - h - 3), "midbottom")
        gx = lay.plot_x + i * lay.group_w
        if lay.group_w >= 90:
            label = f"item {i + 1} \u00d7{_fmt1(pool[i])}"
        else:
            label = f"item {i + 1}" if lay.group_w >= 60 else str(i + 1)
        d.blit_text(s, label, 18, d.TEXT_COLOUR, (int(gx + lay.group_w / 2), base + 16), "center")
        # Split bar: player_0 from the left, player_1 from the right, grey rest.
        x0 = int(round(gx + 6))
        w = int(round(lay.group_w - 12))
        y = lay.split_y
        d.rounded_rect(s, d.UNPLAYED_COLOUR, (x0, y, w, _SPLIT_H), 4)
        if shares is None:
            if w >= 40:
                d.blit_text(s, "\u2013", 18, d.MUTED_TEXT_COLOUR, (x0 + w // 2, y + _SPLIT_H // 2), "center")
            continue
        a = min(1.0, max(0.0, float(shares[0, i])))
        b = min(1.0 - a, max(0.0, float(shares[1, i])))
        wa, wb = int(round(a * w)), int(round(b * w))
        draw_rect = d.pg().draw.rect
        if wa:
            draw_rect(s, d.player_colour(0), (x0, y, wa, _SPLIT_H), 0,
                      border_top_left_radius=4, border_bottom_left_radius=4)
        if wb:
            draw_rect(s, d.player_colour(1), (x0 + w - wb, y, wb, _SPLIT_H), 0,
                      border_top_right_radius=4, border_bottom_right_radius=4)
        for frac, seg_x, seg_w in ((a, x0, wa), (b, x0 + w - wb, wb)):
            label = f"{int(round(frac * 100))}%"
            if seg_w >= d.text_size(label, 16)[0] + 6:
                d.blit_text(s, label, 16, d.WHITE, (seg_x + seg_w // 2, y + _SPLIT_H // 2 + 1), "center")

    sx, sy, sw, sh = lay.side
    for p in range(2):
        y = sy + 14 + p * (sh // 2)
        d.blit_text(s, d.fmt(frame.scores[p]), 40, d.TEXT_COLOUR, (sx + sw - 16, y + 62), "midright")
        r = "\u2013" if rewards is None else d.fmt(rewards[p], signed=True)
        d.blit_text(s, r, 30, d.TEXT_COLOUR, (sx + sw - 16, y + 116), "midright")
    return canvas.to_array()
