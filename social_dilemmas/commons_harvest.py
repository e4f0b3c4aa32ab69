"""Melting Pot's Commons Harvest Open, through Shimmy: seeding, preprocessing, batching, scenarios.

Everything Melting Pot is imported on first use (never when ``social_dilemmas`` is
imported), quietly: TensorFlow, which ``import meltingpot`` pulls in, prints start-up
lines on the C level that no environment variable silences, so the first import runs
with file descriptor 2 sent to ``/dev/null`` (Python errors still propagate).

* :class:`CommonsHarvestOpen` -- the PettingZoo ``ParallelEnv`` (7 players).
* :class:`CommonsHarvestSingleAgentEnv` -- the Gymnasium view: ``player_0`` learns, one
  policy plays the six other seats as a batch.
* :class:`CommonsHarvestVec` -- ``num_envs`` games in worker processes, torch tensors
  ``[num_envs, 7, ...]`` out, for the trainers.
* :func:`evaluate_scenario` -- Melting Pot's ``commons_harvest__open_0`` / ``_1``
  scenarios: 5 focal copies of a policy against the background bots.

**Why the substrate is loaded through a Lua prelude.** Melting Pot's Lua walks some
string-keyed tables with ``pairs``. LuaJIT seeds its string hash from the OS at the
creation of every Lua state, so that walk order changes from one build of the
substrate to the next -- even with the same ``env_seed``. Two of those walks decide the
game: which avatar takes which of the shuffled spawn points (and which initial
orientation), and the order in which the per-frame updaters run (apple regrowth draws
from the shared random stream in that order). Shimmy's ``reset(seed)`` is ignored, and
even a fixed ``env_seed`` does not reproduce a trajectory. With ``deterministic=True``
(the default) the level is loaded through a small prelude that makes three walks sorted
(the avatar spawn assignment, the updater order, and the order of a game object's
components in event callbacks); the rules are untouched, the order chosen is one of those
the stock code can produce. The prelude is written for dm-meltingpot 2.4.1 and checked
against the hashes of the Lua files it overrides; on any other version it is not applied
and a warning says that seeding is not reproducible.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Sequence
from multiprocessing.connection import wait as _wait_for
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from pettingzoo import ParallelEnv

from social_dilemmas.core import agent_names, check_positive_int
from social_dilemmas.parallel import check_action_dict, check_render_mode, check_seed, new_generator
from social_dilemmas.policies import Policy, resolve_player, saved_player_suffixes

__all__ = [
    "CommonsHarvestOpen",
    "CommonsHarvestSingleAgentEnv",
    "CommonsHarvestVec",
    "CommonsHarvestSpec",
    "ObsFormat",
    "ScenarioResult",
    "evaluate_scenario",
    "scenario_assets_available",
    "import_meltingpot",
    "ACTION_NAMES",
    "SCENARIO_SCORE_RANGES",
    "MeltingPotAssetsMissing",
    "AppleCount",
    "count_apples",
]

SUBSTRATE = "commons_harvest__open"
N_PLAYERS = 7
#: Melting Pot's action set of the substrate, in order
ACTION_NAMES = ("noop", "forward", "backward", "step_left", "step_right", "turn_left", "turn_right", "fire_zap")
RGB_SIZE = 88
WORLD_SHAPE = (144, 192, 3)
#: (min, max) of the focal per-capita return used to normalise a scenario's score:
#: the random agent and the best baseline of the Melting Pot 2 results
SCENARIO_SCORE_RANGES = {
    "commons_harvest__open_0": (1.8136, 11.5538),
    "commons_harvest__open_1": (1.8670, 12.9043),
}
ASSETS_NAME = "meltingpot-assets-2.3.0.tar.gz"
_INSTALL_SCRIPT = "scripts/install_meltingpot.py"


# ---------------------------------------------------------------------------------------
# Importing Melting Pot quietly
# ---------------------------------------------------------------------------------------
_import_lock = threading.Lock()


@contextlib.contextmanager
def _fd2_to_devnull():
    """Sends the process's file descriptor 2 to /dev/null for the duration (C-level output too)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except OSError:  # no fd 2 at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_meltingpot():
    """The ``meltingpot`` module, imported on first call with TensorFlow's start-up chatter discarded.

    Raises ``ImportError`` saying how to install it when Melting Pot is absent.
    """
    module = sys.modules.get("meltingpot")
    if module is not None and hasattr(module, "substrate"):
        return module
    with _import_lock:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            # Shimmy imports PettingZoo's deprecated module paths: a DeprecationWarning per import
            with _fd2_to_devnull(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import meltingpot
                import shimmy  # noqa: F401
        except ImportError as e:
            raise ImportError(
                f"Commons Harvest needs Melting Pot (shimmy[meltingpot]==2.0.1, dm-meltingpot==2.4.1), which could "
                f"not be imported ({e}). Install it with `make install` or `python {_INSTALL_SCRIPT}`."
            ) from e
    return meltingpot


# ---------------------------------------------------------------------------------------
# The Lua prelude that makes a build reproducible from its env_seed (see the module doc)
# ---------------------------------------------------------------------------------------
#: the Lua files whose functions the prelude replaces, and their sha256 in dm-meltingpot 2.4.1
_PATCHED_LUA = {
    "lua/modules/base_simulation.lua": "d853709c2472c6f9a96fc1ca85bc13d433413463d15a430952004a97b4699235",
    "lua/modules/updater_registry.lua": "b42b5efae9be2c92a3818631ef9633619dce9a384ed014e28232f2651aadc111",
    "lua/modules/game_object.lua": "72ce1c6d8d90b4ed6bf8b93db880b98be40bb73c16970bc33cd41897b1e842b0",
}

_LUA_PRELUDE = r"""-- Written by social_dilemmas.commons_harvest: Melting Pot's level, with a deterministic
-- order for the `pairs` walks over string-keyed tables that decide the game (LuaJIT
-- seeds its string hash per Lua state). The functions below are Melting Pot 2.4.1's,
-- with sorted keys in place of `pairs`.
local meltingpot = 'meltingpot.lua.modules.'
local random = require 'system.random'
local base_simulation = require(meltingpot .. 'base_simulation')
local game_object = require(meltingpot .. 'game_object')
local updater_registry = require(meltingpot .. 'updater_registry')

local function sortedKeys(t)
  local keys = {}
  for k in next, t do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

local BaseSimulation = base_simulation.BaseSimulation
function BaseSimulation:_avatarStart(grid)
  local avatarObjects = self._variables.avatarObjects
  local avatarKeys = sortedKeys(avatarObjects)
  local avatarsPerSpawnGroup = {}
  local cachedAvatarSpawnGroups = {}
  for _, key in ipairs(avatarKeys) do
    local spawnGroup = avatarObjects[key]:getComponent('Avatar'):getSpawnGroup()
    cachedAvatarSpawnGroups[key] = spawnGroup
    avatarsPerSpawnGroup[spawnGroup] = (avatarsPerSpawnGroup[spawnGroup] or 0) + 1
  end
  local spawnPointsByGroup = {}
  local spawnCountersByGroup = {}
  for _, spawnGroup in ipairs(sortedKeys(avatarsPerSpawnGroup)) do
    local numAvatarsThisGroup = avatarsPerSpawnGroup[spawnGroup]
    spawnPointsByGroup[spawnGroup] = grid:groupShuffledWithCount(
      random, spawnGroup, numAvatarsThisGroup)
    assert(#spawnPointsByGroup[spawnGroup] == numAvatarsThisGroup,
           'Insufficient spawn points!')
    spawnCountersByGroup[spawnGroup] = 0
  end
  for _, key in ipairs(avatarKeys) do
    local avatarObject = avatarObjects[key]
    local spawnGroup = cachedAvatarSpawnGroups[key]
    spawnCountersByGroup[spawnGroup] = spawnCountersByGroup[spawnGroup] + 1
    local point = spawnPointsByGroup[spawnGroup][spawnCountersByGroup[spawnGroup]]
    avatarObject:start(grid, point)
    local avatarPiece = avatarObject:getPiece()
    local avatarIndex = avatarObject:getComponent('Avatar'):getIndex()
    self._variables.avatarPieceToIndex[avatarPiece] = avatarIndex
    self._variables.avatarIndexToPiece[avatarIndex] = avatarPiece
    self._variables.pieceToGameObject[avatarPiece] = avatarObject
  end
  for _, gameObject in pairs(self._variables.objectsByFunctionName.postStart) do
    gameObject:postStart(grid)
  end
end

local UpdaterRegistry = updater_registry.UpdaterRegistry
function UpdaterRegistry:addUpdateOrder(updateOrder)
  for _, priority in ipairs(self:getSortedPriorities()) do
    local updaterNames = {}
    for _, updateSpec in pairs(self._updateTable[priority]) do
      updaterNames[updateSpec._updaterName] = true
    end
    for _, name in ipairs(sortedKeys(updaterNames)) do
      table.insert(updateOrder, name)
    end
  end
end

local GameObject = game_object.GameObject
function GameObject:_doOnAllComponents(func)
  local names = rawget(self, '_sortedComponentNames')
  if names == nil then
    names = sortedKeys(self._components)
    rawset(self, '_sortedComponentNames', names)
  end
  local returns = {}
  for _, name in ipairs(names) do
    for _, component in ipairs(self._components[name]) do
      local retValue = func(component)
      if retValue then
        table.insert(returns, retValue)
      end
    end
  end
  return returns
end

return dofile([==[%(init)s]==])
"""

_LUA_COMPONENTS = "return dofile([==[%(components)s]==])\n"

_level_lock = threading.Lock()
_level_dir: dict[str, str | None] = {}


def _import_meltingpot_substrates_only() -> None:
    """For worker processes, which only build substrates: loads the ``meltingpot`` package
    without running its ``__init__`` (which imports the bots, hence TensorFlow: 4 s of the
    5 s a full import takes). Never used in the caller's process, whose ``import
    meltingpot`` must stay the full one."""
    if "meltingpot" in sys.modules:
        return
    import importlib.util

    spec = importlib.util.find_spec("meltingpot")
    if spec is None:
        import_meltingpot()  # raises the ImportError that says how to install it
        return
    sys.modules["meltingpot"] = importlib.util.module_from_spec(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import meltingpot.substrate  # noqa: F401
            import shimmy  # noqa: F401
    except BaseException:
        for name in [m for m in sys.modules if m == "meltingpot" or m.startswith("meltingpot.")]:
            del sys.modules[name]
        raise


def _meltingpot_root() -> Path:
    """The folder holding the ``meltingpot`` package (Melting Pot's builder resolves levels
    relative to it), found without importing Melting Pot."""
    import importlib.util

    spec = importlib.util.find_spec("meltingpot")
    if spec is None or not spec.submodule_search_locations:
        import_meltingpot()  # raises the ImportError that says how to install it
    return Path(os.path.realpath(list(spec.submodule_search_locations)[0])).parent


def _deterministic_level_directory() -> str | None:
    """The lab2d ``levelDirectory`` (relative to Melting Pot's root) of the prelude-wrapped
    level, written once per process to a private temporary folder; None when the installed
    Melting Pot is not the version the prelude was written for."""
    with _level_lock:
        if "dir" in _level_dir:
            return _level_dir["dir"]
        root = _meltingpot_root()
        package = root / "meltingpot"
        for rel, expected in _PATCHED_LUA.items():
            try:
                digest = hashlib.sha256((package / rel).read_bytes()).hexdigest()
            except OSError:
                digest = None
            if digest != expected:
                warnings.warn(
                    f"social_dilemmas: {package / rel} is not the file of dm-meltingpot 2.4.1 the determinism "
                    "prelude was written for; loading the stock level, so reset(seed=...) is not reproducible",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _level_dir["dir"] = None
                return None
        level = package / "lua" / "levels" / "commons_harvest"
        tmp = Path(tempfile.mkdtemp(prefix="social_dilemmas_lua_"))
        atexit.register(shutil.rmtree, tmp, True)
        (tmp / "commons_harvest").mkdir()
        (tmp / "commons_harvest" / "init.lua").write_text(_LUA_PRELUDE % {"init": os.path.realpath(level / "init.lua")})
        (tmp / "commons_harvest" / "components.lua").write_text(
            _LUA_COMPONENTS % {"components": os.path.realpath(level / "components.lua")}
        )
        # Melting Pot's builder joins levelDirectory and levelName and opens them relative to its root
        _level_dir["dir"] = os.path.relpath(os.path.realpath(tmp), root)
        return _level_dir["dir"]


def build_substrate(env_seed: int, max_steps: int = 1000, deterministic: bool = True):
    """A Melting Pot ``Substrate`` of Commons Harvest Open whose Lua is seeded from ``env_seed``.

    The same steps as ``meltingpot.substrate.build`` with two differences: the builder
    gets ``env_seed`` (Melting Pot draws one from Python's global ``random`` otherwise)
    and, with ``deterministic``, the level is loaded through the ordering prelude. Each
    later ``reset`` of the substrate rebuilds it with ``env_seed + 1``, ``+ 2``, ...
    """
    mp = import_meltingpot()
    from meltingpot.utils.substrates import builder
    from meltingpot.utils.substrates import substrate as substrate_lib
    from meltingpot.utils.substrates.wrappers import (
        collective_reward_wrapper,
        discrete_action_wrapper,
        multiplayer_wrapper,
        observables_wrapper,
    )

    config = mp.substrate.get_config(SUBSTRATE)
    settings = dict(config.lab2d_settings_builder(roles=config.default_player_roles, config=config))
    settings["maxEpisodeLengthFrames"] = max(int(settings.get("maxEpisodeLengthFrames", 0)), int(max_steps))
    if deterministic:
        level_dir = _deterministic_level_directory()
        if level_dir is not None:
            settings["levelDirectory"] = level_dir
            settings["levelName"] = "commons_harvest"
    env = builder.builder(settings, env_seed=int(env_seed))
    try:
        env = observables_wrapper.ObservablesWrapper(env)
        env = multiplayer_wrapper.Wrapper(
            env,
            individual_observation_names=config.individual_observation_names,
            global_observation_names=config.global_observation_names,
        )
        env = discrete_action_wrapper.Wrapper(env, action_table=config.action_set)
        env = collective_reward_wrapper.CollectiveRewardWrapper(env)
        return substrate_lib.Substrate(env)
    except Exception:
        with contextlib.suppress(Exception):
            env.close()
        raise


# ---------------------------------------------------------------------------------------
# Observation preprocessing
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ObsFormat:
    """How each player's 88x88 RGB view is handed out.

    Arguments:
        resize: side ``N`` of the square image (area interpolation); None keeps 88.
        grayscale: one luminance channel (ITU-R 601 weights) instead of RGB.
        channels_first: ``[C, H, W]`` instead of ``[H, W, C]``.
    """

    resize: int | None = None
    grayscale: bool = False
    channels_first: bool = False

    def __post_init__(self):
        if self.resize is not None:
            check_positive_int("resize", self.resize)
            object.__setattr__(self, "resize", int(self.resize))
        for name in ("grayscale", "channels_first"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    @property
    def size(self) -> int:
        return RGB_SIZE if self.resize is None else self.resize

    @property
    def shape(self) -> tuple[int, int, int]:
        c = 1 if self.grayscale else 3
        return (c, self.size, self.size) if self.channels_first else (self.size, self.size, c)

    @property
    def is_identity(self) -> bool:
        return self.size == RGB_SIZE and not self.grayscale and not self.channels_first

    def space(self) -> gymnasium.spaces.Box:
        return gymnasium.spaces.Box(0, 255, self.shape, np.uint8)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``[B, 88, 88, 3]`` uint8 -> ``[B, *shape]`` uint8 (the input itself when nothing is asked)."""
        if self.is_identity:
            return rgb
        return np.stack(self.apply_list(list(rgb)))

    def apply_list(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The same on a list of ``[88, 88, 3]`` images; returns the list itself when nothing is asked."""
        if self.is_identity:
            return images
        import cv2

        out = images
        if self.size != RGB_SIZE:
            interp = cv2.INTER_AREA if self.size < RGB_SIZE else cv2.INTER_NEAREST
            out = [cv2.resize(img, (self.size, self.size), interpolation=interp) for img in out]
        if self.grayscale:
            out = [cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[..., None] for img in out]
        if self.channels_first:
            out = [np.ascontiguousarray(img.transpose(2, 0, 1)) for img in out]
        return out


@dataclasses.dataclass(frozen=True)
class CommonsHarvestSpec:
    """What a policy needs to know of Commons Harvest Open (the role a ``BatchedGame``
    plays for the other games in :func:`social_dilemmas.policies.resolve_player`)."""

    max_steps: int = 1000
    obs_format: ObsFormat = ObsFormat()
    name: str = "commons_harvest_open"
    title: str = "Commons Harvest Open"
    n_players: int = N_PLAYERS
    action_kind: str = "discrete"

    def observation_space(self) -> gymnasium.spaces.Box:
        return self.obs_format.space()

    def action_space(self) -> gymnasium.spaces.Discrete:
        return gymnasium.spaces.Discrete(len(ACTION_NAMES))

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.obs_format.shape

    @property
    def action_shape(self) -> tuple[int, ...]:
        return ()

    @property
    def action_dtype(self) -> torch.dtype:
        return torch.int64


# ---------------------------------------------------------------------------------------
# Scripted players
# ---------------------------------------------------------------------------------------
class _RandomPlayer(Policy):
    name = "random"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.randint(len(ACTION_NAMES), (obs.shape[0],), generator=getattr(self, "generator", None)).to(obs.device)


class _NoopPlayer(Policy):
    name = "noop"

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], dtype=torch.int64, device=obs.device)


#: the scripted players of Commons Harvest: uniform random actions, and standing still
SCRIPTED_PLAYERS = {"random": _RandomPlayer, "noop": _NoopPlayer}


def resolve_commons_harvest_player(player: Any, spec: CommonsHarvestSpec) -> Policy:
    """A player of Commons Harvest as a :class:`~social_dilemmas.policies.Policy`: ``"random"``,
    ``"noop"``, a saved player's path, a ``Policy``, or a callable ``fn(observation) -> action``.

    A saved player is loaded by the entry point of its suffix in
    :data:`~social_dilemmas.policies.PLAYER_ENTRY_POINTS` group, imported only then: a training
    checkpoint ``DIR/checkpoint.pt`` of ``python -m trainers train --env commons_harvest_open``
    (``trainers.checkpoint.load_policy``; a checkpoint of another game is a ``ValueError``
    naming both), an SB3 model ``.zip``. The player must have been trained on observations
    of ``spec``'s size.
    """
    if isinstance(player, str) and player in SCRIPTED_PLAYERS:
        return SCRIPTED_PLAYERS[player]()
    if isinstance(player, (str, Path)) and Path(str(player)).suffix not in saved_player_suffixes():
        raise ValueError(
            f"unknown player {str(player)!r} for commons_harvest_open; allowed values: {sorted(SCRIPTED_PLAYERS)}, "
            f"a saved player's path ({', '.join(saved_player_suffixes())}), a Policy, or a callable obs -> action"
        )
    return resolve_player(player, spec)


def _check_action(agent: str, action: Any) -> int:
    if type(action) is int and 0 <= action < 8:  # the common case, fast
        return action
    a = action
    if isinstance(a, torch.Tensor):
        a = a.item() if a.numel() == 1 and a.dim() == 0 else a
    elif getattr(a, "ndim", None) == 0:
        a = a.item()
    if isinstance(a, (float, np.floating)) and float(a).is_integer():
        a = int(a)
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)) or not 0 <= a < len(ACTION_NAMES):
        allowed = ", ".join(f"{i} {n}" for i, n in enumerate(ACTION_NAMES))
        raise ValueError(f"invalid action {action!r} for {agent}: allowed values are the integers 0..7 ({allowed})")
    return int(a)


