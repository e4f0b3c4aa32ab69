"""The Gymnasium view of Commons Harvest Open: :class:`CommonsHarvestSingleAgentEnv`,
``player_0`` learns and one policy plays the six other seats as a batch."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas.commons_harvest.observations import N_PLAYERS, _check_action
from social_dilemmas.commons_harvest.parallel import CommonsHarvestOpen
from social_dilemmas.commons_harvest.players import resolve_commons_harvest_player
from social_dilemmas.parallel import new_generator

__all__ = ["CommonsHarvestSingleAgentEnv"]


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
