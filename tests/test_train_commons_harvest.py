"""Proximal AdAlign on Commons Harvest Open (trainers.commons_harvest): the networks' shapes,
causality and context, step-by-step rollout equal to the training pass, and a tiny training
run with resume. Skipped as a whole when Melting Pot is not installed."""

from __future__ import annotations

import csv
import importlib.util
import json

import pytest
import torch

if importlib.util.find_spec("meltingpot") is None or importlib.util.find_spec("shimmy") is None:
    pytest.skip("Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot)", allow_module_level=True)

from trainers.commons_harvest import CommonsHarvestNet, train_commons_harvest  # noqa: E402
from trainers.config import preset  # noqa: E402

TINY = dict(width=16, layers=2, heads=2, context=4, channels=(4, 8, 8))
ARCHS = ("transformer", "gru")


def net(arch: str) -> CommonsHarvestNet:
    torch.manual_seed(0)
    return CommonsHarvestNet(arch, **TINY).eval()


def obs(M: int, T: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (M, T, 88, 88, 3), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("arch", ARCHS)
@torch.no_grad()
def test_shapes_and_step_by_step_rollout_equals_the_training_pass(arch):
    model = net(arch)
    M, T = 3, 6
    o = obs(M, T)
    starts = torch.zeros(M, T, dtype=torch.bool)
    starts[:, 0] = True
    starts[1, 3] = True  # a game resets inside the chunk
    memory = model.initial_memory(M, "cpu")
    logits, values = model.forward_chunk(memory, o, starts)
    assert logits.shape == (M, T, 8) and values.shape == (M, T)
    for chunk in range(2):  # the memory carried across chunks gives the same outputs too
        rstate = model.rollout_state(memory)
        for t in range(T):
            lg, v, rstate = model.step(rstate, o[:, t], starts[:, t])
            assert lg.shape == (M, 8) and v.shape == (M,)
            torch.testing.assert_close(lg, logits[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(v, values[:, t], atol=1e-5, rtol=1e-4)
        memory = model.next_memory(memory, rstate, o, starts)
        o, starts = obs(M, T, seed=chunk + 1), torch.zeros(M, T, dtype=torch.bool)
        logits, values = model.forward_chunk(memory, o, starts)


@torch.no_grad()
def test_transformer_is_causal_and_sees_only_its_context_of_the_current_episode():
    model = net("transformer")
    C = TINY["context"]
    M, T = 2, 10
    o = obs(M, T)
    starts = torch.zeros(M, T, dtype=torch.bool)
    memory = model.initial_memory(M, "cpu")
    base, _ = model.forward_chunk(memory, o, starts)
    future = o.clone()
    future[:, 6:] = obs(M, T - 6, seed=5)
    out, _ = model.forward_chunk(memory, future, starts)
    torch.testing.assert_close(out[:, :6], base[:, :6])  # steps before 6 do not see the change
    assert not torch.allclose(out[:, 6:], base[:, 6:])
    old = o.clone()
    old[:, 2] = obs(M, 1, seed=6)[:, 0]  # step 2 is inside the context of steps 2..2+C-1 only
    out, _ = model.forward_chunk(memory, old, starts)
    torch.testing.assert_close(out[:, :2], base[:, :2])
    torch.testing.assert_close(out[:, 2 + C:], base[:, 2 + C:])
    assert not torch.allclose(out[:, 2:2 + C], base[:, 2:2 + C])
    reset = starts.clone()
    reset[:, 4] = True  # a new episode at step 4: step 3 (inside the window) no longer matters
    a, _ = model.forward_chunk(memory, o, reset)
    other = o.clone()
    other[:, 3] = obs(M, 1, seed=7)[:, 0]
    b, _ = model.forward_chunk(memory, other, reset)
    torch.testing.assert_close(a[:, 4:], b[:, 4:])


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_training_run_writes_outputs_changes_the_weights_and_resumes(tmp_path):
    from trainers.adalign import train

    cfg = preset("commons_harvest_open", batch_size=2, max_steps=4, iterations=2, device="cpu", ppo_epochs=2,
                 ppo_minibatches=2, actor_lr=1e-3, critic_lr=1e-3, tensorboard=False, env_kwargs={"max_steps": 6})
    torch.manual_seed(cfg.seed)
    before = CommonsHarvestNet(**{**TINY, "arch": "gru"}).state_dict()
    trainer = train_commons_harvest(cfg, tmp_path, progress=False, network={**TINY, "arch": "gru"})
    assert trainer.iteration == 2
    assert [r["iteration"] for r in rows(tmp_path / "metrics.csv")] == ["1", "2"]
    first = rows(tmp_path / "metrics.csv")[1]
    for key in ("rollout/reward_per_step", "train/loss", "train/critic_loss", "time/env_steps_per_s"):
        assert float(first[key]) == float(first[key])  # present and not NaN
    assert float(first["rollout/apples_per_episode"]) >= 0  # the 6-step episodes ended in update 2
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["iteration"] == 2 and "optimizer" in ckpt
    assert any(not torch.equal(before[k], v) for k, v in ckpt["model"].items())
    assert json.loads((tmp_path / "network.json").read_text())["arch"] == "gru"
    # resume through the generic entry point, which routes this env here
    resumed = train(out=tmp_path, resume=True, iterations=3, progress=False)
    assert resumed.iteration == 3 and resumed.net.arch == "gru"
    assert [r["iteration"] for r in rows(tmp_path / "metrics.csv")] == ["1", "2", "3"]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["iteration"] == 3


def test_transformer_training_step_runs(tmp_path):
    cfg = preset("commons_harvest_open", batch_size=1, max_steps=4, iterations=1, device="cpu", ppo_epochs=1,
                 tensorboard=False, env_kwargs={"max_steps": 3})
    trainer = train_commons_harvest(cfg, tmp_path, progress=False, network=TINY)
    assert trainer.iteration == 1 and trainer.net.arch == "transformer"
    assert trainer.memory[0].shape == (7, TINY["context"] - 1, 88, 88, 3)
