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
* :func:`count_apples` -- the apples and the patches still alive, read off the world view.
* :func:`self_play` -- one player in all 7 seats: per-capita return, apples and patches
  alive, step by step.

Every name is importable from here; the code lives in one module per job:

* ``substrate`` -- importing Melting Pot quietly (:func:`import_meltingpot`), the Lua
  prelude and :func:`build_substrate`;
* ``observations`` -- the constants (:data:`ACTION_NAMES`, ...), :class:`ObsFormat` and
  :class:`CommonsHarvestSpec`;
* ``players`` -- the scripted players and :func:`resolve_commons_harvest_player`;
* ``parallel`` -- :class:`CommonsHarvestOpen`;
* ``single_agent`` -- :class:`CommonsHarvestSingleAgentEnv`;
* ``vector`` -- :class:`CommonsHarvestVec` and its worker processes;
* ``scenarios`` -- :func:`evaluate_scenario` and :func:`scenario_assets_available`;
* ``apples`` -- :func:`count_apples`;
* ``self_play`` -- :func:`self_play`.

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

# The names of __all__, and (``X as X``) others importable from here as before the split
# into modules. To monkeypatch a name, patch the module that looks it up (for instance
# ``scenarios._missing_bots``, ``substrate._level_dir``): patching it here changes nothing.
from social_dilemmas.commons_harvest.apples import AppleCount, count_apples
from social_dilemmas.commons_harvest.apples import _apple_layout as _apple_layout
from social_dilemmas.commons_harvest.observations import ACTION_NAMES, CommonsHarvestSpec, ObsFormat
from social_dilemmas.commons_harvest.observations import N_PLAYERS as N_PLAYERS
from social_dilemmas.commons_harvest.observations import RGB_SIZE as RGB_SIZE
from social_dilemmas.commons_harvest.observations import SUBSTRATE as SUBSTRATE
from social_dilemmas.commons_harvest.observations import WORLD_SHAPE as WORLD_SHAPE
from social_dilemmas.commons_harvest.parallel import CommonsHarvestOpen
from social_dilemmas.commons_harvest.players import SCRIPTED_PLAYERS as SCRIPTED_PLAYERS
from social_dilemmas.commons_harvest.players import resolve_commons_harvest_player as resolve_commons_harvest_player
from social_dilemmas.commons_harvest.scenarios import ASSETS_NAME as ASSETS_NAME
from social_dilemmas.commons_harvest.scenarios import (
    SCENARIO_SCORE_RANGES,
    MeltingPotAssetsMissing,
    ScenarioResult,
    evaluate_scenario,
    scenario_assets_available,
)
from social_dilemmas.commons_harvest.self_play import SelfPlayResult, self_play
from social_dilemmas.commons_harvest.single_agent import CommonsHarvestSingleAgentEnv
from social_dilemmas.commons_harvest.substrate import build_substrate as build_substrate
from social_dilemmas.commons_harvest.substrate import import_meltingpot
from social_dilemmas.commons_harvest.vector import CommonsHarvestVec

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
    "SelfPlayResult",
    "self_play",
]
