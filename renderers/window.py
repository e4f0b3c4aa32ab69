"""A minimal pygame window that shows RGB frames (the ``human`` render mode).

Only ``pygame.display.init()`` is called, never ``pygame.init()``.  Works with
``SDL_VIDEODRIVER=dummy`` (nothing is shown then, but every call succeeds),
which is how the tests run it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["Window"]


class Window:
    """Shows frames at a steady rate.

    The window opens lazily on the first :meth:`show`, sized to that frame (and
    resizes when a frame of another size arrives).  ``fps <= 0`` means no rate
    limit.  Closing the window (window close button, Escape or Q) makes
    :meth:`show` return ``False`` from then on, so a viewer loop can stop::

        with Window("Coin Game", fps=10) as window:
            for frame in frames:
                if not window.show(render(frame)):
                    break
    """

    def __init__(self, title: str = "social-dilemmas", fps: int = 10):
        if not isinstance(fps, (int, float)) or isinstance(fps, bool):
            raise ValueError(f"fps must be a number, got {fps!r}")
        self.title = str(title)
        self.fps = fps
        self._pygame: Any = None
        self._screen: Any = None
        self._clock: Any = None
        self._closed_by_user = False

    @property
    def is_open(self) -> bool:
        """Whether the window is currently open."""
        return self._screen is not None

    @property
    def closed_by_user(self) -> bool:
        """Whether the person closed the window (then :meth:`show` does nothing)."""
        return self._closed_by_user

    def show(self, rgb: np.ndarray) -> bool:
        """Display ``rgb`` (``uint8 [H, W, 3]``); returns False once the user closed the window."""
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
            raise ValueError(f"rgb must have shape [H, W, 3], got {list(arr.shape)}")
        if arr.dtype != np.uint8:
            raise ValueError(f"rgb must be uint8, got {arr.dtype}")
        if self._closed_by_user:
            return False
        pygame = self._open(arr.shape[1], arr.shape[0])
        arr = np.ascontiguousarray(arr)
        image = pygame.image.frombuffer(arr, (arr.shape[1], arr.shape[0]), "RGB")
        self._screen.blit(image, (0, 0))
        pygame.display.flip()
        for event in pygame.event.get():
            if event.type == pygame.QUIT or (
                event.type == pygame.KEYDOWN and event.key in (pygame.K_ESCAPE, pygame.K_q)
            ):
                self.close()
                self._closed_by_user = True
                return False
        if self.fps and self.fps > 0:
            self._clock.tick(self.fps)
        return True

    def _open(self, width: int, height: int) -> Any:
        if self._pygame is None:
            os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
            import pygame

            self._pygame = pygame
        pygame = self._pygame
        if self._screen is not None and not pygame.display.get_init():
            self._screen = None  # the display was shut down elsewhere (e.g. another Window closed)
        if self._screen is None:
            pygame.display.init()
            self._screen = pygame.display.set_mode((width, height))
            pygame.display.set_caption(self.title)
            self._clock = pygame.time.Clock()
        elif self._screen.get_size() != (width, height):
            self._screen = pygame.display.set_mode((width, height))
        return pygame

    def close(self) -> None:
        """Close the window (safe to call any number of times)."""
        if self._screen is not None:
            self._screen = None
            self._clock = None
            self._pygame.display.quit()

    def __enter__(self) -> Window:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
