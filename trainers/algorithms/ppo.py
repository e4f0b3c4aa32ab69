"""PPO baselines through Stable-Baselines3: self-play PPO and PPO with shared rewards (PPO-SR).

Stable-Baselines3's ``PPO`` is used unmodified, behind the project's algorithm interface,
over the bridge of :mod:`trainers.sb3_bridge`::

    python -m trainers train --env negotiation --algo ppo --seed 0 --iterations 200 --out runs/neg-ppo
    python -m trainers train --env negotiation --algo ppo_shared_reward --seed 0 --out runs/neg-ppo-sr
    python -m trainers train --env coin_game --algo ppo --independent --out runs/coin-ippo

**Self-play with one shared network.** Every player of every game is one slot of the
``VecEnv`` (``n_envs = num_games * n_players``), so one PPO model plays every seat, each
from its own point of view. ``ppo_shared_reward`` gives every slot the sum of the rewards
of all players of its game (the paper's PPO-SR). ``independent`` trains one model per
seat instead, stepped in lockstep.

**Iterations.** One iteration is one PPO rollout and update: ``n_steps`` = the run's
steps per rollout (one whole episode of every game, as one update of AdAlign),
``total_timesteps = iterations * n_steps * n_envs``. The end of an episode follows the
run's ``time_limit`` (terminate: no bootstrap; see the bridge).

**The section's settings in SB3's PPO.** ``gamma``, ``gae_lambda``, ``learning_rate = lr``
(one Adam for actor and critic), ``ent_coef = entropy_coef``, ``clip_range = clip_eps``,
``n_epochs = ppo_epochs``, SB3's ``batch_size`` (its minibatch) = ``n_steps * n_envs /
ppo_minibatches`` (more minibatches where that does not divide), ``max_grad_norm =
grad_clip`` (0.5, SB3's default, when 0), ``target_kl`` (None when 0), ``net_arch = [hidden,
hidden]`` for actor and critic, ``MlpPolicy`` (``CnnPolicy`` for images), ``seed``.

**Checkpoints.** ``checkpoint.pt`` holds the models (SB3's own zip format, as bytes) and
everything a resumed run needs to continue exactly (the games, the random states); beside
it, ``model.zip`` (``model_player_<i>.zip`` per seat when independent) is the model as SB3
saves it, for SB3's own ``PPO.load`` and as a player (``.zip``). Commons Harvest's games
live in worker processes and cannot be saved: a resumed run starts new episodes there.
"""

from __future__ import annotations

import io
import json
import pickle
import random
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch

import social_dilemmas
from social_dilemmas.policies import Policy
from trainers.algorithms.base import Algorithm
from trainers.common import CheckpointError, atomic_write
from trainers.config import Config, Section
from trainers.evaluation.commons_harvest import harvest_evaluation
from trainers.evaluation.scripted import scripted_evaluation
from trainers.sb3_bridge import PPO as SB3PPO
from trainers.sb3_bridge import (
    GameVecEnv,
    KVWriter,
    Logger,
    SeatVecEnv,
    is_image_space,
    last_observations,
    learn_lockstep,
    set_last_observations,
)

__all__ = ["PPO", "PPOSharedReward", "PPOConfig", "SB3Policy", "load_player", "ppo_kwargs"]


@dataclass
class PPOConfig(Section):
    """Stable-Baselines3's PPO (see the module docstring for how each setting reaches SB3)."""

    gamma: float = 0.9
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    lr: float = 1e-4
    """Learning rate of SB3's Adam (actor and critic share it)."""
    entropy_coef: float = 0.15
    """Weight of the entropy bonus."""
    grad_clip: float = 0.0
    """Gradient-norm clip (0: SB3's default, 0.5)."""
    clip_eps: float = 0.2
    """PPO clip range."""
    ppo_epochs: int = 4
    """Optimisation epochs per batch."""
    ppo_minibatches: int = 4
    """Minibatches per epoch."""
    target_kl: float = 0.05
    """Stop the epochs of a batch when the approximate KL passes this (0: never)."""
    hidden: int = 64
    """Width of the two hidden layers of SB3's actor and critic (net_arch = [hidden, hidden])."""
    independent: bool = False
    """One model per seat, stepped in lockstep (default: one shared network plays every seat)."""

    def validate(self, run: Any = None) -> PPOConfig:
        self.check_int_at_least(("ppo_epochs", "ppo_minibatches", "hidden"), 1)
        self.check_finite(("gamma", "lr", "clip_eps"), 0.0, strict=True)
        self.check_finite(("gae_lambda", "entropy_coef", "grad_clip", "target_kl"), 0.0)
        for name, ok, allowed in (("gamma", self.gamma <= 1, "must be in (0, 1]"),
                                  ("gae_lambda", self.gae_lambda <= 1, "must be in [0, 1]"),
                                  ("clip_eps", self.clip_eps < 1, "must be in (0, 1)")):
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r} is invalid: {allowed}")
        return self


