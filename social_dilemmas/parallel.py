"""The PettingZoo ``ParallelEnv`` view over any batched game (one game, numpy out)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pettingzoo import ParallelEnv

from social_dilemmas.core import ACTION_RULE, BatchedGame, agent_names, check_real_numbers

__all__ = [
    "SocialDilemmaParallelEnv",
    "RENDER_MODES",
    "check_render_mode",
    "check_action_dict",
    "new_generator",
    "new_np_generator",
    "to_numpy_action",
]

RENDER_MODES = ("human", "rgb_array")


def check_render_mode(render_mode: str | None) -> str | None:
    if render_mode is not None and render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {list(RENDER_MODES)} or None, got {render_mode!r}")
    return render_mode


def check_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return None if seed is None else int(seed)


def new_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from ``seed`` (fresh OS entropy when None).

    Any non-negative integer works (torch's own seeds stop at 2**63): the seed is mixed
    into 63 bits by numpy's ``SeedSequence``."""
    seed = check_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0] >> 1))
    return gen


def new_np_generator(seed: int | None) -> np.random.Generator:
    """A numpy generator seeded with ``seed`` (fresh OS entropy when None)."""
    return np.random.default_rng(check_seed(seed))


def to_numpy_action(game: BatchedGame, agent: str, action: Any) -> Any:
    """One agent's action as a plain int (discrete) or float32 array, or a ``ValueError``
    naming the agent and the allowed values.

    The rule for the type of an action is the same in every view
    (:data:`social_dilemmas.core.ACTION_RULE`): integers or floats, as python numbers, numpy
    or torch; a discrete action given as a float must have an integral value. ``True`` and
    ``False``, complex numbers, strings, dicts and other objects are refused."""
    space = game.action_space()
    if game.action_kind == "discrete":
        a = action.item() if getattr(action, "ndim", None) == 0 else action
        if isinstance(a, (float, np.floating)) and float(a).is_integer():
            a = int(a)
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) or not 0 <= a < space.n:
            raise ValueError(
                f"invalid action {action!r} for {agent}: allowed values are the integers 0..{space.n - 1} "
                f"({_describe_discrete(game)}); bools are refused"
            )
        return int(a)
    low, high = float(space.low.flat[0]), float(space.high.flat[0])
    allowed = f"{space.shape[0]} finite numbers in [{low}, {high}] (one proposal per item; {ACTION_RULE})"
    try:
        a = check_real_numbers(action, f"the action of {agent}", allowed)
    except ValueError:
        raise ValueError(f"invalid action {action!r} for {agent}: allowed values are {allowed}") from None
    if a.shape != space.shape:
        raise ValueError(
            f"invalid action for {agent}: expected shape {space.shape} (one proposal per item), got shape {a.shape}; "
            f"allowed values are {allowed}"
        )
    if not np.all(np.isfinite(a)):
        raise ValueError(f"invalid action {a.tolist()} for {agent}: contains NaN or inf; allowed values are finite floats in [{low}, {high}]")
    if np.any(a < space.low) or np.any(a > space.high):
        raise ValueError(f"invalid action {a.tolist()} for {agent}: allowed values are floats in [{low}, {high}] per item")
    return a.astype(np.float32)


def check_action_dict(actions: Any, agents: list[str]) -> None:
    """Raise a clear error unless ``actions`` is a dict with exactly one entry per agent of ``agents``."""
    if not isinstance(actions, dict):
        raise TypeError(f"actions must be a dict mapping each agent in {agents} to its action, got {type(actions).__name__}")
    if actions.keys() != set(agents):
        missing = [a for a in agents if a not in actions]
        unknown = [a for a in actions if a not in agents]
        parts = []
        if missing:
            parts.append(f"missing actions for {missing}")
        if unknown:
            parts.append(f"unknown agents {unknown}")
        raise ValueError("; ".join(parts) + f"; expected exactly one action for each of {agents}")


def _describe_discrete(game: BatchedGame) -> str:
    return {"ipd": "0 cooperate, 1 defect", "coin_game": "0 left, 1 right, 2 up, 3 down"}.get(game.name, "")


