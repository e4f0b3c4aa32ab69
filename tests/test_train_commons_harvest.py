"""Proximal AdAlign on Commons Harvest Open through the training core: the vision network's
shapes, causality and context, step-by-step rollout equal to the training pass, a tiny
training run with resume, and a checkpoint (network sizes from the command line) as a
player: Gymnasium opponent, scenario focal player, wrong games refused, the rollout's
distribution, a checkpoint of the first trainers. Skipped as a whole when Melting Pot is
not installed."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("meltingpot") is None or importlib.util.find_spec("shimmy") is None:
    pytest.skip("Melting Pot is not installed (shimmy[meltingpot], dm-meltingpot)", allow_module_level=True)

from trainers import train  # noqa: E402
from trainers.networks.vision import VisionNet  # noqa: E402
from trainers.players import load_player  # noqa: E402
from trainers.policy import AgentPolicy  # noqa: E402
from trainers.presets import make_config  # noqa: E402

TINY = dict(width=16, layers=2, heads=2, context=4, channels=(4, 8, 8))
#: the same network as settings of the configuration
TINY_CONFIG = dict(hidden=16, vision_layers=2, vision_heads=2, vision_context=4, vision_channels=(4, 8, 8))
ARCHS = ("gtrxl", "transformer", "gru")


def net(arch: str) -> VisionNet:
    torch.manual_seed(0)
    return VisionNet(arch, **TINY).eval()


def logits_of(model: VisionNet, memory, o: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    return model.forward_sequence(memory, o, starts)[0].logits


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
    dist, values = model.forward_sequence(memory, o, starts)
    assert dist.logits.shape == (M, T, 8) and values.shape == (M, T)
    for chunk in range(2):  # the memory carried across chunks gives the same outputs too
        rstate = model.begin(memory)
        for t in range(T):
            step, v, rstate = model.step(rstate, o[:, t], starts[:, t])
            assert step.logits.shape == (M, 8) and v.shape == (M,)
            torch.testing.assert_close(step.logits, dist.logits[:, t], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(v, values[:, t], atol=1e-5, rtol=1e-4)
        memory = model.end(memory, rstate, o, starts)
        o, starts = obs(M, T, seed=chunk + 1), torch.zeros(M, T, dtype=torch.bool)
        dist, values = model.forward_sequence(memory, o, starts)


@torch.no_grad()
def test_transformer_is_causal_and_sees_only_its_context_of_the_current_episode():
    model = net("transformer")
    C = TINY["context"]
    M, T = 2, 10
    o = obs(M, T)
    starts = torch.zeros(M, T, dtype=torch.bool)
    memory = model.initial_memory(M, "cpu")
    base = logits_of(model, memory, o, starts)
    future = o.clone()
    future[:, 6:] = obs(M, T - 6, seed=5)
    out = logits_of(model, memory, future, starts)
    torch.testing.assert_close(out[:, :6], base[:, :6])  # steps before 6 do not see the change
    assert not torch.allclose(out[:, 6:], base[:, 6:])
    old = o.clone()
    old[:, 2] = obs(M, 1, seed=6)[:, 0]  # step 2 is inside the context of steps 2..2+C-1 only
    out = logits_of(model, memory, old, starts)
    torch.testing.assert_close(out[:, :2], base[:, :2])
    torch.testing.assert_close(out[:, 2 + C:], base[:, 2 + C:])
    assert not torch.allclose(out[:, 2:2 + C], base[:, 2:2 + C])
    reset = starts.clone()
    reset[:, 4] = True  # a new episode at step 4: step 3 (inside the window) no longer matters
    a = logits_of(model, memory, o, reset)
    other = o.clone()
    other[:, 3] = obs(M, 1, seed=7)[:, 0]
    b = logits_of(model, memory, other, reset)
    torch.testing.assert_close(a[:, 4:], b[:, 4:])


@torch.no_grad()
def test_gtrxl_memory_carries_the_previous_segments_states_and_stops_at_episode_starts():
    """GTrXL: each layer attends over the memory (the last context - 1 steps' stored inputs,
    carried across rollouts) and the segment; the rollout's logits equal the update's on the
    same data across chunks and episode starts; an episode start hides everything before it."""
    torch.manual_seed(1)
    model = VisionNet("gtrxl", **{**TINY, "context": 5}).eval()
    M, T = 4, 6
    memory = model.initial_memory(M, "cpu")
    assert memory[0].shape == (M, TINY["layers"], 4, TINY["width"]) and bool((memory[1] == -1).all())
    chunks = [obs(M, T, seed=s) for s in range(3)]
    starts = [torch.zeros(M, T, dtype=torch.bool) for _ in chunks]
    starts[0][:, 0] = True
    starts[1][1, 0] = True  # an episode starts at a chunk boundary
    starts[1][2, 4] = True  # and inside a chunk
    starts[2][3, 1] = True
    whole = torch.cat(chunks, 1)
    whole_starts = torch.cat(starts, 1)
    rstate, seen = model.begin(memory), []
    for o, st in zip(chunks, starts):
        seq = logits_of(model, memory, o, st)
        for t in range(T):
            dist, _, rstate = model.step(rstate, o[:, t], st[:, t])
            torch.testing.assert_close(dist.logits, seq[:, t], atol=1e-5, rtol=1e-4)
        seen.append(seq)
        memory = model.end(memory, rstate, o, st)
        rstate = model.begin(memory)
    # the memory is that of one long segment: the same logits as the three chunks run as one
    torch.testing.assert_close(torch.cat(seen, 1), logits_of(model, model.initial_memory(M, "cpu"), whole, whole_starts),
                               atol=1e-5, rtol=1e-4)
    # after the start in row 2 at step 10, the earlier steps do not matter; before it they do
    other = whole.clone()
    other[:, :10] = obs(M, 10, seed=9)
    changed = logits_of(model, model.initial_memory(M, "cpu"), other, whole_starts)
    base = torch.cat(seen, 1)
    torch.testing.assert_close(changed[2, 10:], base[2, 10:])
    assert not torch.allclose(changed[0, 10:12], base[0, 10:12])
    # reach: layers x (context - 1) steps back through the layers' memory, no further
    far = whole.clone()
    far[0, 0] = obs(1, 1, seed=11)[0, 0]
    moved = logits_of(model, model.initial_memory(M, "cpu"), far, whole_starts)
    reach = TINY["layers"] * 4
    assert not torch.allclose(moved[0, reach], base[0, reach])
    torch.testing.assert_close(moved[0, reach + 1:], base[0, reach + 1:])


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def tiny(**kw):
    return make_config("commons_harvest_open", **{"num_games": 2, "rollout_steps": 4, "max_steps": 6, "iterations": 2,
                                                   "device": "cpu", "ppo_epochs": 2, "ppo_minibatches": 2, "actor_lr": 1e-3,
                                                   "critic_lr": 1e-3, "tensorboard": False, **TINY_CONFIG, **kw})


def test_training_run_writes_outputs_changes_the_weights_and_resumes(tmp_path):
    cfg = tiny(vision_memory="gru")
    torch.manual_seed(cfg.run.seed)
    before = VisionNet(**{**TINY, "arch": "gru"}).state_dict()
    trainer = train(cfg, tmp_path, progress=False)
    assert trainer.iteration == 2
    assert [r["iteration"] for r in rows(tmp_path / "metrics.csv")] == ["1", "2"]
    first = rows(tmp_path / "metrics.csv")[1]
    for key in ("rollout/reward_per_step", "train/loss", "train/critic_loss", "time/env_steps_per_s"):
        assert float(first[key]) == float(first[key])  # present and not NaN
    assert float(first["rollout/episode_return"]) >= 0  # the 6-step episodes ended in update 2
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["iteration"] == 2 and ckpt["algo"] == "proximal_adalign" and "actor_opt" in ckpt["state"]
    assert any(not torch.equal(before[k], v) for k, v in ckpt["state"]["actor"].items())
    assert json.loads((tmp_path / "config.json").read_text())["algorithm"]["vision_memory"] == "gru"
    # resume through the one entry point: new episodes (the worker games cannot be saved), the same network
    resumed = train(out=tmp_path, resume=True, iterations=3, progress=False)
    assert resumed.iteration == 3 and resumed.actor.arch == "gru"
    assert [r["iteration"] for r in rows(tmp_path / "metrics.csv")] == ["1", "2", "3"]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["iteration"] == 3


def test_transformer_training_step_runs_and_adalign_trains_the_value_head_too(tmp_path):
    trainer = train(tiny(num_games=1, iterations=1, ppo_epochs=1, max_steps=3), tmp_path / "p", progress=False)
    assert trainer.iteration == 1 and trainer.actor.arch == "gtrxl"  # the default
    assert trainer.rollouts.memory[0].shape == (7, TINY["layers"], TINY["context"] - 1, TINY["width"])
    cfg = make_config("commons_harvest_open", algo="adalign", num_games=1, iterations=1, max_steps=3, rollout_steps=4,
                      device="cpu", tensorboard=False, **TINY_CONFIG, vision_memory="transformer")
    trainer = train(cfg, tmp_path / "a", progress=False)
    assert trainer.rollouts.memory[0].shape == (7, TINY["context"] - 1, 88, 88, 3)  # the window's images
    row = rows(tmp_path / "a" / "metrics.csv")[0]
    assert float(row["train/critic_loss"]) >= 0 and float(row["train/loss_aa"]) == float(row["train/loss_aa"])


def test_periodic_evaluation_plays_the_agent_in_every_seat_as_its_checkpoint_does(tmp_path):
    from social_dilemmas.commons_harvest import self_play

    cfg = tiny(iterations=2, max_steps=12, eval_every=1, eval_games=2, env_kwargs={"resize": 36})
    train(cfg, tmp_path, progress=False)
    logged = rows(tmp_path / "metrics.csv")
    keys = ("per_capita_return", "final_apples", "final_patches_alive", "mean_apples", "mean_patches_alive")
    for row in logged:
        assert all(float(row[f"eval/{k}"]) == float(row[f"eval/{k}"]) for k in keys)
        assert 0 <= float(row["eval/final_patches_alive"]) <= 6 and float(row["time/eval_s"]) > 0
    # the same episodes as the saved agent's self-play: the evaluation repeats exactly
    again = self_play(str(tmp_path / "checkpoint.pt"), episodes=2, max_steps=12, seed=0, resize=36).summary()
    assert {k: float(logged[-1][f"eval/{k}"]) for k in keys} == pytest.approx(again)
    # the progress example: the evaluations over training beside random play on the same episodes
    progress = _example("commons_harvest_progress")
    result = progress.main([str(tmp_path), "--out", str(tmp_path / "progress")])
    assert [e["iteration"] for e in result["curves"][tmp_path.name]] == [1, 2]
    assert result["random"] == self_play("random", episodes=2, max_steps=12, seed=0, resize=36).summary()
    with (tmp_path / "progress" / "progress.csv").open() as f:
        assert [r["run"] for r in csv.DictReader(f)] == [tmp_path.name] * 2 + ["random"]
    assert (tmp_path / "progress" / "progress.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="no evaluations: train with --eval-every"):
        (tmp_path / "plain").mkdir()
        (tmp_path / "plain" / "config.json").write_text((tmp_path / "config.json").read_text())
        progress.main([str(tmp_path / "plain")])
    with pytest.raises(SystemExit, match="is not a run folder"):
        progress.main([str(tmp_path / "nothing")])


def test_ppo_baseline_is_evaluated_in_every_seat_too(tmp_path):
    cfg = make_config("commons_harvest_open", algo="ppo", num_games=1, rollout_steps=4, max_steps=8, iterations=1,
                      device="cpu", tensorboard=False, eval_every=1, env_kwargs={"resize": 36})
    train(cfg, tmp_path, progress=False)
    row = rows(tmp_path / "metrics.csv")[-1]
    assert 0 <= float(row["eval/final_patches_alive"]) <= 6 and float(row["eval/per_capita_return"]) >= 0


def _example(name: str):
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parents[1] / "examples")
    sys.path.insert(0, folder)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(folder)


def test_image_games_refuse_what_their_network_cannot_do():
    with pytest.raises(ValueError, match="critic_warmup.*value head"):
        tiny(critic_warmup=2)
    with pytest.raises(ValueError, match="self_play_prob.*value head"):
        tiny(self_play_prob=0.5)
    with pytest.raises(ValueError, match="hidden.*divisible by vision_heads"):
        tiny(hidden=10, vision_heads=4)
    with pytest.raises(ValueError, match="vision_memory"):
        tiny(vision_memory="lstm")


def test_cpu_preset_is_a_small_gtrxl_and_bad_arch_names_list_the_allowed_ones():
    cfg = make_config("commons_harvest_open", fast=True)
    assert (cfg.algorithm.vision_memory, cfg.algorithm.hidden, cfg.run.env_kwargs) == ("gtrxl", 64, {"resize": 44})
    assert (cfg.run.eval_every, cfg.run.eval_games) == (150, 2)  # what the agent does to the commons, logged
    assert make_config("commons_harvest_open").algorithm.vision_memory == "gtrxl"  # the default network
    with pytest.raises(ValueError, match="arch = 'lstm' is invalid: allowed values are 'gtrxl', 'transformer', 'gru'"):
        VisionNet("lstm", **TINY)
    with pytest.raises(ValueError, match="vision_memory.*gtrxl, transformer, gru"):
        tiny(vision_memory="window")


# -- a checkpoint as a player -------------------------------------------------------------
CLI_NETWORK = dict(vision_memory="gtrxl", hidden=16, vision_layers=1, vision_heads=2, vision_context=3)


@pytest.fixture(scope="module")
def ch_run(tmp_path_factory):
    """A one-update run of a tiny GTrXL, trained through the command line."""
    from trainers.__main__ import main

    out = tmp_path_factory.mktemp("ch_run")
    network = [x for k, v in CLI_NETWORK.items() for x in ("--" + k.replace("_", "-"), str(v))]
    rc = main(["train", "--env", "commons_harvest_open", *network, "--num-games", "1", "--rollout-steps", "2",
               "--iterations", "1", "--ppo-epochs", "1", "--device", "cpu", "--no-tensorboard", "--no-progress",
               "--max-steps", "3", "--out", str(out)])
    assert rc == 0
    return out


def test_network_options_of_the_command_line_are_saved_and_rebuilt(ch_run):
    saved = json.loads((ch_run / "config.json").read_text())["algorithm"]
    assert {k: saved[k] for k in CLI_NETWORK} == CLI_NETWORK
    ckpt = torch.load(ch_run / "checkpoint.pt", weights_only=False)
    assert {k: ckpt["config"]["algorithm"][k] for k in CLI_NETWORK} == CLI_NETWORK
    policy = load_player(ch_run / "checkpoint.pt")
    assert isinstance(policy, AgentPolicy) and policy.obs_shape == (88, 88, 3)
    assert policy.net.arch == "gtrxl" and policy.net.width == 16 and policy.net.context == 3
    assert len(policy.net.core.layers) == 1 and policy.net.core.layers[0].heads == 2
    for k, v in ckpt["state"]["actor"].items():
        torch.testing.assert_close(policy.net.state_dict()[k], v)


def test_checkpoint_plays_the_gymnasium_view_as_the_opponent(ch_run):
    from social_dilemmas.commons_harvest import (
        CommonsHarvestSingleAgentEnv,
        CommonsHarvestSpec,
        ObsFormat,
        resolve_commons_harvest_player,
    )
    path = str(ch_run / "checkpoint.pt")
    env = CommonsHarvestSingleAgentEnv(opponent=path, max_steps=3)
    try:
        assert isinstance(env.opponent, AgentPolicy) and env.opponent.name == f"proximal_adalign:{ch_run.name}"
        first, _ = env.reset(seed=0)
        assert first.shape == (88, 88, 3)
        for t in range(3):
            _, _, terminated, truncated, info = env.step(1)
            assert len(info["opponent_rewards"]) == 6 and truncated == (t == 2) and not terminated
    finally:
        env.close()
    # a channels-first view of the same size takes the same images transposed; another size is refused
    chw = resolve_commons_harvest_player(path, CommonsHarvestSpec(obs_format=ObsFormat(channels_first=True)))
    last = resolve_commons_harvest_player(path, CommonsHarvestSpec())
    chw.greedy = last.greedy = True
    o = obs(3, 3)
    for t in range(3):
        assert torch.equal(chw.act(o[:, t].permute(0, 3, 1, 2)), last.act(o[:, t]))
    with pytest.raises(ValueError, match=r"\(88, 88, 3\).*\(1, 44, 44\)"):
        resolve_commons_harvest_player(path, CommonsHarvestSpec(obs_format=ObsFormat(44, True, True)))
    with pytest.raises(ValueError, match="takes observations"):
        last.act(torch.zeros(3, 44, 44, 3, dtype=torch.uint8))


def test_checkpoint_plays_the_focal_seats_of_a_scenario(ch_run, monkeypatch):
    """evaluate_scenario with the checkpoint's path, the scenario's bots replaced by a
    stand-in (the asset archive is optional): 5 focal seats, 3 steps, 1 apple per step."""
    import dm_env
    import numpy as np

    import social_dilemmas.commons_harvest as ch

    class StandIn:
        def __init__(self):
            self.t, self.actions = 0, []

        def _obs(self):
            return [{"RGB": np.full((88, 88, 3), 40 * i, np.uint8)} for i in range(5)]

        def reset(self):
            self.t = 0
            return dm_env.restart(self._obs())

        def step(self, actions):
            self.actions.append(actions)
            self.t += 1
            return (dm_env.termination if self.t == 3 else dm_env.transition)([1.0] * 5, self._obs())

        def close(self):
            pass

    stand_ins = []
    monkeypatch.setattr(ch.scenarios, "_missing_bots", lambda scenario: [])  # where evaluate_scenario looks it up
    build = lambda name: stand_ins.append(StandIn()) or stand_ins[-1]  # noqa: E731
    monkeypatch.setattr(ch.import_meltingpot().scenario, "build", build)
    result = ch.evaluate_scenario(str(ch_run / "checkpoint.pt"), "commons_harvest__open_0", episodes=1, seed=0)
    assert result.per_episode == [3.0]
    assert len(stand_ins[0].actions) == 3 and all(len(a) == 5 and set(a) <= set(range(8)) for a in stand_ins[0].actions)


def test_a_checkpoint_of_another_game_is_an_error_naming_both_games(ch_run, tmp_path):
    import social_dilemmas
    from social_dilemmas.commons_harvest import CommonsHarvestSpec, resolve_commons_harvest_player

    load_policy = load_player
    ipd_path = tmp_path / "checkpoint.pt"
    train(make_config("ipd", num_games=8, iterations=1, device="cpu", tensorboard=False), tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds an agent for ipd, not for commons_harvest_open"):
        load_policy(ipd_path, CommonsHarvestSpec())
    with pytest.raises(ValueError, match="holds an agent for ipd, not for commons_harvest_open"):
        resolve_commons_harvest_player(str(ipd_path), CommonsHarvestSpec())
    with pytest.raises(ValueError, match="holds an agent for commons_harvest_open, not for ipd"):
        load_policy(ch_run / "checkpoint.pt", social_dilemmas.make_game("ipd"))
    with pytest.raises(ValueError, match="holds an agent for commons_harvest_open, not for coin_game"):
        social_dilemmas.policies.resolve_player(str(ch_run / "checkpoint.pt"), social_dilemmas.make_game("coin_game"))


def test_greedy_player_is_deterministic_and_sampling_follows_the_generator(ch_run):
    load_policy = load_player
    o = obs(4, 5)
    greedy = load_policy(ch_run / "checkpoint.pt", greedy=True)
    runs = []
    for _ in range(2):
        greedy.reset(4)
        runs.append(torch.stack([greedy.act(o[:, t]) for t in range(5)]))
    assert torch.equal(runs[0], runs[1]) and runs[0].dtype == torch.int64 and runs[0].shape == (5, 4)
    greedy.reset(4)
    assert torch.equal(torch.stack([greedy.distribution(o[:, t]).logits.argmax(-1) for t in range(5)]), runs[0])
    sampler = load_policy(ch_run / "checkpoint.pt")
    runs = []
    for _ in range(2):
        sampler.reset(4, "cpu", torch.Generator().manual_seed(3))
        runs.append(torch.stack([sampler.act(o[:, t]) for t in range(5)]))
    assert torch.equal(runs[0], runs[1]) and bool(((runs[0] >= 0) & (runs[0] < 8)).all())


@pytest.mark.parametrize("arch", ARCHS)
@torch.no_grad()
def test_player_gives_the_training_pass_distribution_across_resets(arch):
    model = net(arch)
    M, T = 3, 7
    o = obs(M, T)
    starts = torch.zeros(M, T, dtype=torch.bool)
    starts[:, 0] = True
    starts[1, 3] = starts[2, 5] = True  # games reset mid-way
    expected = logits_of(model, model.initial_memory(M, "cpu"), o, starts)
    policy = AgentPolicy(model, obs_shape=(88, 88, 3))
    policy.reset(M)
    for t in range(T):
        if t:
            policy.reset_envs(starts[:, t])  # outside inference mode, after an act inside it
        with torch.inference_mode():
            logits = policy.distribution(o[:, t]).logits
        torch.testing.assert_close(logits, expected[:, t], atol=1e-5, rtol=1e-4)


def test_player_from_the_checkpoint_gives_the_trainer_rollout_distribution(ch_run):
    """The trainer's own rollouts (memory across chunks, an episode end inside) with the
    checkpoint's weights: the player gives the log-probabilities they recorded."""
    from trainers.algorithms.proximal_adalign import ProximalAdAlign
    from trainers.presets import load_config

    ckpt = torch.load(ch_run / "checkpoint.pt", weights_only=False)
    trainer = ProximalAdAlign(load_config(ch_run / "config.json"))  # rollouts of 2 steps, episodes of 3
    try:
        trainer.actor.load_state_dict(ckpt["state"]["actor"])
        batches = [trainer.rollouts.collect() for _ in range(2)]
    finally:
        trainer.close()
    policy = load_player(ch_run / "checkpoint.pt")
    policy.reset(batches[0].obs.shape[0])
    seen_reset = False
    for i, batch in enumerate(batches):
        for t in range(batch.obs.shape[1]):
            if i or t:
                policy.reset_envs(batch.starts[:, t])
                seen_reset |= bool(batch.starts[:, t].any())
            taken = policy.distribution(batch.obs[:, t]).log_prob(batch.actions[:, t])
            torch.testing.assert_close(taken, batch.log_probs[:, t], atol=1e-5, rtol=1e-4)
    assert seen_reset


