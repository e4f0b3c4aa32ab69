"""Shared drawing helpers and the colour palette of the renderers.

pygame is imported lazily (:func:`pg`), only ``pygame.font.init()`` is called
here (never ``pygame.init()``), and no display is needed: everything is drawn
on off-screen surfaces.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

Colour = tuple[int, int, int]

# --------------------------------------------------------------------------
# Palette (re-exported by ``renderers``).
# --------------------------------------------------------------------------

#: Colour of player ``i`` in the two-player games (and in any generic list).
#: player_0 red, player_1 blue, then more distinct colours.
PLAYER_COLOURS: tuple[Colour, ...] = (
    (220, 50, 47),  # player_0: red
    (38, 110, 210),  # player_1: blue
    (236, 172, 32),  # amber
    (148, 84, 206),  # purple
    (24, 170, 160),  # teal
    (226, 104, 172),  # pink
    (132, 168, 48),  # olive green
    (150, 108, 72),  # brown
)

#: Melting Pot's avatar colours (``colors.human_readable``): in Commons Harvest
#: player ``i`` is drawn in the world in ``COMMONS_HARVEST_COLOURS[i]``, so the
#: score panel uses these to match the avatars.
COMMONS_HARVEST_COLOURS: tuple[Colour, ...] = (
    (45, 110, 220),
    (125, 50, 200),
    (205, 5, 165),
    (245, 65, 65),
    (245, 130, 0),
    (195, 180, 0),
    (125, 185, 65),
    (35, 185, 175),
    (160, 15, 200),
    (230, 50, 95),
    (230, 90, 55),
    (220, 140, 15),
    (180, 195, 0),
    (25, 210, 140),
    (25, 170, 200),
    (85, 80, 210),
)

COOPERATE_COLOUR: Colour = (72, 190, 104)  # green
DEFECT_COLOUR: Colour = (236, 104, 28)  # orange
UNPLAYED_COLOUR: Colour = (70, 76, 90)  # neutral grey (rounds not played yet)

BACKGROUND_COLOUR: Colour = (23, 26, 33)
PANEL_COLOUR: Colour = (34, 38, 48)
PANEL_EDGE_COLOUR: Colour = (50, 56, 70)
TEXT_COLOUR: Colour = (234, 237, 243)
MUTED_TEXT_COLOUR: Colour = (146, 154, 170)
COIN_RIM_COLOUR: Colour = (246, 200, 60)
WHITE: Colour = (255, 255, 255)


def player_colour(i: int) -> Colour:
    """Colour of player ``i`` (wraps around the palette)."""
    return PLAYER_COLOURS[i % len(PLAYER_COLOURS)]


def mix(a: Colour, b: Colour, t: float) -> Colour:
    """Linear blend ``(1 - t) * a + t * b``."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


# --------------------------------------------------------------------------
# Lazy pygame, fonts, text cache.
# --------------------------------------------------------------------------

_pygame: Any = None


def pg() -> Any:
    """Import pygame on first use and initialise its font module only.

    When the font module was shut down since (``pygame.quit()`` or ``pygame.font.quit()``
    elsewhere, as ``gymnasium.utils.play`` does on exit), it is initialised again and the
    cached fonts, dead from then on (``pygame.error: Invalid font``), are dropped."""
    global _pygame
    if _pygame is None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import pygame

        _pygame = pygame
    if not _pygame.font.get_init():
        _fonts.clear()
        _pygame.font.init()
    return _pygame


_fonts: dict[int, Any] = {}
_texts: dict[tuple, Any] = {}
_TEXT_CACHE_MAX = 2048


def font(size: int) -> Any:
    """pygame's bundled default font at ``size`` (cached while pygame's font module stays up)."""
    f = _fonts.get(size)
    if f is None or not _pygame.font.get_init():
        pg()  # (re)initialises the font module, dropping dead fonts
        f = _fonts[size] = _pygame.font.Font(None, size)
    return f


def text(s: str, size: int, colour: Colour) -> Any:
    """Antialiased text surface (per-pixel alpha), cached by its arguments."""
    key = (s, size, colour)
    surf = _texts.get(key)
    if surf is None:
        if len(_texts) >= _TEXT_CACHE_MAX:
            _texts.clear()
        surf = _texts[key] = font(size).render(s, True, colour)
    return surf


def blit_text(
    surface: Any, s: str, size: int, colour: Colour, pos: tuple[int, int], anchor: str = "topleft"
) -> Any:
    """Draw text with its ``anchor`` point (a ``pygame.Rect`` attribute) at ``pos``."""
    t = text(s, size, colour)
    rect = t.get_rect(**{anchor: pos})
    surface.blit(t, rect)
    return rect


def text_size(s: str, size: int) -> tuple[int, int]:
    return font(size).size(s)


def fmt(x: float, signed: bool = False) -> str:
    """Compact number: integers without decimals, otherwise two decimals."""
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    if abs(x - round(x)) < 5e-7:
        v = int(round(x))
        return f"{v:+d}" if signed else f"{v:d}"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


