"""Iterated Prisoner's Dilemma: both players' history as a timeline.

One row of cells per player, one column per round: cooperate in
:data:`COOPERATE_COLOUR`, defect in :data:`DEFECT_COLOUR`, unplayed rounds in
:data:`UNPLAYED_COLOUR`.  The last round played is outlined and marked with a
caret; below the timeline each player's running score, last reward and last
action; a legend at the bottom.

The image is always 640 pixels wide, whatever ``max_steps``.  The timeline
shows at most :data:`MAX_ROUNDS_SHOWN` (460) rounds: every round when
``max_steps <= 460``; otherwise a window of 460 rounds that starts at round 1
and, once more than 460 rounds were played, slides so that it ends at the last
round played (the numbers above the cells are the real round numbers).  Why
460: it is the width of the timeline in the 640-pixel image at the smallest
cell pitch, one pixel per round, so every ``max_steps`` that already fitted the
640-pixel image is drawn exactly as before, longer games keep that width (and
the 1-pixel cells they had) instead of growing by one pixel per round -- a
``max_steps=10**6`` game used to need a 1,000,180-pixel-wide, 933 MiB image --
and the cost of a frame no longer grows with ``max_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from . import _draw as d
from .frames import IPDFrame

__all__ = ["render_ipd", "ipd_cell_rect", "ipd_image_size", "MAX_ROUNDS_SHOWN"]

_MIN_WIDTH = 640
_MARGIN = 20
_LABEL_W = 112  # player-label column inside the timeline panel
_PAD = 14  # inner padding of the panels
_MAX_PITCH = 40
_CELL_H = 34
_ROW_GAP = 10
_TICK_SIZE = 18
_HEADER_H = 54
_CARD_H = 84
_LEGEND_H = 24
_PLAYERS = ("player_0", "player_1")
_TIMELINE_W = _MIN_WIDTH - 2 * _MARGIN - 2 * _PAD - _LABEL_W  # 460 px for the cells

#: The most rounds the timeline shows: one pixel per round across the timeline of the
#: 640-pixel image (see the module docstring).
MAX_ROUNDS_SHOWN = _TIMELINE_W


@dataclass(frozen=True)
class _Layout:
    width: int
    height: int
    pitch: int  # horizontal distance between the starts of two cells
    cell_w: int
    cell_h: int
    x0: int  # x of the first cell
    row_y: tuple[int, int]
    panel: tuple[int, int, int, int]
    cards: tuple[tuple[int, int, int, int], tuple[int, int, int, int]]
    legend_y: int
    slots: int  # rounds shown: min(max_steps, MAX_ROUNDS_SHOWN)
    ticks: tuple[int, ...]  # 0-based rounds that get a number above them (when every round is shown)
    tick_every: int  # a number above every tick_every-th round
    mask: np.ndarray  # bool [cell_h, pitch]: pixels of one cell inside its pitch


def _radius(cell_w: int) -> int:
    return 4 if cell_w >= 12 else 0


@lru_cache(maxsize=32)
def _layout(max_steps: int) -> _Layout:
    slots = min(max_steps, MAX_ROUNDS_SHOWN)
    pitch = max(1, min(_MAX_PITCH, _TIMELINE_W // slots))
    gap = 4 if pitch >= 12 else (2 if pitch >= 5 else (1 if pitch >= 3 else 0))
    cell_w = pitch - gap
    width = max(_MIN_WIDTH, 2 * _MARGIN + 2 * _PAD + _LABEL_W + pitch * slots)
    x0 = _MARGIN + _PAD + _LABEL_W
    panel_y = _HEADER_H
    row0 = panel_y + _PAD + _TICK_SIZE + 4
    row1 = row0 + _CELL_H + _ROW_GAP
    panel_h = (row1 + _CELL_H + 16) - panel_y
    panel = (_MARGIN, panel_y, width - 2 * _MARGIN, panel_h)
    cards_y = panel_y + panel_h + 12
    card_w = (width - 2 * _MARGIN - 12) // 2
    cards = ((_MARGIN, cards_y, card_w, _CARD_H), (width - _MARGIN - card_w, cards_y, card_w, _CARD_H))
    legend_y = cards_y + _CARD_H + 12
    height = legend_y + _LEGEND_H + 10
    # Round numbers above the timeline: every k-th round so that labels fit.
    label_w = d.text_size(str(max_steps), _TICK_SIZE)[0] + 6
    k = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 10**9) if s * pitch >= label_w)
    ticks = tuple(sorted({0} | {r - 1 for r in range(k, slots + 1, k)})) if slots == max_steps else ()
    # Which pixels of a cell's pitch the (rounded) cell covers, as pygame draws it.
    probe = d.Canvas(pitch, _CELL_H)
    probe.surface.fill((0, 0, 0))
    d.rounded_rect(probe.surface, (255, 255, 255), (0, 0, cell_w, _CELL_H), _radius(cell_w))
    mask = probe.to_array()[:, :, 0] > 127
    return _Layout(width, height, pitch, cell_w, _CELL_H, x0, (row0, row1), panel, cards, legend_y, slots, ticks, k,
                   mask)


def _first_shown(lay: _Layout, played: int) -> int:
    """The 0-based round in the timeline's first column when ``played`` rounds were played."""
    return max(0, played - lay.slots)


