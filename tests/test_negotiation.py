"""Rules of the Negotiation Game (SPEC section 3), on the batched functions with hand-built states."""

from __future__ import annotations

import itertools

import gymnasium
import numpy as np
import pytest
import torch

from social_dilemmas.negotiation import Negotiation, NegotiationState


def make_state(v0, proposals=((0, 0, 0), (0, 0, 0)), t: int = 0, v1=None) -> NegotiationState:
    """One game whose values are ``v0`` and ``6 - v0`` (or ``v1``) and whose previous proposals are ``proposals``."""
    v0 = torch.tensor(v0, dtype=torch.float32)
    v1 = 6.0 - v0 if v1 is None else torch.tensor(v1, dtype=torch.float32)
    return NegotiationState(
        t=torch.tensor([t]),
        values=torch.stack((v0, v1))[None],
        proposals=torch.tensor(proposals, dtype=torch.float32)[None],
    )


def play(game: Negotiation, v0, p0, p1, noise=(0.0, 0.0, 0.0), v1=None):
    """One step of one game from values ``v0`` (and ``6 - v0``) with proposals ``p0``, ``p1``."""
    actions = torch.tensor([[p0, p1]], dtype=torch.float32)
    return game.transition(make_state(v0, v1=v1), actions, torch.tensor([noise], dtype=torch.float32))


# -- rewards ------------------------------------------------------------------------------
def test_both_asking_for_everything_split_every_item_in_half():
    game = Negotiation()
    shares = game.shares(torch.full((1, 2, 3), 5.0))
    assert shares.tolist() == [[[0.5] * 3] * 2]
    _, rewards = play(game, (1, 5, 5), (5, 5, 5), (5, 5, 5))
    # player_0: (1 + 5 + 5) * 0.5 / 15, player_1: (5 + 1 + 1) * 0.5 / 15
    np.testing.assert_allclose(rewards[0].numpy(), [11 / 30, 7 / 30], rtol=1e-6)


def test_cooperative_split_hands_each_player_the_items_it_values_most():
    game = Negotiation()
    combos = list(itertools.product((1.0, 5.0), repeat=3))
    totals = np.zeros(2)
    for v0 in combos:
        v0 = np.array(v0)
        v1 = 6 - v0
        p0, p1 = np.where(v0 == 5, 5.0, 0.0), np.where(v1 == 5, 5.0, 0.0)
        _, rewards = play(game, v0.tolist(), p0.tolist(), p1.tolist())
        r = rewards[0].numpy()
        np.testing.assert_allclose(r, [5 * (v0 == 5).sum() / 15, 5 * (v1 == 5).sum() / 15], rtol=1e-6)
        assert r.sum() == pytest.approx(1.0, abs=1e-6)  # the best joint reward
        totals += r
    # 0.5 each on average over the values
    np.testing.assert_allclose(totals / len(combos), [0.5, 0.5], rtol=1e-6)


def test_cooperative_split_with_symmetric_values_gives_half_each():
    # values that are not high contrast, to get 0.5 each in a single round
    game = Negotiation()
    _, rewards = play(game, (5, 1, 3), (5, 0, 0), (0, 5, 0), v1=(1, 5, 3))
    np.testing.assert_allclose(rewards[0].numpy(), [5 / 15, 5 / 15], rtol=1e-6)


def test_proposals_summing_below_the_threshold_give_partial_shares():
    game = Negotiation()
    shares = game.shares(torch.tensor([[[1.0, 0, 0], [0, 0, 0]]]))
    assert shares.tolist() == [[[pytest.approx(0.2), 0, 0], [0, 0, 0]]]
    _, rewards = play(game, (5, 1, 1), (1, 0, 0), (0, 0, 0))
    np.testing.assert_allclose(rewards[0].numpy(), [5 * (1 / 5) / 15, 0.0], rtol=1e-6)


