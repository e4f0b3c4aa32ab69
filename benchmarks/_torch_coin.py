"""Measurement child of ``compare_jaxmarl.py``: our batched Coin Game (``make_vec``, the
trainers' fast path ``validate=False``) on the CPU at one batch size, timed like
``_jaxmarl_coin.py`` (random actions drawn inside the timed loop, one warm-up step);
prints one JSON line.

    python benchmarks/_torch_coin.py BATCH SECONDS [OBS_DTYPE] [THREADS]

``OBS_DTYPE`` "default" passes none to ``make_vec`` (for checkouts older than the option).
"""

import json
import sys
import time

import torch

import social_dilemmas


def main(batch: int, seconds: float, obs_dtype: str, threads: int) -> None:
    torch.set_num_threads(threads)
    kwargs = {} if obs_dtype == "default" else {"obs_dtype": obs_dtype}
    vec = social_dilemmas.make_vec("coin_game", batch, validate=False, **kwargs)
    vec.reset(seed=0)
    gen = torch.Generator().manual_seed(1)

    def step():
        return vec.step(torch.randint(4, (batch, 2), generator=gen))

    step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            step()
        n += 10
    dt = (time.perf_counter() - t0) / n
    print(json.dumps({"batch": batch, "steps_per_s": batch / dt, "us_per_step": dt * 1e6, "obs_dtype": obs_dtype,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "float32",
         int(sys.argv[4]) if len(sys.argv) > 4 else 1)