def ppo_kwargs(cfg: PPOConfig, n_envs: int, n_steps: int, seed: int, device: str) -> dict[str, Any]:
    """The arguments of SB3's ``PPO`` from a section (see the module docstring)."""
    buffer = n_steps * n_envs
    # at least ppo_minibatches minibatches of equal size (SB3 warns about a ragged last one)
    minibatches = next(k for k in range(min(cfg.ppo_minibatches, buffer), buffer + 1) if buffer % k == 0)
    return dict(
        n_steps=n_steps,
        batch_size=max(2, buffer // minibatches),
        n_epochs=cfg.ppo_epochs,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        learning_rate=cfg.lr,
        ent_coef=cfg.entropy_coef,
        clip_range=cfg.clip_eps,
        max_grad_norm=cfg.grad_clip if cfg.grad_clip > 0 else 0.5,
        target_kl=cfg.target_kl if cfg.target_kl > 0 else None,
        policy_kwargs=dict(net_arch=dict(pi=[cfg.hidden, cfg.hidden], vf=[cfg.hidden, cfg.hidden])),
        seed=seed,
        device=device,
        verbose=0,
    )


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


def _quiet_logger() -> Logger:
    return Logger(folder=None, output_formats=[_Capture()])


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


def _load_model(source: Any, env: Any = None, device: str | torch.device = "cpu", where: str | None = None) -> SB3PPO:
    """SB3's ``PPO.load`` of ``source`` (a path or a buffer); with ``where`` (the file's
    description), a file that is not a whole SB3 model is a ``CheckpointError`` naming it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return SB3PPO.load(source, env=env, device=device)
        except (AssertionError, KeyError, ValueError, TypeError, EOFError, RuntimeError, zipfile.BadZipFile,
                pickle.UnpicklingError, AttributeError) as e:
            if where is None:
                raise
            raise CheckpointError(f"{where} cannot be read as a Stable-Baselines3 PPO model ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:200]}); it is damaged or not a model saved by "
                                  "PPO.save") from None


class PPO(Algorithm):
    """Stable-Baselines3's PPO in self-play (see the module docstring)."""

    name = "ppo"
    Config = PPOConfig
    shared_reward = False
    #: the settings of each game: the AdAlign presets' discount, learning rate, entropy and clip
    presets = {
        "ipd": dict(gamma=0.9, lr=1e-4, entropy_coef=0.15, grad_clip=0.0),
        "coin_game": dict(gamma=0.96, lr=2e-3, entropy_coef=0.1, grad_clip=10.0),
        "negotiation": dict(gamma=0.96, lr=1e-3, entropy_coef=0.005, grad_clip=1.0),
        "commons_harvest_open": dict(gamma=0.99, lr=1e-5, entropy_coef=0.1, grad_clip=10.0, clip_eps=0.1),
    }
    postfix = ("rollout/reward_per_step", "rollout/cooperation", "train/loss")

    def __init__(self, config: Config, out: str | Path | None = None):
        super().__init__(config, out)
        run, cfg = self.run, self.cfg
        device = str(self.device)
        self.env = GameVecEnv(run.env, run.num_games, shared_reward=self.shared_reward, time_limit=run.time_limit,
                              device=device, **run.game_kwargs())
        self.seat_envs = [SeatVecEnv(self.env, i) for i in range(self.env.n_players)] if cfg.independent else []
        self.models = [self._model(env, run.seed + i) for i, env in enumerate(self.seat_envs or [self.env])]

    def _model(self, env: Any, seed: int) -> SB3PPO:
        policy = "CnnPolicy" if is_image_space(env.observation_space) else "MlpPolicy"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GPU.*")
            model = SB3PPO(policy, env, **ppo_kwargs(self.cfg, env.num_envs, self.run.steps_per_rollout, seed,
                                                     str(self.device)))
        model.set_logger(_quiet_logger())
        return model

    def train_step(self) -> dict[str, float]:
        """One iteration: a rollout of every game, then one PPO update per model."""
        metrics: dict[str, float] = {}
        steps = self.run.steps_per_rollout
        if not self.cfg.independent:
            m = self.models[0]
            m.learn(steps * self.env.num_envs, reset_num_timesteps=False)  # one rollout + update
            m.logger.dump(m.num_timesteps)  # the update's train/ values
            metrics.update(_namespaced(m.logger, None))
        else:
            learn_lockstep(self.models, steps)
            for i, m in enumerate(self.models):
                m.dump_logs()
                metrics.update(_namespaced(m.logger, i))
        metrics.update(self.env.pop_stats())
        self.iteration += 1
        return metrics

    def evaluate(self) -> dict[str, float]:
        """The model(s) against themselves and the scripted players (seat 0's model plays the scripted ones);
        on Commons Harvest, the model in all 7 seats (:func:`~trainers.evaluation.commons_harvest.harvest_evaluation`)."""
        models, game = self.models, self.env.game
        if self.run.env == "commons_harvest_open":
            return harvest_evaluation(SB3Policy(models[0], game), self.run)
        return scripted_evaluation(game, lambda seat: SB3Policy(models[seat if self.cfg.independent else 0], game),
                                   games=self.run.eval_games, seed=self.run.seed)

    def _model_bytes(self, model: SB3PPO) -> bytes:
        model._social_dilemmas = {"algo": self.name, "env": self.run.env, "independent": self.cfg.independent}
        buffer = io.BytesIO()
        model.save(buffer)
        return buffer.getvalue()

    def state_dict(self) -> dict[str, Any]:
        return {
            "models": [self._model_bytes(m) for m in self.models],
            "env": self.env.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "lockstep_last": last_observations(self.models),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        envs = self.seat_envs or [self.env]
        self.models = [_load_model(io.BytesIO(b), env, self.device) for b, env in zip(state["models"], envs)]
        if state["env"] is not None:
            self.env.set_state(state["env"])
        set_last_observations(self.models, state["lockstep_last"], fresh=state["env"] is None)
        for m in self.models:
            m.set_logger(_quiet_logger())
        for seat in self.seat_envs:
            seat._reset_seeds()
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])

    def export(self, out: Path) -> None:
        """``model.zip`` (``model_player_<i>.zip`` per seat) for SB3 and the players, and ``sb3.json``:
        the arguments SB3's PPO got."""
        paths = [out / "model.zip"] if not self.cfg.independent else \
            [out / f"model_player_{i}.zip" for i in range(len(self.models))]
        for m, path in zip(self.models, paths):
            data = self._model_bytes(m)
            atomic_write(path, lambda tmp, data=data: Path(tmp).write_bytes(data))
        m = self.models[0]
        ppo = ppo_kwargs(self.cfg, m.n_envs, self.run.steps_per_rollout, self.run.seed, str(self.device))
        info = {"policy": type(m.policy).__name__, "n_envs": m.n_envs, "net_arch": ppo.pop("policy_kwargs")["net_arch"],
                "ppo": ppo}
        text = json.dumps(info, indent=2, sort_keys=True)
        atomic_write(out / "sb3.json", lambda tmp: Path(tmp).write_text(text))

    def close(self) -> None:
        self.env.close()

    @classmethod
    def player(cls, config: Config, state: dict[str, Any], game: Any, device: torch.device | str = "cpu",
               greedy: bool = False, name: str = "agent") -> Policy:
        if game is None:  # the game it was trained on
            game = social_dilemmas.spec(config.run.env, **config.run.game_kwargs())
        model = _load_model(io.BytesIO(state["models"][0]), device=device, where=f"the model in the checkpoint of {name}")
        return _player(model, game, name, greedy, f"the checkpoint of {name}")


