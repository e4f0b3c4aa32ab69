"""The Gymnasium view: one learner (``player_0``) against fixed opponent policies."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas.core import ACTION_RULE, BatchedGame, check_action_tensor
from social_dilemmas.parallel import check_render_mode, check_seed, new_generator
from social_dilemmas.policies import resolve_player

__all__ = ["SingleAgentEnv", "SingleAgentVectorEnv"]

class SingleAgentEnv(gymnasium.Env):
    """Gymnasium view of a two-or-more-player game: the learner is ``player_0``; one
    opponent policy plays every other seat.

    Observations, actions and rewards are those of ``player_0`` (see the game's
    docstring). Actions are checked as in the PettingZoo view (an error names ``player_0``
    and the allowed values): integers or floats, a discrete action as a float only with an
    integral value; bools, complex numbers and strings are refused in every view.
    ``terminated`` is always False; ``truncated`` becomes True after
    ``max_steps`` steps. ``info`` holds the opponents' rewards (``"opponent_rewards"``).

    Arguments:
        game: the rules.
        opponent: scripted player name (default ``"random"``), a ``Policy`` instance (not the
            class), or a callable ``fn(observation) -> action``, or the path of a saved player
            (``.pt``, ``.zip``...: see :func:`social_dilemmas.policies.resolve_player`).
        render_mode: None, ``"rgb_array"`` or ``"human"``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(self, game: BatchedGame, opponent: Any = "random", render_mode: str | None = None):
        from social_dilemmas.parallel import SocialDilemmaParallelEnv

        self.game = game
        self.render_mode = check_render_mode(render_mode)
        self.opponent = resolve_player(opponent, game, argument="opponent")
        self.observation_space = game.observation_space()
        self.action_space = game.action_space()
        # the parallel view holds the game, the seeding, the bad-input checks and rendering
        self._env = SocialDilemmaParallelEnv(game, render_mode=render_mode)
        self._opp_obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        check_seed(seed)
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

    ``step(actions)`` takes ``player_0``'s actions of every game, ``[num_envs, *action_shape]``
    (a numpy array, a list or a torch tensor), checked as in the other views: integers or
    floats, a discrete action as a float only with an integral value; bools, complex
    numbers, strings and objects are refused with an error naming ``player_0``, the game
    and the allowed values. ``device`` must be available here (``"cpu"`` always).
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
        # this view checks the learner's and the opponent's actions itself (below)
        self._vec = VectorGame(game, num_envs, device=device, validate=False)
        self.num_envs = self._vec.num_envs
        self.opponent = resolve_player(opponent, game, argument="opponent")
        self.single_observation_space = game.observation_space()
        self.single_action_space = game.action_space()
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self._obs: torch.Tensor | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        check_seed(seed)
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
        game = self.game
        raw = self._learner_actions(actions)
        game.validate_actions(raw.unsqueeze(1))  # before any cast, so 0.5 is refused, not rounded
        with torch.inference_mode():
            others = self._obs[:, 1:].flatten(0, 1)
            opp = self.opponent.act(others)
            n_opp = self._vec.n_players - 1
            check_action_tensor(opp.reshape(self.num_envs, n_opp, *game.action_shape) if isinstance(opp, torch.Tensor)
                                and opp.numel() == raw.numel() * n_opp else opp,
                                (self.num_envs, n_opp, *game.action_shape), "the opponent's actions")
            # the values of every seat checked before any cast (so an opponent's 0.5 is refused, not rounded)
            joint = torch.cat((raw.unsqueeze(1), opp.reshape(self.num_envs, n_opp, *game.action_shape)), dim=1)
            game.validate_actions(joint)
            obs, rewards, term, trunc, info = self._vec.step(joint.to(game.action_dtype))
        if bool(trunc.any()):
            self.opponent.reset_envs(trunc.repeat_interleave(self._vec.n_players - 1))
            info = {"final_obs": info["final_obs"][:, 0].cpu().numpy(), "_final_obs": trunc.cpu().numpy()}
        self._obs = obs
        return obs[:, 0].cpu().numpy(), rewards[:, 0].cpu().numpy(), term.cpu().numpy(), trunc.cpu().numpy(), info

    def _learner_actions(self, actions: Any) -> torch.Tensor:
        """``player_0``'s actions as a tensor on the device, or an error naming ``player_0``
        and the allowed values (the type, dtype and shape; the values are checked after)."""
        game = self.game
        shape = (self.num_envs, *game.action_shape)
        if not isinstance(actions, torch.Tensor):
            try:
                arr = np.asarray(actions)
            except (ValueError, TypeError):  # ragged nests
                arr = None
            if arr is None or arr.dtype.kind not in "iuf":
                what = "a ragged nest" if arr is None else f"dtype {arr.dtype}"
                raise ValueError(
                    f"the actions of player_0 must be {ACTION_RULE} of shape {list(shape)}, got {what}: {actions!r}"
                )
            if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:  # torch cannot compare these: int64, or
                # float64 for values int64 cannot hold (the value check then names them)
                big = arr.size > 0 and arr.max() > np.iinfo(np.int64).max
                arr = arr.astype(np.float64 if big else np.int64)
            actions = torch.from_numpy(np.ascontiguousarray(arr))
        try:
            check_action_tensor(actions.unsqueeze(1) if actions.dim() else actions, (shape[0], 1, *shape[1:]),
                                "the actions of player_0")
        except TypeError as e:
            raise ValueError(str(e)) from None
        except ValueError:
            raise ValueError(f"the actions of player_0 must have shape [num_envs, *action_shape] = {list(shape)}, "
                             f"got {list(actions.shape)}") from None
        return actions.to(self._vec.device)
