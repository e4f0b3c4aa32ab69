"""Tests of the ``renderers`` package: pixels, sizes, video files, errors, isolation."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import renderers  # noqa: E402
from renderers import (  # noqa: E402
    COMMONS_HARVEST_COLOURS,
    COOPERATE_COLOUR,
    DEFECT_COLOUR,
    PLAYER_COLOURS,
    UNPLAYED_COLOUR,
    CoinGameFrame,
    CommonsHarvestFrame,
    IPDFrame,
    NegotiationFrame,
    coin_game_cell_rect,
    commons_harvest_world_rect,
    ipd_cell_rect,
    render,
    render_coin_game,
    render_commons_harvest,
    render_ipd,
    render_negotiation,
)
from renderers.video import VideoWriter, write_video  # noqa: E402
from renderers.window import Window  # noqa: E402


def pixel(img: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[y, x])


def centre_patch_is(img: np.ndarray, rect: tuple[int, int, int, int], colour, half: int = 2) -> bool:
    """Whether the (2*half+1)^2 pixels around the centre of ``rect`` are all ``colour``."""
    x, y, w, h = rect
    cx, cy = x + w // 2, y + h // 2
    patch = img[cy - half:cy + half + 1, cx - half:cx + half + 1]
    return bool((patch == np.array(colour, np.uint8)).all())


def assert_image(img: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    assert isinstance(img, np.ndarray)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.flags.c_contiguous and img.flags.writeable
    if shape is not None:
        assert img.shape[:2] == shape


# --------------------------------------------------------------------------
# Palette.
# --------------------------------------------------------------------------


def test_palette():
    assert len(PLAYER_COLOURS) >= 7 and len(set(PLAYER_COLOURS[:7])) == 7
    r, g, b = PLAYER_COLOURS[0]
    assert r > 150 and g < 100 and b < 100  # red
    r, g, b = PLAYER_COLOURS[1]
    assert b > 150 and r < 100  # blue
    assert len(set(COMMONS_HARVEST_COLOURS[:7])) == 7
    assert COOPERATE_COLOUR[1] > COOPERATE_COLOUR[0]  # green
    assert DEFECT_COLOUR[0] > DEFECT_COLOUR[1]  # red/orange
    assert sum(abs(a - b) for a, b in zip(COOPERATE_COLOUR, DEFECT_COLOUR)) > 200
    assert UNPLAYED_COLOUR not in (COOPERATE_COLOUR, DEFECT_COLOUR)


# --------------------------------------------------------------------------
# Coin Game.
# --------------------------------------------------------------------------


def coin_frame(positions, coin=(1, 2), owner=0, size=3, step=3, picked=None):
    return CoinGameFrame(
        size=size,
        positions=np.array(positions),
        coin=coin,
        coin_owner=owner,
        scores=(1.0, -0.5),
        coins_picked=np.array([[2, 1], [0, 3]]) if picked is None else picked,
        step=step,
        max_steps=16,
    )


@pytest.mark.parametrize("owner", [0, 1])
def test_coin_game_players_and_coin_colours(owner):
    img = render_coin_game(coin_frame([[0, 0], [2, 1]], coin=(1, 2), owner=owner))
    assert_image(img)
    assert centre_patch_is(img, coin_game_cell_rect(3, 0, 0), PLAYER_COLOURS[0])
    assert centre_patch_is(img, coin_game_cell_rect(3, 2, 1), PLAYER_COLOURS[1])
    assert centre_patch_is(img, coin_game_cell_rect(3, 1, 2), PLAYER_COLOURS[owner])
    # An empty cell shows none of the players' colours at its centre.
    for colour in PLAYER_COLOURS[:2]:
        assert not centre_patch_is(img, coin_game_cell_rect(3, 1, 0), colour, half=0)


def test_coin_game_positions_move_the_players():
    img = render_coin_game(coin_frame([[2, 2], [0, 1]], coin=(0, 0), owner=1))
    assert centre_patch_is(img, coin_game_cell_rect(3, 2, 2), PLAYER_COLOURS[0])
    assert centre_patch_is(img, coin_game_cell_rect(3, 0, 1), PLAYER_COLOURS[1])
    assert centre_patch_is(img, coin_game_cell_rect(3, 0, 0), PLAYER_COLOURS[1])
    assert not centre_patch_is(img, coin_game_cell_rect(3, 1, 0), PLAYER_COLOURS[0], half=0)


def test_coin_game_shared_cell_shows_both_players():
    img = render_coin_game(coin_frame([[1, 1], [1, 1]], coin=(0, 2), owner=1))
    x, y, w, h = coin_game_cell_rect(3, 1, 1)
    assert pixel(img, x + w // 4, y + h // 2) == PLAYER_COLOURS[0]
    assert pixel(img, x + 3 * w // 4, y + h // 2) == PLAYER_COLOURS[1]
    assert centre_patch_is(img, coin_game_cell_rect(3, 0, 2), PLAYER_COLOURS[1])


def test_coin_game_coin_under_a_player_is_still_drawn():
    alone = render_coin_game(coin_frame([[1, 1], [2, 2]], coin=(0, 0), owner=1))
    under = render_coin_game(coin_frame([[1, 1], [2, 2]], coin=(1, 1), owner=1))
    rect = coin_game_cell_rect(3, 1, 1)
    assert centre_patch_is(under, rect, PLAYER_COLOURS[0])
    x, y, w, h = rect
    cell = (slice(y, y + h), slice(x, x + w))
    blue = (under[cell] == np.array(PLAYER_COLOURS[1], np.uint8)).all(-1).sum()
    assert blue > 0 and (alone[cell] == np.array(PLAYER_COLOURS[1], np.uint8)).all(-1).sum() == 0


def test_coin_game_size_is_fixed_and_grid_scales():
    a = render_coin_game(coin_frame([[0, 0], [1, 1]], step=0))
    b = render_coin_game(coin_frame([[2, 2], [1, 1]], step=15, picked=np.array([[10, 20], [30, 40]])))
    assert a.shape == b.shape == (*renderers.coin_game_image_size(3), 3)
    big = render_coin_game(coin_frame([[0, 0], [6, 5]], coin=(3, 3), size=7))
    assert centre_patch_is(big, coin_game_cell_rect(7, 6, 5), PLAYER_COLOURS[1])
    assert centre_patch_is(big, coin_game_cell_rect(7, 3, 3), PLAYER_COLOURS[0])
    assert big.shape[:2] == renderers.coin_game_image_size(7)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(positions=np.array([[0, 3], [0, 0]])), "positions"),
        (dict(positions=np.array([0, 0])), "positions"),
        (dict(coin=(3, 0)), "coin"),
        (dict(coin_owner=2), "coin_owner"),
        (dict(scores=(1.0,)), "scores"),
        (dict(coins_picked=np.zeros((3, 3))), "coins_picked"),
    ],
)
def test_coin_game_bad_frames(change, match):
    base = dict(size=3, positions=np.array([[0, 0], [1, 1]]), coin=(2, 2), coin_owner=0, scores=(0, 0),
                coins_picked=np.zeros((2, 2), int), step=0, max_steps=16)
    base.update(change)
    with pytest.raises(ValueError, match=match):
        render_coin_game(CoinGameFrame(**base))


# --------------------------------------------------------------------------
# IPD.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("max_steps", [16, 5, 100])
def test_ipd_timeline_cells(max_steps):
    rng = np.random.default_rng(max_steps)
    t = max_steps // 2 + 1
    actions = rng.integers(0, 2, size=(t, 2))
    actions[0] = (0, 1)
    img = render_ipd(IPDFrame(actions=actions, max_steps=max_steps, scores=(3, 4), rewards=(0, 5)))
    assert_image(img, renderers.ipd_image_size(max_steps))
    colours = (COOPERATE_COLOUR, DEFECT_COLOUR)
    for r in range(max_steps):
        for p in range(2):
            rect = ipd_cell_rect(max_steps, r, p)
            expected = colours[actions[r, p]] if r < t else UNPLAYED_COLOUR
            x, y, w, h = rect
            assert pixel(img, x + w // 2, y + h // 2) == expected, (r, p)
            assert pixel(img, x, y + h // 2) == expected, (r, p)  # the cell's left edge too
            assert pixel(img, x + w - 1, y + h // 2) == expected, (r, p)


def test_ipd_empty_and_full_histories():
    empty = render_ipd(IPDFrame(actions=np.zeros((0, 2), int), max_steps=16, scores=(0, 0)))
    full = render_ipd(IPDFrame(actions=np.ones((16, 2), int), max_steps=16, scores=(16, 16), rewards=(1, 1)))
    assert empty.shape == full.shape
    for r in (0, 7, 15):
        for p in (0, 1):
            assert centre_patch_is(empty, ipd_cell_rect(16, r, p), UNPLAYED_COLOUR)
            assert centre_patch_is(full, ipd_cell_rect(16, r, p), DEFECT_COLOUR)
    # A list of lists is accepted too.
    img = render_ipd(IPDFrame(actions=[[0, 0]], max_steps=16, scores=(3, 3), rewards=(3, 3)))
    assert centre_patch_is(img, ipd_cell_rect(16, 0, 1), COOPERATE_COLOUR)
    assert centre_patch_is(img, ipd_cell_rect(16, 1, 1), UNPLAYED_COLOUR)


def test_ipd_labels_use_player_colours():
    img = render_ipd(IPDFrame(actions=np.zeros((0, 2), int), max_steps=16, scores=(0, 0)))
    for colour in PLAYER_COLOURS[:2]:
        assert (img == np.array(colour, np.uint8)).all(-1).sum() > 200


@pytest.mark.parametrize(
    "actions, max_steps, match",
    [
        (np.zeros((3,), int), 16, "shape"),
        (np.zeros((3, 3), int), 16, "shape"),
        (np.zeros((17, 2), int), 16, "max_steps"),
        (np.full((2, 2), 2), 16, "0 .cooperate. and 1"),
        (np.zeros((1, 2), int), 0, "max_steps"),
    ],
)
def test_ipd_bad_frames(actions, max_steps, match):
    with pytest.raises(ValueError, match=match):
        render_ipd(IPDFrame(actions=actions, max_steps=max_steps, scores=(0, 0)))


def test_ipd_cell_rect_bad_arguments():
    with pytest.raises(ValueError, match="round"):
        ipd_cell_rect(16, 16, 0)
    with pytest.raises(ValueError, match="player"):
        ipd_cell_rect(16, 0, 2)
    with pytest.raises(ValueError, match="row, col"):
        coin_game_cell_rect(3, 3, 0)


# --------------------------------------------------------------------------
# Negotiation.
# --------------------------------------------------------------------------


def colour_count(img: np.ndarray, colour) -> int:
    return int((img == np.array(colour, np.uint8)).all(-1).sum())


def test_negotiation_start_and_round():
    values = np.array([[3.0, 1.0, 5.0], [2.0, 4.0, 1.0]])
    start = render_negotiation(NegotiationFrame(np.ones(3), values, None, None, None, (0, 0), 0, 10))
    proposals = np.array([[4.0, 0.5, 5.0], [1.0, 4.5, 2.0]])
    shares = proposals / np.maximum(proposals.sum(0), 5.0)
    rewards = (shares * values).sum(1)
    played = render_negotiation(NegotiationFrame(np.ones(3), values, proposals, shares, rewards, (2.5, 3), 1, 10))
    assert_image(start, renderers.negotiation_image_size(3))
    assert start.shape == played.shape
    for colour in PLAYER_COLOURS[:2]:
        assert colour_count(start, colour) > 500  # value bars
        assert colour_count(played, colour) > colour_count(start, colour)  # + proposal outlines and split
    # Smaller values draw shorter bars (the axis goes to 5 at least; beyond, it rescales).
    half = render_negotiation(NegotiationFrame(np.ones(3), values / 2, None, None, None, (0, 0), 0, 10))
    assert colour_count(half, PLAYER_COLOURS[0]) < colour_count(start, PLAYER_COLOURS[0])
    big = render_negotiation(NegotiationFrame(np.ones(3), values * 3, None, None, None, (0, 0), 0, 10))
    assert big.shape == start.shape


def test_negotiation_other_item_counts_keep_the_size():
    for n in (1, 2, 5, 10):
        v = np.linspace(1, 5, 2 * n).reshape(2, n)
        img = render_negotiation(NegotiationFrame(np.ones(n), v, v, v / 10, np.ones(2), (0, 0), 1, 10))
        assert img.shape[:2] == renderers.negotiation_image_size(n)


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(values=np.ones((2, 2))), "values"),
        (dict(proposals=np.ones(3)), "proposals"),
        (dict(shares=np.ones((3, 3))), "shares"),
        (dict(rewards=np.ones(3)), "rewards"),
        (dict(item_pool=np.ones(0), values=np.ones((2, 0))), "item_pool"),
    ],
)
def test_negotiation_bad_frames(change, match):
    base = dict(item_pool=np.ones(3), values=np.ones((2, 3)), proposals=None, shares=None, rewards=None,
                scores=(0, 0), step=0, max_steps=10)
    base.update(change)
    with pytest.raises(ValueError, match=match):
        render_negotiation(NegotiationFrame(**base))


# --------------------------------------------------------------------------
# Commons Harvest.
# --------------------------------------------------------------------------


def test_commons_harvest_contains_scaled_world():
    rng = np.random.default_rng(0)
    world = rng.integers(0, 256, size=(144, 192, 3), dtype=np.uint8)
    scores = np.array([3.0, 0.0, 1.0, 7.5, 2.0, 0.0, 4.0])
    img = render_commons_harvest(CommonsHarvestFrame(world, scores, 100, 1000))
    assert_image(img, renderers.commons_harvest_image_size(world.shape, 7))
    x, y, w, h = commons_harvest_world_rect(world.shape, 7)
    f = w // world.shape[1]
    assert f >= 2 and h == world.shape[0] * f
    expected = np.repeat(np.repeat(world, f, axis=0), f, axis=1)
    np.testing.assert_array_equal(img[y:y + h, x:x + w], expected)
    # Players are listed in their avatar colours.
    for colour in COMMONS_HARVEST_COLOURS[:7]:
        assert colour_count(img, colour) > 100


def test_commons_harvest_small_world_and_errors():
    world = np.zeros((11, 13, 3), np.uint8)
    world[5, 6] = (255, 0, 0)
    img = render_commons_harvest(CommonsHarvestFrame(world, np.zeros(2), 0, 10))
    x, y, w, h = commons_harvest_world_rect(world.shape, 2)
    f = w // 13
    assert pixel(img, x + 6 * f + f // 2, y + 5 * f + f // 2) == (255, 0, 0)
    with pytest.raises(ValueError, match="world"):
        render_commons_harvest(CommonsHarvestFrame(world.astype(float), np.zeros(2), 0, 10))
    with pytest.raises(ValueError, match="world"):
        render_commons_harvest(CommonsHarvestFrame(world[..., 0], np.zeros(2), 0, 10))
    with pytest.raises(ValueError, match="scores"):
        render_commons_harvest(CommonsHarvestFrame(world, np.zeros((2, 2)), 0, 10))


# --------------------------------------------------------------------------
# Dispatcher and general behaviour.
# --------------------------------------------------------------------------


def sample_frames():
    return [
        IPDFrame(actions=np.array([[0, 1], [1, 1]]), max_steps=16, scores=(5, 0), rewards=(0, 5)),
        coin_frame([[0, 0], [2, 1]]),
        NegotiationFrame(np.ones(3), np.ones((2, 3)), None, None, None, (0, 0), 0, 10),
        CommonsHarvestFrame(np.zeros((24, 32, 3), np.uint8), np.zeros(7), 0, 100),
    ]


def test_render_dispatches_on_frame_type():
    fns = (render_ipd, render_coin_game, render_negotiation, render_commons_harvest)
    for frame, fn in zip(sample_frames(), fns):
        np.testing.assert_array_equal(render(frame), fn(frame))
    with pytest.raises(TypeError, match="IPDFrame"):
        render(object())


def test_renders_are_deterministic_and_independent():
    for frame in sample_frames():
        a = render(frame)
        a[:] = 0  # the caller owns the returned array
        b, c = render(frame), render(frame)
        np.testing.assert_array_equal(b, c)
        assert b.any()


def test_frames_are_frozen_and_hashable():
    frame = sample_frames()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.max_steps = 3  # type: ignore[misc]
    assert frame in {frame}


def test_package_is_isolated():
    code = textwrap.dedent(
        """
        import sys, numpy as np
        import renderers, renderers.window, renderers.video
        assert "pygame" not in sys.modules, "pygame imported eagerly"
        img = renderers.render(renderers.IPDFrame(np.zeros((0, 2), int), 16, (0, 0)))
        import pygame
        assert not pygame.get_init(), "pygame.init() was called"
        assert not pygame.display.get_init(), "display initialised by a drawer"
        bad = [m for m in sys.modules if m == "torch" or m.startswith(("torch.", "social_dilemmas", "trainers"))]
        assert not bad, bad
        print("ok", img.shape)
        """
    )
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout


# --------------------------------------------------------------------------
# Window.
# --------------------------------------------------------------------------


def test_window_shows_and_closes():
    img = render(sample_frames()[1])
    window = Window("test", fps=0)
    assert not window.is_open
    assert window.show(img) is True
    assert window.is_open
    import pygame

    assert pygame.display.get_surface().get_size() == (img.shape[1], img.shape[0])
    assert window.show(img[:100, :50].copy()) is True  # resizes
    assert pygame.display.get_surface().get_size() == (50, 100)
    with pytest.raises(ValueError, match="rgb"):
        window.show(np.zeros((4, 4), np.uint8))
    window.close()
    window.close()
    assert not window.is_open and not pygame.display.get_init()
    with Window("again", fps=1000) as w2:
        assert w2.show(img)
    assert not w2.is_open


# --------------------------------------------------------------------------
# Video.
# --------------------------------------------------------------------------


def video_frames(n: int, h: int = 64, w: int = 96) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[:, : (i + 1) * w // n] = (200, 40, 40)
        f[h // 2:, :, 2] = 180
        frames.append(f)
    return frames


def read_back(path: Path) -> np.ndarray:
    import imageio.v2 as imageio

    if path.suffix == ".gif":
        return np.asarray(imageio.mimread(path))
    with imageio.get_reader(path, format="FFMPEG") as reader:
        return np.stack([np.asarray(f) for f in reader])


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_reads_back(tmp_path, suffix):
    frames = video_frames(7)
    path = write_video(tmp_path / "sub" / f"clip{suffix}", frames, fps=5)
    assert path.exists()
    back = read_back(path)
    assert back.shape[0] == 7
    assert back.shape[1:3] == (64, 96)
    diff = np.abs(back[3][..., :3].astype(int) - frames[3].astype(int)).mean()
    assert diff < 8


def test_write_video_of_rendered_frames_and_odd_sizes(tmp_path):
    frames = [render(coin_frame([[i % 3, 0], [2, 2]], step=i)) for i in range(5)]
    back = read_back(write_video(tmp_path / "coin.mp4", np.stack(frames), fps=10))
    h, w = frames[0].shape[:2]
    assert back.shape == (5, h + h % 2, w + w % 2, 3)
    odd = [f[:63, :95].copy() for f in video_frames(4)]
    back = read_back(write_video(tmp_path / "odd.mp4", odd))
    assert back.shape[:3] == (4, 64, 96)  # padded to even, not rescaled
    assert np.abs(back[1, :63, :95].astype(int) - odd[1].astype(int)).mean() < 8
    back = read_back(write_video(tmp_path / "odd.gif", odd))
    assert back.shape[:3] == (4, 63, 95)


def test_video_writer_streams(tmp_path):
    frames = video_frames(6)
    with VideoWriter(tmp_path / "stream.mp4", fps=12) as video:
        for f in frames:
            video.append(f)
        assert video.frames_written == 6
    assert read_back(tmp_path / "stream.mp4").shape[0] == 6
    with pytest.raises(ValueError, match="closed"):
        video.append(frames[0])
    with pytest.raises(ValueError, match="frames"):
        with VideoWriter(tmp_path / "empty.gif"):
            pass
    assert not (tmp_path / "empty.gif").exists()


def test_write_video_bad_arguments(tmp_path):
    good = video_frames(2)
    with pytest.raises(ValueError, match="path"):
        write_video(tmp_path / "clip.avi", good)
    with pytest.raises(ValueError, match="path"):
        write_video(tmp_path / "clip", good)
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "clip.mp4", [])
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "clip.mp4", None)
    with pytest.raises(ValueError, match="frames"):
        write_video(tmp_path / "clip.mp4", np.zeros((64, 96, 3), np.uint8))
    with pytest.raises(ValueError, match=r"frames\[0\]"):
        write_video(tmp_path / "clip.mp4", [np.zeros((64, 96), np.uint8)])
    with pytest.raises(ValueError, match=r"frames\[0\].*uint8"):
        write_video(tmp_path / "clip.gif", [np.zeros((64, 96, 3), np.float32)])
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        write_video(tmp_path / "mixed.mp4", [good[0], good[1][:32]])
    assert not (tmp_path / "mixed.mp4").exists()  # the half-written file is removed
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "clip.mp4", good, fps=0)
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "clip.mp4", good, fps="fast")
