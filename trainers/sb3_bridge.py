"""The bridge from the batched games to Stable-Baselines3: ``VecEnv`` views, and what SB3 has no public API for.

* :class:`GameVecEnv`: SB3's ``VecEnv`` over the batched view (``social_dilemmas.make_vec``),
  every player of every game one slot, so one PPO model plays every seat from its own
  point of view (self-play), optionally on the sum of its game's rewards (PPO-SR).
* :class:`SeatVecEnv`: one seat of a :class:`GameVecEnv`, for independent learners (one
  model per seat) stepped in lockstep.
* :func:`collect_lockstep` and :func:`learn_lockstep`: one rollout and update of every
  seat's model in lockstep.

**Why this module touches SB3's private members.** SB3's ``learn()`` collects the rollout
of one model from one env; independent learners need every seat's model to act before
any env steps. SB3 has no public API for that, so :func:`collect_lockstep` repeats the
body of ``OnPolicyAlgorithm.collect_rollouts`` for several models (it reads and writes
``_last_obs`` and ``_last_episode_starts`` and calls ``_update_info_buffer``), and
:func:`learn_lockstep` repeats what ``learn()`` does around it (``_setup_learn``,
``_update_current_progress_remaining``). Those names are used nowhere else in the
project; the algorithm itself (:mod:`trainers.algorithms.ppo`) uses SB3's public API
and this module.

**The episode end: termination, not bootstrapping (default).** The games end for good
after ``max_steps``, so by default the bridge reports the last step as a *termination*:
``dones`` is true, ``infos[i]["terminal_observation"]`` holds the last observation and
``infos[i]["TimeLimit.truncated"]`` is ``False``, so SB3 does not add
``gamma * V(terminal_observation)`` (the AdAlign trainer's target too). ``time_limit="bootstrap"``
reports the end as a time-limit truncation, which SB3 bootstraps from the terminal
observation's value.

Importing this module registers TensorBoard's TensorFlow stub
(:func:`trainers.metrics.use_tensorboard_stub`) before it imports SB3, which imports
TensorBoard (and through it TensorFlow, when installed) as it is imported; the SB3 names
the project uses are imported from here, after it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
import torch

from trainers.metrics import use_tensorboard_stub

use_tensorboard_stub()

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.logger import KVWriter, Logger  # noqa: E402
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm  # noqa: E402
from stable_baselines3.common.preprocessing import is_image_space  # noqa: E402
from stable_baselines3.common.utils import obs_as_tensor  # noqa: E402
from stable_baselines3.common.vec_env import VecEnv  # noqa: E402

import social_dilemmas  # noqa: E402
from social_dilemmas.core import BatchedGame  # noqa: E402
from social_dilemmas.parallel import check_render_mode  # noqa: E402
from social_dilemmas.vector import VectorGame  # noqa: E402

__all__ = ["GameVecEnv", "SeatVecEnv", "TIME_LIMIT_MODES", "collect_lockstep", "learn_lockstep", "last_observations",
           "set_last_observations", "PPO", "KVWriter", "Logger", "is_image_space"]

#: how the bridge reports the end of an episode at ``max_steps`` (see the module docstring)
TIME_LIMIT_MODES = ("terminate", "bootstrap")


class GameVecEnv(VecEnv):
    """Stable-Baselines3 ``VecEnv`` over the batched view: every player of every game is a slot.

    ``num_envs = num_games * n_players``; slot ``g * n_players + i`` is seat ``i`` of game
    ``g``. Observations are numpy float32 ``[num_envs, *obs_shape]`` (each player's own
    view), rewards float32 ``[num_envs]``; ``step_async`` takes SB3's actions
    ``[num_envs, *action_shape]``.

    Episode ends: the batched view resets a finished game on the same step, so the
    returned observation is already the first of the next episode; the slots of that
    game get ``dones = True``, ``infos[i]["terminal_observation"]`` (the last observation
    of the finished episode), ``infos[i]["TimeLimit.truncated"]`` (``False`` with
    ``time_limit="terminate"``: no bootstrap at ``max_steps``; ``True`` with
    ``"bootstrap"``) and ``infos[i]["episode"] = {"r", "l", "t"}`` as SB3's ``Monitor``
    writes it (the return the learner saw), plus ``infos[i]["game_return"]`` (the slot's
    own game reward summed over the episode).

    Arguments:
        env: a game's name (``"ipd"``...), a ``BatchedGame`` or a ``VectorGame``.
        num_games: parallel games (ignored when ``env`` is a ``VectorGame``).
        shared_reward: every slot gets the sum of the rewards of all players of its game.
        time_limit: ``"terminate"`` (default) or ``"bootstrap"``.
        render_mode: None, ``"rgb_array"`` or ``"human"``; :meth:`render` draws game 0.
        env_kwargs: constructor arguments of the game (with a name).

    Seeding: ``seed(s)`` (SB3 calls it with the model's seed) makes the next ``reset()``
    reseed the games' generator with ``s``. The bridge pickles (``cloudpickle`` or
    ``pickle``) with its games' state and generator, e.g. for a subprocess.
    """

    def __init__(self, env: str | BatchedGame | VectorGame, num_games: int = 1, *, shared_reward: bool = False,
                 time_limit: str = "terminate", render_mode: str | None = None, device: str = "cpu",
                 **env_kwargs: Any):
        if isinstance(env, VectorGame) or all(hasattr(env, a) for a in ("reset", "step", "n_players", "num_envs")):
            vec = env  # a batched view (VectorGame-like: same-step autoreset, info["final_obs"])
        elif isinstance(env, BatchedGame):  # the fast path: SB3's actions are valid by construction
            vec = VectorGame(env, num_games, device=device, validate=False)
        else:
            vec = social_dilemmas.make_vec(env, num_games, device=device, validate=False, **env_kwargs)
        if time_limit not in TIME_LIMIT_MODES:
            raise ValueError(f"time_limit = {time_limit!r} is invalid: allowed values are {list(TIME_LIMIT_MODES)}")
        self.vec = vec
        # the rules (a BatchedGame), or what a policy needs to know of a game without them
        # (Commons Harvest's spec)
        self.game = vec.game
        self.num_games, self.n_players = vec.num_envs, vec.n_players
        self.shared_reward = bool(shared_reward)
        self.time_limit = time_limit
        self.render_mode = check_render_mode(render_mode)
        self._actions: np.ndarray | None = None
        self._obs: torch.Tensor | None = None
        self._record: dict[str, Any] | None = None
        self._window = None
        n = self.num_games * self.n_players
        self._ep_return = np.zeros(n, dtype=np.float64)  # what the learner saw
        self._ep_game_return = np.zeros(n, dtype=np.float64)  # the slot's own game reward
        self._ep_len = 0
        self._t0 = time.time()
        self.reset_stats()
        super().__init__(n, vec.observation_space, vec.action_space)

    def __repr__(self) -> str:
        return (f"GameVecEnv({self.game!r}, num_games={self.num_games}, shared_reward={self.shared_reward}, "
                f"time_limit={self.time_limit!r})")

    # -- conversions ---------------------------------------------------------------------
    def _flat_obs(self, obs: torch.Tensor) -> np.ndarray:
        return obs.reshape(self.num_envs, *obs.shape[2:]).cpu().numpy()

    def _game_actions(self, actions: np.ndarray) -> torch.Tensor:
        game = self.game
        a = torch.as_tensor(np.asarray(actions))
        return a.reshape(self.num_games, self.n_players, *game.action_shape).to(game.action_dtype).to(self.vec.device)

    # -- VecEnv interface ------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        obs, _ = self.vec.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self._obs = obs
        self._ep_return[:] = 0.0
        self._ep_game_return[:] = 0.0
        self._ep_len = 0
        self._t0 = time.time()
        if self.render_mode is not None and hasattr(self.game, "new_record"):
            self._record = self.game.new_record(self.vec.state)
            if self.render_mode == "human":
                self.render()
        return self._flat_obs(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async()")
        if self._obs is None:
            raise RuntimeError("step() called before reset()")
        actions = self._game_actions(self._actions)
        self._actions = None
        prev = getattr(self.vec, "state", None)
        obs, rewards, terminated, truncated, info = self.vec.step(actions)
        self._obs = obs
        game_r = rewards.cpu().numpy().astype(np.float32)  # [G, n]
        learner_r = np.repeat(game_r.sum(1, keepdims=True), self.n_players, 1) if self.shared_reward else game_r
        learner_r = learner_r.reshape(-1)
        self._accumulate(actions, game_r)
        self._ep_return += learner_r
        self._ep_game_return += game_r.reshape(-1)
        self._ep_len += 1
        term = terminated.cpu().numpy()
        trunc = truncated.cpu().numpy()
        done_games = term | trunc
        dones = np.repeat(done_games, self.n_players)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if self._record is not None:
            if done_games[0]:
                self._record = self.game.new_record(self.vec.state)
            else:
                self.game.update_record(self._record, prev, actions, rewards, self.vec.state)
        if done_games.any():
            final = info["final_obs"].reshape(self.num_envs, *obs.shape[2:]).cpu().numpy()
            time_limit = np.repeat(trunc & ~term, self.n_players) & (self.time_limit == "bootstrap")
            elapsed = round(time.time() - self._t0, 6)
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final[i]
                infos[i]["TimeLimit.truncated"] = bool(time_limit[i])
                infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": self._ep_len, "t": elapsed}
                infos[i]["game_return"] = float(self._ep_game_return[i])
            self._ep_return[dones] = 0.0
            self._ep_game_return[dones] = 0.0
            if done_games.all():  # the games of the batched view end together
                self._ep_len = 0
        if self.render_mode == "human":
            self.render()
        return self._flat_obs(obs), learner_r.astype(np.float32), dones, infos

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None

    def render(self, mode: str | None = None) -> np.ndarray | None:
        """Draw game 0 (``rgb_array``: uint8 HxWx3; ``human``: a pygame window)."""
        mode = mode or self.render_mode
        if mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' or 'human'")
            return None
        if not hasattr(self.game, "frame"):
            raise NotImplementedError(f"the batched view of {self.game.name} does not render; render its PettingZoo view")
        if self.vec.state is None:
            raise RuntimeError("render() called before reset()")
        import renderers

        record = self._record if self._record is not None else self.game.new_record(self.vec.state)
        rgb = renderers.render(self.game.frame(self.vec.state, record))
        if mode == "rgb_array":
            return rgb
        if self._window is None:
            from renderers.window import Window

            self._window = Window(self.game.title, 4)
        self._window.show(rgb)
        return None

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [self.render("rgb_array")]

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        """The next ``reset()`` reseeds the games' generator with ``seed`` (all slots share it)."""
        if seed is None:
            seed = int(np.random.randint(0, np.iinfo(np.uint32).max, dtype=np.uint32))
        self._seeds = [int(seed)] + [None] * (self.num_envs - 1)
        return self._seeds

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """The attribute of the bridge (all slots share one object)."""
        return [getattr(self, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute of the bridge; the slots share it, so ``indices`` must cover them all."""
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError(f"the {self.num_envs} slots share one game batch: set_attr({attr_name!r}) needs every slot")
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: Any = None, **method_kwargs) -> list[Any]:
        """Call a method of the bridge once and give its result to each slot asked for."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: Any = None) -> list[bool]:
        """No slot is a wrapped ``gymnasium.Env`` (the bridge writes ``Monitor``'s ``episode`` info itself)."""
        return [False for _ in self._indices(indices)]

    # -- statistics of the game rewards, read by the trainer between updates -------------
    def reset_stats(self) -> None:
        self._stat_reward = np.zeros(self.n_players, dtype=np.float64)
        self._stat_steps = 0
        self._stat_actions: dict[str, float] = {}

    def _accumulate(self, actions: torch.Tensor, game_r: np.ndarray) -> None:
        self._stat_reward += game_r.sum(0)
        self._stat_steps += game_r.shape[0]
        for k, v in self.game.action_metrics(actions).items():  # the game's own statistics (the IPD: cooperation)
            self._stat_actions[k] = self._stat_actions.get(k, 0.0) + v * game_r.shape[0]

    def pop_stats(self) -> dict[str, float]:
        """Per-step game rewards (not the shared ones) and the game's action statistics since the last call."""
        if self._stat_steps == 0:
            return {}
        per_seat = self._stat_reward / self._stat_steps
        out = {"rollout/reward_per_step": float(per_seat.mean()), "rollout/reward_seat0": float(per_seat[0])}
        out.update({f"rollout/{k}": v / self._stat_steps for k, v in self._stat_actions.items()})
        self.reset_stats()
        return out

    # -- state, for resume and pickling ------------------------------------------------------
    def get_state(self) -> dict[str, Any] | None:
        """The games' state, generator and episode counters as numpy arrays (None for a
        batched view other than :class:`VectorGame`, whose games cannot be saved)."""
        vec = self.vec
        if not hasattr(vec, "state_dict"):
            return None
        return {
            "games": vec.state_dict(),
            "obs": None if self._obs is None else self._obs.cpu().numpy(),
            "ep_return": self._ep_return.copy(),
            "ep_game_return": self._ep_game_return.copy(),
            "ep_len": self._ep_len,
        }

    def set_state(self, s: dict[str, Any]) -> None:
        self.vec.load_state_dict(s["games"])
        self._obs = None if s["obs"] is None else torch.as_tensor(s["obs"], device=self.vec.device)
        self._ep_return = np.array(s["ep_return"], dtype=np.float64)
        self._ep_game_return = np.array(s["ep_game_return"], dtype=np.float64)
        self._ep_len = s["ep_len"]
        self._reset_seeds()

    def __getstate__(self) -> dict[str, Any]:
        if not isinstance(self.vec, VectorGame):  # worker processes cannot travel
            raise TypeError(f"a GameVecEnv over {type(self.vec).__name__} cannot be pickled")
        d = self.__dict__.copy()
        d["_window"] = None
        d["vec"] = None
        d["_vec_parts"] = (self.vec.game, self.vec.num_envs, str(self.vec.device), self.vec.validate)
        d["_vec_state"] = self.get_state()
        return d

    def __setstate__(self, d: dict[str, Any]) -> None:
        game, num, device, validate = d.pop("_vec_parts")
        state = d.pop("_vec_state")
        self.__dict__.update(d)
        self.vec = VectorGame(game, num, device=device, validate=validate)
        self.set_state(state)


class SeatVecEnv(VecEnv):
    """One seat of a :class:`GameVecEnv` as a ``VecEnv`` of ``num_games`` slots, for
    independent learners stepped in lockstep.

    Every seat's ``step_async`` must come before any seat's ``step_wait``: the first
    ``step_wait`` steps all games with every seat's actions; each seat then reads its own
    slots (``g * n_players + seat``). ``reset()`` of the first seat resets the games; the
    other seats receive the same fresh observations.
    """

    def __init__(self, base: GameVecEnv, seat: int):
        self.base, self.seat = base, seat
        self.render_mode = base.render_mode
        if not hasattr(base, "_lockstep"):
            base._lockstep = {"actions": {}, "results": {}, "resets": {}}
        super().__init__(base.num_games, base.observation_space, base.action_space)

    def reset(self) -> np.ndarray:
        shared = self.base._lockstep
        if self.seat not in shared["resets"]:
            seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
            if seed is not None:
                self.base.seed(seed)
            obs = self.base.reset()
            n = self.base.n_players
            shared["resets"] = {s: np.ascontiguousarray(obs[s::n]) for s in range(n)}
        self._reset_seeds()
        return shared["resets"].pop(self.seat)

    def step_async(self, actions: np.ndarray) -> None:
        self.base._lockstep["actions"][self.seat] = np.asarray(actions)

    def step_wait(self):
        shared, n = self.base._lockstep, self.base.n_players
        if self.seat not in shared["results"]:
            if len(shared["actions"]) != n:
                missing = sorted(set(range(n)) - set(shared["actions"]))
                raise RuntimeError(f"seats step in lockstep: step_async() of seats {missing} is missing")
            acts = np.stack([shared["actions"][s] for s in range(n)], axis=1)
            shared["actions"] = {}
            self.base.step_async(acts.reshape(self.base.num_envs, *acts.shape[2:]))
            obs, rew, dones, infos = self.base.step_wait()
            shared["results"] = {s: (np.ascontiguousarray(obs[s::n]), np.ascontiguousarray(rew[s::n]),
                                     np.ascontiguousarray(dones[s::n]), infos[s::n]) for s in range(n)}
        return shared["results"].pop(self.seat)

    def close(self) -> None:
        self.base.close()

    def seed(self, seed: int | None = None) -> Sequence[None | int]:
        self._seeds = [seed] + [None] * (self.num_envs - 1)
        return self._seeds

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        n = self.num_envs if indices is None else len(list([indices] if isinstance(indices, int) else indices))
        return [getattr(self.base, attr_name)] * n

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self.base, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: Any = None, **method_kwargs) -> list[Any]:
        result = getattr(self.base, method_name)(*method_args, **method_kwargs)
        n = self.num_envs if indices is None else len(list([indices] if isinstance(indices, int) else indices))
        return [result] * n

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: Any = None) -> list[bool]:
        n = self.num_envs if indices is None else len(list([indices] if isinstance(indices, int) else indices))
        return [False] * n

    def render(self, mode: str | None = None) -> np.ndarray | None:
        return self.base.render(mode)