class SocialDilemmaParallelEnv(ParallelEnv):
    """PettingZoo parallel view of one game of a :class:`~social_dilemmas.core.BatchedGame`.

    Agents are ``player_0``, ``player_1``, ... Each ``step`` takes a dict with one action
    per live agent and returns numpy observations, float rewards, terminations (always
    False: the games never end on their own), truncations (True for every agent after
    ``max_steps`` steps) and infos. When the episode is over ``agents`` is empty and
    another ``step`` without ``reset`` raises an error.

    Bad input is refused with a ``ValueError`` naming the agent and the allowed values: a
    missing or unknown agent, an action outside the space, NaN or inf in a proposal, and
    any action that is not made of integers or floats (a discrete action as a float only
    with an integral value). ``True`` and ``False`` are refused, as in every view
    (:data:`social_dilemmas.core.ACTION_RULE`), and so are complex numbers and strings.

    The rules run on numpy arrays here (one game per step; the batched trainers' view
    runs the same rule functions on torch tensors). Seeding: ``reset(seed=s)`` reseeds
    the env's own ``numpy.random.Generator``, so the same seed
    gives the same trajectory under the same actions; ``reset()`` without a seed
    continues the generator (seeded from OS entropy at construction).

    See the game classes (``IPD``, ``CoinGame``, ``Negotiation``) for the rules, the
    observation and action tables and the rewards.
    """

    metadata = {"name": "social_dilemmas", "render_modes": list(RENDER_MODES), "render_fps": 4, "is_parallelizable": True}

    def __init__(self, game: BatchedGame, render_mode: str | None = None):
        self.game = game
        self.metadata = dict(self.metadata, name=f"{game.name}_v0")
        self.render_mode = check_render_mode(render_mode)
        self.possible_agents = agent_names(game.n_players)
        self.agents: list[str] = []
        self.observation_spaces = {a: game.observation_space() for a in self.possible_agents}
        self.action_spaces = {a: game.action_space() for a in self.possible_agents}
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._generator = new_np_generator(None)
        self._state = None
        self._record: dict[str, Any] | None = None
        self._window = None
        self._act_dtype = game.action_dtype

    def __repr__(self) -> str:
        return f"SocialDilemmaParallelEnv({self.game!r})"

    def observation_space(self, agent: str):
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str):
        return self.action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    @property
    def state_tensor(self):
        """The underlying batched state (``B = 1``); read-only use."""
        return self._state

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._generator = new_np_generator(seed)
        self._state = self.game.reset(1, self._generator)
        self.agents = list(self.possible_agents)
        obs = self.game.observe(self._state)[0]
        if self.render_mode is not None:
            self._record = self.game.new_record(self._state)
            if self.render_mode == "human":
                self.render()
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError(
                "step() called after the episode ended (or before reset()); call reset() to start a new episode"
            )
        check_action_dict(actions, self.agents)
        game = self.game
        acts = [to_numpy_action(game, a, actions[a]) for a in self.possible_agents]
        if game.action_kind == "discrete":
            act_t = np.array([acts], dtype=np.int64)
        else:
            act_t = np.stack(acts)[None]
        prev = self._state
        self._state, rewards = game.step(prev, act_t, self._generator)
        obs = game.observe(self._state)[0]
        r = rewards[0].tolist()
        done = int(self._state.t[0]) >= game.max_steps
        agents = self.agents
        if self._record is not None:
            game.update_record(self._record, prev, act_t, rewards, self._state)
        out = (
            {a: obs[i] for i, a in enumerate(agents)},
            {a: r[i] for i, a in enumerate(agents)},
            {a: False for a in agents},
            {a: done for a in agents},
            {a: {} for a in agents},
        )
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return out

    def render(self):
        if self.render_mode is None:
            import gymnasium

            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        if self._state is None:
            raise RuntimeError("render() called before reset()")
        import renderers

        rgb = renderers.render(self.game.frame(self._state, self._record))
        if self.render_mode == "rgb_array":
            return rgb
        if self._window is None:
            from renderers.window import Window

            self._window = Window(f"{self.game.title}", self.metadata["render_fps"])
        self._window.show(rgb)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
