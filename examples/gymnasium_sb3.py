"""Gymnasium single-agent view + Stable-Baselines3 PPO: learn the IPD against a scripted opponent.

``gymnasium.make("social_dilemmas/IPD-v0", opponent=...)`` is an ordinary single-agent
Gymnasium env: you are ``player_0`` and the opponent (a scripted player's name, a
callable ``obs -> action``, a ``Policy`` or a saved player's path) plays ``player_1``.
SB3 wants its own ``VecEnv``, so the env is built with SB3's ``make_vec_env``
(``gymnasium.make_vec`` gives a Gymnasium ``VectorEnv``, which SB3 does not accept).

For each opponent a PPO agent is trained from scratch, then evaluated on fresh episodes:
mean reward per step and how often it cooperates. Against ``tit_for_tat`` defection is
punished on the next round, so the agent learns to cooperate (about -1 per step);
against ``always_cooperate`` defection is free, so it learns to defect (0 per step).

    python examples/gymnasium_sb3.py
    python examples/gymnasium_sb3.py --steps 16384 --opponents tit_for_tat grim_trigger always_cooperate
"""

from __future__ import annotations

import argparse

import gymnasium
import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger

import social_dilemmas  # noqa: F401  (registers social_dilemmas/IPD-v0 with Gymnasium)

ENV_ID = "social_dilemmas/IPD-v0"


def train(opponent: str, steps: int, num_envs: int, seed: int) -> PPO:
    venv = make_vec_env(ENV_ID, n_envs=num_envs, seed=seed, env_kwargs={"opponent": opponent})
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=128, learning_rate=3e-3, gamma=0.99,
                ent_coef=0.0, seed=seed, device="cpu", verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # else SB3 makes an empty log folder in /tmp per run
    return model.learn(total_timesteps=steps)


def evaluate(model: PPO, opponent: str, episodes: int, seed: int) -> tuple[float, float]:
    """Mean reward per step and the fraction of cooperative moves (action 0) of ``model``."""
    env = gymnasium.make(ENV_ID, opponent=opponent)
    rewards, cooperated = [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + 1000 + episode)  # games not seen in training
        done = False
        while not done:
            action, _ = model.predict(obs, deterministic=False)
            obs, reward, terminated, truncated, info = env.step(int(action))
            rewards.append(reward)
            cooperated.append(int(action) == 0)
            done = terminated or truncated
    env.close()
    return float(np.mean(rewards)), float(np.mean(cooperated))


def main(argv: list[str] | None = None) -> None:
    description, _, epilog = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--opponents", nargs="+", default=["tit_for_tat", "always_cooperate"],
                        help="scripted IPD players: always_cooperate, always_defect, random, tit_for_tat, grim_trigger")
    parser.add_argument("--steps", type=int, default=4096, help="PPO training steps per opponent")
    parser.add_argument("--num-envs", type=int, default=8, help="parallel envs of SB3's VecEnv")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    results = {}
    for opponent in args.opponents:
        model = train(opponent, args.steps, args.num_envs, args.seed)
        reward, coop = evaluate(model, opponent, args.eval_episodes, args.seed)
        results[opponent] = coop
        print(f"PPO vs {opponent:<17} reward per step {reward:+.3f}   cooperates {coop:.0%} of moves")
    if {"tit_for_tat", "always_cooperate"} <= results.keys():
        print(f"cooperation against tit_for_tat {results['tit_for_tat']:.0%}, "
              f"against always_cooperate {results['always_cooperate']:.0%}")


if __name__ == "__main__":
    main()