@torch.no_grad()
def _act(model: OnPolicyAlgorithm) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    obs_tensor = obs_as_tensor(model._last_obs, model.device)
    actions, values, log_probs = model.policy(obs_tensor)
    actions = actions.cpu().numpy()
    clipped = actions
    if isinstance(model.action_space, gymnasium.spaces.Box):
        clipped = np.clip(actions, model.action_space.low, model.action_space.high)
    return actions, clipped, values, log_probs


def collect_lockstep(models: Sequence[OnPolicyAlgorithm], n_steps: int) -> None:
    """Fill each model's rollout buffer with ``n_steps`` steps of its seat, all seats stepped
    together. Each model's env is its seat's :class:`SeatVecEnv` (possibly wrapped by SB3,
    e.g. ``VecTransposeImage`` for images). The body of SB3's
    ``OnPolicyAlgorithm.collect_rollouts``, one model per seat (time-limit bootstrapping,
    episode starts, GAE at the end)."""
    envs = [m.get_env() for m in models]
    for m in models:
        m.policy.set_training_mode(False)
        m.rollout_buffer.reset()
    for _ in range(n_steps):
        acted = []
        for m, env in zip(models, envs):
            actions, clipped, values, log_probs = _act(m)
            env.step_async(clipped)
            acted.append((actions, values, log_probs))
        for m, env, (actions, values, log_probs) in zip(models, envs, acted):
            new_obs, rewards, dones, infos = env.step_wait()
            m.num_timesteps += env.num_envs
            m._update_info_buffer(infos, dones)
            if isinstance(m.action_space, gymnasium.spaces.Discrete):
                actions = actions.reshape(-1, 1)
            for idx, done in enumerate(dones):
                if done and infos[idx].get("terminal_observation") is not None and infos[idx].get("TimeLimit.truncated", False):
                    terminal_obs = m.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with torch.no_grad():
                        rewards[idx] += m.gamma * m.policy.predict_values(terminal_obs)[0]
            m.rollout_buffer.add(m._last_obs, actions, rewards, m._last_episode_starts, values, log_probs)
            m._last_obs, m._last_episode_starts = new_obs, dones
    for m in models:
        with torch.no_grad():
            values = m.policy.predict_values(obs_as_tensor(m._last_obs, m.device))
        m.rollout_buffer.compute_returns_and_advantage(last_values=values, dones=m._last_episode_starts)


def learn_lockstep(models: Sequence[OnPolicyAlgorithm], n_steps: int) -> None:
    """One rollout of ``n_steps`` steps of every seat's model in lockstep (:func:`collect_lockstep`),
    then one update of each: what SB3's ``learn()`` does around ``collect_rollouts``."""
    steps = n_steps * models[0].get_env().num_envs
    totals = [m._setup_learn(steps, None, reset_num_timesteps=False)[0] for m in models]
    collect_lockstep(models, n_steps)
    for m, total in zip(models, totals):
        m._update_current_progress_remaining(m.num_timesteps, total)
        m.train()


def last_observations(models: Sequence[OnPolicyAlgorithm]) -> list[tuple[Any, Any]]:
    """Each model's last observation and episode starts, where its next rollout begins."""
    return [(m._last_obs, m._last_episode_starts) for m in models]


def set_last_observations(models: Sequence[OnPolicyAlgorithm], saved: list[tuple[Any, Any]], fresh: bool) -> None:
    """Continue each model's rollouts from :func:`last_observations` (``fresh``: from a reset instead)."""
    for m, (last_obs, starts) in zip(models, saved):
        m._last_obs, m._last_episode_starts = (None if fresh else last_obs), starts