@pytest.mark.parametrize(
    "p_me, p_other, share_me, share_other",
    [
        (2.0, 2.0, 0.4, 0.4),  # total 4 < 5: divided by 5, 20% of the item stays undistributed
        (2.5, 2.5, 0.5, 0.5),  # total exactly 5
        (3.0, 4.0, 3 / 7, 4 / 7),  # total 7 > 5: split in proportion
        (5.0, 0.0, 1.0, 0.0),
        (4.0, 0.0, 0.8, 0.0),
        (0.0, 0.0, 0.0, 0.0),  # nobody asks: nobody gets anything, and no NaN
        (5.0, 5.0, 0.5, 0.5),
    ],
)
def test_share_is_proposal_over_max_of_total_and_five(p_me, p_other, share_me, share_other):
    game = Negotiation()
    shares = game.shares(torch.tensor([[[p_me, 1.0, 0.0], [p_other, 1.0, 0.0]]]))
    np.testing.assert_allclose(shares[0, :, 0].numpy(), [share_me, share_other], rtol=1e-6, atol=1e-7)
    v0 = (5.0, 1.0, 1.0)
    _, rewards = play(game, v0, (p_me, 0, 0), (p_other, 0, 0))
    np.testing.assert_allclose(rewards[0].numpy(), [5 * share_me / 15, 1 * share_other / 15], rtol=1e-6, atol=1e-7)
    assert torch.isfinite(rewards).all()


def test_reward_uses_the_values_observed_before_the_step_not_the_new_draw():
    game = Negotiation()
    # noise 0 draws v0 = (1, 1, 1) for the next round; the reward must use (5, 1, 1)
    new, rewards = play(game, (5, 1, 1), (5, 0, 0), (0, 0, 0), noise=(0.0, 0.0, 0.0))
    assert new.values[0, 0].tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(rewards[0].numpy(), [5 / 15, 0.0], rtol=1e-6)


def test_item_pool_scales_rewards_and_normaliser():
    game = Negotiation(item_pool=(2, 1, 1))
    _, rewards = play(game, (5, 1, 1), (5, 0, 0), (0, 5, 5))
    # Z = 5 * (2 + 1 + 1) = 20: player_0 gets 2 * 5 / 20, player_1 gets (5 + 5) / 20
    np.testing.assert_allclose(rewards[0].numpy(), [0.5, 0.5], rtol=1e-6)


# -- values -------------------------------------------------------------------------------
@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_values_are_high_contrast_and_uniform(library):
    game = Negotiation()
    gen = torch.Generator().manual_seed(0) if library == "torch" else np.random.default_rng(0)
    b = 8000
    state = game.reset(b, gen)
    fresh, _ = game.step(
        state, np.full((b, 2, 3), 2.5, np.float32) if library == "numpy" else torch.full((b, 2, 3), 2.5), gen
    )
    for s in (state, fresh):
        v = np.asarray(s.values)
        assert v.shape == (b, 2, 3) and v.dtype == np.float32
        assert set(np.unique(v).tolist()) == {1.0, 5.0}
        np.testing.assert_array_equal(v[:, 1], 6 - v[:, 0])
        assert np.all(np.abs((v[:, 0] == 1).mean(0) - 0.5) < 0.03)
        # items are drawn independently: all 8 combinations about equally often
        combo = ((v[:, 0] == 5) * np.array([1, 2, 4])).sum(1)
        freq = np.bincount(combo.astype(int), minlength=8) / b
        assert np.all(np.abs(freq - 1 / 8) < 0.03), freq


def test_values_are_redrawn_every_step():
    game = Negotiation()
    gen = torch.Generator().manual_seed(3)
    state = game.reset(256, gen)
    changed = 0
    for _ in range(5):
        new, _ = game.step(state, torch.zeros(256, 2, 3), gen)
        changed += int((new.values != state.values).any(-1).any(-1).sum())
        state = new
    # fresh values each step: about 7/8 of the draws differ from the previous ones
    assert changed > 0.7 * 5 * 256


# -- observations -------------------------------------------------------------------------
def test_spaces():
    game = Negotiation()
    assert game.observation_space() == gymnasium.spaces.Box(0.0, 1.0, (15,), np.float32)
    assert game.action_space() == gymnasium.spaces.Box(0.0, 5.0, (3,), np.float32)
    assert game.max_steps == 50


