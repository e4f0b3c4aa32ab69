"""Counting the apples and the patches still alive on the map of Commons Harvest Open,
read off the world view: :func:`count_apples`."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np

from social_dilemmas.commons_harvest.observations import SUBSTRATE, WORLD_SHAPE
from social_dilemmas.commons_harvest.parallel import CommonsHarvestOpen
from social_dilemmas.commons_harvest.substrate import import_meltingpot

__all__ = ["AppleCount", "count_apples"]


@dataclasses.dataclass(frozen=True, eq=False)
class AppleCount:
    """What :func:`count_apples` reads off the map.

    Attributes:
        apples: apples on the map.
        patches_alive: patches ("bushes") holding at least one apple; a patch with none
            left never regrows.
        apples_per_patch: apples of each patch, in patch order.
        present: bool ``[spawn_points]``, whether each apple spawn point holds an apple
            (the spawn points in map order: row by row, left to right).
        hidden: spawn points covered by a zap beam in this frame, whose state was taken
            from ``previous`` (counted as empty without it).
        spawn_points: apple spawn points of the map (the count at the start of an episode).
        patches: patches of the map.
    """

    apples: int
    patches_alive: int
    apples_per_patch: tuple[int, ...]
    present: np.ndarray
    hidden: int
    spawn_points: int
    patches: int


@dataclasses.dataclass(frozen=True)
class _AppleLayout:
    cells: np.ndarray  # [N, 2] (row, col) of the apple spawn points
    patch: np.ndarray  # [N] patch index of each spawn point
    n_patches: int
    cell: int  # pixels per cell side in the world view
    witness: np.ndarray  # [K, 2] (y, x) inside a cell: the apple is opaque there, no avatar sprite is
    apple_rgb: np.ndarray  # [K, 3] the apple's colour at those pixels
    background: np.ndarray  # [M, 3] colours of the grass and floor sprites (no apple)


_apple_layout_cache: list[_AppleLayout] = []


def _sprite_opacity(shape: str, palette: dict) -> tuple[np.ndarray, np.ndarray]:
    rows = shape.strip("\n").split("\n")
    alpha = np.array([[palette[ch][3] > 0 for ch in r] for r in rows], dtype=bool)
    rgb = np.array([[palette[ch][:3] for ch in r] for r in rows], dtype=np.uint8)
    return alpha, rgb


def _appearance(prefab: dict) -> dict:
    return next(c["kwargs"] for c in prefab["components"] if c["component"] == "Appearance")


def _apple_layout() -> _AppleLayout:
    """The apple spawn points and patches of the map, and how to tell an apple in the world
    view, read from the installed Melting Pot's configuration of the substrate."""
    if _apple_layout_cache:
        return _apple_layout_cache[0]
    import importlib

    if "meltingpot" not in sys.modules:
        import_meltingpot()
    cfg = importlib.import_module(f"meltingpot.configs.substrates.{SUBSTRATE}")
    grid = cfg.ASCII_MAP.strip("\n").split("\n")

    def holds_apple(char: str) -> bool:
        prefab = cfg.CHAR_PREFAB_MAP.get(char)
        names = prefab.get("list", []) if isinstance(prefab, dict) else [prefab]
        return "apple" in names

    cells = np.array([(r, c) for r, line in enumerate(grid) for c, char in enumerate(line) if holds_apple(char)])
    # a patch: spawn points linked when one is inside the other's regrowth radius. An apple
    # regrows only from live apples within that radius, so a patch with none left is dead for good.
    radius = float(getattr(cfg, "APPLE_RESPAWN_RADIUS", 2.0))
    near = ((cells[:, None, :] - cells[None, :, :]) ** 2).sum(-1) <= radius ** 2
    patch = np.full(len(cells), -1)
    n_patches = 0
    for start in range(len(cells)):
        if patch[start] >= 0:
            continue
        patch[start], stack = n_patches, [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(near[i] & (patch < 0)):
                patch[j] = n_patches
                stack.append(j)
        n_patches += 1
    # an apple under an avatar still shows where the apple's sprite is opaque and every
    # orientation of the avatar's sprite is transparent
    apple = _appearance(cfg.create_apple_prefab(radius, list(getattr(cfg, "REGROWTH_PROBABILITIES", [0.0]))))
    apple_alpha, apple_rgb = _sprite_opacity(apple["spriteShapes"][0], apple["palettes"][0])
    avatar = _appearance(cfg.create_avatar_object(0, cfg.TARGET_SPRITE_SELF, "spawnPoints"))
    shapes = avatar["spriteShapes"][0]
    covered = np.zeros_like(apple_alpha)
    for shape in shapes if isinstance(shapes, (list, tuple)) else [shapes]:
        covered |= _sprite_opacity(shape, avatar["palettes"][0])[0]
    witness = np.argwhere(apple_alpha & ~covered)
    if len(witness) == 0:
        raise RuntimeError("count_apples: every pixel of the apple's sprite is hidden under an avatar in this "
                           "version of Melting Pot; apples cannot be read off the world view")
    background = []
    for prefab in (cfg.GRASS, cfg.FLOOR):
        for palette in _appearance(prefab)["palettes"]:
            background += [rgba[:3] for rgba in palette.values() if rgba[3] > 0]
    layout = _AppleLayout(cells, patch, n_patches, apple_alpha.shape[0], witness,
                          apple_rgb[witness[:, 0], witness[:, 1]], np.unique(np.array(background, np.uint8), axis=0))
    _apple_layout_cache.append(layout)
    return layout


def count_apples(source: Any, previous: AppleCount | None = None) -> AppleCount:
    """The apples on the map of Commons Harvest Open and the patches that still hold one.

    ``source`` is a :class:`CommonsHarvestOpen` after ``reset`` (its world view,
    :meth:`~CommonsHarvestOpen.state`, is read) or that world view itself, uint8
    ``(144, 192, 3)``. The map's apple spawn points and their patches come from Melting
    Pot's configuration of the substrate (its ASCII map: 64 spawn points in 6 patches,
    a patch being the spawn points linked through the regrowth radius of 2 cells, so a
    patch with no apple left never regrows and counts as dead).

    Each spawn point's cell of the world view (8 x 8 pixels) is decoded from the sprites'
    colours, at the pixels where the apple's sprite is opaque and no orientation of the
    avatar's sprite is: the apple's colour there is an apple; grass or floor is none, also
    under a player standing on the cell. A cell covered by a zap beam (drawn opaque for
    the step of the zap) cannot be seen: it keeps its state in ``previous`` (the count of
    the step before) when given, and counts as empty otherwise; :attr:`AppleCount.hidden`
    says how many there were.

    The count is the state after the step. An apple that regrows under a player, or on
    the cell a player steps onto, is eaten in the step it regrows: the player is rewarded
    but the apple was never on the map between two steps, so a step's reward can exceed
    the apples that disappeared from the count (about 2% of the apples eaten under random
    play).
    """
    if isinstance(source, CommonsHarvestOpen):
        world = source.state()
    else:
        world = np.asarray(source)
    if world.dtype != np.uint8 or world.shape != WORLD_SHAPE:
        raise ValueError(f"count_apples needs a CommonsHarvestOpen or its world view, uint8 {WORLD_SHAPE}; got "
                         f"{type(source).__name__} of shape {getattr(world, 'shape', None)} and dtype "
                         f"{getattr(world, 'dtype', None)}")
    layout = _apple_layout()
    k = layout.cell
    ys = layout.cells[:, 0, None] * k + layout.witness[None, :, 0]
    xs = layout.cells[:, 1, None] * k + layout.witness[None, :, 1]
    pixels = world[ys, xs]  # [N, K, 3]
    present = (pixels == layout.apple_rgb[None]).all(-1).all(-1)
    empty = (pixels[:, :, None, :] == layout.background[None, None]).all(-1).any(-1).all(-1)
    hidden = ~present & ~empty
    if previous is not None and hidden.any():
        if previous.present.shape != present.shape:
            raise ValueError("previous must be an AppleCount of the same map")
        present = np.where(hidden, previous.present, present)
    per_patch = np.bincount(layout.patch[present], minlength=layout.n_patches)
    return AppleCount(apples=int(present.sum()), patches_alive=int((per_patch > 0).sum()),
                      apples_per_patch=tuple(int(n) for n in per_patch), present=present, hidden=int(hidden.sum()),
                      spawn_points=len(layout.cells), patches=layout.n_patches)
