"""Training configuration: a run section and the algorithm's section, each a dataclass with a docstring per field.

A run is configured by a :class:`Config`: the :class:`RunConfig` (what every algorithm
shares: the game, the seed, the budget, the device, the run folder's outputs) and the
section of its algorithm (a :class:`Section` subclass defined in the algorithm's module,
e.g. :class:`trainers.algorithms.adalign.AdAlignConfig`). Every name means one thing
everywhere, and the two sections never share a name. Saved as ``DIR/config.json``::

    {"format": 2, "run": {...}, "algorithm": {...}}

The presets of the games (SPEC section 7) and the command line are built on this in
:mod:`trainers.presets` and :mod:`trainers.__main__`; the docstrings below are the
command line's help.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Section", "RunConfig", "Config", "CONFIG_FORMAT", "need", "field_docs"]

#: Version of ``config.json``'s layout (1: the flat configuration of the first trainers).
CONFIG_FORMAT = 2


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of the dataclass ``cls`` and of its bases, its
    lines joined (the command line's help)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError):  # a class without source (made at run time)
            continue
        for node, nxt in zip(body, body[1:]):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(nxt, ast.Expr) \
                    and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def need(section: Any, ok: bool, name: str, allowed: str) -> None:
    """Raise ``ValueError`` naming the field, its value and what is allowed unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} = {getattr(section, name)!r} is invalid: {allowed}")


def _int_at_least(section: Any, names: tuple[str, ...], minimum: int) -> None:
    for name in names:
        value = getattr(section, name)
        need(section, isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name,
             f"must be an integer >= {minimum}")


