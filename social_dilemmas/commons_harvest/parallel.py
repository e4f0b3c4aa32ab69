"""The PettingZoo view of Commons Harvest Open: :class:`CommonsHarvestOpen`, 7 players."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

from social_dilemmas.commons_harvest.observations import (
    ACTION_NAMES,
    N_PLAYERS,
    WORLD_SHAPE,
    CommonsHarvestSpec,
    ObsFormat,
    _check_action,
)
from social_dilemmas.commons_harvest.substrate import build_substrate
from social_dilemmas.core import agent_names, check_positive_int
from social_dilemmas.parallel import check_action_dict, check_render_mode, check_seed

__all__ = ["CommonsHarvestOpen"]


class CommonsHarvestOpen(ParallelEnv):
    """Melting Pot's *Commons Harvest Open* as a PettingZoo ``ParallelEnv``.

    ## Description

    Seven players walk a 24 x 18 orchard and eat apples (+1 each). An apple regrows on an
    empty cell with a probability that grows with the number of apples within radius 2
    (0 apples nearby: never; 1: 0.0025; 2: 0.005; 3 or more: 0.025 per step), so a patch
    harvested to its last apple is gone for good: the dilemma is to harvest sustainably.
    Players may zap each other with a beam 3 cells long and 3 wide (2 steps of cooldown);
    a zapped player leaves the orchard for 4 steps and comes back at a spawn point. Zapping
    costs and earns nothing. Nothing separates the players' shares of the orchard ("open";
    Melting Pot 2 substrate ``commons_harvest__open``). The game runs in DeepMind's
    dmlab2d and reaches Python through Shimmy's ``MeltingPotCompatibilityV0``.

    ## Agents

    ``player_0`` ... ``player_6``, all present for the whole episode.

    ## Observation space

    Each player's own egocentric view (``RGB``, 11 x 11 cells of 8 x 8 pixels: 9 cells
    ahead, 1 behind, 5 to each side; the player faces up): ``Box(0, 255, (88, 88, 3), uint8)`` by default. The
    arguments ``resize``, ``grayscale`` and ``channels_first`` change it:

    | arguments | shape |
    |---|---|
    | default | ``(88, 88, 3)`` |
    | ``resize=N`` | ``(N, N, 3)`` (area interpolation) |
    | ``grayscale=True`` | ``(88, 88, 1)`` |
    | ``channels_first=True`` | ``(3, 88, 88)`` / ``(1, N, N)`` |

    ## Action space

    ``Discrete(8)``:

    | action | meaning |
    |---|---|
    | 0 | no-op |
    | 1 | forward |
    | 2 | backward |
    | 3 | step left |
    | 4 | step right |
    | 5 | turn left |
    | 6 | turn right |
    | 7 | fire the zapper |

    ## Rewards

    +1 per apple eaten, as a Python ``float`` per player and step.

    ## Episode end

    Truncation after ``max_steps`` steps (1000): every agent's ``truncations`` flag is
    True and ``agents`` empties. ``terminations`` stays False, except if ``max_steps`` is
    above 1000 and Melting Pot's own stochastic ending (at step 1099, 1199, ... with
    probability 0.15 each time) stops the game first. Each ``reset`` builds a
    fresh dmlab2d level, as Melting Pot does: about 1 s, more than the 1000 steps of an
    episode take (about 0.4 s).

    ## Seeding

    ``reset(seed=s)`` rebuilds the substrate with a Lua seed drawn from a generator seeded
    with ``s``: the same seed and the same actions give the same observations and rewards
    (see the documentation of :mod:`social_dilemmas.commons_harvest` for the Lua prelude
    this needs). ``reset()`` without a seed continues: the next episode's Lua seed follows
    from the last one. The first ``reset()`` of an env that was never seeded draws from OS
    entropy.

    ## Rendering

    ``render_mode="rgb_array"``: :meth:`render` returns the world view, uint8
    ``(144, 192, 3)``. ``render_mode="human"``: a pygame window showing the world with
    every player's running return (:class:`renderers.frames.CommonsHarvestFrame`);
    :meth:`frame` gives that frame for videos.

    ## Arguments

    * ``render_mode``: None, ``"rgb_array"`` or ``"human"``.
    * ``max_steps``: episode length, default 1000.
    * ``resize``, ``grayscale``, ``channels_first``: observation preprocessing (above).
    * ``deterministic``: load the substrate through the Lua ordering prelude (default
      True); False runs Melting Pot's stock Lua, whose trajectories differ from build to
      build whatever the seed.

    ## Version history

    * v0: Melting Pot 2.4.1 (dm-meltingpot) through Shimmy 2.0.1; seeded rebuilds.
    """

    metadata = {"name": "commons_harvest_open_v0", "render_modes": ["human", "rgb_array"], "render_fps": 8,
                "is_parallelizable": True}

    def __init__(self, render_mode: str | None = None, max_steps: int = 1000, resize: int | None = None,
                 grayscale: bool = False, channels_first: bool = False, deterministic: bool = True):
        self.render_mode = check_render_mode(render_mode)
        self.max_steps = check_positive_int("max_steps", max_steps)
        self.obs_format = ObsFormat(resize, grayscale, channels_first)
        if not isinstance(deterministic, (bool, np.bool_)):
            raise ValueError(f"deterministic must be True or False, got {deterministic!r}")
        self.deterministic = bool(deterministic)
        self.spec_info = CommonsHarvestSpec(self.max_steps, self.obs_format)
        self.possible_agents = agent_names(N_PLAYERS)
        self.agents: list[str] = []
        self.observation_spaces = {a: self.obs_format.space() for a in self.possible_agents}
        self.action_spaces = {a: gymnasium.spaces.Discrete(len(ACTION_NAMES)) for a in self.possible_agents}
        self.state_space = gymnasium.spaces.Box(0, 255, WORLD_SHAPE, np.uint8)
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._rng = np.random.default_rng()
        self._env = None  # Shimmy's MeltingPotCompatibilityV0
        self._env_seed: int | None = None
        self._t = 0
        self._scores = np.zeros(N_PLAYERS)
        self._window = None

    def __repr__(self) -> str:
        return (f"CommonsHarvestOpen(max_steps={self.max_steps}, obs_shape={self.obs_format.shape}, "
                f"render_mode={self.render_mode!r})")

    # -- spaces -------------------------------------------------------------------------
    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.observation_spaces[self._check_agent(agent)]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self.action_spaces[self._check_agent(agent)]

    def _check_agent(self, agent: str) -> str:
        if agent not in self._index:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    # -- episodes -----------------------------------------------------------------------
    def _build(self, env_seed: int) -> None:
        from shimmy import MeltingPotCompatibilityV0

        self._close_substrate()
        substrate = build_substrate(env_seed, self.max_steps, self.deterministic)
        self._env = MeltingPotCompatibilityV0(env=substrate, max_cycles=self.max_steps)
        self._env_seed = env_seed

    def _close_substrate(self) -> None:
        if self._env is not None:
            env, self._env = self._env, None
            with contextlib.suppress(Exception):
                env.close()

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs = self._reset_list(seed)
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}, {a: {} for a in self.possible_agents}

    def _reset_list(self, seed: int | None = None) -> list[np.ndarray]:
        """Starts an episode; the observations as a list in player order (fresh arrays)."""
        seed = check_seed(seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        if seed is not None or self._env is None:
            self._build(int(self._rng.integers(1, 2**31 - 1)))
        obs, _ = self._env.reset()
        self.agents = list(self.possible_agents)
        self._t = 0
        self._scores = np.zeros(N_PLAYERS)
        if self.render_mode == "human":
            self.render()
        return self.obs_format.apply_list([obs[a]["RGB"] for a in self.possible_agents])

    def step(self, actions: dict[str, Any]):
        self._check_running()
        check_action_dict(actions, self.agents)
        agents = self.possible_agents
        obs, rewards, terminated, truncated = self._step_list([_check_action(a, actions[a]) for a in agents])
        return (
            dict(zip(agents, obs)),
            dict(zip(agents, rewards)),
            dict.fromkeys(agents, terminated),
            dict.fromkeys(agents, truncated),
            {a: {} for a in agents},
        )

    def _check_running(self) -> None:
        if not self.agents:
            raise RuntimeError("step() called after the episode ended (or before reset()); "
                               "call reset() to start a new episode")

    def _step_list(self, actions: Sequence[int]) -> tuple[list[np.ndarray], list[float], bool, bool]:
        """One step from already checked actions (ints, player order): ``(obs, rewards,
        terminated, truncated)`` with ``obs`` a list of 7 uint8 arrays and ``rewards`` a
        list of 7 floats. The arrays are dmlab2d's, fresh at every step, handed out without
        a copy."""
        agents = self.possible_agents
        obs, rewards, terms, _, _ = self._env.step(dict(zip(agents, actions)))
        self._t += 1
        r = [float(rewards[a]) for a in agents]
        self._scores += r
        truncated = self._t >= self.max_steps
        terminated = bool(terms[agents[0]]) and not truncated
        if truncated or terminated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return self.obs_format.apply_list([obs[a]["RGB"] for a in agents]), r, terminated, truncated

    # -- state and rendering ------------------------------------------------------------
    def state(self) -> np.ndarray:
        """The world view, uint8 ``(144, 192, 3)``."""
        if self._env is None:
            raise RuntimeError("state() called before reset()")
        return np.array(self._env.state()[0]["WORLD.RGB"], dtype=np.uint8)

    def frame(self):
        """The :class:`renderers.frames.CommonsHarvestFrame` of the current moment."""
        from renderers.frames import CommonsHarvestFrame

        return CommonsHarvestFrame(world=self.state(), scores=self._scores.copy(), step=self._t, max_steps=self.max_steps)

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        if self._env is None:
            raise RuntimeError("render() called before reset()")
        if self.render_mode == "rgb_array":
            return self.state()
        import renderers

        rgb = renderers.render(self.frame())
        if self._window is None:
            from renderers.window import Window

            self._window = Window("Commons Harvest Open", self.metadata["render_fps"])
        self._window.show(rgb)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
        self._close_substrate()
        self.agents = []
