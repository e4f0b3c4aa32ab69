"""Record episodes of any game, with any players, to ``.mp4`` or ``.gif``.

::

    python -m social_dilemmas.record --env coin_game --players always_cooperate always_defect \\
        --episodes 2 --out coin.mp4 [--seed 0] [--fps N] [--max-steps N]

or, from Python, :func:`record`. Every game of ``social_dilemmas.GAMES`` and Melting Pot's
``commons_harvest_open`` (``social_dilemmas.MELTINGPOT_ENV_IDS``; needs Melting Pot, seven
players: ``random``, ``noop`` or saved players) can be recorded.

It lives beside the games because it drives them (through the PettingZoo view) and
feeds their frames to :class:`renderers.video.VideoWriter`; :mod:`renderers` itself
draws frames from plain data and imports nothing of the project.

How an episode is played: the env is ``social_dilemmas.parallel_env(env,
render_mode="rgb_array")``; each seat ``player_i`` is played by
``social_dilemmas.policies.resolve_player(players[i], game)`` (a scripted
player's name, a saved player's path, a ``Policy`` or a callable ``obs ->
action``; for Commons Harvest
``social_dilemmas.commons_harvest.resolve_commons_harvest_player``), reset once with ``reset(1, "cpu", generator)`` where the generator is
seeded with ``seed + 1 + i``, and told ``reset_envs`` before every later episode.
The env is reset with ``seed`` before the first episode and continues its own
generator afterwards, so a recording is reproducible from ``seed``.

Frames, per episode (the rule the tests count with):

* one frame after ``reset`` and one after every step: ``steps + 1`` frames
  (``steps`` is the game's ``max_steps``: the games never end on their own;
  Commons Harvest with ``max_steps`` above 1000 may: see its documentation);
  a frame is the env's ``render()``, except for Commons Harvest, whose
  ``render()`` is the bare world view: its frames are
  ``renderers.render(env.frame())``, the world with the seven running scores;
* then the last frame is repeated :func:`hold_frames` ``(fps)`` more times, so it
  stays on screen for about :data:`HOLD_SECONDS` (``round(fps * HOLD_SECONDS)``
  frames in all, at least the one frame).

So a recording of ``E`` episodes has ``E * frames_per_episode(steps, fps)``
frames.  A ``.gif`` merges identical consecutive frames into one longer frame,
so reading one back gives ``E * (steps + 1)`` frames whose display times add up to
the same total.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from renderers.video import SUFFIXES, VideoWriter

__all__ = ["record", "main", "build_parser", "summary", "PlayersError", "hold_frames", "frames_per_episode", "HOLD_SECONDS"]

#: How long the last frame of an episode stays on screen, in seconds.
HOLD_SECONDS = 1.0


def hold_frames(fps: float) -> int:
    """Extra copies of an episode's last frame: ``max(1, round(fps * HOLD_SECONDS)) - 1``."""
    return max(1, int(round(float(fps) * HOLD_SECONDS))) - 1


def frames_per_episode(steps: int, fps: float) -> int:
    """Frames an episode of ``steps`` steps takes in a recording: ``steps + 1 + hold_frames(fps)``."""
    return int(steps) + 1 + hold_frames(fps)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_out(out: Any, name: str = "out") -> Path:
    try:
        path = Path(out)
    except TypeError:
        raise ValueError(f"{name} must be a path ending in {' or '.join(SUFFIXES)}, got {out!r}") from None
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{name} must end in {' or '.join(SUFFIXES)}, got {str(out)!r}")
    return path


def _check_fps(fps: Any, name: str = "fps") -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {fps!r}") from None
    if isinstance(fps, bool) or not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be a positive number, got {fps!r}")
    return value


class PlayersError(ValueError):
    """A bad ``players`` argument; ``body`` is the message without the argument's name."""

    def __init__(self, body: str, name: str = "players"):
        super().__init__(f"{name}{body}")
        self.body = body


def _game_names() -> list[str]:
    """Every game the recorder plays: ``social_dilemmas.GAMES`` and the Melting Pot games."""
    import social_dilemmas

    return sorted(social_dilemmas.GAMES) + sorted(social_dilemmas.MELTINGPOT_ENV_IDS)


def _scripted_players(game: Any) -> tuple[list[str], Any]:
    """``(names of the scripted players, resolve(spec) -> Policy)`` of ``game``."""
    from social_dilemmas.policies import resolve_player, scripted_names

    if game.name == "commons_harvest_open":
        from social_dilemmas.commons_harvest.players import SCRIPTED_PLAYERS, resolve_commons_harvest_player

        return sorted(SCRIPTED_PLAYERS), lambda spec: resolve_commons_harvest_player(spec, game)
    try:
        scripted = scripted_names(game)
    except ValueError:
        scripted = []
    return scripted, lambda spec: resolve_player(spec, game)


