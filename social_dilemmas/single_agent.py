"""The Gymnasium view: one learner (``player_0``) against fixed opponent policies."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas.core import BatchedGame
from social_dilemmas.parallel import check_render_mode, new_generator
from social_dilemmas.policies import resolve_player

__all__ = ["SingleAgentEnv", "SingleAgentVectorEnv"]

class SingleAgentEnv(gymnasium.Env):
    """Gymnasium view of a two-or-more-player game: the learner is ``player_0``; one
    opponent policy plays every other seat.

    Observations, actions and rewards are those of ``player_0`` (see the game's
    docstring). ``terminated`` is always False; ``truncated`` becomes True after
    ``max_steps`` steps. ``info`` holds the opponents' rewards (``"opponent_rewards"``).

    Arguments:
        game: the rules.
        opponent: scripted player name (default ``"random"``), a ``Policy``, or a callable
            ``fn(observation) -> action``, or a checkpoint path (see
            :func:`social_dilemmas.policies.resolve_player`).
        render_mode: None, ``"rgb_array"`` or ``"human"``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(self, game: BatchedGame, opponent: Any = "random", render_mode: str | None = None):
        from social_dilemmas.parallel import SocialDilemmaParallelEnv

        self.game = game
        self.render_mode = check_render_mode(render_mode)
        self.opponent = resolve_player(opponent, game)
        self.observation_space = game.observation_space()
        self.action_space = game.action_space()
        # the parallel view holds the game, the seeding, the bad-input checks and rendering
        self._env = SocialDilemmaParallelEnv(game, render_mode=render_mode)
        self._opp_obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, _ = self._env.reset(seed=seed)
        self._opponent_seats = self._env.possible_agents[1:]
        # the opponent's randomness continues from the env's own generator, so a seeded
        # reset followed by unseeded ones is reproducible too
        self.opponent.reset(len(self._opponent_seats), "cpu", new_generator(int(self.np_random.integers(2**63))))
        self._opp_obs = torch.from_numpy(np.stack([obs[a] for a in self._opponent_seats]))
        return obs["player_0"], {}

    def step(self, action):
        if self._opp_obs is None:
            raise RuntimeError("step() called before reset()")
        if not self._env.agents:
            raise RuntimeError("step() called after the episode ended; call reset() to start a new episode")
        with torch.inference_mode():
            opp = self.opponent.act(self._opp_obs)
        actions = {"player_0": action}
        actions.update({a: opp[i].numpy() if opp.dim() > 1 else int(opp[i]) for i, a in enumerate(self._opponent_seats)})
        obs, rewards, terms, truncs, _ = self._env.step(actions)
        self._opp_obs = torch.from_numpy(np.stack([obs[a] for a in self._opponent_seats]))
        info = {"opponent_rewards": [rewards[a] for a in self._opponent_seats]}
        return obs["player_0"], rewards["player_0"], terms["player_0"], truncs["player_0"], info

    def render(self):
        return self._env.render()

    def close(self):
        self._env.close()


class SingleAgentVectorEnv(gymnasium.vector.VectorEnv):
    """``gymnasium.make_vec`` view: ``num_envs`` single-agent games on the batched rules.

    The learner is ``player_0`` of every game; the opponent policy plays the other seats
    of all games as one batch. Numpy in, numpy out. Autoreset is *same-step* (see
    ``metadata["autoreset_mode"]``): on the step a game is truncated the returned
    observation already starts its next episode, and the last observation is in
    ``info["final_obs"]`` (with the mask ``info["_final_obs"]``).
    """

    metadata = {"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, game: BatchedGame, num_envs: int = 1, opponent: Any = "random", device: str = "cpu", **kwargs):
        from social_dilemmas.vector import VectorGame

        if kwargs.pop("render_mode", None) is not None:
            raise ValueError("render_mode is not supported by the vector view; render a SingleAgentEnv instead")
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        self.game = game
        self.num_envs = num_envs
        self._vec = VectorGame(game, num_envs, device=device)
        self.opponent = resolve_player(opponent, game)
        self.single_observation_space = game.observation_space()
        self.single_action_space = game.action_space()
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self._obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random, _ = gymnasium.utils.seeding.np_random(seed)
        obs, _ = self._vec.reset(seed=seed)
        n_opp = self._vec.n_players - 1
        opp_seed = int(self.np_random.integers(2**63))
        self.opponent.reset(self.num_envs * n_opp, self._vec.device, new_generator(opp_seed, self._vec.device))
        self._obs = obs
        return obs[:, 0].cpu().numpy(), {}

    def step(self, actions):
        if self._obs is None:
            raise RuntimeError("step() called before reset()")
        game, device = self.game, self._vec.device
        raw = torch.as_tensor(np.asarray(actions), device=device)
        if raw.shape != (self.num_envs, *game.action_shape):
            raise ValueError(f"actions must have shape {(self.num_envs, *game.action_shape)}, got {tuple(raw.shape)}")
        game.validate_actions(raw.unsqueeze(1))  # before any cast, so 0.5 is refused, not rounded
        mine = raw.to(game.action_dtype)
        with torch.inference_mode():
            others = self._obs[:, 1:].flatten(0, 1)
            opp = self.opponent.act(others).reshape(self.num_envs, -1, *game.action_shape)
            joint = torch.cat((mine.unsqueeze(1), opp.to(game.action_dtype)), dim=1)
            game.validate_actions(joint)
            obs, rewards, term, trunc, info = self._vec.step(joint)
        if bool(trunc.any()):
            self.opponent.reset_envs(trunc.repeat_interleave(self._vec.n_players - 1))
            info = {"final_obs": info["final_obs"][:, 0].cpu().numpy(), "_final_obs": trunc.cpu().numpy()}
        self._obs = obs
        return obs[:, 0].cpu().numpy(), rewards[:, 0].cpu().numpy(), term.cpu().numpy(), trunc.cpu().numpy(), info
