"""Compact observations (``obs_dtype="uint8"``) of the batched view and the Coin Game's
looked-up torch rules: the same numbers as the float32 observations and the rules
themselves, correct spaces, clear errors, and the same training."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import social_dilemmas
from social_dilemmas import CoinGame
from trainers import train
from trainers.networks.recurrent import Actor, Critic
from trainers.presets import make_config


def play(name: str, obs_dtype, steps: int = 40, b: int = 37, **kwargs):
    """Observations (and final observations) of one seeded run of the batched view."""
    vec = social_dilemmas.make_vec(name, b, obs_dtype=obs_dtype, **kwargs)
    obs, _ = vec.reset(seed=5)
    gen = torch.Generator().manual_seed(2)
    out = [obs]
    for _ in range(steps):
        obs, rewards, _, _, info = vec.step(torch.randint(int(vec.action_space.n), (b, 2), generator=gen))
        out += [obs, rewards] + ([info["final_obs"]] if "final_obs" in info else [])
    return vec, out


@pytest.mark.parametrize("name", ["coin_game", "ipd"])
@pytest.mark.parametrize("obs_dtype", ["uint8", torch.uint8, np.uint8, np.dtype("uint8")])
def test_uint8_observations_hold_the_float32_values_and_their_space_says_uint8(name, obs_dtype):
    vec32, ref = play(name, None)
    vec8, got = play(name, obs_dtype)
    assert vec8.obs_dtype == torch.uint8 and vec32.obs_dtype == torch.float32
    assert len(got) == len(ref) and any(x.dtype == torch.uint8 for x in got)
    for a, b in zip(got, ref):
        assert a.dtype == (torch.uint8 if b.dtype == torch.float32 and b.dim() > 2 else b.dtype)
        assert torch.equal(a.float(), b)
    space8, space32 = vec8.observation_space, vec32.observation_space
    assert space32.dtype == np.float32 and space8.dtype == np.uint8 and space8.shape == space32.shape
    assert (space8.low == 0).all() and (space8.high == 1).all()
    assert all(space8.contains(o.numpy()) for o in got[0].flatten(0, 1))
    assert "obs_dtype='uint8'" in repr(vec8)
    # the single-game views keep their float32 spaces
    assert social_dilemmas.parallel_env(name).observation_space("player_0").dtype == np.float32


@pytest.mark.parametrize("size", [2, 4, 5, 9])
def test_looked_up_torch_rules_equal_the_rules_on_every_board_size(size):
    # 2 and 4: every table; 5: observations compared plane by plane; 9: the rules themselves (81 cells)
    game = CoinGame(size=size)
    rng = np.random.default_rng(size)
    b = 300
    noise = rng.random((b, game.reset_noise_size), dtype=np.float32)
    st_t, st_n = game.init(torch.from_numpy(noise)), game.init(noise)
    for step in range(25):
        np.testing.assert_array_equal(st_t.coin.numpy(), st_n.coin, err_msg=f"step {step}")
        np.testing.assert_array_equal(st_t.owner.numpy(), st_n.owner)
        np.testing.assert_array_equal(st_t.pos.numpy(), st_n.pos)
        obs_n = game.observe(st_n)
        for dtype in (torch.float32, torch.uint8):
            obs_t = game.observe_as(st_t, dtype)
            assert obs_t.dtype == dtype and obs_t.shape == (b, 2, 4, size, size)
            np.testing.assert_array_equal(obs_t.float().numpy(), obs_n)
        acts = rng.integers(0, 4, (b, 2))
        noise = rng.random((b, 1), dtype=np.float32)
        noise[:5] = np.float32(1) - np.float32(2**-24)  # the largest noise picks the last free cell
        st_t, r_t = game.transition(st_t, torch.from_numpy(acts), torch.from_numpy(noise))
        st_n, r_n = game.transition(st_n, acts, noise)
        np.testing.assert_array_equal(r_t.numpy(), r_n)
        assert st_t.pos.dtype == st_t.coin.dtype == st_t.owner.dtype == torch.int64


@pytest.mark.parametrize("bad", ["float16", "int8", "bool", torch.float64, "uint", None, 8, np.int32])
def test_a_bad_obs_dtype_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r"obs_dtype must be one of \['float32', 'uint8'\] for coin_game"):
        social_dilemmas.VectorGame(CoinGame(), 4, obs_dtype=bad)


def test_games_without_compact_observations_refuse_uint8_and_commons_harvest_refuses_float32():
    with pytest.raises(ValueError, match=r"obs_dtype must be one of \['float32'\] for negotiation"):
        social_dilemmas.make_vec("negotiation", 4, obs_dtype="uint8")
    assert social_dilemmas.make_vec("negotiation", 4, obs_dtype="float32").obs_dtype == torch.float32
    with pytest.raises(ValueError, match="obs_dtype must be None or 'uint8' for commons_harvest_open"):
        social_dilemmas.make_vec("commons_harvest_open", 1, obs_dtype="float32")


@pytest.mark.parametrize("discrete", [True, False])
def test_networks_give_the_same_numbers_for_uint8_and_float32_observations(discrete):
    torch.manual_seed(0)
    actor = Actor(36, 16, n_actions=4) if discrete else Actor(36, 16, action_dim=3)
    critic = Critic(36, 16, n_actions=4)
    obs8 = torch.randint(0, 2, (6, 5, 4, 3, 3), dtype=torch.uint8)
    obs32 = obs8.float()
    starts = torch.zeros(6, 5, dtype=torch.bool)
    starts[:, 0] = starts[2, 3] = True
    memory = actor.initial_memory(6, "cpu")
    d8, _ = actor.forward_sequence(memory, obs8, starts)
    d32, _ = actor.forward_sequence(memory, obs32, starts)
    assert torch.equal(d8.logits if discrete else d8.loc, d32.logits if discrete else d32.loc)
    s8, s32 = actor.step(actor.begin(memory), obs8[:, 0], starts[:, 0]), actor.step(actor.begin(memory), obs32[:, 0], starts[:, 0])
    assert torch.equal(s8[2][0], s32[2][0])
    assert torch.equal(actor(obs8[:, 0], memory[0])[0], actor(obs32[:, 0], memory[0])[0])
    time = torch.linspace(0, 1, 5).expand(6, 5)
    assert torch.equal(critic(obs8, time)[0], critic(obs32, time)[0])
    assert torch.equal(critic(obs8, time, vmappable=True)[0], critic(obs32, time, vmappable=True)[0])


@pytest.mark.parametrize("env", ["coin_game", "ipd"])
def test_training_on_uint8_observations_equals_training_on_float32(tmp_path, monkeypatch, env):
    cfg = make_config(env, algo="adalign", max_steps=10, num_games=16, iterations=2, hidden=16, tensorboard=False,
                      save_every=2, self_play_prob=0.5, snapshot_every=1)
    compact = train(cfg, tmp_path / "uint8", progress=False)
    assert compact.vec.obs_dtype == torch.uint8 and compact.rollouts.obs.dtype == torch.uint8
    make_vec = social_dilemmas.make_vec
    monkeypatch.setattr(social_dilemmas, "make_vec", lambda *a, **kw: make_vec(*a, **{**kw, "obs_dtype": "float32"}))
    plain = train(cfg, tmp_path / "float32", progress=False)
    assert plain.vec.obs_dtype == torch.float32
    for a, b in ((compact.actor, plain.actor), (compact.critic.net, plain.critic.net)):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)

    def rows(run):
        with open(tmp_path / run / "metrics.csv", newline="") as f:
            return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in csv.DictReader(f)]

    assert rows("uint8") == rows("float32") and len(rows("uint8")) == 2