def _resolve_players(specs: Any, game: Any, agents: Sequence[str]) -> list[Any]:
    """One ``Policy`` per seat, or :class:`PlayersError` naming the seats and the scripted players."""
    from social_dilemmas.policies import saved_player_format, saved_player_suffixes

    n = len(agents)
    if isinstance(specs, (str, bytes, os.PathLike)) or not isinstance(specs, Sequence):
        raise PlayersError(f" must be a list with one player per seat ({n} for {game.name}: "
                           f"{', '.join(agents)}), got {specs!r}")
    if len(specs) != n:
        raise PlayersError(f" takes exactly one player per seat: {game.name} has {n} seats "
                           f"({', '.join(agents)}), got {len(specs)} ({', '.join(map(str, specs))})")
    scripted, resolve = _scripted_players(game)
    policies = []
    for i, spec in enumerate(specs):
        if isinstance(spec, (str, Path)) and saved_player_format(spec) is None and str(spec) not in scripted:
            raise PlayersError(
                f": unknown player {str(spec)!r} for {agents[i]} of {game.name}; scripted players are "
                f"{', '.join(scripted) or '(none)'}; a saved player is a path ending in {' or '.join(saved_player_suffixes())}"
            )
        try:
            policies.append(resolve(spec))
        except (FileNotFoundError, ImportError, TypeError, ValueError) as e:
            raise PlayersError(f": cannot use {spec!r} for {agents[i]} of {game.name}: {e}") from e
    return policies


def _player_label(spec: Any, policy: Any) -> str:
    if isinstance(spec, (str, Path)):
        return str(spec)
    return str(getattr(policy, "name", None) or getattr(spec, "__name__", None) or type(spec).__name__)


