"""Write rendered frames to ``.mp4`` (H.264) or ``.gif``.

``.mp4`` goes through imageio's ffmpeg plugin (the binary shipped by
imageio-ffmpeg), libx264, ``yuv420p`` so every player can open it; frames with
an odd width or height are padded by one edge row/column (yuv420p needs even
sizes) instead of being rescaled.  Frames are streamed to ffmpeg, so long
recordings do not sit in memory.

``.gif`` goes through Pillow.  A GIF encoder needs every frame at the end, so
:class:`VideoWriter` keeps them, palette-quantised (one byte per pixel), until
:meth:`VideoWriter.close`.  Consecutive identical frames are merged by Pillow
into one longer frame (the timing is kept).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_video", "VideoWriter", "SUFFIXES"]

#: Supported file suffixes.
SUFFIXES = (".mp4", ".gif")


def _check_path(path: str | os.PathLike) -> tuple[Path, str]:
    try:
        p = Path(path)
    except TypeError:
        raise ValueError(f"path must be a str or os.PathLike, got {path!r}") from None
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"path must end in .mp4 or .gif, got {str(path)!r}")
    return p, suffix


def _check_fps(fps: Any) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps must be a positive number, got {fps!r}") from None
    if not (f > 0 and np.isfinite(f)) or isinstance(fps, bool):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return f


def _check_frame(frame: Any, index: int, shape: tuple | None) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"frames[{index}] must have shape [H, W, 3], got {list(arr.shape)}")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames[{index}] must be uint8, got {arr.dtype}")
    if shape is not None and arr.shape != shape:
        raise ValueError(
            f"frames[{index}] has shape {list(arr.shape)}, but frames[0] has {list(shape)}; all frames must match"
        )
    return arr


class VideoWriter:
    """Context manager that appends frames to a video one by one.

    ::

        with VideoWriter("runs/episode.mp4", fps=10) as video:
            for frame in frames:
                video.append(render(frame))

    All frames must be ``uint8 [H, W, 3]`` of the same shape.  Parent folders
    are created.  Closing a writer that received no frame raises ValueError
    (no file is written) unless it is closed because of an exception.
    ``quality`` (0-10, mp4 only) maps to the x264 CRF; higher is better.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 10, *, quality: float = 8):
        self.path, self._suffix = _check_path(path)
        self.fps = _check_fps(fps)
        try:
            q = float(quality)
        except (TypeError, ValueError):
            raise ValueError(f"quality must be a number in [0, 10], got {quality!r}") from None
        if not 0 <= q <= 10:
            raise ValueError(f"quality must be a number in [0, 10], got {quality!r}")
        self.quality = q
        self.frames_written = 0
        self._shape: tuple | None = None
        self._writer: Any = None
        self._gif_frames: list[Any] = []
        self._closed = False

    def append(self, frame: np.ndarray) -> None:
        """Add one frame (``uint8 [H, W, 3]``)."""
        if self._closed:
            raise ValueError(f"cannot append to {str(self.path)!r}: the writer is closed")
        arr = _check_frame(frame, self.frames_written, self._shape)
        if self._shape is None:
            self._shape = arr.shape
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._suffix == ".mp4":
            self._append_mp4(arr)
        else:
            self._append_gif(arr)
        self.frames_written += 1

    def _append_mp4(self, arr: np.ndarray) -> None:
        h, w = arr.shape[:2]
        if h % 2 or w % 2:
            arr = np.pad(arr, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._writer is None:
            import imageio.v2 as imageio

            self._writer = imageio.get_writer(
                str(self.path),
                format="FFMPEG",
                mode="I",
                fps=self.fps,
                codec="libx264",
                pixelformat="yuv420p",
                quality=self.quality,
                macro_block_size=1,  # sizes are already even; never rescale
                ffmpeg_log_level="error",
            )
        self._writer.append_data(np.ascontiguousarray(arr))

    def _append_gif(self, arr: np.ndarray) -> None:
        from PIL import Image

        image = Image.fromarray(np.ascontiguousarray(arr), "RGB")
        self._gif_frames.append(image.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                               dither=Image.Dither.NONE))

    def close(self) -> None:
        """Finish the file.  Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._suffix == ".mp4":
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        elif self._gif_frames:
            first, rest = self._gif_frames[0], self._gif_frames[1:]
            first.save(
                self.path,
                format="GIF",
                save_all=True,
                append_images=rest,
                duration=max(10, int(round(1000.0 / self.fps))),
                loop=0,
                disposal=1,
            )
            self._gif_frames = []
        if self.frames_written == 0:
            raise ValueError(f"frames: no frames were given for {str(self.path)!r}; nothing written")

    def _abort(self) -> None:
        """Close without complaining about an empty writer (used on errors)."""
        try:
            self.close()
        except ValueError:
            pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10, *,
                quality: float = 8) -> Path:
    """Write ``frames`` (an iterable of ``uint8 [H, W, 3]``, or one ``[N, H, W, 3]`` array) to ``path``.

    The format follows the suffix: ``.mp4`` or ``.gif``.  Returns the path.
    Raises ValueError naming the bad argument (``path``, ``frames``, ``fps``);
    a file left half-written by a bad frame is removed.
    """
    p, _ = _check_path(path)
    _check_fps(fps)
    if isinstance(frames, np.ndarray):
        if frames.ndim != 4:
            raise ValueError(f"frames must be a sequence of [H, W, 3] arrays or one [N, H, W, 3] array, "
                             f"got an array of shape {list(frames.shape)}")
    elif frames is None or isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
        raise ValueError(f"frames must be an iterable of [H, W, 3] uint8 arrays, got {type(frames).__name__}")
    writer = VideoWriter(p, fps, quality=quality)
    try:
        for frame in frames:
            writer.append(frame)
    except BaseException:
        writer._abort()
        if writer.frames_written and p.exists():
            p.unlink()
        raise
    writer.close()
    return p
