"""Configurations from the games' presets, and ``config.json`` read back (this format and the first one).

A configuration starts from the defaults of its two sections, then takes, in order:

1. the game's run settings, :data:`RUN_PRESETS` (SPEC section 7: parallel games, episode
   length; Commons Harvest's rollouts of 15 steps of its 1000-step episodes);
2. the algorithm's preset for the game (``Algorithm.presets``: AdAlign's are the paper's
   tables, :data:`trainers.algorithms.adalign.PAPER_PRESETS`);
3. with ``fast``, the algorithm's CPU preset for the game (``Algorithm.fast_presets``);
4. the caller's overrides.

Every name belongs to the run section or to the algorithm's, never both, so a setting is
given by its name alone, as on the command line::

    make_config("coin_game", fast=True, seed=3, iterations=500, beta=2.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainers import algorithms
from trainers.config import CONFIG_FORMAT, Config, RunConfig

__all__ = ["RUN_PRESETS", "make_config", "config_from_dict", "load_config", "legacy_config"]

#: The games' run settings (SPEC section 7); ``algo`` is the game's default algorithm. A game
#: without an entry trains with the run section's defaults.
RUN_PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(num_games=2048, max_steps=16),
    "coin_game": dict(num_games=512, max_steps=50),
    "negotiation": dict(num_games=16384, max_steps=50),
    "commons_harvest_open": dict(algo="proximal_adalign", num_games=6, max_steps=1000, rollout_steps=15,
                                 time_limit="bootstrap", eval_games=1),
}


def make_config(env: str = "ipd", algo: str | None = None, fast: bool = False, **overrides: Any) -> Config:
    """The configuration of a run of ``algo`` (default: the game's, else adalign) on ``env``:
    the presets (see the module docstring) with ``overrides`` applied, validated.

    A ``ValueError`` names an unknown game, algorithm or setting (and lists the allowed
    ones), a missing CPU preset (``fast``), or any invalid value."""
    from social_dilemmas import GAME_NAMES

    if env not in GAME_NAMES:
        raise ValueError(f"env = {env!r} is invalid: allowed values are {list(GAME_NAMES)}")
    game = dict(RUN_PRESETS.get(env, {}))
    algo = algo or overrides.pop("algo", None) or game.pop("algo", "adalign")
    game.pop("algo", None)
    overrides.pop("algo", None)
    cls = algorithms.get(algo)
    if fast and env not in cls.fast_presets:
        raise ValueError(f"--fast (the CPU preset) exists for {algo} on {sorted(cls.fast_presets) or 'no game'}, "
                         f"not on {env!r}")
    run_names, section_names = RunConfig.field_names(), cls.Config.field_names()
    run_kw: dict[str, Any] = {"env": env, "algo": algo}
    section_kw: dict[str, Any] = {}
    for layer in (game, cls.presets.get(env, {}), cls.fast_presets.get(env, {}) if fast else {}, overrides):
        for name, value in layer.items():
            if name in run_names:
                run_kw[name] = value
            elif name in section_names:
                section_kw[name] = value
            else:
                raise ValueError(f"{name!r} is not a setting of the run or of {algo}: the run's are "
                                 f"{sorted(run_names)}; {algo}'s are {sorted(section_names)}")
    return Config(RunConfig(**run_kw), cls.Config(**section_kw)).validate()


def config_from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """A configuration saved as a dictionary (``config.json``, a checkpoint's ``config``): this
    format, or the flat one of the first trainers (:func:`legacy_config`). Not validated."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a configuration must be a JSON object, got {type(data).__name__}")
    if data.get("format") == CONFIG_FORMAT:
        algo = data.get("run", {}).get("algo")
        return Config.from_dict(data, algorithms.get(algo).Config, where)
    if "format" not in data and "batch_size" in data:
        return legacy_config(data)
    raise ValueError(f"{where}: not a configuration of this project (format {data.get('format')!r})")


def load_config(path: str | Path) -> Config:
    """The configuration in ``path`` (``DIR/config.json``); errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{str(path)!r} is not valid JSON ({e})") from None
    return config_from_dict(data, where=str(path))


#: The first trainers' names -> this version's (everything else kept its name).
_LEGACY_NAMES = {"batch_size": "num_games", "network_arch": "vision_memory", "network_layers": "vision_layers",
                 "network_heads": "vision_heads", "network_context": "vision_context"}


def legacy_config(data: dict[str, Any], network: dict[str, Any] | None = None) -> Config:
    """This version's configuration of a flat configuration of the first trainers (config
    format 1, written before the run and algorithm sections), so their checkpoints still play.

    Their ``max_steps`` was the episode length of the batched games but the rollout length
    of Commons Harvest (whose episodes were ``env_kwargs["max_steps"]``, 1000 by default),
    ``batch_size`` the number of games, ``network_width`` Commons Harvest's width (its
    ``hidden``), and the PPO baselines' ``actor_lr`` their one learning rate. ``network``:
    a Commons Harvest checkpoint's network arguments (for the CNN's channels)."""
    old = dict(data)
    env, algo = old.pop("env", "ipd"), old.pop("algo", "adalign")
    cls = algorithms.get(algo)
    env_kwargs = dict(old.pop("env_kwargs", None) or {})
    values = {_LEGACY_NAMES.get(k, k): v for k, v in old.items()}
    width = values.pop("network_width", None)
    if env == "commons_harvest_open":
        values["rollout_steps"] = values.get("max_steps", 15)
        values["max_steps"] = env_kwargs.pop("max_steps", 1000)
        values["time_limit"] = "bootstrap"
        values["hidden"] = width if width is not None else 192
        values.setdefault("vision_memory", "transformer")  # their only transformer was the windowed one
        if network and "channels" in network:
            values["vision_channels"] = tuple(network["channels"])
    else:
        env_kwargs.pop("max_steps", None)  # the first trainers replaced it with max_steps
    if algo in ("ppo", "ppo_shared_reward"):
        values["lr"] = values.pop("actor_lr", 1e-4)
    run_names, section_names = RunConfig.field_names(), cls.Config.field_names()
    run = RunConfig(env=env, algo=algo, env_kwargs=env_kwargs, **{k: v for k, v in values.items() if k in run_names})
    section = cls.Config(**{k: v for k, v in values.items() if k in section_names})
    return Config(run, section)
