"""Reference measurement: JaxMARL's Coin Game, vmapped and jitted, on the CPU.

Run by ``env_throughput.py`` with the interpreter of the benchmark environment
(``.venv-bench``, see ``make bench``); prints one JSON line.
"""

import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
from jaxmarl.environments.coin_game.coin_game import CoinGame  # noqa: E402


def main(batch: int, seconds: float) -> None:
    env = CoinGame(num_inner_steps=16, num_outer_steps=1)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    _, state = jax.vmap(env.reset)(keys)

    @jax.jit
    def step(key, state):
        key, k_act, k_env = jax.random.split(key, 3)
        acts = jax.random.randint(k_act, (2, batch), 0, 5)
        env_keys = jax.random.split(k_env, batch)
        obs, state, rew, done, info = jax.vmap(env.step)(env_keys, state, {"0": acts[0], "1": acts[1]})
        return key, state, obs, rew

    key = jax.random.PRNGKey(1)
    key, state, obs, rew = step(key, state)
    jax.block_until_ready(obs)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            key, state, obs, rew = step(key, state)
        jax.block_until_ready(obs)
        n += 10
    dt = (time.perf_counter() - t0) / n
    print(json.dumps({"batch": batch, "steps_per_s": batch / dt, "us_per_step": dt * 1e6, "jax": jax.__version__}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 4096, float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)
