"""The few array operations where torch and numpy spell things differently.

Every game's rules are written once against this module, so the same functions run
on torch tensors (any device: the batched view of the trainers) and on numpy arrays
(the PettingZoo and Gymnasium views, where one game per step makes numpy's lower
per-call overhead matter). Everything else the rules use (indexing, arithmetic,
comparisons, ``where``, ``minimum``, ``maximum``, ``stack``, ``.any``, ``.sum``) is spelled
the same in both libraries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Array = Any  # torch.Tensor | np.ndarray


def is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def lib(x: Array):
    """``torch`` or ``numpy``, whichever ``x`` belongs to."""
    return torch if isinstance(x, torch.Tensor) else np


def as_int(x: Array) -> Array:
    """Cast to int64 (truncating towards zero)."""
    return x.long() if isinstance(x, torch.Tensor) else x.astype(np.int64)


def as_float(x: Array) -> Array:
    """Cast to float32."""
    return x.float() if isinstance(x, torch.Tensor) else x.astype(np.float32)


def zeros_like_int(x: Array, shape: tuple[int, ...], fill: int = 0) -> Array:
    """An int64 array of ``shape`` filled with ``fill``, on ``x``'s library and device."""
    if isinstance(x, torch.Tensor):
        return torch.full(shape, fill, dtype=torch.int64, device=x.device)
    return np.full(shape, fill, dtype=np.int64)


def zeros_like_float(x: Array, shape: tuple[int, ...]) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.zeros(shape, dtype=torch.float32, device=x.device)
    return np.zeros(shape, dtype=np.float32)


def concat(arrays: list[Array], axis: int) -> Array:
    if isinstance(arrays[0], torch.Tensor):
        return torch.cat(arrays, dim=axis)
    return np.concatenate(arrays, axis=axis)


def one_hot_rows(idx: Array, width: int) -> Array:
    """float32 ``[..., width]`` rows with ones at the int positions ``idx[..., k]`` (zeros elsewhere)."""
    shape = (*idx.shape[:-1], width)
    if isinstance(idx, torch.Tensor):
        return torch.zeros(shape, dtype=torch.float32, device=idx.device).scatter_(-1, idx, 1.0)
    out = np.zeros(shape, dtype=np.float32)
    rows = out.reshape(-1, width)
    n = rows.shape[0]
    rows[np.arange(n)[:, None], idx.reshape(n, -1)] = 1.0
    return out


def constant(value: np.ndarray, like: Array, cache: dict) -> Array:
    """``value`` (a numpy constant of the game) on ``like``'s library and device, cached in ``cache``."""
    key = like.device if isinstance(like, torch.Tensor) else "numpy"
    out = cache.get(key)
    if out is None:
        out = cache[key] = torch.as_tensor(value, device=like.device) if key != "numpy" else value
    return out


def uniform(generator: torch.Generator | np.random.Generator, shape: tuple[int, ...], device: Any = None) -> Array:
    """Uniform noise in [0, 1): a float32 tensor from a ``torch.Generator`` (on its device)
    or a float32 numpy array from a ``numpy.random.Generator``."""
    if isinstance(generator, np.random.Generator):
        return generator.random(shape, dtype=np.float32)
    return torch.rand(shape, generator=generator, device=generator.device if device is None else device)