def test_a_checkpoint_of_the_first_trainers_plays_as_it_did():
    """tests/data/legacy/commons_harvest: written by the first trainers (format 1, a GRU
    network on 44-pixel images); the player gives the probabilities and samples that code gave."""
    from social_dilemmas.commons_harvest import CommonsHarvestSpec, ObsFormat

    legacy = Path(__file__).parent / "data" / "legacy"
    expected = json.loads((legacy / "expected.json").read_text())["commons_harvest"]
    g = torch.Generator().manual_seed(0)
    for _ in range(4):  # the IPD probes drew four rounds from the same generator first
        torch.randint(0, 4, (5,), generator=g)
    o = [torch.randint(0, 256, (3, 44, 44, 3), generator=g, dtype=torch.uint8) for _ in range(3)]
    game = CommonsHarvestSpec(3, ObsFormat(44))
    policy = load_player(legacy / "commons_harvest" / "checkpoint.pt", game)
    assert policy.net.arch == "gru" and policy.obs_shape == (44, 44, 3)
    policy.reset(3)
    for x, probs in zip(o, expected["probs"]):
        torch.testing.assert_close(policy.distribution(x).probs, torch.tensor(probs), atol=1e-5, rtol=1e-4)
    sampler = load_player(legacy / "commons_harvest" / "checkpoint.pt", game)
    sampler.reset(3, "cpu", torch.Generator().manual_seed(5))
    assert [sampler.act(x).tolist() for x in o] == expected["sampled"]