# ---------------------------------------------------------------------------------------
# The PettingZoo view
# ---------------------------------------------------------------------------------------
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
    (see the module documentation for the Lua prelude this needs). ``reset()`` without a
    seed continues: the next episode's Lua seed follows from the last one. The first
    ``reset()`` of an env that was never seeded draws from OS entropy.

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


# ---------------------------------------------------------------------------------------
# The Gymnasium view
# ---------------------------------------------------------------------------------------
class CommonsHarvestSingleAgentEnv(gymnasium.Env):
    """Gymnasium view of Commons Harvest Open: the learner is ``player_0``; one opponent
    policy plays the six other seats, called once per step on the six observations as a
    batch ``[6, *obs_shape]`` (uint8 tensor).

    Observation, action, reward and episode end are ``player_0``'s (see
    :class:`CommonsHarvestOpen`). ``info["opponent_rewards"]`` holds the other six rewards.

    Arguments:
        opponent: ``"random"`` (default), ``"noop"``, a saved player's path (``.pt``,
            ``.zip``), a :class:`~social_dilemmas.policies.Policy`, or a callable
            ``fn(observation) -> action`` called once per seat.
        render_mode: None, ``"rgb_array"`` or ``"human"``.
        **kwargs: the arguments of :class:`CommonsHarvestOpen` (``max_steps``, ``resize``,
            ``grayscale``, ``channels_first``, ``deterministic``).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 8}

    def __init__(self, opponent: Any = "random", render_mode: str | None = None, **kwargs: Any):
        self._env = CommonsHarvestOpen(render_mode=render_mode, **kwargs)
        self.render_mode = self._env.render_mode
        self.spec_info = self._env.spec_info
        self.opponent = resolve_commons_harvest_player(opponent, self.spec_info)
        self.observation_space = self._env.observation_space("player_0")
        self.action_space = self._env.action_space("player_0")
        self._opp_obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs = self._env._reset_list(seed)
        self.opponent.reset(N_PLAYERS - 1, "cpu", new_generator(None if seed is None else seed + 1))
        self._opp_obs = torch.from_numpy(np.stack(obs[1:]))
        return obs[0], {}

    def step(self, action):
        if self._opp_obs is None:
            raise RuntimeError("step() called before reset()")
        self._env._check_running()
        mine = _check_action("player_0", action)
        with torch.inference_mode():
            opp = self.opponent.act(self._opp_obs)
        opp = opp.detach().cpu().reshape(-1).tolist() if isinstance(opp, torch.Tensor) else list(np.asarray(opp).reshape(-1))
        if len(opp) != N_PLAYERS - 1:
            raise ValueError(f"the opponent policy returned {len(opp)} actions for {N_PLAYERS - 1} seats")
        acts = [mine] + [_check_action(f"player_{i + 1} (opponent)", a) for i, a in enumerate(opp)]
        obs, rewards, terminated, truncated = self._env._step_list(acts)
        self._opp_obs = torch.from_numpy(np.stack(obs[1:]))
        info = {"opponent_rewards": rewards[1:]}
        return obs[0], rewards[0], terminated, truncated, info

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()


# ---------------------------------------------------------------------------------------
# The batched view: worker processes
# ---------------------------------------------------------------------------------------
def _vec_worker(index: int, conn, shared, env_kwargs: dict, level_dir: str | None) -> None:
    """One worker: a CommonsHarvestOpen stepped on command; observations go to shared memory.

    Melting Pot is loaded without its bots (no TensorFlow: see
    :func:`_import_meltingpot_substrates_only`). Leaves with ``os._exit`` once its level
    is closed: an interpreter with torch and Melting Pot loaded takes seconds to finalise,
    and the worker has nothing else to clean up (the Lua prelude's folder belongs to the
    parent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    env = None
    code = 0
    try:
        if level_dir is not None:
            with _level_lock:
                _level_dir["dir"] = level_dir
        _import_meltingpot_substrates_only()
        env = CommonsHarvestOpen(**env_kwargs)
        n = len(env.possible_agents)
        shape = (n, *env.obs_format.shape)
        size = int(np.prod(shape))
        buf = np.frombuffer(shared, dtype=np.uint8, count=size, offset=index * size).reshape(shape)
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if cmd == "reset":
                np.stack(env._reset_list(arg), out=buf)
                conn.send(("ok", None))
            elif cmd == "step":
                start = time.perf_counter()
                obs, rewards, terminated, truncated = env._step_list(arg)
                final = None
                if terminated or truncated:
                    final = np.stack(obs)
                    obs = env._reset_list(None)
                np.stack(obs, out=buf)
                busy = time.perf_counter() - start
                conn.send(("ok", (np.array(rewards, dtype=np.float32), terminated, truncated, final, busy)))
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()
        with contextlib.suppress(Exception):
            conn.close()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _shutdown_workers(processes: list, conns: list, timeout: float = 2.0) -> None:
    """Asks every worker to stop, then terminates and kills the ones that do not (a worker
    still starting up, or stuck); closes the pipes."""
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.send(("close", None))
    deadline = time.monotonic() + timeout
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        with contextlib.suppress(Exception):
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()
    processes.clear()
    conns.clear()


class CommonsHarvestVec:
    """``num_envs`` games of Commons Harvest Open stepped in parallel worker processes.

    ``reset(seed)`` returns ``(obs, info)`` and ``step(actions)`` returns ``(obs, rewards,
    terminated, truncated, info)``:

    * ``actions``: ints ``[num_envs, 7]`` (a tensor, an array or nested lists);
    * ``obs``: uint8 tensor ``[num_envs, 7, *obs_shape]`` (``[num_envs, 7, 88, 88, 3]`` by
      default) on ``device``;
    * ``rewards``: float32 ``[num_envs, 7]``; ``terminated`` / ``truncated``: bool ``[num_envs]``.

    Autoreset (Gymnasium's *same-step* mode, as :class:`social_dilemmas.vector.VectorGame`):
    on the step a game ends it is reset at once; the returned ``obs`` of that game is
    already the first of its next episode, and the last observation of the finished one is
    ``info["final_obs"]`` (same shape as ``obs``, filled where ``info["_final_obs"]``).
    All games start together and last ``max_steps``, so they end on the same step.

    Seeding: ``reset(seed=s)`` seeds game ``i`` with the ``i``-th child of
    ``numpy.random.SeedSequence(s)``; the same seed gives the same trajectories.

    Processes: one per game, started with the ``"spawn"`` context (or ``"forkserver"``;
    never ``fork``, unsafe once torch or TensorFlow run threads), so the calling script
    needs the usual ``if __name__ == "__main__":`` guard. Observations travel through
    shared memory, the rest through pipes. A worker that dies or raises makes the call
    raise ``RuntimeError`` naming the worker (with its traceback when it raised), after
    every worker was stopped; a worker silent for ``timeout`` seconds raises
    ``TimeoutError``. :meth:`close` stops every worker (also run when the object is
    garbage collected and at interpreter exit); it leaves no process behind.

    Arguments:
        num_envs: number of games (and worker processes), at least 1.
        device: torch device of the returned tensors.
        context: ``"spawn"`` (default) or ``"forkserver"``.
        timeout: seconds to wait for a worker's answer to ``step`` (``reset``, which may
            import Melting Pot and build the level, gets ``max(timeout, 300)``).
        **kwargs: the arguments of :class:`CommonsHarvestOpen` (``max_steps``, ``resize``,
            ``grayscale``, ``channels_first``, ``deterministic``; no rendering).
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu", context: str = "spawn",
                 timeout: float = 60.0, **kwargs: Any):
        self.num_envs = check_positive_int("num_envs", num_envs)
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context must be 'spawn' or 'forkserver', got {context!r}")
        if kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by the batched view; render a CommonsHarvestOpen instead")
        kwargs.pop("render_mode", None)
        allowed = {"max_steps", "resize", "grayscale", "channels_first", "deterministic"}
        if set(kwargs) - allowed:
            raise TypeError(f"unexpected arguments {sorted(set(kwargs) - allowed)}; allowed: {sorted(allowed)}")
        probe = CommonsHarvestOpen(**kwargs)  # validates the arguments; builds nothing
        self.device = torch.device(device)
        self.timeout = float(timeout)
        self.n_players = N_PLAYERS
        self.max_steps = probe.max_steps
        self.obs_format = probe.obs_format
        self.spec_info = probe.spec_info
        self.observation_space = probe.observation_space("player_0")
        self.action_space = probe.action_space("player_0")
        self._obs_shape = (self.num_envs, N_PLAYERS, *self.obs_format.shape)
        ctx = multiprocessing.get_context(context)
        self._shared = ctx.RawArray("B", int(np.prod(self._obs_shape)))
        self._obs = np.frombuffer(self._shared, dtype=np.uint8).reshape(self._obs_shape)
        self._processes: list = []
        self._conns: list = []
        self._finalizer = weakref.finalize(self, _shutdown_workers, self._processes, self._conns)
        self._started = False
        #: seconds each worker spent stepping (and autoresetting) its game, for diagnostics
        self.worker_busy_seconds = np.zeros(self.num_envs)
        # the Lua prelude is written once, here, and shared by the workers
        level_dir = _deterministic_level_directory() if probe.deterministic else None
        try:
            for i in range(self.num_envs):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_vec_worker, args=(i, child, self._shared, kwargs, level_dir),
                                name=f"commons-harvest-worker-{i}", daemon=True)
                p.start()
                child.close()
                self._processes.append(p)
                self._conns.append(parent)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"CommonsHarvestVec(num_envs={self.num_envs}, obs_shape={self.obs_format.shape}, device={str(self.device)!r})"

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [p.pid for p in self._processes]

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this CommonsHarvestVec is closed")

    def _send(self, i: int, message: tuple) -> None:
        try:
            self._conns[i].send(message)
        except (BrokenPipeError, EOFError, OSError):
            self._fail(i, None)

    def _gather(self, timeout: float) -> list:
        """Every worker's answer to the command just sent, in worker order.

        A worker that dies closes its end of the pipe, which makes the pipe readable (recv
        then raises EOFError), so waiting on the pipes alone also catches deaths."""
        results: list = [None] * self.num_envs
        pending = dict(zip(self._conns, range(self.num_envs)))
        deadline = time.monotonic() + timeout
        while pending:
            ready = _wait_for(list(pending), max(0.0, deadline - time.monotonic()))
            if not ready:
                i = min(pending.values())
                pid = self._processes[i].pid
                self.close()
                raise TimeoutError(f"Commons Harvest worker {i} (pid {pid}) did not answer within {timeout:.0f} s; "
                                   "all workers were stopped")
            for conn in ready:
                i = pending.pop(conn)
                message = None
                with contextlib.suppress(EOFError, OSError):
                    message = conn.recv()
                if message is None:
                    self._fail(i, None)
                status, payload = message
                if status != "ok":
                    self._fail(i, payload)
                results[i] = payload
        return results

    def _fail(self, i: int, error: str | None):
        proc = self._processes[i]
        pid = proc.pid
        with contextlib.suppress(Exception):
            proc.join(1.0)
        code = proc.exitcode
        self.close()
        if error is not None:
            raise RuntimeError(f"Commons Harvest worker {i} (pid {pid}) raised an error; all workers were stopped. "
                               f"Its traceback:\n{error}")
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        raise RuntimeError(f"Commons Harvest worker {i} (pid {pid}) died ({how}); all workers were stopped")

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Starts every game; returns ``(obs, info)``."""
        self._check_open()
        seed = check_seed(seed)
        seeds = ([int(s.generate_state(1)[0] >> 1) for s in np.random.SeedSequence(seed).spawn(self.num_envs)]
                 if seed is not None else [None] * self.num_envs)
        for i in range(self.num_envs):
            self._send(i, ("reset", seeds[i]))
        self._gather(max(self.timeout, 300.0))
        self._started = True
        return self._out(self._obs), {}

    def _out(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.copy()).to(self.device)

    def step(self, actions: Any):
        """One step of every player of every game (see the class docstring)."""
        self._check_open()
        if not self._started:
            raise RuntimeError("step() called before reset()")
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        acts = np.asarray(actions)
        if acts.shape != (self.num_envs, N_PLAYERS):
            raise ValueError(f"actions must have shape [num_envs, 7] = [{self.num_envs}, 7], got {list(acts.shape)}")
        if not np.issubdtype(acts.dtype, np.integer):
            if not (np.issubdtype(acts.dtype, np.floating) and np.all(np.isfinite(acts)) and np.all(acts == np.round(acts))):
                raise ValueError(f"actions must be integers 0..7, got dtype {acts.dtype}")
        bad = (acts < 0) | (acts >= len(ACTION_NAMES))
        if bad.any():
            g, p = (int(x) for x in np.argwhere(bad)[0])
            _check_action(f"player_{p} of game {g}", acts[g, p].item())
        acts = acts.astype(np.int64).tolist()
        for i in range(self.num_envs):
            self._send(i, ("step", acts[i]))
        results = self._gather(self.timeout)
        rewards, terminated, truncated, finals, busy = zip(*results)
        self.worker_busy_seconds += busy
        rewards = torch.from_numpy(np.stack(rewards)).to(self.device)
        terminated = torch.from_numpy(np.array(terminated, dtype=bool)).to(self.device)
        truncated = torch.from_numpy(np.array(truncated, dtype=bool)).to(self.device)
        info: dict[str, Any] = {}
        done = np.array([f is not None for f in finals])
        if done.any():
            final = np.zeros(self._obs_shape, dtype=np.uint8)
            for i, f in enumerate(finals):
                if f is not None:
                    final[i] = f
            info["final_obs"] = torch.from_numpy(final).to(self.device)
            info["_final_obs"] = torch.from_numpy(done).to(self.device)
        return self._out(self._obs), rewards, terminated, truncated, info

    def close(self) -> None:
        """Stops every worker process (idempotent)."""
        self._finalizer()

    def __enter__(self) -> CommonsHarvestVec:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------------------------
# Scenario evaluation
# ---------------------------------------------------------------------------------------
class MeltingPotAssetsMissing(RuntimeError):
    """Melting Pot was installed without its asset archive, which holds the scenario bots."""


@dataclasses.dataclass
class ScenarioResult:
    """The outcome of :func:`evaluate_scenario`.

    Attributes:
        scenario: the scenario's name.
        episodes: number of episodes played.
        focal_per_capita_return: mean over episodes of the focal players' mean return.
        normalised_score: ``(R - min) / (max - min)`` with the scenario's (min, max).
        per_episode: the focal per-capita return of each episode.
        score_range: the (min, max) used.
    """

    scenario: str
    episodes: int
    focal_per_capita_return: float
    normalised_score: float
    per_episode: list[float]
    score_range: tuple[float, float]


def _missing_bots(scenario: str) -> list[str]:
    mp = import_meltingpot()
    config = mp.scenario.get_config(scenario)
    missing = []
    for bots in config.bots_by_role.values():
        for bot in sorted(bots):
            path = Path(mp.bot.get_config(bot).model_path)
            if not (path / "saved_model.pb").is_file():
                missing.append(str(path))
    return missing


def scenario_assets_available(scenario: str = "commons_harvest__open_0") -> bool:
    """Whether the background bots of ``scenario`` are installed (False without Melting Pot)."""
    try:
        return not _missing_bots(scenario)
    except ImportError:
        return False


def evaluate_scenario(policy: Any, scenario: str = "commons_harvest__open_0", episodes: int = 1,
                      seed: int | None = None, resize: int | None = None, grayscale: bool = False,
                      channels_first: bool = False, device: torch.device | str = "cpu") -> ScenarioResult:
    """Melting Pot scenario evaluation: 5 focal copies of ``policy`` against the scenario's bots.

    ``policy`` is anything :func:`resolve_commons_harvest_player` accepts; it plays the
    five focal seats as one batch ``[5, *obs_shape]``, the observations preprocessed as
    the arguments say (as for :class:`CommonsHarvestOpen`). The score is the focal
    per-capita return (mean over the focal players of their episode return, averaged over
    episodes) and its normalisation ``(R - min) / (max - min)`` with the (min, max) of
    :data:`SCENARIO_SCORE_RANGES`. ``seed`` seeds the policy's generator only: Melting
    Pot's scenarios draw their bots and Lua seeds themselves.

    Raises :class:`MeltingPotAssetsMissing`, saying how to get them, when Melting Pot was
    installed without its asset archive.
    """
    if scenario not in SCENARIO_SCORE_RANGES:
        raise ValueError(f"unknown scenario {scenario!r}; allowed values: {sorted(SCENARIO_SCORE_RANGES)}")
    episodes = check_positive_int("episodes", episodes)
    missing = _missing_bots(scenario)
    if missing:
        raise MeltingPotAssetsMissing(
            f"the background bots of {scenario} are not installed ({len(missing)} saved models missing, e.g. "
            f"{missing[0]}): this copy of dm-meltingpot was built without its asset archive. Get them with "
            f"`python {_INSTALL_SCRIPT} --full` on a machine with network access, or put {ASSETS_NAME} "
            f"(https://storage.googleapis.com/dm-meltingpot/{ASSETS_NAME}) in {tempfile.gettempdir()} and run "
            f"that command."
        )
    mp = import_meltingpot()
    obs_format = ObsFormat(resize, grayscale, channels_first)
    player = resolve_commons_harvest_player(policy, CommonsHarvestSpec(1000, obs_format))
    device = torch.device(device)
    n_focal = sum(mp.scenario.get_config(scenario).is_focal)
    lo, hi = SCENARIO_SCORE_RANGES[scenario]
    returns = []
    for episode in range(episodes):
        with _fd2_to_devnull():  # TensorFlow's chatter while loading the bots
            env = mp.scenario.build(scenario)
        try:
            player.reset(n_focal, device, new_generator(None if seed is None else seed + episode, device))
            timestep = env.reset()
            total = np.zeros(n_focal)
            while True:
                rgb = obs_format.apply(np.stack([np.asarray(o["RGB"]) for o in timestep.observation]))
                with torch.inference_mode():
                    acts = player.act(torch.from_numpy(rgb).to(device))
                acts = torch.as_tensor(acts).reshape(-1).tolist()
                timestep = env.step([_check_action(f"focal player {i}", a) for i, a in enumerate(acts)])
                total += np.asarray(timestep.reward, dtype=np.float64)
                if timestep.last():
                    break
        finally:
            env.close()
        returns.append(float(total.mean()))
    mean = float(np.mean(returns))
    return ScenarioResult(scenario, episodes, mean, (mean - lo) / (hi - lo), returns, (lo, hi))


# ---------------------------------------------------------------------------------------
# Counting apples and patches
# ---------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False)
class AppleCount:
    """What :func:`count_apples` reads off the map.

    Attributes:
        apples: apples on the map.
        patches_alive: patches ("bushes") holding at least one apple; a patch with none
            left never regrows.
        apples_per_patch: apples of each patch, in patch order.
        present: bool ``[spawn_points]``, whether each apple spawn point holds an apple
            (the spawn points in map order: row by row, left to right).
        hidden: spawn points covered by a zap beam in this frame, whose state was taken
            from ``previous`` (counted as empty without it).
        spawn_points: apple spawn points of the map (the count at the start of an episode).
        patches: patches of the map.
    """

    apples: int
    patches_alive: int
    apples_per_patch: tuple[int, ...]
    present: np.ndarray
    hidden: int
    spawn_points: int
    patches: int


@dataclasses.dataclass(frozen=True)
class _AppleLayout:
    cells: np.ndarray  # [N, 2] (row, col) of the apple spawn points
    patch: np.ndarray  # [N] patch index of each spawn point
    n_patches: int
    cell: int  # pixels per cell side in the world view
    witness: np.ndarray  # [K, 2] (y, x) inside a cell: the apple is opaque there, no avatar sprite is
    apple_rgb: np.ndarray  # [K, 3] the apple's colour at those pixels
    background: np.ndarray  # [M, 3] colours of the grass and floor sprites (no apple)


_apple_layout_cache: list[_AppleLayout] = []


def _sprite_opacity(shape: str, palette: dict) -> tuple[np.ndarray, np.ndarray]:
    rows = shape.strip("\n").split("\n")
    alpha = np.array([[palette[ch][3] > 0 for ch in r] for r in rows], dtype=bool)
    rgb = np.array([[palette[ch][:3] for ch in r] for r in rows], dtype=np.uint8)
    return alpha, rgb


def _appearance(prefab: dict) -> dict:
    return next(c["kwargs"] for c in prefab["components"] if c["component"] == "Appearance")


def _apple_layout() -> _AppleLayout:
    """The apple spawn points and patches of the map, and how to tell an apple in the world
    view, read from the installed Melting Pot's configuration of the substrate."""
    if _apple_layout_cache:
        return _apple_layout_cache[0]
    import importlib

    if "meltingpot" not in sys.modules:
        import_meltingpot()
    cfg = importlib.import_module(f"meltingpot.configs.substrates.{SUBSTRATE}")
    grid = cfg.ASCII_MAP.strip("\n").split("\n")

    def holds_apple(char: str) -> bool:
        prefab = cfg.CHAR_PREFAB_MAP.get(char)
        names = prefab.get("list", []) if isinstance(prefab, dict) else [prefab]
        return "apple" in names

    cells = np.array([(r, c) for r, line in enumerate(grid) for c, char in enumerate(line) if holds_apple(char)])
    # a patch: spawn points linked when one is inside the other's regrowth radius. An apple
    # regrows only from live apples within that radius, so a patch with none left is dead for good.
    radius = float(getattr(cfg, "APPLE_RESPAWN_RADIUS", 2.0))
    near = ((cells[:, None, :] - cells[None, :, :]) ** 2).sum(-1) <= radius ** 2
    patch = np.full(len(cells), -1)
    n_patches = 0
    for start in range(len(cells)):
        if patch[start] >= 0:
            continue
        patch[start], stack = n_patches, [start]
        while stack:
            i = stack.pop()
            for j in np.flatnonzero(near[i] & (patch < 0)):
                patch[j] = n_patches
                stack.append(j)
        n_patches += 1
    # an apple under an avatar still shows where the apple's sprite is opaque and every
    # orientation of the avatar's sprite is transparent
    apple = _appearance(cfg.create_apple_prefab(radius, list(getattr(cfg, "REGROWTH_PROBABILITIES", [0.0]))))
    apple_alpha, apple_rgb = _sprite_opacity(apple["spriteShapes"][0], apple["palettes"][0])
    avatar = _appearance(cfg.create_avatar_object(0, cfg.TARGET_SPRITE_SELF, "spawnPoints"))
    shapes = avatar["spriteShapes"][0]
    covered = np.zeros_like(apple_alpha)
    for shape in shapes if isinstance(shapes, (list, tuple)) else [shapes]:
        covered |= _sprite_opacity(shape, avatar["palettes"][0])[0]
    witness = np.argwhere(apple_alpha & ~covered)
    if len(witness) == 0:
        raise RuntimeError("count_apples: every pixel of the apple's sprite is hidden under an avatar in this "
                           "version of Melting Pot; apples cannot be read off the world view")
    background = []
    for prefab in (cfg.GRASS, cfg.FLOOR):
        for palette in _appearance(prefab)["palettes"]:
            background += [rgba[:3] for rgba in palette.values() if rgba[3] > 0]
    layout = _AppleLayout(cells, patch, n_patches, apple_alpha.shape[0], witness,
                          apple_rgb[witness[:, 0], witness[:, 1]], np.unique(np.array(background, np.uint8), axis=0))
    _apple_layout_cache.append(layout)
    return layout


def count_apples(source: Any, previous: AppleCount | None = None) -> AppleCount:
    """The apples on the map of Commons Harvest Open and the patches that still hold one.

    ``source`` is a :class:`CommonsHarvestOpen` after ``reset`` (its world view,
    :meth:`~CommonsHarvestOpen.state`, is read) or that world view itself, uint8
    ``(144, 192, 3)``. The map's apple spawn points and their patches come from Melting
    Pot's configuration of the substrate (its ASCII map: 64 spawn points in 6 patches,
    a patch being the spawn points linked through the regrowth radius of 2 cells, so a
    patch with no apple left never regrows and counts as dead).

    Each spawn point's cell of the world view (8 x 8 pixels) is decoded from the sprites'
    colours, at the pixels where the apple's sprite is opaque and no orientation of the
    avatar's sprite is: the apple's colour there is an apple; grass or floor is none, also
    under a player standing on the cell. A cell covered by a zap beam (drawn opaque for
    the step of the zap) cannot be seen: it keeps its state in ``previous`` (the count of
    the step before) when given, and counts as empty otherwise; :attr:`AppleCount.hidden`
    says how many there were.

    The count is the state after the step. An apple that regrows under a player, or on
    the cell a player steps onto, is eaten in the step it regrows: the player is rewarded
    but the apple was never on the map between two steps, so a step's reward can exceed
    the apples that disappeared from the count (about 2% of the apples eaten under random
    play).
    """
    if isinstance(source, CommonsHarvestOpen):
        world = source.state()
    else:
        world = np.asarray(source)
    if world.dtype != np.uint8 or world.shape != WORLD_SHAPE:
        raise ValueError(f"count_apples needs a CommonsHarvestOpen or its world view, uint8 {WORLD_SHAPE}; got "
                         f"{type(source).__name__} of shape {getattr(world, 'shape', None)} and dtype "
                         f"{getattr(world, 'dtype', None)}")
    layout = _apple_layout()
    k = layout.cell
    ys = layout.cells[:, 0, None] * k + layout.witness[None, :, 0]
    xs = layout.cells[:, 1, None] * k + layout.witness[None, :, 1]
    pixels = world[ys, xs]  # [N, K, 3]
    present = (pixels == layout.apple_rgb[None]).all(-1).all(-1)
    empty = (pixels[:, :, None, :] == layout.background[None, None]).all(-1).any(-1).all(-1)
    hidden = ~present & ~empty
    if previous is not None and hidden.any():
        if previous.present.shape != present.shape:
            raise ValueError("previous must be an AppleCount of the same map")
        present = np.where(hidden, previous.present, present)
    per_patch = np.bincount(layout.patch[present], minlength=layout.n_patches)
    return AppleCount(apples=int(present.sum()), patches_alive=int((per_patch > 0).sum()),
                      apples_per_patch=tuple(int(n) for n in per_patch), present=present, hidden=int(hidden.sum()),
                      spawn_points=len(layout.cells), patches=layout.n_patches)