def ipd_image_size(max_steps: int) -> tuple[int, int]:
    """``(height, width)`` of the image :func:`render_ipd` returns for ``max_steps``."""
    lay = _layout(d.check_int("max_steps", max_steps, 1))
    return lay.height, lay.width


def ipd_cell_rect(max_steps: int, round: int, player: int, played: int | None = None) -> tuple[int, int, int, int]:
    """``(x, y, w, h)`` in pixels of the cell of ``round`` (0-based) and ``player``.

    ``played``: the number of rounds played in the frame, needed only when
    ``max_steps > MAX_ROUNDS_SHOWN`` (the timeline then shows a window of rounds that
    depends on it); a ValueError when ``round`` is not in that frame's window."""
    lay = _layout(d.check_int("max_steps", max_steps, 1))
    r = d.check_int("round", round, 0)
    if r >= max_steps:
        raise ValueError(f"round must be < max_steps={max_steps}, got {r}")
    p = d.check_int("player", player, 0)
    if p > 1:
        raise ValueError(f"player must be 0 or 1, got {p}")
    if played is not None:
        played = d.check_int("played", played, 0)
        if played > max_steps:
            raise ValueError(f"played must be <= max_steps={max_steps}, got {played}")
    elif max_steps > lay.slots:
        raise ValueError(f"played (the rounds played in the frame) is needed when max_steps={max_steps} is above "
                         f"{MAX_ROUNDS_SHOWN}: the timeline then shows a window of {MAX_ROUNDS_SHOWN} rounds")
    first = _first_shown(lay, played or 0)
    if not first <= r < first + lay.slots:
        raise ValueError(f"round {r} is not shown when {played} rounds were played: the timeline shows rounds "
                         f"{first}..{first + lay.slots - 1} (0-based)")
    return (lay.x0 + (r - first) * lay.pitch, lay.row_y[p], lay.cell_w, lay.cell_h)


_backgrounds: dict[int, tuple[Any, Any]] = {}


