"""PettingZoo quick start: every game as a standard PettingZoo ``ParallelEnv``.

For each game: make it with ``pettingzoo.make("parallel", id)``, reset it with a seed,
play until the episode ends (random actions sampled from the action spaces, or scripted
players), and print each agent's return. With ``--render`` the episode is drawn with
``render_mode="rgb_array"`` and written to a video by ``renderers.video.write_video``.

    python examples/pettingzoo_quickstart.py                        # every game, random actions
    python examples/pettingzoo_quickstart.py --env ipd --players tit_for_tat always_defect
    python examples/pettingzoo_quickstart.py --env coin_game --render coin.gif

With several games, ``--render out.gif`` writes one file per game (``out_ipd.gif``, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pettingzoo
import torch

import social_dilemmas  # registers the games with PettingZoo and Gymnasium
from renderers.video import write_video
from social_dilemmas.policies import resolve_player


def make_player(name: str, env, agent: str, seed: int):
    """A function ``obs -> action`` for ``agent``: ``random`` samples the action space,
    any other name is a scripted player of the game (``social_dilemmas.scripted_names``)."""
    if name == "random":
        space = env.action_space(agent)
        space.seed(seed)
        return lambda obs: space.sample()
    policy = resolve_player(name, env.game)  # the batched policy interface: [B, *obs] -> [B, *action]
    policy.reset(1, "cpu", torch.Generator().manual_seed(seed))

    def act(obs):
        action = policy.act(torch.as_tensor(obs)[None])[0]
        return int(action) if env.game.action_kind == "discrete" else action.numpy()

    return act


def play(env_name: str, players: list[str], seed: int, render: Path | None) -> dict[str, float]:
    env = pettingzoo.make("parallel", social_dilemmas.ENV_IDS[env_name],
                          render_mode="rgb_array" if render else None)
    obs, infos = env.reset(seed=seed)
    act = {a: make_player(p, env, a, seed + i) for i, (a, p) in enumerate(zip(env.possible_agents, players))}
    returns = {a: 0.0 for a in env.agents}
    frames = [env.render()] if render else []
    steps = 0
    while env.agents:  # empty once the episode is over
        actions = {a: act[a](obs[a]) for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)
        for a, r in rewards.items():
            returns[a] += r
        steps += 1
        if render:
            frames.append(env.render())
    env.close()
    line = ", ".join(f"{a} ({p}) {returns[a]:+.2f}" for a, p in zip(returns, players))
    print(f"{env_name:<12} {steps} steps; returns: {line}")
    if render:
        path = write_video(render, frames, fps=env.metadata["render_fps"])
        print(f"{'':<12} wrote {path} ({len(frames)} frames)")
    return returns


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", default=list(social_dilemmas.GAMES), choices=list(social_dilemmas.GAMES),
                        help="games to play (default: all)")
    parser.add_argument("--players", nargs=2, default=["random", "random"], metavar="PLAYER",
                        help="player_0 and player_1: random, or a scripted player such as always_cooperate, "
                        "always_defect, tit_for_tat (IPD)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", type=Path, default=None, metavar="OUT.gif",
                        help="write each episode to a .gif or .mp4")
    args = parser.parse_args(argv)

    for name in args.env:
        render = args.render
        if render is not None and len(args.env) > 1:
            render = render.with_name(f"{render.stem}_{name}{render.suffix}")
        play(name, args.players, args.seed, render)


if __name__ == "__main__":
    main()
