"""PPO baselines through Stable-Baselines3: self-play PPO and PPO with shared rewards (PPO-SR).

Stable-Baselines3's ``PPO`` is used unmodified; this module adds the bridge from the
batched games to SB3's ``VecEnv``, the training command's outputs, and SB3 models as
players of the policy interface::

    python -m trainers train --env negotiation --algo ppo --seed 0 --iterations 200 --out runs/neg-ppo
    python -m trainers train --env negotiation --algo ppo_shared_reward --seed 0 --out runs/neg-ppo-sr
    python -m trainers train --env coin_game --algo ppo --independent --out runs/coin-ippo
    python -m trainers train --resume runs/neg-ppo --iterations 400

**Self-play with one shared network.** Every player of every game is one slot of the
``VecEnv`` (``n_envs = batch_size * n_players``; slot ``g * n_players + i`` is seat ``i``
of game ``g``), so one PPO model plays every seat, each from its own point of view.
``ppo_shared_reward`` gives every slot the sum of the rewards of all players of its game
(the paper's PPO-SR). ``independent=True`` (``--independent``) trains one model per seat
instead, stepped in lockstep (:func:`collect_lockstep`); each model is saved as
``DIR/model_player_<i>.zip``.

**Iterations.** One iteration is one PPO rollout and update: ``n_steps = max_steps``
steps of every slot (one whole episode of every game, as one update of the AdAlign
trainer), ``total_timesteps = iterations * n_steps * n_envs``.

**The episode end: termination, not bootstrapping (default).** The games end for good
after ``max_steps`` (SPEC: "episodes end by truncation" means the PettingZoo view sets
``truncated``; nothing follows the last step). The return PPO should estimate is the
finite-horizon one, so by default the bridge reports the last step as a *termination*:
``dones`` is true, ``infos[i]["terminal_observation"]`` holds the last observation and
``infos[i]["TimeLimit.truncated"]`` is ``False``, so SB3 does not add
``gamma * V(terminal_observation)``. This is also the target of the AdAlign trainer
(no bootstrap past the last step), so both learners optimise the same objective. The
observations carry no clock, so the value of a state is an average over the times it
is seen at; bootstrapping from it would value the end of an episode like its middle.
``time_limit="bootstrap"`` (``--time-limit bootstrap``) reports the end as a time-limit
truncation (``TimeLimit.truncated = True``) and SB3 bootstraps from the terminal
observation's value: the infinite-horizon view of the game.

**Mapping of TrainConfig to SB3's PPO.** ``gamma``, ``gae_lambda``, learning rate =
``actor_lr`` (one Adam for actor and critic), ``ent_coef = entropy_coef``,
``clip_range = clip_eps``, ``n_epochs = ppo_epochs``, ``batch_size`` (SB3's minibatch) =
``n_steps * n_envs / ppo_minibatches`` (more minibatches where that does not divide),
``max_grad_norm = grad_clip`` (0.5, SB3's default, when 0), ``target_kl`` (None when 0),
``net_arch = [hidden, hidden]`` for the actor and the critic, ``MlpPolicy``
(``CnnPolicy`` for image observations), ``seed``.
Not used (AdAlign only, or no SB3 counterpart): ``critic_lr``, ``beta``,
``aggregation``, ``sign_masks``, ``critic_target``, ``target_tau``,
``advantage_values``, ``normalize_advantages`` (SB3 normalises per minibatch),
``self_play_prob``, ``snapshot_every``, ``replay_capacity``, ``trajectory_replay``.

**Resume** (``--resume DIR``) continues exactly: the model zip also stores the games'
state, their generator and the global random states (``_resume_state``), written
atomically with the model at every ``save_every`` iterations and at the end. (Commons
Harvest's games live in worker processes and cannot be saved: a resumed run starts new
episodes there.)

**Commons Harvest Open** (``--env commons_harvest_open``, the Melting Pot extra):
``batch_size`` games in worker processes, ``CnnPolicy`` on the RGB view; ``max_steps``
is then the rollout length (the preset's chunks of 15 steps) and the episodes last
``env_kwargs["max_steps"]`` (1000 by default).
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

import social_dilemmas
from social_dilemmas.core import BatchedGame
from social_dilemmas.parallel import check_render_mode
from social_dilemmas.policies import Policy
from social_dilemmas.vector import VectorGame
from trainers.checkpoint import atomic_write
from trainers.config import TrainConfig
from trainers.runner import prepare_config, run_loop

__all__ = [
    "GameVecEnv",
    "SeatVecEnv",
    "SB3Policy",
    "PPORun",
    "TIME_LIMIT_MODES",
    "SB3_ALGOS",
    "load_policy",
    "make_model",
    "collect_lockstep",
    "train",
]

SB3_ALGOS = ("ppo", "ppo_shared_reward")
#: how the bridge reports the end of an episode at ``max_steps`` (see the module docstring)
TIME_LIMIT_MODES = ("terminate", "bootstrap")


# -- the bridge ----------------------------------------------------------------------------
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
        elif isinstance(env, BatchedGame):
            vec = VectorGame(env, num_games, device=device)
        else:
            vec = social_dilemmas.make_vec(env, num_games, device=device, **env_kwargs)
        if time_limit not in TIME_LIMIT_MODES:
            raise ValueError(f"time_limit = {time_limit!r} is invalid: allowed values are {list(TIME_LIMIT_MODES)}")
        self.vec = vec
        # the rules (a BatchedGame), or what a policy needs to know of a game without them
        # (Commons Harvest's ``spec_info``)
        self.game = vec.game if hasattr(vec, "game") else vec.spec_info
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
        self._stat_coop = 0.0

    def _accumulate(self, actions: torch.Tensor, game_r: np.ndarray) -> None:
        self._stat_reward += game_r.sum(0)
        self._stat_steps += game_r.shape[0]
        if self.game.name == "ipd":
            self._stat_coop += float((actions == 0).float().mean()) * game_r.shape[0]

    def pop_stats(self) -> dict[str, float]:
        """Per-step game rewards (not the shared ones) and IPD cooperation since the last call."""
        if self._stat_steps == 0:
            return {}
        per_seat = self._stat_reward / self._stat_steps
        out = {"rollout/reward_per_step": float(per_seat.mean()), "rollout/reward_seat0": float(per_seat[0])}
        if self.game.name == "ipd":
            out["rollout/cooperation"] = self._stat_coop / self._stat_steps
        self.reset_stats()
        return out

    # -- state, for resume and pickling ------------------------------------------------------
    def get_state(self) -> dict[str, Any] | None:
        """The games' state, generator and episode counters as numpy arrays (None for a
        batched view other than :class:`VectorGame`, whose games cannot be saved)."""
        vec = self.vec
        if not isinstance(vec, VectorGame):
            return None
        return {
            "state": None if vec.state is None else {k: v.cpu().numpy() for k, v in vec.state.__dict__.items()},
            "state_type": None if vec.state is None else type(vec.state),
            "t": getattr(vec, "_t", 0),
            "generator": vec.generator.get_state().numpy(),
            "obs": None if self._obs is None else self._obs.cpu().numpy(),
            "ep_return": self._ep_return.copy(),
            "ep_game_return": self._ep_game_return.copy(),
            "ep_len": self._ep_len,
        }

    def set_state(self, s: dict[str, Any]) -> None:
        vec = self.vec
        dev = vec.device
        vec.state = None if s["state"] is None else s["state_type"](**{k: torch.as_tensor(v, device=dev) for k, v in s["state"].items()})
        vec._t = s["t"]
        gen = torch.Generator(device=dev)
        gen.set_state(torch.from_numpy(np.asarray(s["generator"], dtype=np.uint8).copy()))
        vec.generator = gen
        self._obs = None if s["obs"] is None else torch.as_tensor(s["obs"], device=dev)
        self._ep_return = np.array(s["ep_return"], dtype=np.float64)
        self._ep_game_return = np.array(s["ep_game_return"], dtype=np.float64)
        self._ep_len = s["ep_len"]
        self._reset_seeds()

    def __getstate__(self) -> dict[str, Any]:
        if not isinstance(self.vec, VectorGame):
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


# -- SB3 models as players ---------------------------------------------------------------------
class SB3Policy(Policy):
    """A Stable-Baselines3 model playing one seat of a batch of games.

    Samples from the model's action distribution with the generator given to
    :meth:`reset` (``deterministic=True``: the distribution's mode); continuous actions
    are clipped to the action space as SB3 does while training. Memoryless.
    """

    def __init__(self, model: Any, game: BatchedGame, name: str = "ppo", deterministic: bool = False):
        self.model, self.game, self.name, self.deterministic = model, game, name, deterministic
        self.generator: torch.Generator | None = None
        space = model.observation_space
        self._transpose = tuple(space.shape) != game.obs_shape  # an image model trained channels-first
        act = game.action_space()
        self._low = None if game.action_kind == "discrete" else torch.as_tensor(act.low)
        self._high = None if game.action_kind == "discrete" else torch.as_tensor(act.high)

    def reset(self, num_envs: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> None:
        super().reset(num_envs, device, generator)
        self.generator = generator
        self._gen: torch.Generator | None = None

    def _generator_on(self, device: torch.device) -> torch.Generator:
        """The generator given to :meth:`reset`, or one seeded from it when the model lives elsewhere."""
        gen = getattr(self, "_gen", None)
        if gen is not None and gen.device == device:
            return gen
        given = getattr(self, "generator", None)
        if given is not None and given.device == device:
            gen = given
        else:
            seed = 0 if given is None else int(torch.randint(2**62, (1,), generator=given, device=given.device).item())
            gen = torch.Generator(device=device)
            gen.manual_seed(seed)
        self._gen = gen
        return gen

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.to(self.model.device)
        if self._transpose:  # channels last (the game) -> channels first (SB3's image models)
            x = x.movedim(-1, -3)
        dist = self.model.policy.get_distribution(x).distribution
        categorical = isinstance(dist, torch.distributions.Categorical)
        if self.deterministic:
            action = dist.probs.argmax(-1) if categorical else dist.mean
        else:
            gen = self._generator_on(x.device)
            if categorical:
                action = torch.multinomial(dist.probs, 1, generator=gen).squeeze(-1)
            else:
                action = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen, device=x.device)
        if self._low is not None:
            action = torch.maximum(torch.minimum(action, self._high.to(action.device)), self._low.to(action.device))
        return action.to(self.game.action_dtype).to(obs.device)


def _spaces_match(model_space: gymnasium.Space, game_space: gymnasium.Space, allow_transpose: bool = False) -> bool:
    if isinstance(game_space, gymnasium.spaces.Discrete):
        return isinstance(model_space, gymnasium.spaces.Discrete) and int(model_space.n) == int(game_space.n)
    shape, want = tuple(model_space.shape or ()), tuple(game_space.shape or ())
    if shape == want:
        return True
    return allow_transpose and len(want) == 3 and shape == (want[2], want[0], want[1])


def load_policy(path: str | Path, game: BatchedGame, device: str | torch.device = "cpu",
                deterministic: bool = False) -> SB3Policy:
    """A Stable-Baselines3 PPO model saved as ``.zip`` as a :class:`Policy` for ``game``.

    The model's observation and action spaces must be those of ``game``'s players.
    ``deterministic=True`` plays the most likely action instead of sampling.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {str(path)!r} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = PPO.load(path, device=device)
    if not _spaces_match(model.observation_space, game.observation_space(), allow_transpose=True) or \
            not _spaces_match(model.action_space, game.action_space()):
        raise ValueError(
            f"model {str(path)!r} was trained with observations {model.observation_space} and actions "
            f"{model.action_space}; {game!r} has observations {game.observation_space()} and actions {game.action_space()}"
        )
    algo = getattr(model, "_social_dilemmas", {}).get("algo", "ppo")
    name = path.parent.name if path.stem in ("model",) or path.stem.startswith("model_") else path.stem
    return SB3Policy(model, game, name=f"{algo}:{name or path.stem}", deterministic=deterministic)


# -- training ------------------------------------------------------------------------------------
class _Capture(KVWriter):
    """An SB3 logger output that keeps the last values it was given (for metrics.csv)."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        for k, v in key_values.items():
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
                self.values[k] = float(v)

    def pop(self) -> dict[str, float]:
        out, self.values = self.values, {}
        return out

    def close(self) -> None:
        pass


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device = {name!r} is invalid: CUDA is not available here; use auto or cpu")
    return name


def ppo_kwargs(cfg: TrainConfig, n_envs: int, n_steps: int | None = None) -> dict[str, Any]:
    """The arguments of SB3's ``PPO`` from a training configuration (see the module docstring)."""
    n_steps = n_steps or cfg.max_steps
    buffer = n_steps * n_envs
    # at least ppo_minibatches minibatches of equal size (SB3 warns about a ragged last one)
    minibatches = next(k for k in range(min(cfg.ppo_minibatches, buffer), buffer + 1) if buffer % k == 0)
    return dict(
        n_steps=n_steps,
        batch_size=max(2, buffer // minibatches),
        n_epochs=cfg.ppo_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        learning_rate=cfg.actor_lr,
        ent_coef=cfg.entropy_coef,
        clip_range=cfg.clip_eps,
        max_grad_norm=cfg.grad_clip if cfg.grad_clip > 0 else 0.5,
        target_kl=cfg.target_kl if cfg.target_kl > 0 else None,
        policy_kwargs=dict(net_arch=dict(pi=[cfg.hidden, cfg.hidden], vf=[cfg.hidden, cfg.hidden])),
        seed=cfg.seed,
        device=resolve_device(cfg.device),
        verbose=0,
    )


def make_env(cfg: TrainConfig, time_limit: str = "terminate") -> GameVecEnv:
    """The bridge of a run: ``batch_size`` games of ``cfg.env`` with episodes of ``max_steps``."""
    shared = cfg.algo == "ppo_shared_reward"
    if cfg.env == "commons_harvest_open":
        # worker processes of Melting Pot; max_steps is the rollout length (the preset's
        # chunks of 15 steps), the episodes last env_kwargs["max_steps"] (1000 by default)
        from social_dilemmas.commons_harvest import CommonsHarvestVec

        vec = CommonsHarvestVec(cfg.batch_size, **cfg.env_kwargs)
        return GameVecEnv(vec, shared_reward=shared, time_limit=time_limit)
    kwargs = {**cfg.env_kwargs, "max_steps": cfg.max_steps}
    return GameVecEnv(cfg.env, cfg.batch_size, shared_reward=shared, time_limit=time_limit, **kwargs)


def make_model(cfg: TrainConfig, env: VecEnv) -> PPO:
    """SB3's PPO for ``env`` configured from ``cfg``: ``MlpPolicy``, or ``CnnPolicy`` for image observations."""
    policy = "CnnPolicy" if is_image_space(env.observation_space) else "MlpPolicy"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*GPU.*")
        return PPO(policy, env, **ppo_kwargs(cfg, env.num_envs))


@torch.no_grad()
def _act(model: PPO) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
    obs_tensor = obs_as_tensor(model._last_obs, model.device)
    actions, values, log_probs = model.policy(obs_tensor)
    actions = actions.cpu().numpy()
    clipped = actions
    if isinstance(model.action_space, gymnasium.spaces.Box):
        clipped = np.clip(actions, model.action_space.low, model.action_space.high)
    return actions, clipped, values, log_probs


def collect_lockstep(models: Sequence[PPO], n_steps: int) -> None:
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


@dataclass
class PPORun:
    """The state of a PPO baseline run: its models (one, or one per seat), env and progress."""

    cfg: TrainConfig
    out: Path
    env: GameVecEnv
    models: list[PPO]
    independent: bool = False
    time_limit: str = "terminate"
    iteration: int = 0
    seat_envs: list[SeatVecEnv] = field(default_factory=list)

    @property
    def model(self) -> PPO:
        return self.models[0]

    @property
    def steps_per_iteration(self) -> int:
        return self.cfg.max_steps * self.env.num_envs

    def model_paths(self) -> list[Path]:
        if not self.independent:
            return [self.out / "model.zip"]
        return [self.out / f"model_player_{i}.zip" for i in range(len(self.models))]

    def train_step(self) -> dict[str, float]:
        """One iteration: a rollout of one episode of every game, then one PPO update per model."""
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        if not self.independent:
            m = self.model
            m.learn(self.steps_per_iteration, reset_num_timesteps=False)  # one rollout + update
            m.logger.dump(m.num_timesteps)  # the update's train/ values
            metrics.update(_namespaced(m.logger, None))
        else:
            # what SB3's learn() does around collect_rollouts, for every seat's model
            steps = self.cfg.max_steps * self.env.num_games
            totals = [m._setup_learn(steps, None, reset_num_timesteps=False)[0] for m in self.models]
            collect_lockstep(self.models, self.cfg.max_steps)
            for i, (m, total) in enumerate(zip(self.models, totals)):
                m._update_current_progress_remaining(m.num_timesteps, total)
                m.train()
                m.dump_logs()
                metrics.update(_namespaced(m.logger, i))
        metrics.update(self.env.pop_stats())
        self.iteration += 1
        elapsed = time.perf_counter() - start
        metrics["time/env_steps_per_s"] = self.cfg.max_steps * self.env.num_games / elapsed
        metrics["time/iteration_s"] = elapsed
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The model(s) against themselves and the scripted players
        (:func:`trainers.league.scripted_evaluation`; seat 0's model plays the scripted ones)."""
        from trainers.league import scripted_evaluation

        return scripted_evaluation(
            self.env.game, lambda seat: SB3Policy(self.models[seat if self.independent else 0], self.env.game),
            games=self.cfg.eval_games, seed=self.cfg.seed)

    def save(self) -> None:
        """Each model (with the run's resume state) atomically to its ``.zip``."""
        state = {
            "iteration": self.iteration,
            "env": self.env.get_state(),
            "torch_rng": torch.get_rng_state().numpy(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "lockstep_last": [(m._last_obs, m._last_episode_starts) for m in self.models],
        }
        for m, path in zip(self.models, self.model_paths()):
            m._resume_state = state
            m._social_dilemmas = {"algo": self.cfg.algo, "env": self.cfg.env, "independent": self.independent}
            _atomic_model_save(m, path)
            del m._resume_state


def _namespaced(logger: Logger, player: int | None) -> dict[str, float]:
    capture = next(f for f in logger.output_formats if isinstance(f, _Capture))
    out = {}
    for k, v in capture.pop().items():
        if k in ("time/iterations", "time/time_elapsed", "time/fps"):
            continue
        if player is not None:
            ns, _, rest = k.partition("/")
            k = f"{ns}/player_{player}/{rest}"
        out[k] = v
    return out


def _atomic_model_save(model: PPO, path: Path) -> None:
    atomic_write(path, model.save)


def _quiet_logger() -> Logger:
    return Logger(folder=None, output_formats=[_Capture()])


def _build(cfg: TrainConfig, out: Path, independent: bool, time_limit: str) -> PPORun:
    env = make_env(cfg, time_limit)
    run = PPORun(cfg, out, env, [], independent=independent, time_limit=time_limit)
    if not independent:
        run.models = [make_model(cfg, env)]
    else:
        run.seat_envs = [SeatVecEnv(env, i) for i in range(env.n_players)]
        for i, seat in enumerate(run.seat_envs):
            seat_cfg = TrainConfig(**{**cfg.__dict__, "seed": cfg.seed + i})
            run.models.append(make_model(seat_cfg, seat))
    for m in run.models:
        m.set_logger(_quiet_logger())
    return run


def _load(cfg: TrainConfig, out: Path, independent: bool, time_limit: str) -> PPORun:
    run = _build(cfg, out, independent, time_limit)
    envs = run.seat_envs if independent else [run.env]
    models = []
    for path, env in zip(run.model_paths(), envs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GPU.*")
            models.append(PPO.load(path, env=env, device=resolve_device(cfg.device)))
    state = models[0]._resume_state
    run.models = models
    run.iteration = state["iteration"]
    if state["env"] is not None:
        run.env.set_state(state["env"])
    for m, (last_obs, starts) in zip(models, state["lockstep_last"]):
        m._last_obs, m._last_episode_starts = last_obs, starts
        if state["env"] is None:  # games that cannot be saved start afresh
            m._last_obs = None
        del m._resume_state
        m.set_logger(_quiet_logger())
    for seat in run.seat_envs:
        seat._reset_seeds()
    torch.set_rng_state(torch.from_numpy(np.asarray(state["torch_rng"], dtype=np.uint8).copy()))
    np.random.set_state(state["numpy_rng"])
    random.setstate(state["python_rng"])
    return run


def train(cfg: TrainConfig | None = None, out: str | Path = "runs/train", resume: bool = False,
          progress: bool = True, iterations: int | None = None, *, independent: bool = False,
          time_limit: str = "terminate") -> PPORun:
    """Train a PPO baseline (``cfg.algo`` ``ppo`` or ``ppo_shared_reward``) or continue the run in ``out``.

    Writes ``out/config.json``, ``out/sb3.json`` (the settings that are not in the
    config: ``independent``, ``time_limit``, the PPO arguments), ``out/metrics.csv``,
    TensorBoard logs under ``out/tb`` (when ``tensorboard`` is installed) and
    ``out/model.zip`` (``model_player_<i>.zip`` per seat with ``independent=True``)
    every ``save_every`` iterations and at the end. With ``resume=True`` the settings
    come from ``out`` and ``iterations`` may extend the run.
    """
    out = Path(out)
    cfg = prepare_config(cfg, out, resume, iterations)
    if resume and (out / "sb3.json").exists():
        extra = json.loads((out / "sb3.json").read_text())
        independent = extra.get("independent", independent)
        time_limit = extra.get("time_limit", time_limit)
    if cfg.algo not in SB3_ALGOS:
        raise ValueError(f"algo = {cfg.algo!r} is invalid for the SB3 baselines: allowed values are {list(SB3_ALGOS)}")
    if time_limit not in TIME_LIMIT_MODES:
        raise ValueError(f"time_limit = {time_limit!r} is invalid: allowed values are {list(TIME_LIMIT_MODES)}")
    out.mkdir(parents=True, exist_ok=True)
    saved = (out / ("model_player_0.zip" if independent else "model.zip")).exists()
    run = _load(cfg, out, independent, time_limit) if resume and saved else _build(cfg, out, independent, time_limit)
    ppo = ppo_kwargs(cfg, run.model.n_envs)
    sb3_info = {"independent": independent, "time_limit": time_limit, "policy": type(run.model.policy).__name__,
                "n_envs": run.model.n_envs, "net_arch": ppo.pop("policy_kwargs")["net_arch"], "ppo": ppo}
    (out / "sb3.json").write_text(json.dumps(sb3_info, indent=2, sort_keys=True))

    label = cfg.algo + (" (independent)" if independent else "")
    run_loop(run, cfg, out, resume, progress, desc=f"{label} {cfg.env}",
             postfix=("rollout/reward_per_step", "rollout/cooperation", "train/loss"))
    if run.iteration >= cfg.iterations and not all(p.exists() for p in run.model_paths()):
        run.save()  # a resumed run that was already complete
    return run
