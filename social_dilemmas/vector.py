"""The batched, on-device view used by trainers: all players of ``num_envs`` games at once."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas.core import (
    BatchedGame,
    GameState,
    check_action_tensor,
    check_device,
    check_flag,
    check_obs_dtype,
)
from social_dilemmas.parallel import new_generator

__all__ = ["VectorGame"]


class VectorGame:
    """``num_envs`` copies of a game stepped together in tensors on one device.

    ``step(actions)`` takes a torch tensor ``[num_envs, n_players, *action_shape]`` and
    returns ``(obs, rewards, terminated, truncated, info)`` with ``obs``
    ``[num_envs, n_players, *obs_shape]`` (float32, or ``obs_dtype``), ``rewards`` float32
    ``[num_envs, n_players]`` and the two flags bool ``[num_envs]``. Everything stays on
    ``device``. Every call returns new tensors: a caller may keep them.

    Actions: the type, dtype and shape are always checked (on the host, free): a torch
    tensor of integers or floats; bools, complex numbers and numpy arrays or lists are
    refused with an error naming the allowed values (the same rule for bools as the
    PettingZoo and Gymnasium views: see :data:`social_dilemmas.core.ACTION_RULE`). With
    ``validate=True`` (the default) every value is checked too: an error names the game,
    the player and the allowed values of the first invalid action (the IPD: 0 or 1; the
    Coin Game: 0..3, a float only with an integral value; the Negotiation: finite floats in
    ``[0, max_proposal]``). This reads the actions back from the device once per step.

    The fast path, ``validate=False``, is for trainers whose actions are valid by
    construction (sampled from the action space's distribution): the values are not
    checked and nothing waits for the device. An invalid value then gives undefined
    results (the IPD's -1 is read as a defection in the payoff table, float actions are
    truncated, a proposal outside ``[0, max_proposal]`` gives rewards outside ``[0, 1]``) or
    torch's own indexing error.

    Autoreset (Gymnasium's *same-step* mode): on the step where a game reaches
    ``max_steps`` it is truncated and reset at once. The returned ``obs`` of that game is
    already the first observation of its next episode; the last observation of the
    finished episode is ``info["final_obs"]`` (same shape as ``obs``, filled only where
    ``info["_final_obs"]`` is true). All games start together and have the same length,
    so they all end on the same step. So the step after a truncation is an ordinary first
    step, and a trainer can bootstrap the value of the final observation.

    Seeding: ``reset(seed=s)`` reseeds the view's own ``torch.Generator`` on ``device``;
    the same seed on the same device gives the same trajectories under the same actions.

    Arguments:
        game: the rules (``IPD``, ``CoinGame``, ``Negotiation`` or any ``BatchedGame``).
        num_envs: number of games, at least 1.
        device: torch device of every tensor; one available here (``"cpu"``, ``"cuda"``
            when CUDA is available, ``"mps"`` on Apple silicon), or a ``ValueError`` lists those.
        validate: ``True`` (default) checks every action's values; ``False`` is the
            trainers' fast path (see above). Anything but a bool is refused.
        obs_dtype: ``"float32"`` (default) or, for games whose observations are 0/1 planes
            (the Coin Game, the IPD: ``game.compact_obs_dtypes``), ``"uint8"``: the same values
            in a quarter of the bytes (a torch or numpy dtype is accepted too). A network
            converts them to float itself (the trainers' networks do). ``observation_space``
            then says ``uint8``. Other values: a ``ValueError`` lists the allowed ones.
    """

    def __init__(self, game: BatchedGame, num_envs: int, device: torch.device | str = "cpu", validate: bool = True,
                 obs_dtype: Any = "float32"):
        if not isinstance(game, BatchedGame):
            raise TypeError(f"game must be a BatchedGame (IPD, CoinGame, Negotiation), got {type(game).__name__}")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        num_envs = int(num_envs)
        self.game = game
        self.num_envs = num_envs
        self.device = check_device(device)
        self.validate = check_flag("validate", validate)
        self.n_players = game.n_players
        self.max_steps = game.max_steps
        self.obs_dtype = check_obs_dtype(game, obs_dtype)
        space = game.observation_space()
        if self.obs_dtype != torch.float32:
            np_dtype = torch.empty((), dtype=self.obs_dtype).numpy().dtype
            space = gymnasium.spaces.Box(space.low.astype(np_dtype), space.high.astype(np_dtype), space.shape, np_dtype)
        self.observation_space = space
        self.action_space = game.action_space()
        self.generator = new_generator(None, self.device)
        self.state: GameState | None = None
        self._t = 0

    def __repr__(self) -> str:
        dtype = "" if self.obs_dtype == torch.float32 else f", obs_dtype={str(self.obs_dtype).removeprefix('torch.')!r}"
        return f"VectorGame({self.game!r}, num_envs={self.num_envs}, device={str(self.device)!r}{dtype})"

    @torch.no_grad()
    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start all games; returns ``(obs, info)``."""
        if seed is not None:
            self.generator = new_generator(seed, self.device)
        self.state = self.game.reset(self.num_envs, self.generator, self.device)
        self._t = 0
        return self.game.observe_as(self.state, self.obs_dtype), {}

    @torch.no_grad()
    def step(self, actions: torch.Tensor):
        """One simultaneous move of every player of every game (see the class docstring)."""
        if self.state is None:
            raise RuntimeError("step() called before reset()")
        game = self.game
        check_action_tensor(actions, (self.num_envs, self.n_players, *game.action_shape), "actions")
        if self.validate:
            game.validate_actions(actions)
        # the old state is let go as soon as the new one exists (and the finished episode's
        # at an episode end as soon as it is observed), so its memory is free for the next
        self.state, rewards = game.step(self.state, actions.to(self.device), self.generator)
        # every game starts together and has the same length, so one host-side counter
        # tells when they all end: no synchronisation with the device
        self._t += 1
        done = self._t >= self.max_steps
        truncated = torch.full((self.num_envs,), done, dtype=torch.bool, device=self.device)
        terminated = torch.zeros_like(truncated)
        info: dict[str, Any] = {}
        if done:
            info["final_obs"] = game.observe_as(self.state, self.obs_dtype)
            info["_final_obs"] = truncated
            self.state = None
            self.state = game.reset(self.num_envs, self.generator, self.device)
            self._t = 0
        return game.observe_as(self.state, self.obs_dtype), rewards, terminated, truncated, info

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue these games exactly: the games' state (tensors, on
        the CPU), the step counter and the generator's state. ``None`` fields before ``reset``."""
        state = None
        if self.state is not None:
            state = {f.name: getattr(self.state, f.name).detach().cpu().clone() for f in dataclasses.fields(self.state)}
        return {"game": repr(self.game), "num_envs": self.num_envs, "state": state, "t": self._t,
                "generator": self.generator.get_state()}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (of the same game and number of games; a
        ``ValueError`` names the difference otherwise)."""
        if saved.get("game") != repr(self.game) or saved.get("num_envs") != self.num_envs:
            raise ValueError(f"the saved games are {saved.get('num_envs')} x {saved.get('game')}, "
                             f"these are {self.num_envs} x {self.game!r}")
        if saved["state"] is None:
            self.state = None
        else:
            cls = type(self.game.reset(1, new_generator(0, "cpu"), "cpu"))  # the game's state dataclass
            self.state = cls(**{k: v.to(self.device) for k, v in saved["state"].items()})
        self._t = int(saved["t"])
        self.generator.set_state(saved["generator"])

    def close(self) -> None:
        self.state = None