class PPOSharedReward(PPO):
    """PPO with every player trained on the sum of its game's rewards (the paper's PPO-SR)."""

    name = "ppo_shared_reward"
    shared_reward = True


# -- SB3 models as players ---------------------------------------------------------------------
class SB3Policy(Policy):
    """A Stable-Baselines3 model playing one seat of a batch of games.

    Samples from the model's action distribution with the generator given to
    :meth:`reset` (``deterministic=True``: the distribution's mode); continuous actions
    are clipped to the action space as SB3 does while training. Memoryless.
    """

    def __init__(self, model: Any, game: Any, name: str = "ppo", deterministic: bool = False):
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


def _player(model: SB3PPO, game: Any, name: str, deterministic: bool, source: str) -> SB3Policy:
    """``model`` as the player ``name`` of ``game``, its spaces checked (``source`` names it in errors)."""
    if not _spaces_match(model.observation_space, game.observation_space(), allow_transpose=True) or \
            not _spaces_match(model.action_space, game.action_space()):
        raise ValueError(
            f"{source} was trained with observations {model.observation_space} and actions {model.action_space}; "
            f"{game!r} has observations {game.observation_space()} and actions {game.action_space()}")
    return SB3Policy(model, game, name=name, deterministic=deterministic)


def load_player(path: str | Path, game: Any, device: str | torch.device = "cpu", greedy: bool = False) -> SB3Policy:
    """A Stable-Baselines3 PPO model saved as ``.zip`` as a :class:`Policy` of ``game`` (the
    ``.zip`` loader of the ``social_dilemmas.players`` entry points).

    The model's observation and action spaces must be those of ``game``'s players (images
    may be channels first). ``greedy=True`` plays the most likely action instead of sampling.
    A file that is not a whole SB3 model is a :class:`~trainers.common.CheckpointError` naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {str(path)!r} does not exist")
    if game is None:
        raise ValueError(f"model {str(path)!r}: a Stable-Baselines3 model plays the game it is given; pass the game")
    name = path.parent.name if path.stem in ("model",) or path.stem.startswith("model_") else path.stem
    if path.is_dir():
        raise CheckpointError(f"model {str(path)!r} is a folder, not a file (the file is DIR/model.zip)")
    model = _load_model(path, device=device, where=f"model {str(path)!r}")
    algo = getattr(model, "_social_dilemmas", {}).get("algo", "ppo")
    return _player(model, game, f"{algo}:{name or path.stem}", greedy, f"model {str(path)!r}")