def _finite(section: Any, names: tuple[str, ...], low: float = -math.inf, strict: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
            (value > low if strict else value >= low)
        bound = "" if low == -math.inf else f" {'>' if strict else '>='} {low:g}"
        need(section, ok, name, f"must be a finite number{bound}")


@dataclass
class Section:
    """Base of the configuration sections: validation and conversion to and from JSON."""

    def validate(self, run: RunConfig | None = None) -> Section:
        """Raise ``ValueError`` naming the field and the allowed values for any bad setting
        (``run``: the run it belongs to, for the checks that involve both)."""
        return self

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> Section:
        """The section from a dictionary; unknown names are a ``ValueError`` naming them and ``where``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: a section must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - cls.field_names())
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown} for {cls.__name__}; known fields: {sorted(cls.field_names())}")
        return cls(**data)

    check_int_at_least = _int_at_least
    check_finite = _finite


@dataclass
class RunConfig(Section):
    """What every training run has, whatever its algorithm."""

    env: str = "ipd"
    """Game: ipd, coin_game, negotiation, commons_harvest_open (the last needs the Melting Pot extra)."""
    algo: str = "adalign"
    """Algorithm (python -m trainers algorithms lists them): adalign (REINFORCE form, SPEC 5),
    proximal_adalign (PPO form, SPEC 6), ppo and ppo_shared_reward (Stable-Baselines3), loqa,
    pola, mfos (the other opponent-shaping methods, SPEC 7b)."""
    seed: int = 0
    """Seed of every random number the run draws (games, actions, opponents, initial weights)."""
    iterations: int = 1000
    """Number of updates: each collects one rollout of every game, then trains on it."""
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu, cuda or cuda:N."""
    env_kwargs: dict = field(default_factory=dict)
    """Arguments of the game's constructor besides max_steps, e.g. {"size": 3} (JSON on the command line)."""
    num_games: int = 2048
    """Games played in parallel, every player of each in its own seat."""
    max_steps: int = 16
    """Episode length of the training games (the game argument of that name)."""
    rollout_steps: int = 0
    """Steps of every game per rollout; 0: one whole episode (max_steps). Other lengths carry
    the episodes and the networks' memory on from rollout to rollout (Commons Harvest: 15 of 1000)."""
    time_limit: Literal["terminate", "bootstrap"] = "terminate"
    """The end of an episode at max_steps: terminate (the game is over: nothing is
    bootstrapped past it) or bootstrap (a time limit: the return is completed with the value
    of the last observation)."""
    save_every: int = 50
    """Updates between checkpoints (written atomically); the last update is always saved."""
    log_every: int = 1
    """Updates between rows of metrics.csv."""
    eval_every: int = 0
    """Updates between evaluations against the game's scripted players and against itself
    (eval/ columns of metrics.csv, such as eval/self and eval/exploitation; 0: never).
    The training reward alone hides whether an agent is exploitable. Commons Harvest: the
    agent in all 7 seats (eval/per_capita_return, eval/final_patches_alive, ...): the
    reward alone hides whether it strips the patches."""
    eval_games: int = 64
    """Games per match of an evaluation (of the training length, seeded the same every time);
    Commons Harvest: episodes (1 in its preset)."""
    tensorboard: bool = True
    """Write TensorBoard logs under DIR/tb."""
    keep_best: bool = False
    """Also keep DIR/best.pt, the agent of the update whose training batch had the highest reward per step
    (a player, like checkpoint.pt; the released Negotiation run kept its best-return agent, paper B.3)."""

    @property
    def steps_per_rollout(self) -> int:
        """Steps of every game in one rollout."""
        return self.rollout_steps or self.max_steps

    @property
    def whole_episodes(self) -> bool:
        """Whether every rollout is one whole episode of every game."""
        return self.steps_per_rollout == self.max_steps

    def game_kwargs(self) -> dict[str, Any]:
        """The game's constructor arguments: ``env_kwargs`` and ``max_steps``."""
        return {**self.env_kwargs, "max_steps": self.max_steps}

    def validate(self, run: RunConfig | None = None) -> RunConfig:
        from social_dilemmas import GAME_NAMES, spec
        from social_dilemmas.policies import SCRIPTED

        need(self, self.env in GAME_NAMES, "env", f"allowed values are {list(GAME_NAMES)}")
        need(self, isinstance(self.algo, str) and bool(self.algo), "algo", "must be an algorithm's name")
        need(self, isinstance(self.device, str) and (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")),
             "device", "allowed values are auto, cpu, cuda, cuda:N")
        _int_at_least(self, ("iterations", "num_games", "max_steps", "save_every", "log_every", "eval_games"), 1)
        _int_at_least(self, ("seed", "rollout_steps", "eval_every"), 0)
        need(self, isinstance(self.env_kwargs, dict), "env_kwargs", "must be a JSON object")
        need(self, "max_steps" not in self.env_kwargs, "env_kwargs",
             "give the episode length as max_steps (--max-steps), not inside env_kwargs")
        need(self, self.time_limit in ("terminate", "bootstrap"), "time_limit", "allowed values are terminate, bootstrap")
        need(self, self.eval_every == 0 or self.env in (*SCRIPTED, "commons_harvest_open"), "eval_every",
             f"must be 0 for {self.env} (evaluations exist for {', '.join(SCRIPTED)}, commons_harvest_open)")
        need(self, isinstance(self.tensorboard, bool), "tensorboard", "must be true or false")
        try:  # the game's own checks of its arguments
            spec(self.env, **self.game_kwargs())
        except (TypeError, ValueError) as e:
            raise ValueError(f"env_kwargs = {self.env_kwargs!r} is invalid for {self.env}: {e}") from None
        return self


@dataclass
class Config:
    """A run's whole configuration: the run section and its algorithm's section."""

    run: RunConfig
    algorithm: Section

    def validate(self) -> Config:
        self.run.validate()
        self.algorithm.validate(self.run)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "run": self.run.to_dict(), "algorithm": self.algorithm.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @staticmethod
    def from_dict(data: dict[str, Any], section: type[Section], where: str = "config") -> Config:
        """The configuration saved by :meth:`to_dict`, with ``section`` the algorithm's section class."""
        if data.get("format") != CONFIG_FORMAT:
            raise ValueError(f"{where}: a configuration of format {data.get('format', 1)!r}, not {CONFIG_FORMAT}")
        return Config(RunConfig.from_dict(data["run"], where), section.from_dict(data["algorithm"], where))
