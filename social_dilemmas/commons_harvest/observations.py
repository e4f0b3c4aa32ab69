"""Commons Harvest Open's constants, observation preprocessing (:class:`ObsFormat`), the spec
a policy reads (:class:`CommonsHarvestSpec`) and the check of one action."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas.core import check_positive_int

__all__ = ["ObsFormat", "CommonsHarvestSpec", "SUBSTRATE", "N_PLAYERS", "ACTION_NAMES", "RGB_SIZE", "WORLD_SHAPE"]

SUBSTRATE = "commons_harvest__open"
N_PLAYERS = 7
#: Melting Pot's action set of the substrate, in order
ACTION_NAMES = ("noop", "forward", "backward", "step_left", "step_right", "turn_left", "turn_right", "fire_zap")
RGB_SIZE = 88
WORLD_SHAPE = (144, 192, 3)


# ---------------------------------------------------------------------------------------
# Observation preprocessing
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ObsFormat:
    """How each player's 88x88 RGB view is handed out.

    Arguments:
        resize: side ``N`` of the square image (area interpolation); None keeps 88.
        grayscale: one luminance channel (ITU-R 601 weights) instead of RGB.
        channels_first: ``[C, H, W]`` instead of ``[H, W, C]``.
    """

    resize: int | None = None
    grayscale: bool = False
    channels_first: bool = False

    def __post_init__(self):
        if self.resize is not None:
            check_positive_int("resize", self.resize)
            object.__setattr__(self, "resize", int(self.resize))
        for name in ("grayscale", "channels_first"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def size(self) -> int:
        return RGB_SIZE if self.resize is None else self.resize

    @property
    def shape(self) -> tuple[int, int, int]:
        c = 1 if self.grayscale else 3
        return (c, self.size, self.size) if self.channels_first else (self.size, self.size, c)

    @property
    def is_identity(self) -> bool:
        return self.size == RGB_SIZE and not self.grayscale and not self.channels_first

    def space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(0, 255, self.shape, np.uint8)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``[B, 88, 88, 3]`` uint8 -> ``[B, *shape]`` uint8 (the input itself when nothing is asked)."""
        if self.is_identity:
            return rgb
        return np.stack(self.apply_list(list(rgb)))

    def apply_list(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The same on a list of ``[88, 88, 3]`` images; returns the list itself when nothing is asked."""
        if self.is_identity:
            return images
        import cv2

        out = images
        if self.size != RGB_SIZE:
            interp = cv2.INTER_AREA if self.size < RGB_SIZE else cv2.INTER_NEAREST
            out = [cv2.resize(img, (self.size, self.size), interpolation=interp) for img in out]
        if self.grayscale:
            out = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] for img in out]
        if self.channels_first:
            out = [np.ascontiguousarray(img.transpose(2, 0, 1)) for img in out]
        return out


@dataclasses.dataclass(frozen=True)
class CommonsHarvestSpec:
    """What a policy needs to know of Commons Harvest Open (the role a ``BatchedGame``
    plays for the other games in :func:`social_dilemmas.policies.resolve_player`)."""

    max_steps: int = 1000
    obs_format: ObsFormat = ObsFormat()
    name: str = "commons_harvest_open"
    title: str = "Commons Harvest Open"
    n_players: int = N_PLAYERS
    action_kind: str = "discrete"

    def observation_space(self) -> gymnasium.spaces.Box:
        return self.obs_format.space()

    def action_space(self) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(len(ACTION_NAMES))

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.obs_format.shape

    @property
    def action_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def action_dtype(self) -> torch.dtype:
        return torch.int64

    def action_metrics(self, actions: torch.Tensor) -> dict[str, float]:
        """Statistics of a batch of actions that trainers log: the rate of zapping."""
        return {"zap_rate": float((actions == ACTION_NAMES.index("fire_zap")).float().mean())}


# ---------------------------------------------------------------------------------------
# Checking an action
# ---------------------------------------------------------------------------------------
def _check_action(agent: str, action: Any) -> int:
    if type(action) is int and 0 <= action < 8:  # the common case, fast
        return action
    a = action
    if isinstance(a, torch.Tensor):
        a = a.item() if a.numel() == 1 and a.dim() == 0 else a
    elif getattr(a, "ndim", None) == 0:
        a = a.item()
    if isinstance(a, (float, np.floating)) and float(a).is_integer():
        a = int(a)
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) or not 0 <= a < len(ACTION_NAMES):
        allowed = ", ".join(f"{i} {n}" for i, n in enumerate(ACTION_NAMES))
        raise ValueError(f"invalid action {action!r} for {agent}: allowed values are the integers 0..7 ({allowed})")
    return int(a)
