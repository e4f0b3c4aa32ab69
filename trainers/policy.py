"""A policy network as a player: the :class:`~social_dilemmas.policies.Policy` interface over the networks' memory interface.

The league, the recorder, the Gymnasium opponent and the trainers' own evaluations all
play trained agents through :class:`AgentPolicy`. Checkpoints become players in
:mod:`trainers.players`.
"""

from __future__ import annotations

import torch
from torch import nn

from social_dilemmas.policies import Policy
from trainers.networks.distributions import greedy_action, sample_action

__all__ = ["AgentPolicy"]


class AgentPolicy(Policy):
    """A policy network playing one seat of a batch of games, its memory kept per game.

    The network follows the memory interface of :mod:`trainers.networks`, so the player
    samples from exactly the distribution the rollouts sampled from. :meth:`reset` starts
    fresh games and :meth:`reset_envs` starts a new episode for the games of the mask;
    actions are drawn with the generator given to :meth:`reset` (one seeded 0 when none
    is), or with ``greedy=True`` the most likely action (the squashed mean for Negotiation).

    Arguments:
        net: the policy network.
        name: the player's name in tables and plots.
        greedy: play the most likely action instead of sampling.
        obs_shape: the observations' shape ``[*obs_shape]`` the player takes (checked, with
            an error naming the player; None: not checked).
        channels_first: the observations are images ``[C, H, W]`` to be given to the
            network channels last.
    """

    def __init__(self, net: nn.Module, name: str = "agent", greedy: bool = False,
                 obs_shape: tuple[int, ...] | None = None, channels_first: bool = False):
        self.net = net.eval()
        self.name = name
        self.greedy = greedy
        self.obs_shape = None if obs_shape is None else tuple(obs_shape)
        self.channels_first = channels_first
        self.state: tuple[torch.Tensor, ...] | None = None
        self.start: torch.Tensor | None = None
        self.generator: torch.Generator | None = None

    def reset(self, num_envs: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> None:
        super().reset(num_envs, device, generator)
        self.net.to(self.device)
        with torch.no_grad():
            self.state = self.net.begin(self.net.initial_memory(num_envs, self.device))
        self.start = torch.ones(num_envs, dtype=torch.bool, device=self.device)
        if generator is None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0)
        self.generator = generator

    def reset_envs(self, mask: torch.Tensor) -> None:
        if self.start is not None:  # not in place: start may be an inference tensor after act() under inference_mode
            self.start = self.start | mask.to(self.start.device)

    @torch.no_grad()
    def distribution(self, obs: torch.Tensor):
        """The action distribution of the seats for ``obs`` ``[B, *obs_shape]``; advances their memory by one step."""
        if self.obs_shape is not None and tuple(obs.shape[1:]) != self.obs_shape:
            raise ValueError(f"{self.name} takes observations [B, {', '.join(map(str, self.obs_shape))}] (the view it "
                             f"was trained on), got {list(obs.shape)}")
        if self.state is None or self.start is None or self.start.shape[0] != obs.shape[0]:
            self.reset(obs.shape[0], obs.device, self.generator if self.state is not None else None)
        x = obs.to(self.device)
        if x.dtype != torch.uint8:
            x = x.float()
        if self.channels_first:
            x = x.permute(0, 2, 3, 1)
        dist, _, self.state = self.net.step(self.state, x, self.start)
        self.start = torch.zeros_like(self.start)
        return dist

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        dist = self.distribution(obs)
        action = greedy_action(dist) if self.greedy else sample_action(dist, self.generator)
        return action.to(obs.device)
