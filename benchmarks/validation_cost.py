"""Cost of validate=True vs the fast path validate=False on make_vec (one thread, CPU).

Interleaved: each repeat times both modes back to back (order alternating), so load
from other processes hits both alike. Prints median and range of microseconds per step."""
import statistics
import sys
import time

import torch

import social_dilemmas

torch.set_num_threads(1)
name = sys.argv[1] if len(sys.argv) > 1 else "coin_game"
B = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
steps, repeats = 200, 15
vecs = {v: social_dilemmas.make_vec(name, B, validate=v) for v in (True, False)}
game = vecs[True].game
gen = torch.Generator().manual_seed(0)
if game.action_kind == "discrete":
    acts = [torch.randint(int(game.action_space().n), (B, 2), generator=gen) for _ in range(steps)]
else:
    acts = [5.0 * torch.rand((B, 2, *game.action_shape), generator=gen) for _ in range(steps)]
for v in vecs.values():
    v.reset(seed=0)
    for a in acts[:20]:  # warm-up
        v.step(a)
times = {True: [], False: []}
for r in range(repeats):
    for mode in ((True, False) if r % 2 == 0 else (False, True)):
        v = vecs[mode]
        t0 = time.perf_counter()
        for a in acts:
            v.step(a)
        times[mode].append((time.perf_counter() - t0) / steps * 1e6)
for mode, label in ((False, "validate=False (fast path)"), (True, "validate=True (default)")):
    t = times[mode]
    print(f"{name} B={B} {label}: median {statistics.median(t):.1f} us/step, range {min(t):.1f}-{max(t):.1f}")
ratio = [a / b for a, b in zip(times[True], times[False])]
print(f"ratio validated/fast: median {statistics.median(ratio):.3f}, range {min(ratio):.3f}-{max(ratio):.3f}")
