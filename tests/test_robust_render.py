"""Robustness of the renderers and the recorder (issue 19, items 13, 14 and 16): the IPD frame
stays bounded however long the episode, rendering survives ``pygame.quit()`` elsewhere, and
the recorder knows Commons Harvest (the parts that need no Melting Pot; recording it is in
tests/test_robust_commons_harvest.py)."""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from renderers import (  # noqa: E402
    COOPERATE_COLOUR,
    DEFECT_COLOUR,
    UNPLAYED_COLOUR,
    IPDFrame,
    NegotiationFrame,
    ipd_cell_rect,
    ipd_image_size,
    render,
    render_ipd,
)

MAX_ROUNDS_SHOWN = 460  # the window documented in renderers.ipd (checked below)

COLOURS = np.array([COOPERATE_COLOUR, DEFECT_COLOUR], np.uint8)


def cell_colour(img: np.ndarray, rect: tuple[int, int, int, int]) -> tuple[int, ...]:
    x, y, w, h = rect
    return tuple(int(v) for v in img[y + h // 2, x + w // 2])


# -- item 13: the IPD frame is bounded ---------------------------------------------------------
def test_ipd_frame_size_does_not_grow_with_max_steps():
    import renderers.ipd

    assert renderers.ipd.MAX_ROUNDS_SHOWN == MAX_ROUNDS_SHOWN and "460" in renderers.ipd.__doc__
    sizes = {ipd_image_size(n) for n in (1, 16, 100, MAX_ROUNDS_SHOWN, MAX_ROUNDS_SHOWN + 1, 10**4, 10**6)}
    assert sizes == {(326, 640)}


def test_a_million_round_ipd_frame_is_small_and_quick():
    n = 10**6
    h, w = ipd_image_size(n)  # before drawing: the old layout asked for 1,000,180 px here
    assert w <= 640
    actions = np.random.default_rng(0).integers(0, 2, size=(n, 2))
    frame = IPDFrame(actions=actions, max_steps=n, scores=(1.0, 2.0), rewards=(0.0, -1.0))
    render_ipd(frame)  # the first call builds the cached background
    start = time.perf_counter()
    img = render_ipd(frame)
    elapsed = time.perf_counter() - start
    assert img.shape == (h, w, 3) and img.nbytes < 10**6
    assert elapsed < 0.5, f"{elapsed:.3f} s for one frame"  # measured 4 ms
    # the window ends at the last round played: its last cells are the last actions
    for r in (n - 1, n - 2, n - MAX_ROUNDS_SHOWN):
        for p in (0, 1):
            assert cell_colour(img, ipd_cell_rect(n, r, p, played=n)) == tuple(COLOURS[actions[r, p]]), (r, p)


def test_long_ipd_window_slides_once_past_the_window():
    n, rng = 1000, np.random.default_rng(1)
    actions = rng.integers(0, 2, size=(n, 2))
    # fewer rounds played than the window: rounds 0..459 shown, played ones coloured, the rest unplayed
    t = 300
    img = render_ipd(IPDFrame(actions=actions[:t], max_steps=n, scores=(0, 0), rewards=(0, 0)))
    for r in (0, t - 1, t, MAX_ROUNDS_SHOWN - 1):
        want = tuple(COLOURS[actions[r, 0]]) if r < t else UNPLAYED_COLOUR
        assert cell_colour(img, ipd_cell_rect(n, r, 0, played=t)) == want, r
    with pytest.raises(ValueError, match="not shown"):
        ipd_cell_rect(n, MAX_ROUNDS_SHOWN, 0, played=t)
    # more played than the window: the last 460 rounds, the first shown at the left edge
    t = 700
    img = render_ipd(IPDFrame(actions=actions[:t], max_steps=n, scores=(0, 0), rewards=(0, 0)))
    first = t - MAX_ROUNDS_SHOWN
    assert ipd_cell_rect(n, first, 1, played=t)[0] == ipd_cell_rect(16, 0, 1)[0]
    for r in (first, first + 1, t - 1):
        assert cell_colour(img, ipd_cell_rect(n, r, 1, played=t)) == tuple(COLOURS[actions[r, 1]]), r
    with pytest.raises(ValueError, match="not shown"):
        ipd_cell_rect(n, first - 1, 1, played=t)
    with pytest.raises(ValueError, match="played"):  # the window depends on it
        ipd_cell_rect(n, 0, 0)
    with pytest.raises(ValueError, match="played must be <= max_steps"):
        ipd_cell_rect(n, 0, 0, played=n + 1)


def test_a_million_round_ipd_env_renders_a_bounded_frame_quickly():
    import social_dilemmas

    env = social_dilemmas.parallel_env("ipd", render_mode="rgb_array", max_steps=10**6)
    env.reset(seed=0)
    for _ in range(3):
        env.step({a: 1 for a in env.agents})
    start = time.perf_counter()
    rgb = env.render()
    elapsed = time.perf_counter() - start
    env.close()
    assert rgb.shape == (*ipd_image_size(10**6), 3) and rgb.shape[1] == 640
    assert elapsed < 2.0, f"{elapsed:.3f} s"
    assert cell_colour(rgb, ipd_cell_rect(10**6, 2, 0, played=3)) == DEFECT_COLOUR


# -- item 14: pygame.quit() elsewhere ------------------------------------------------------------
def test_rendering_works_after_pygame_quit():
    import pygame

    ipd = IPDFrame(actions=np.zeros((2, 2), int), max_steps=16, scores=(0, 0), rewards=(0, 0))
    before = render(ipd)
    pygame.quit()  # what gymnasium.utils.play does on exit
    # new numbers need new text, drawn with the cached fonts: those died with pygame.quit()
    after = render(IPDFrame(actions=np.ones((3, 2), int), max_steps=16, scores=(12.25, 7.5), rewards=(1, 1)))
    assert after.shape == before.shape
    pygame.font.quit()  # the font module alone, twice in a row
    values = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    render(NegotiationFrame(np.ones(3), values, values / 2, np.full((2, 3), 0.5), np.array([1.25, 2.75]),
                            (3.125, 4.875), 1, 10))
    assert (render(ipd) == before).all()  # the same picture as before the quit


# -- item 16: the recorder knows Commons Harvest (no Melting Pot needed) ---------------------------
def test_recorder_parser_accepts_commons_harvest():
    from social_dilemmas.record import build_parser

    parser = build_parser()
    args = parser.parse_args(["--env", "commons_harvest_open", "--players", *["random"] * 7, "--out", "x.gif"])
    assert args.env == "commons_harvest_open"
    assert "commons_harvest_open" in parser.format_help() and "noop, random" in parser.format_help()


def test_recorder_checks_commons_harvest_players_before_playing(tmp_path):
    from social_dilemmas.record import PlayersError, record

    with pytest.raises(PlayersError, match="commons_harvest_open has 7 seats"):
        record("commons_harvest_open", ["random"] * 6, 1, tmp_path / "x.gif")
    with pytest.raises(PlayersError, match=r"unknown player 'tit_for_tat' for player_6.*noop, random"):
        record("commons_harvest_open", ["random"] * 6 + ["tit_for_tat"], 1, tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()


def test_recorder_without_melting_pot_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from social_dilemmas.commons_harvest import parallel
    from social_dilemmas.record import main

    def missing(*args, **kwargs):
        raise ImportError("Commons Harvest needs Melting Pot ... Install it with `make install`")

    monkeypatch.setattr(parallel, "build_substrate", missing)
    with pytest.raises(SystemExit) as e:
        main(["--env", "commons_harvest_open", "--players", *["noop"] * 7, "--out", str(tmp_path / "x.gif")])
    assert e.value.code == 2
    assert "--env commons_harvest_open: Commons Harvest needs Melting Pot" in capsys.readouterr().err
    assert not (tmp_path / "x.gif").exists()

