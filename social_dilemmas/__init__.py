"""social_dilemmas: sequential social dilemmas as PettingZoo, Gymnasium and batched torch envs.

Quick start::

    import social_dilemmas
    env = social_dilemmas.parallel_env("coin_game")          # PettingZoo ParallelEnv
    obs, infos = env.reset(seed=0)

    import gymnasium, pettingzoo
    env = pettingzoo.make("parallel", "social_dilemmas/CoinGame-v0")
    env = gymnasium.make("social_dilemmas/IPD-v0", opponent="tit_for_tat")   # player_0 learns

    vec = social_dilemmas.make_vec("coin_game", num_envs=4096, device="cpu")  # trainers' view

Games: ``ipd``, ``coin_game``, ``negotiation``. Every constructor argument of the rule
classes (:class:`IPD`, :class:`CoinGame`, :class:`Negotiation`) can be passed to each
maker as a keyword argument.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import pettingzoo

from social_dilemmas.coin_game import CoinGame
from social_dilemmas.core import BatchedGame, check_flag
from social_dilemmas.ipd import IPD
from social_dilemmas.negotiation import Negotiation
from social_dilemmas.parallel import SocialDilemmaParallelEnv
from social_dilemmas.policies import Policy, make_policy, scripted_names
from social_dilemmas.single_agent import SingleAgentEnv, SingleAgentVectorEnv
from social_dilemmas.vector import VectorGame

__all__ = [
    "GAMES",
    "ENV_IDS",
    "BatchedGame",
    "IPD",
    "CoinGame",
    "Negotiation",
    "Policy",
    "make_game",
    "parallel_env",
    "single_agent_env",
    "make_vec",
    "spec",
    "GAME_NAMES",
    "make_policy",
    "scripted_names",
]

__version__ = "0.1.0"

#: name -> rules class
GAMES: dict[str, type[BatchedGame]] = {"ipd": IPD, "coin_game": CoinGame, "negotiation": Negotiation}
#: name -> registered id (PettingZoo and Gymnasium share the ids)
ENV_IDS = {
    "ipd": "social_dilemmas/IPD-v0",
    "coin_game": "social_dilemmas/CoinGame-v0",
    "negotiation": "social_dilemmas/Negotiation-v0",
}


#: Melting Pot games (need the Melting Pot extra): name -> registered id. Their module,
#: ``social_dilemmas.commons_harvest``, is imported only when one is made.
MELTINGPOT_ENV_IDS = {"commons_harvest_open": "social_dilemmas/CommonsHarvestOpen-v0"}


def make_game(name: str, **kwargs: Any) -> BatchedGame:
    """The rules of game ``name`` with the given constructor arguments."""
    cls = GAMES.get(name)
    if cls is None:
        raise ValueError(f"unknown game {name!r}; allowed values: {sorted(GAMES)}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        import inspect

        allowed = [p for p in inspect.signature(cls).parameters]
        raise TypeError(f"{e}; arguments of {name}: {allowed}") from None


def parallel_env(name: str, render_mode: str | None = None, **kwargs: Any) -> SocialDilemmaParallelEnv:
    """A PettingZoo ``ParallelEnv`` of game ``name`` (``"ipd"``, ``"coin_game"``, ``"negotiation"``,
    ``"commons_harvest_open"``)."""
    if name in MELTINGPOT_ENV_IDS:
        from social_dilemmas.commons_harvest import CommonsHarvestOpen

        return CommonsHarvestOpen(render_mode=render_mode, **kwargs)
    return SocialDilemmaParallelEnv(make_game(name, **kwargs), render_mode=render_mode)


def single_agent_env(name: str, opponent: Any = "random", render_mode: str | None = None, **kwargs: Any) -> SingleAgentEnv:
    """A Gymnasium env of game ``name`` where ``player_0`` learns against ``opponent``."""
    return SingleAgentEnv(make_game(name, **kwargs), opponent=opponent, render_mode=render_mode)


def make_vec(name: str, num_envs: int, device: Any = "cpu", validate: bool = True, obs_dtype: Any = None,
             **kwargs: Any):
    """The batched view of ``num_envs`` games of ``name``: every player of every game at once,
    torch tensors on ``device`` (:class:`VectorGame`; for Commons Harvest Open, worker
    processes behind the same interface: :class:`~social_dilemmas.commons_harvest.CommonsHarvestVec`).

    Both give ``reset(seed) -> (obs, info)`` and ``step(actions) -> (obs, rewards,
    terminated, truncated, info)`` with ``obs`` ``[num_envs, n_players, *obs_shape]``,
    same-step autoreset and ``info["final_obs"]``, and ``game``: what a player or a
    trainer needs to know of the game (see :func:`spec`).

    ``validate=True`` (the default) checks every action and names the game, the player and
    the allowed values of an invalid one; ``validate=False`` is the fast path for trainers
    whose actions are valid by construction (no check of the values, no wait for the
    device; see :class:`VectorGame`). Actions are torch tensors of integers or floats in
    both: bools, complex numbers, numpy arrays and lists are refused. Commons Harvest Open
    checks its actions in its workers whatever ``validate`` says.

    ``obs_dtype``: None (default) gives each game's own, float32 for the batched games and
    uint8 images for Commons Harvest Open; ``"uint8"`` gives the Coin Game's and the IPD's
    0/1 observations in a quarter of the bytes (see :class:`VectorGame`)."""
    validate = check_flag("validate", validate)
    if name in MELTINGPOT_ENV_IDS:
        if obs_dtype is not None and str(obs_dtype).removeprefix("torch.") != "uint8":
            raise ValueError(f"obs_dtype must be None or 'uint8' for {name} (its observations are uint8 images), "
                             f"got {obs_dtype!r}")
        from social_dilemmas.commons_harvest import CommonsHarvestVec

        return CommonsHarvestVec(num_envs, device=device, **kwargs)
    return VectorGame(make_game(name, **kwargs), num_envs, device=device, validate=validate,
                      obs_dtype="float32" if obs_dtype is None else obs_dtype)


def spec(name: str, **kwargs: Any):
    """What a player or a trainer needs to know of game ``name`` with these constructor
    arguments, without its rules or any process: ``name``, ``n_players``, ``max_steps``,
    ``observation_space()``, ``action_space()``, ``obs_shape``, ``action_shape``,
    ``action_kind`` and ``action_dtype``. The rules object itself for the batched games
    (:func:`make_game`); a :class:`~social_dilemmas.commons_harvest.CommonsHarvestSpec`
    for Commons Harvest Open."""
    if name in MELTINGPOT_ENV_IDS:
        from social_dilemmas.commons_harvest import CommonsHarvestOpen

        return CommonsHarvestOpen(**kwargs).spec_info
    return make_game(name, **kwargs)


#: every game's name: the batched games and the Melting Pot ones
GAME_NAMES: tuple[str, ...] = (*GAMES, *MELTINGPOT_ENV_IDS)


def _single_vec(name: str, num_envs: int = 1, opponent: Any = "random", device: Any = "cpu", **kwargs: Any):
    game_kwargs = {k: v for k, v in kwargs.items() if k != "render_mode"}
    return SingleAgentVectorEnv(make_game(name, **game_kwargs), num_envs, opponent=opponent, device=device, render_mode=kwargs.get("render_mode"))


def _register() -> None:
    for name, env_id in ENV_IDS.items():
        if env_id not in pettingzoo.parallel_registry:
            pettingzoo.register("parallel", env_id, entry_point=f"social_dilemmas:_pz_{name}")
        if env_id not in gymnasium.registry:
            gymnasium.register(
                env_id,
                entry_point=f"social_dilemmas:_gym_{name}",
                vector_entry_point=f"social_dilemmas:_vec_{name}",
            )
    # Melting Pot: string entry points, so nothing of Melting Pot is imported here
    env_id = MELTINGPOT_ENV_IDS["commons_harvest_open"]
    if env_id not in pettingzoo.parallel_registry:
        pettingzoo.register("parallel", env_id, entry_point="social_dilemmas.commons_harvest:CommonsHarvestOpen")
    if env_id not in gymnasium.registry:
        gymnasium.register(env_id, entry_point="social_dilemmas.commons_harvest:CommonsHarvestSingleAgentEnv")


def _makers(name: str):
    def pz(**kwargs):
        return parallel_env(name, **kwargs)

    def gym(**kwargs):
        return single_agent_env(name, **kwargs)

    def vec(**kwargs):
        return _single_vec(name, **kwargs)

    return pz, gym, vec


for _name in GAMES:
    globals()[f"_pz_{_name}"], globals()[f"_gym_{_name}"], globals()[f"_vec_{_name}"] = _makers(_name)
del _name

_register()