@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_observation_layout_from_each_players_side(library):
    # [pool, my values, my previous proposal, other's values, other's previous proposal] / 10
    game = Negotiation()
    state = make_state((1, 5, 1), proposals=((0.5, 2, 5), (3, 0, 1)))
    if library == "numpy":
        state = state.numpy()
    obs = np.asarray(game.observe(state))
    assert obs.shape == (1, 2, 15) and obs.dtype == np.float32
    pool = [1, 1, 1]
    np.testing.assert_allclose(
        obs[0, 0], np.array(pool + [1, 5, 1] + [0.5, 2, 5] + [5, 1, 5] + [3, 0, 1]) / 10, rtol=1e-6
    )
    np.testing.assert_allclose(
        obs[0, 1], np.array(pool + [5, 1, 5] + [3, 0, 1] + [1, 5, 1] + [0.5, 2, 5]) / 10, rtol=1e-6
    )


def test_observation_at_reset_has_zero_proposals():
    game = Negotiation()
    state = game.reset(64, torch.Generator().manual_seed(1))
    obs = game.observe(state).numpy()
    assert not obs[..., 6:9].any() and not obs[..., 12:15].any()
    np.testing.assert_allclose(obs[..., 0:3], 0.1)
    np.testing.assert_allclose(obs[..., 3:6], state.values.numpy() / 10, rtol=1e-6)
    assert state.t.tolist() == [0] * 64


def test_observation_after_a_step_shows_new_values_and_the_proposals_just_made():
    game = Negotiation()
    p0, p1 = (1.0, 2.0, 3.0), (4.0, 5.0, 0.0)
    # noise (0.9, 0.1, 0.9) draws v0 = (5, 1, 5)
    new, _ = play(game, (1, 1, 1), p0, p1, noise=(0.9, 0.1, 0.9))
    obs = game.observe(new).numpy()
    np.testing.assert_allclose(obs[0, 0, 3:6], [0.5, 0.1, 0.5], rtol=1e-6)
    np.testing.assert_allclose(obs[0, 0, 6:9], np.array(p0) / 10, rtol=1e-6)
    np.testing.assert_allclose(obs[0, 0, 9:12], [0.1, 0.5, 0.1], rtol=1e-6)
    np.testing.assert_allclose(obs[0, 0, 12:15], np.array(p1) / 10, rtol=1e-6)
    np.testing.assert_allclose(obs[0, 1, 6:9], np.array(p1) / 10, rtol=1e-6)
    np.testing.assert_allclose(obs[0, 1, 12:15], np.array(p0) / 10, rtol=1e-6)
    assert new.t.tolist() == [1]


# -- constructor arguments ----------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_items": 0}, "n_items"),
        ({"n_items": 2.5}, "n_items"),
        ({"item_pool": (1, 1)}, "item_pool"),
        ({"item_pool": (1, -1, 1)}, "item_pool"),
        ({"item_pool": (0, 0, 0)}, "item_pool"),
        ({"item_pool": (1, np.nan, 1)}, "item_pool"),
        ({"value_low": 6.0}, "value_low"),
        ({"value_low": -1.0}, "value_low"),
        ({"value_high": np.nan}, "value_high"),
        ({"value_high": 11.0}, "value_high"),
        ({"max_proposal": 0.0}, "max_proposal"),
        ({"max_proposal": 20.0}, "max_proposal"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_invalid_constructor_argument_raises_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Negotiation(**kwargs)


def test_other_item_counts_are_accepted():
    game = Negotiation(n_items=5)
    assert game.observation_space().shape == (25,)
    assert game.action_space().shape == (5,)
    state = game.reset(3, torch.Generator().manual_seed(0))
    new, rewards = game.step(state, torch.full((3, 2, 5), 5.0), torch.Generator().manual_seed(1))
    assert game.observe(new).shape == (3, 2, 25)
    assert rewards.shape == (3, 2)