# --------------------------------------------------------------------------
# Surfaces.
# --------------------------------------------------------------------------

_RGB_MASKS = (0x0000FF, 0x00FF00, 0xFF0000, 0)


def new_surface(width: int, height: int) -> Any:
    """A 24-bit surface whose pixel bytes are R, G, B in memory order."""
    return pg().Surface((width, height), 0, 24, _RGB_MASKS)


def _bytes_are_rgb(surface: Any) -> bool:
    """True when the surface memory holds R, G, B bytes per pixel, no gaps."""
    if surface.get_bytesize() != 3:
        return False
    probe = new_surface(2, 1)
    probe.set_at((0, 0), (1, 2, 3))
    probe.set_at((1, 0), (4, 5, 6))
    raw = bytes(probe.get_buffer().raw)[:6]
    return raw == bytes((1, 2, 3, 4, 5, 6))


class Canvas:
    """An off-screen RGB drawing surface that converts cheaply to numpy.

    ``to_array()`` returns a fresh, C-contiguous ``uint8 [H, W, 3]`` array: a
    single copy of the surface memory when its layout allows (it does with
    pygame-ce on little-endian machines), otherwise via ``surfarray``.
    """

    def __init__(self, width: int, height: int):
        self.width = int(width)
        self.height = int(height)
        self.surface = new_surface(self.width, self.height)
        self._direct = _bytes_are_rgb(self.surface)

    def to_array(self) -> np.ndarray:
        w, h = self.width, self.height
        if self._direct:
            pitch = self.surface.get_pitch()
            buf = np.frombuffer(self.surface.get_buffer(), np.uint8)
            out = buf.reshape(h, pitch)[:, : 3 * w].copy().reshape(h, w, 3)
            del buf
            return out
        arr = pg().surfarray.array3d(self.surface)
        return np.ascontiguousarray(arr.transpose(1, 0, 2))


def rounded_rect(surface: Any, colour: Colour, rect: Any, radius: int, width: int = 0) -> None:
    pg().draw.rect(surface, colour, rect, width, border_radius=max(0, int(radius)))


def panel(surface: Any, rect: Any, radius: int = 10) -> None:
    """A rounded panel with a 1 px edge."""
    rounded_rect(surface, PANEL_COLOUR, rect, radius)
    rounded_rect(surface, PANEL_EDGE_COLOUR, rect, radius, 1)


def luminance(c: Colour) -> float:
    """Relative luminance (0..1) of an sRGB colour."""
    def lin(v: float) -> float:
        v /= 255.0
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])


def text_colour_on(c: Colour) -> Colour:
    """White or near-black, whichever reads better on ``c``."""
    return WHITE if luminance(c) < 0.4 else (20, 22, 28)


def pill(surface: Any, s: str, size: int, colour: Colour, pos: tuple[int, int], anchor: str = "topleft") -> Any:
    """A label: white (or dark, on light colours) text on a rounded rectangle of ``colour``."""
    t = text(s, size, text_colour_on(colour))
    pad_x, pad_y = max(6, size // 3), max(3, size // 6)
    rect = pg().Rect(0, 0, t.get_width() + 2 * pad_x, t.get_height() + 2 * pad_y)
    setattr(rect, anchor, pos)
    rounded_rect(surface, colour, rect, rect.height // 2)
    surface.blit(t, t.get_rect(center=rect.center))
    return rect


def progress_bar(surface: Any, rect: Any, fraction: float, colour: Colour = TEXT_COLOUR) -> None:
    """A thin rounded progress bar filled to ``fraction`` (clipped to [0, 1])."""
    r = pg().Rect(rect)
    rounded_rect(surface, UNPLAYED_COLOUR, r, r.height // 2)
    f = min(1.0, max(0.0, float(fraction)))
    if f > 0:
        fw = max(r.height, int(round(r.width * f)))
        rounded_rect(surface, colour, (r.x, r.y, fw, r.height), r.height // 2)


def legend_swatch(surface: Any, colour: Colour, label: str, pos: tuple[int, int], size: int = 16,
                  box: int = 14, outline: Colour | None = None) -> int:
    """A small coloured square followed by a label; returns the x after it."""
    x, y = pos
    rounded_rect(surface, colour, (x, y, box, box), 3)
    if outline is not None:
        rounded_rect(surface, outline, (x, y, box, box), 3, 2)
    r = blit_text(surface, label, size, MUTED_TEXT_COLOUR, (x + box + 6, y + box // 2), "midleft")
    return r.right


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """``int(value)`` for integer-like values, else a ValueError naming ``name``."""
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if iv != value:
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and iv < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {iv}")
    return iv


def as_array(name: str, value: Any, shape: tuple, dtype: Any = float) -> np.ndarray:
    """``np.asarray(value, dtype)`` checked against ``shape`` (``None`` = any size)."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {value!r}") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(arr.shape)}")
    return arr