def _background(max_steps: int) -> tuple[Any, Any]:
    """(canvas, static background surface) for ``max_steps``, cached; one for every
    ``max_steps`` above :data:`MAX_ROUNDS_SHOWN` (their round numbers are drawn per frame)."""
    key = min(max_steps, MAX_ROUNDS_SHOWN + 1)
    cached = _backgrounds.get(key)
    if cached is not None:
        return cached
    lay = _layout(max_steps)
    bg = d.new_surface(lay.width, lay.height)
    bg.fill(d.BACKGROUND_COLOUR)
    d.blit_text(bg, "Iterated Prisoner's Dilemma", 32, d.TEXT_COLOUR, (_MARGIN, 18))
    d.panel(bg, lay.panel)
    for p, name in enumerate(_PLAYERS):
        d.pill(bg, name, 22, d.player_colour(p), (_MARGIN + _PAD, lay.row_y[p] + lay.cell_h // 2), "midleft")
        for r in range(lay.slots):
            x, y, w, h = lay.x0 + r * lay.pitch, lay.row_y[p], lay.cell_w, lay.cell_h
            d.rounded_rect(bg, d.UNPLAYED_COLOUR, (x, y, w, h), _radius(w))
    tick_y = lay.row_y[0] - 4
    for r in lay.ticks:
        cx = lay.x0 + r * lay.pitch + lay.cell_w // 2
        d.blit_text(bg, str(r + 1), _TICK_SIZE, d.MUTED_TEXT_COLOUR, (cx, tick_y), "midbottom")
    for p, card in enumerate(lay.cards):
        x, y, w, h = card
        d.panel(bg, card)
        d.rounded_rect(bg, d.player_colour(p), (x, y, 6, h), 3)
        d.pill(bg, _PLAYERS[p], 22, d.player_colour(p), (x + 18, y + 12))
        d.blit_text(bg, "score", 18, d.MUTED_TEXT_COLOUR, (x + w - 16, y + 12), "topright")
    lx = _MARGIN
    for colour, label in ((d.COOPERATE_COLOUR, "cooperate"), (d.DEFECT_COLOUR, "defect"),
                          (d.UNPLAYED_COLOUR, "not played yet")):
        lx = d.legend_swatch(bg, colour, label, (lx, lay.legend_y + 4), 20) + 22
    d.rounded_rect(bg, d.UNPLAYED_COLOUR, (lx, lay.legend_y + 4, 14, 14), 3)
    d.rounded_rect(bg, d.TEXT_COLOUR, (lx - 2, lay.legend_y + 2, 18, 18), 4, 2)
    d.blit_text(bg, "last round", 20, d.MUTED_TEXT_COLOUR, (lx + 22, lay.legend_y + 11), "midleft")
    canvas = d.Canvas(lay.width, lay.height)
    _backgrounds[key] = (canvas, bg)
    return canvas, bg


_ACTION_COLOURS = np.array([d.COOPERATE_COLOUR, d.DEFECT_COLOUR], dtype=np.uint8)
_ACTION_WORDS = ("cooperated", "defected")
_ACTION_TEXT_COLOURS = (d.COOPERATE_COLOUR, d.DEFECT_COLOUR)


def render_ipd(frame: IPDFrame) -> np.ndarray:
    """Draw an :class:`IPDFrame`; returns ``uint8 [H, W, 3]``, 640 pixels wide (height fixed too);
    the last :data:`MAX_ROUNDS_SHOWN` rounds at most (see the module docstring)."""
    max_steps = d.check_int("frame.max_steps", frame.max_steps, 1)
    actions = np.asarray(frame.actions)
    if actions.size == 0:
        actions = actions.reshape(0, 2)
    if actions.ndim != 2 or actions.shape[1] != 2:
        raise ValueError(f"frame.actions must have shape [T, 2], got {list(actions.shape)}")
    t = actions.shape[0]
    if t > max_steps:
        raise ValueError(f"frame.actions has {t} rounds, more than frame.max_steps={max_steps}")
    if t and not ((actions == 0) | (actions == 1)).all():  # np.isin is 10x slower
        raise ValueError("frame.actions must contain only 0 (cooperate) and 1 (defect)")
    actions = actions.astype(np.intp, copy=False)
    if len(frame.scores) != 2:
        raise ValueError(f"frame.scores must have 2 entries, got {len(frame.scores)}")

    lay = _layout(max_steps)
    canvas, bg = _background(max_steps)
    s = canvas.surface
    s.blit(bg, (0, 0))
    d.blit_text(s, f"Round {t} / {max_steps}", 28, d.TEXT_COLOUR, (lay.width - _MARGIN, 20), "topright")
    first = _first_shown(lay, t)
    if lay.slots < max_steps:
        _draw_window_ticks(s, lay, first)
    if t:
        x = lay.x0 + (t - 1 - first) * lay.pitch
        top, bottom = lay.row_y[0], lay.row_y[1] + lay.cell_h
        if lay.pitch - lay.cell_w >= 4:
            d.rounded_rect(s, d.TEXT_COLOUR, (x - 2, top - 2, lay.cell_w + 4, bottom - top + 4), 6, 2)
        cx = x + lay.cell_w // 2
        d.pg().draw.polygon(s, d.TEXT_COLOUR, ((cx, bottom + 4), (cx - 5, bottom + 11), (cx + 5, bottom + 11)))
    for p, card in enumerate(lay.cards):
        x, y, w, h = card
        d.blit_text(s, d.fmt(frame.scores[p]), 44, d.TEXT_COLOUR, (x + w - 16, y + h - 12), "bottomright")
        if frame.rewards is None or t == 0:
            d.blit_text(s, "no round played yet", 20, d.MUTED_TEXT_COLOUR, (x + 18, y + h - 16), "bottomleft")
        else:
            a = int(actions[t - 1, p])
            r = d.blit_text(s, _ACTION_WORDS[a], 20, _ACTION_TEXT_COLOURS[a], (x + 18, y + h - 16), "bottomleft")
            d.blit_text(s, f", reward {d.fmt(frame.rewards[p], signed=True)}", 20, d.MUTED_TEXT_COLOUR,
                        (r.right, r.bottom), "bottomleft")

    out = canvas.to_array()
    if t:
        # Paint the played cells shown with numpy: one vectorised copy per row.
        shown = actions[first:t]
        n = t - first
        for p in range(2):
            y = lay.row_y[p]
            region = out[y:y + lay.cell_h, lay.x0:lay.x0 + n * lay.pitch].reshape(lay.cell_h, n, lay.pitch, 3)
            np.copyto(region, _ACTION_COLOURS[shown[:, p]][None, :, None, :], where=lay.mask[:, None, :, None])
    return out


def _draw_window_ticks(s: Any, lay: _Layout, first: int) -> None:
    """The round numbers above a window of rounds starting at ``first``: round 1 and every
    ``tick_every``-th round, those whose label fits inside the timeline panel."""
    k = lay.tick_every
    tick_y = lay.row_y[0] - 4
    left, right = _MARGIN + _PAD, lay.panel[0] + lay.panel[2] - _PAD // 2
    rounds = [0] if first == 0 else []
    rounds += range(first + (-(first + 1)) % k, first + lay.slots, k)  # 0-based r with (r + 1) % k == 0
    for r in rounds:
        label = str(r + 1)
        w = d.text_size(label, _TICK_SIZE)[0]
        cx = lay.x0 + (r - first) * lay.pitch + lay.cell_w // 2
        if r == 0 and first == 0 or (cx - w // 2 - 1 >= left and cx + (w + 1) // 2 + 1 <= right):
            d.blit_text(s, label, _TICK_SIZE, d.MUTED_TEXT_COLOUR, (cx, tick_y), "midbottom")
