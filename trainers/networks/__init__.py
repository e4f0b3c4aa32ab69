"""The networks of the trainers, and the one interface every policy network follows.

* :mod:`trainers.networks.recurrent`: the GRU actor and critic of the games with vector
  observations (IPD, Coin Game, Negotiation);
* :mod:`trainers.networks.vision`: the Nature CNN with a GTrXL (Transformer-XL memory,
  the default), a recomputed-window gated transformer or a GRU, and actor and critic
  heads, for image observations (Commons Harvest Open);
* :mod:`trainers.networks.distributions`: the Negotiation's tanh-squashed normal and
  sampling with a generator.

**The memory interface.** A policy network acts one step at a time in rollouts and is
trained on whole rollouts; both give the same numbers. Its memory is a tuple of tensors
whose first dimension is the rows (one row per player of a game)::

    memory = net.initial_memory(rows, device)           # fresh players
    state = net.begin(memory)                            # what a rollout carries step to step
    dist, value, state = net.step(state, obs, start)     # obs [M, *obs_shape], start [M] bool
    memory = net.end(memory, state, obs_seq, starts)     # the memory after the rollout
    dist, values = net.forward_sequence(memory, obs_seq, starts)   # obs_seq [M, T, ...], starts [M, T]

``start[m]`` is True where ``obs[m]`` is the first observation of an episode: the memory
of that row is cleared first (``start=None``: no row starts at this step). ``value`` / ``values`` are None unless the network has a
value head (``net.has_value_head``; then ``net.value_parameters()`` are the head's).
:func:`build_networks` picks the networks of a game from a configuration section.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from torch import nn

from trainers.networks.recurrent import Actor, Critic
from trainers.networks.vision import VisionNet

__all__ = ["build_networks", "is_image_game"]


def is_image_game(game: Any) -> bool:
    """Whether ``game``'s observations are uint8 images ``[H, W, C]`` (the vision network's input)."""
    space = game.observation_space()
    return len(space.shape) == 3 and space.dtype == np.uint8


def build_networks(game: Any, cfg: Any, critic: bool = True) -> tuple[nn.Module, nn.Module | None]:
    """The actor and the critic of ``game`` (a game's spec: ``social_dilemmas.spec``) from the
    network fields of ``cfg`` (an on-policy section: ``hidden``, ``actor_recurrent``,
    ``value_norm``, ``critic_kind``, ``critic_time``, ``log_std_min`` / ``log_std_max`` / ``atanh_limit``, ``vision_*``).

    Vector observations: a GRU :class:`~trainers.networks.recurrent.Actor` (feed-forward with
    ``actor_recurrent=False``) and, with ``critic``, a separate GRU
    :class:`~trainers.networks.recurrent.Critic`; with ``shared_encoder`` the actor has a
    value head on its encoder instead, and there is no separate critic (None). Image observations: one
    :class:`~trainers.networks.vision.VisionNet` with its value head, and no separate critic
    (None)."""
    shape = tuple(game.observation_space().shape)
    if is_image_game(game):
        height, width, channels = shape
        if height != width:
            raise ValueError(f"the vision network needs square channels-last images, the game gives {shape}; "
                             "make the view with channels_first=False")
        net = VisionNet(cfg.vision_memory, cfg.hidden, cfg.vision_layers, cfg.vision_heads, cfg.vision_context,
                        tuple(cfg.vision_channels), image=height, n_actions=int(game.action_space().n),
                        in_channels=channels)
        return net, None
    obs_dim = math.prod(shape)
    discrete = game.action_kind == "discrete"
    if discrete:
        actor = Actor(obs_dim, cfg.hidden, n_actions=int(game.action_space().n), recurrent=cfg.actor_recurrent,
                      value_head=cfg.shared_encoder, table=getattr(cfg, "actor_table", False))
    else:
        actor = Actor(obs_dim, cfg.hidden, action_dim=game.action_shape[0], recurrent=cfg.actor_recurrent,
                      log_std_bounds=(cfg.log_std_min, cfg.log_std_max), atanh_limit=cfg.atanh_limit,
                      value_head=cfg.shared_encoder)
    if cfg.shared_encoder or not critic:  # shared_encoder: the critic is the actor's value head
        return actor, None
    n_q = int(game.action_space().n) if discrete and cfg.critic_kind == "q" else None
    return actor, Critic(obs_dim, cfg.hidden, mlp_layers=1 if discrete else 2, value_norm=cfg.value_norm,
                         n_actions=n_q, time_input=cfg.critic_time)