def record(
    env_name: str,
    players: Sequence[Any],
    episodes: int,
    out: str | os.PathLike,
    seed: int = 0,
    fps: float | None = None,
    env_kwargs: dict[str, Any] | None = None,
    *,
    progress: bool = False,
    quality: float = 8,
) -> dict[str, Any]:
    """Play ``episodes`` episodes of ``env_name`` and write them to ``out`` (``.mp4`` or ``.gif``).

    Arguments:
        env_name: a game of ``social_dilemmas.GAMES`` (``"ipd"``, ``"coin_game"``, ...) or
            ``"commons_harvest_open"`` (needs Melting Pot: an ImportError says how to install it).
        players: one player per seat, in seat order: scripted names, saved-player
            paths, ``Policy`` objects or callables ``obs -> action`` (see
            ``social_dilemmas.policies.resolve_player``).
        episodes: number of episodes, at least 1.
        out: the video file; its suffix chooses the format. Parent folders are created.
        seed: seeds the env (``reset(seed=seed)``) and the players (``seed + 1 + i``).
        fps: frames per second; default the env's ``metadata["render_fps"]``.
        env_kwargs: constructor arguments of the game (``max_steps``, ``size``, ...).
        progress: show a tqdm bar over episodes on stderr.
        quality: mp4 quality, 0-10 (see :class:`renderers.video.VideoWriter`).

    Returns a dict: ``path``, ``frames`` (written), ``episodes``, ``steps`` (played, all
    episodes), ``fps``, ``frame_shape`` (``(H, W, 3)`` as drawn; an mp4 pads an odd side
    by one pixel), ``players`` (labels), ``agents``, ``returns`` (``[episodes][seat]``
    summed rewards) and ``mean_reward`` (per seat, per step over all episodes).

    Raises ValueError naming the bad argument; a file left half-written by an error is removed.
    """
    import torch
    from tqdm.auto import tqdm

    import social_dilemmas

    if env_name not in _game_names():
        raise ValueError(f"env_name must be one of {_game_names()}, got {env_name!r}")
    episodes = _check_int("episodes", episodes, 1)
    seed = _check_int("seed", seed, 0)
    path = _check_out(out)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a dict of the game's constructor arguments, got {env_kwargs!r}")
    env = social_dilemmas.parallel_env(env_name, render_mode="rgb_array", **(env_kwargs or {}))
    if env_name in social_dilemmas.MELTINGPOT_ENV_IDS:
        import renderers

        game = env.spec_info
        draw = lambda: renderers.render(env.frame())  # noqa: E731  (render() is the bare world view)
    else:
        game = env.game
        draw = env.render
    agents = list(env.possible_agents)
    fps = _check_fps(env.metadata.get("render_fps", 4) if fps is None else fps)
    policies = _resolve_players(players, game, agents)
    labels = [_player_label(spec, pol) for spec, pol in zip(players, policies)]
    discrete = [hasattr(env.action_space(a), "n") for a in agents]
    hold = hold_frames(fps)

    returns = np.zeros((episodes, len(agents)), dtype=np.float64)
    steps = 0
    shape: tuple[int, ...] | None = None
    writer = VideoWriter(path, fps, quality=quality)
    bar = tqdm(total=episodes, desc=f"recording {env_name}", unit="episode", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for i, policy in enumerate(policies):
                policy.reset(1, "cpu", torch.Generator().manual_seed(seed + 1 + i))
            for episode in range(episodes):
                if episode:
                    for policy in policies:
                        policy.reset_envs(torch.ones(1, dtype=torch.bool))
                obs, _ = env.reset(seed=seed if episode == 0 else None)
                rgb = draw()
                shape = rgb.shape
                writer.append(rgb)
                while env.agents:
                    actions = {}
                    for i, (agent, policy) in enumerate(zip(agents, policies)):
                        act = policy.act(torch.from_numpy(np.asarray(obs[agent])[None]))[0]
                        actions[agent] = int(act) if discrete[i] else act.detach().cpu().numpy()
                    obs, rewards, _, _, _ = env.step(actions)
                    returns[episode] += [rewards[a] for a in agents]
                    steps += 1
                    rgb = draw()
                    writer.append(rgb)
                for _ in range(hold):
                    writer.append(rgb)
                bar.update(1)
                bar.set_postfix({a: f"{r:.2f}" for a, r in zip(agents, returns[episode])})
        writer.close()
    except BaseException:
        writer._abort()
        if path.exists():
            path.unlink()
        raise
    finally:
        bar.close()
        env.close()
    mean = returns.sum(0) / max(1, steps)
    return {
        "path": path,
        "frames": writer.frames_written,
        "episodes": episodes,
        "steps": steps,
        "fps": fps,
        "frame_shape": tuple(shape) if shape is not None else None,
        "players": labels,
        "agents": agents,
        "returns": returns.tolist(),
        "mean_reward": mean.tolist(),
    }


def summary(result: dict[str, Any]) -> str:
    """The one-line summary the command prints."""
    h, w = result["frame_shape"][:2]
    per_player = ", ".join(
        f"{a} ({p}) {m:+.3f}" for a, p, m in zip(result["agents"], result["players"], result["mean_reward"])
    )
    return (f"wrote {result['path']}: {result['frames']} frames ({w}x{h} at {result['fps']:g} fps), "
            f"{result['episodes']} episode{'s' if result['episodes'] != 1 else ''}; "
            f"mean reward per step: {per_player}")


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer ``>= minimum``, else an error saying it must be ``what``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a {what}, got {text!r}") from None
        return value

    return parse


_positive_int = _int_at_least(1, "positive integer")
_non_negative_int = _int_at_least(0, "non-negative integer")


def _positive_float(text: str) -> float:
    try:
        return _check_fps(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from social_dilemmas.commons_harvest.players import SCRIPTED_PLAYERS
    from social_dilemmas.policies import SCRIPTED, saved_player_suffixes

    scripted = "; ".join(f"{g}: {', '.join(names)}" for g, names in SCRIPTED.items())
    scripted += f"; commons_harvest_open (needs Melting Pot; 7 players): {', '.join(sorted(SCRIPTED_PLAYERS))}"
    parser = argparse.ArgumentParser(
        prog="python -m social_dilemmas.record",
        description="Record episodes of a social-dilemma game played by the given players to an .mp4 or .gif.",
        epilog=(f"Scripted players: {scripted}. A saved player is a path ending in "
                f"{' or '.join(saved_player_suffixes())} (a pickle without a suffix: the .pkl loader). Each episode gives max_steps + 1 frames, then its last "
                f"frame is held for about {HOLD_SECONDS:g} s."),
    )
    parser.add_argument("--env", required=True, choices=_game_names(), help="the game")
    parser.add_argument("--players", required=True, nargs="+", metavar="PLAYER",
                        help="one player per seat, in seat order: a scripted player's name or a saved player's path")
    parser.add_argument("--episodes", type=_positive_int, default=1, help="episodes to record (default 1)")
    parser.add_argument("--out", required=True, help="output file, .mp4 or .gif (by suffix)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the env and the players (default 0)")
    parser.add_argument("--fps", type=_positive_float, default=None,
                        help="frames per second (default: the env's render_fps)")
    parser.add_argument("--max-steps", type=_positive_int, default=None,
                        help="steps per episode (default: the game's own)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_out(args.out, "--out")
    except ValueError as e:
        parser.error(str(e))
    env_kwargs = {} if args.max_steps is None else {"max_steps": args.max_steps}
    try:
        result = record(args.env, args.players, args.episodes, args.out, seed=args.seed, fps=args.fps,
                        env_kwargs=env_kwargs, progress=True)
    except PlayersError as e:
        parser.error(f"--players{e.body}")
    except ImportError as e:
        import social_dilemmas

        if args.env not in social_dilemmas.MELTINGPOT_ENV_IDS:
            raise
        parser.error(f"--env {args.env}: {e}")  # Melting Pot is missing: the message says how to install it
    print(summary(result), flush=True)
    return result


if __name__ == "__main__":
    main()
