"""Melting Pot's scenarios of Commons Harvest Open (``commons_harvest__open_0`` / ``_1``):
:func:`evaluate_scenario` plays 5 focal copies of a policy against the background bots."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from social_dilemmas.commons_harvest.observations import CommonsHarvestSpec, ObsFormat, _check_action
from social_dilemmas.commons_harvest.players import resolve_commons_harvest_player
from social_dilemmas.commons_harvest.substrate import _INSTALL_SCRIPT, _fd2_to_devnull, import_meltingpot
from social_dilemmas.core import check_positive_int
from social_dilemmas.parallel import new_generator

__all__ = [
    "MeltingPotAssetsMissing",
    "ScenarioResult",
    "SCENARIO_SCORE_RANGES",
    "ASSETS_NAME",
    "scenario_assets_available",
    "evaluate_scenario",
]

#: (min, max) of the focal per-capita return used to normalise a scenario's score:
#: the random agent and the best baseline of the Melting Pot 2 results
SCENARIO_SCORE_RANGES = {
    "commons_harvest__open_0": (1.8136, 11.5538),
    "commons_harvest__open_1": (1.8670, 12.9043),
}
ASSETS_NAME = "meltingpot-assets-2.3.0.tar.gz"


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
