"""Melting Pot, imported quietly on first use, and the substrate built from a seed.

:func:`import_meltingpot` imports Melting Pot with file descriptor 2 sent to ``/dev/null``
(TensorFlow's start-up chatter); :func:`build_substrate` builds Commons Harvest Open with
its Lua seeded from ``env_seed`` and, by default, loaded through the Lua prelude that makes
the build reproducible (why: see the documentation of :mod:`social_dilemmas.commons_harvest`).
The prelude is written once per process to a temporary folder, cached in ``_level_dir``;
the worker processes of :class:`~social_dilemmas.commons_harvest.vector.CommonsHarvestVec`
get the parent's folder through that cache. Every rebuild of the level (each ``reset``)
reads the folder again, so it lives as long as the process: it is removed at interpreter
exit, and a process killed before (SIGTERM, SIGKILL: no exit handlers run) leaves it
behind; the next process that writes a prelude removes those (the folder's name carries
its owner's process id: see :func:`_remove_stale_level_folders`).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path

from social_dilemmas.commons_harvest.observations import SUBSTRATE

__all__ = ["import_meltingpot", "build_substrate"]

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
# The Lua prelude that makes a build reproducible from its env_seed (see the package doc)
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
#: a prelude folder is named ``social_dilemmas_lua_pid<PID>_<random>``, PID its writer's
_LEVEL_FOLDER_PREFIX = "social_dilemmas_lua_pid"
_LEVEL_FOLDER_RE = re.compile(r"^social_dilemmas_lua_pid(\d+)_")


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts; when unsure, True)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: someone else's process
        return True
    return True


def _remove_stale_level_folders(parent: str | os.PathLike) -> list[Path]:
    """Removes the prelude folders in ``parent`` whose process is gone: the ones a process
    killed by SIGTERM or SIGKILL left behind. Only folders named by this module
    (``social_dilemmas_lua_pid<PID>_...``), owned by this user, not symbolic links, whose
    PID no longer runs; a folder of a live process is never touched (a PID reused since
    only delays the removal). Older folders without a PID in their name are left alone:
    nothing tells whether their process still runs. POSIX only (elsewhere: nothing).
    Returns the folders removed."""
    removed: list[Path] = []
    if os.name != "posix":
        return removed
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        match = _LEVEL_FOLDER_RE.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or entry.stat(follow_symlinks=False).st_uid != uid:
                continue
        except OSError:
            continue
        if _process_alive(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        if not os.path.lexists(entry.path):
            removed.append(Path(entry.path))
    return removed


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
    level, written once per process to a private temporary folder (removed at exit; the
    ones of killed processes are removed first: :func:`_remove_stale_level_folders`); None
    when the installed Melting Pot is not the version the prelude was written for."""
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
        _remove_stale_level_folders(tempfile.gettempdir())
        tmp = Path(tempfile.mkdtemp(prefix=f"{_LEVEL_FOLDER_PREFIX}{os.getpid()}_"))
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
