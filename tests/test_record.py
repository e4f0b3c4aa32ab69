"""``python -m social_dilemmas.record``: episodes of any game with any players, to .mp4 / .gif.

Frame count rule (documented in :mod:`social_dilemmas.record`): an episode of ``steps``
steps gives ``steps + 1`` frames (reset + one per step), then its last frame is
repeated ``max(1, round(fps * 1 s)) - 1`` more times (held for about one second).
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

from renderers import (  # noqa: E402
    COOPERATE_COLOUR,
    DEFECT_COLOUR,
    coin_game_image_size,
    ipd_cell_rect,
    ipd_image_size,
    negotiation_image_size,
)
from social_dilemmas.record import HOLD_SECONDS, frames_per_episode, hold_frames, record  # noqa: E402


def expected_frames(episodes: int, max_steps: int, fps: float) -> int:
    """The documented rule, written out: (max_steps + 1) per episode plus the holds."""
    holds = max(1, round(fps * 1.0)) - 1
    return episodes * (max_steps + 1) + episodes * holds


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, SDL_VIDEODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
    return subprocess.run([sys.executable, "-m", "social_dilemmas.record", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The command in this process (``main(argv)``): exit code, stdout, stderr."""
    from social_dilemmas.record import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def read_mp4(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    reader = imageio.get_reader(str(path), format="FFMPEG")
    try:
        return [np.asarray(f) for f in reader]  # not list(reader): its len() is inf
    finally:
        reader.close()


def read_gif(path: Path) -> tuple[list[np.ndarray], list[int]]:
    from PIL import Image

    frames, durations = [], []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            durations.append(int(im.info["duration"]))
            frames.append(np.asarray(im.convert("RGB")))
    return frames, durations


def close_to(pixel: np.ndarray, colour, tol: int = 12) -> bool:
    return int(np.abs(pixel.astype(int) - np.asarray(colour)).max()) <= tol


# -- the rule ---------------------------------------------------------------------------
@pytest.mark.parametrize("fps, hold", [(1, 0), (4, 3), (2.4, 1), (10, 9), (0.3, 0), (30, 29)])
def test_hold_rule(fps, hold):
    assert HOLD_SECONDS == 1.0
    assert hold_frames(fps) == hold
    assert frames_per_episode(7, fps) == 7 + 1 + hold == expected_frames(1, 7, fps)


# -- the command --------------------------------------------------------------------------
def test_cli_writes_an_mp4_that_reads_back(tmp_path):
    out = tmp_path / "videos" / "coin.mp4"  # the parent folder is created
    proc = run_cli("--env", "coin_game", "--players", "always_cooperate", "always_defect",
                   "--episodes", "2", "--max-steps", "5", "--fps", "4", "--seed", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    n = expected_frames(2, 5, 4)
    assert n == 18
    frames = read_mp4(out)
    assert len(frames) == n
    h, w = coin_game_image_size(3)
    assert frames[0].shape == (h + h % 2, w + w % 2, 3)  # mp4 pads an odd side by one pixel
    # one summary line: path, frames, episodes, per-player mean reward per step
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    line = lines[0]
    assert str(out) in line and f"{n} frames" in line and "2 episodes" in line
    assert re.search(r"player_0 \(always_cooperate\) [+-]\d+\.\d+", line), line
    assert re.search(r"player_1 \(always_defect\) [+-]\d+\.\d+", line), line
    # the progress bar goes to stderr, over episodes
    assert "2/2" in proc.stderr and "episode" in proc.stderr
    # the video starts with the seeded reset frame (compressed, so compared loosely)
    import social_dilemmas

    env = social_dilemmas.parallel_env("coin_game", render_mode="rgb_array", max_steps=5)
    env.reset(seed=0)
    first = env.render()
    diff = np.abs(frames[0][:h, :w].astype(int) - first.astype(int)).mean()
    assert diff < 3, diff
    # the held frames repeat the episode's last frame; the next episode starts afresh
    per = frames_per_episode(5, 4)
    for k in range(6, per):
        assert np.abs(frames[k].astype(int) - frames[5].astype(int)).mean() < 1
    assert np.abs(frames[per].astype(int) - frames[per - 1].astype(int)).mean() > 1


def test_cli_summary_reports_the_mean_reward_per_step(tmp_path):
    out = tmp_path / "ipd.mp4"
    proc = run_cli("--env", "ipd", "--players", "always_cooperate", "always_defect", "--episodes", "1",
                   "--max-steps", "3", "--fps", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    # C against D: -3 and 0 every round
    assert "player_0 (always_cooperate) -3.000" in proc.stdout
    assert "player_1 (always_defect) +0.000" in proc.stdout
    assert len(read_mp4(out)) == expected_frames(1, 3, 1) == 4


def test_cli_writes_a_gif(tmp_path):
    out = tmp_path / "ipd.gif"
    fps, steps = 5, 4
    proc = run_cli("--env", "ipd", "--players", "tit_for_tat", "always_defect", "--episodes", "1",
                   "--max-steps", str(steps), "--fps", str(fps), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    n = expected_frames(1, steps, fps)
    assert f"{n} frames" in proc.stdout
    frames, durations = read_gif(out)
    # Pillow merges the identical held frames into the episode's last frame, keeping the time
    assert len(frames) == steps + 1
    assert sum(durations) == n * 1000 // fps
    assert durations[-1] == (1 + hold_frames(fps)) * 1000 // fps
    assert frames[0].shape == (*ipd_image_size(steps), 3)
    # tit-for-tat cooperates first, then copies the other's defections
    last = frames[-1]
    for rnd, (a0, a1) in enumerate([(0, 1), (1, 1), (1, 1), (1, 1)]):
        for player, a in ((0, a0), (1, a1)):
            x, y, w, h = ipd_cell_rect(steps, rnd, player)
            colour = (COOPERATE_COLOUR, DEFECT_COLOUR)[a]
            assert close_to(last[y + h // 2, x + w // 2], colour), (rnd, player)


def test_cli_negotiation_gif_default_fps(tmp_path, capsys):
    out = tmp_path / "neg.gif"
    code, stdout, _ = run_main(capsys, "--env", "negotiation", "--players", "random", "always_cooperate",
                               "--max-steps", "2", "--out", str(out))
    assert code == 0
    import social_dilemmas

    fps = social_dilemmas.parallel_env("negotiation").metadata["render_fps"]
    assert f"at {fps:g} fps" in stdout
    assert f"{expected_frames(1, 2, fps)} frames" in stdout and "1 episode;" in stdout
    frames, durations = read_gif(out)
    assert frames[0].shape == (*negotiation_image_size(3), 3)
    assert sum(durations) == expected_frames(1, 2, fps) * round(1000 / fps)


def test_cli_wrong_number_of_players(tmp_path):
    out = tmp_path / "x.mp4"
    proc = run_cli("--env", "coin_game", "--players", "always_cooperate", "--out", str(out))
    assert proc.returncode == 2
    assert "--players takes exactly one player per seat" in proc.stderr
    assert "2 seats" in proc.stderr and "player_0, player_1" in proc.stderr and "got 1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_too_many_players(tmp_path, capsys):
    out = tmp_path / "x.mp4"
    code, _, err = run_main(capsys, "--env", "ipd", "--players", "random", "random", "random", "--out", str(out))
    assert code == 2
    assert "--players" in err and "2 seats" in err and "got 3" in err
    assert not out.exists()


def test_cli_unknown_player(tmp_path):
    out = tmp_path / "x.gif"
    proc = run_cli("--env", "coin_game", "--players", "random", "nobody", "--out", str(out))
    assert proc.returncode == 2
    assert "--players" in proc.stderr and "'nobody'" in proc.stderr and "player_1" in proc.stderr
    for name in ("always_cooperate", "always_defect", "random"):
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_unknown_player_lists_the_games_own_scripted_players(tmp_path, capsys):
    code, _, err = run_main(capsys, "--env", "ipd", "--players", "nobody", "random", "--out", str(tmp_path / "x.gif"))
    assert code == 2
    assert "--players" in err and "'nobody'" in err and "player_0" in err
    for name in ("always_cooperate", "always_defect", "random", "tit_for_tat", "grim_trigger"):
        assert name in err
    assert not list(tmp_path.iterdir())


def test_cli_missing_saved_player(tmp_path, capsys):
    code, _, err = run_main(capsys, "--env", "ipd", "--players", "random", str(tmp_path / "nope.pt"),
                            "--out", str(tmp_path / "x.gif"))
    assert code == 2
    assert "--players" in err and "nope.pt" in err and "does not exist" in err


@pytest.mark.parametrize("args, needle", [
    (["--env", "chess", "--players", "a", "b", "--out", "x.mp4"], "--env"),
    (["--env", "ipd", "--players", "random", "random", "--out", "x.avi"], "--out"),
    (["--env", "ipd", "--players", "random", "random", "--out", "x.mp4", "--episodes", "0"], "--episodes"),
    (["--env", "ipd", "--players", "random", "random", "--out", "x.mp4", "--fps", "-1"], "--fps"),
    (["--env", "ipd", "--players", "random", "random", "--out", "x.mp4", "--max-steps", "0"], "--max-steps"),
    (["--env", "ipd", "--players", "random", "random", "--out", "x.mp4", "--seed", "-3"], "--seed"),
])
def test_cli_bad_arguments(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *args)
    assert code == 2
    assert f"error: argument {needle}" in err or f"error: {needle}" in err
    assert not list(tmp_path.iterdir())


def test_cli_help_lists_games_and_players(capsys):
    code, stdout, _ = run_main(capsys, "--help")
    assert code == 0
    text = " ".join(stdout.split())
    for word in ("--env", "--players", "--episodes", "--out", "--seed", "--fps", "--max-steps",
                 "coin_game", "ipd", "negotiation", "tit_for_tat", ".mp4", ".gif"):
        assert word in text


def test_renderers_import_nothing_of_the_project():
    # the recorder drives the games, so it lives in social_dilemmas; renderers stay a leaf
    code = textwrap.dedent(
        """
        import sys
        import renderers, renderers.video, renderers.window, renderers.frames
        bad = [m for m in sys.modules if m == "torch" or m.startswith(("torch.", "social_dilemmas", "trainers"))]
        assert not bad, bad
        print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, SDL_VIDEODRIVER="dummy"))
    assert proc.returncode == 0, proc.stderr


# -- the function -------------------------------------------------------------------------
def test_record_with_a_callable_player(tmp_path):
    seen = []

    def always_defect(obs):
        seen.append(obs)
        return 1

    result = record("ipd", [always_defect, "always_cooperate"], episodes=2, out=tmp_path / "ipd.mp4",
                    fps=2, env_kwargs={"max_steps": 3})
    assert result["frames"] == expected_frames(2, 3, 2) == 10
    assert result["episodes"] == 2 and result["steps"] == 6
    assert result["fps"] == 2
    assert result["frame_shape"] == (*ipd_image_size(3), 3)
    assert result["agents"] == ["player_0", "player_1"]
    assert result["players"] == ["always_defect", "always_cooperate"]
    assert result["mean_reward"] == [0.0, -3.0]  # D against C every round
    assert result["returns"] == [[0.0, -9.0], [0.0, -9.0]]
    assert Path(result["path"]).exists() and len(read_mp4(result["path"])) == 10
    # the callable saw each of its seat's observations as one numpy array
    assert len(seen) == 6
    assert all(isinstance(o, np.ndarray) and o.shape == (4,) for o in seen)
    assert not seen[0].any() and seen[1].tolist() == [0, 1, 1, 0]  # I defected, the other cooperated
    assert not seen[3].any()  # a new episode starts with the empty history


def test_record_continuous_callable_in_negotiation(tmp_path):
    result = record("negotiation", [lambda obs: np.full(3, 2.5, np.float32), "always_defect"], 1,
                    tmp_path / "neg.gif", env_kwargs={"max_steps": 4}, fps=1)
    assert result["frames"] == expected_frames(1, 4, 1) == 5
    p0, p1 = result["mean_reward"]
    # 2.5 against 5 on every item: player_0 gets a third of each item, player_1 two thirds, and the
    # two values of an item add up to 6, so p0 + p1 / 2 = sum_k 6 / 3 / 15 = 0.4 every step
    assert p0 > 0 and p1 > 0
    assert p0 + p1 / 2 == pytest.approx(0.4, abs=1e-6)


def test_record_is_reproducible_from_the_seed(tmp_path):
    runs = [record("coin_game", ["random", "random"], 2, tmp_path / f"c{i}.gif", seed=seed, fps=1,
                   env_kwargs={"max_steps": 8})
            for i, seed in enumerate((5, 5, 6))]
    assert runs[0]["returns"] == runs[1]["returns"]
    assert runs[0]["returns"] != runs[2]["returns"]
    a, _ = read_gif(tmp_path / "c0.gif")
    b, _ = read_gif(tmp_path / "c1.gif")
    assert len(a) == len(b) and all((x == y).all() for x, y in zip(a, b))


def test_record_follows_the_policy_protocol(tmp_path):
    import torch

    from social_dilemmas.policies import Policy

    class Spy(Policy):
        name = "spy"

        def __init__(self):
            self.calls = []

        def reset(self, num_envs, device="cpu", generator=None):
            self.calls.append(("reset", num_envs, str(device), isinstance(generator, torch.Generator)))

        def reset_envs(self, mask):
            self.calls.append(("reset_envs", mask.tolist()))

        def act(self, obs):
            self.calls.append(("act", tuple(obs.shape), obs.dtype))
            return torch.zeros(obs.shape[0], dtype=torch.int64)

    spy = Spy()
    result = record("coin_game", ["always_defect", spy], 3, tmp_path / "c.gif", fps=1, env_kwargs={"max_steps": 2})
    assert result["players"] == ["always_defect", "spy"]
    assert spy.calls[0] == ("reset", 1, "cpu", True)
    kinds = [c[0] for c in spy.calls]
    assert kinds == ["reset", "act", "act", "reset_envs", "act", "act", "reset_envs", "act", "act"]
    assert spy.calls[1] == ("act", (1, 4, 3, 3), torch.float32)
    assert spy.calls[3] == ("reset_envs", [True])


@pytest.mark.parametrize("kwargs, match", [
    (dict(players=["random"]), r"players takes exactly one player per seat: coin_game has 2 seats"),
    (dict(players="random"), r"players must be a list"),
    (dict(players=["random", "nobody"]), r"unknown player 'nobody'.*always_cooperate, always_defect, random"),
    (dict(env_name="chess"), r"env_name must be one of"),
    (dict(episodes=0), r"episodes must be an integer >= 1"),
    (dict(out="x.avi"), r"out must end in .mp4 or .gif"),
    (dict(fps=0), r"fps must be a positive number"),
    (dict(seed=-1), r"seed must be an integer >= 0"),
])
def test_record_bad_arguments(tmp_path, kwargs, match):
    args = dict(env_name="coin_game", players=["random", "random"], episodes=1, out=tmp_path / "x.mp4")
    args.update(kwargs)
    if "out" in kwargs:
        args["out"] = tmp_path / kwargs["out"]
    with pytest.raises(ValueError, match=match):
        record(**args)
    assert not list(tmp_path.iterdir())


def test_record_removes_a_half_written_file(tmp_path):
    calls = []

    def breaks(obs):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("player crashed")
        return 0

    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="player crashed"):
        record("ipd", [breaks, "random"], 1, out)
    assert not out.exists()
