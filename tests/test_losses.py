"""Tests of trainers.losses, trainers.advantages and the Negotiation's distribution against the SPEC formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trainers.advantages import gae, monte_carlo_returns, normalize_advantages, others_sum, td0_targets
from trainers.critics import ema_update_
from trainers.losses import (
    SIGN_CASES,
    adalign_loss,
    advantage_alignment_term,
    aligned_advantages,
    critic_loss,
    past_advantage_mean,
    ppo_clip_loss,
    proximal_adalign_loss,
    reinforce_loss,
)
from trainers.networks.distributions import TanhNormal

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------
# Reference implementations: explicit loops over the SPEC formulas
# --------------------------------------------------------------------------------------


def ref_past(own: torch.Tensor, b: int, t: int, mode: str, gamma: float | None, eq10: bool = False) -> float:
    if t == 0:
        return 0.0
    if mode == "mean":
        return sum(float(own[b, k]) for k in range(t)) / t
    outer = gamma if eq10 else gamma ** (t + 1)  # Eq. 10: beta * gamma * sum; Eq. 8: gamma^{t+1} * sum
    return outer * sum(gamma ** (t - k) * float(own[b, k]) for k in range(t))


def ref_case(past: float, other: float) -> str | None:
    if past == 0 or other == 0:
        return None
    return {
        (True, True): "cooperative",
        (True, False): "empathetic",
        (False, True): "vengeful",
        (False, False): "spiteful",
    }[(past > 0, other > 0)]


def ref_aa_loss(own, others_sum, logp, mode, gamma, masks) -> float:
    """loss_aa = - mean_{b, t>=1} [ past(A_own)_t * A_others_t * log pi_t ] (masked)."""
    B, T = own.shape
    total = 0.0
    for b in range(B):
        for t in range(1, T):
            past = ref_past(own, b, t, mode, gamma)
            other = float(others_sum[b, t])
            if masks is not None and ref_case(past, other) not in set(masks):
                continue
            total += past * other * float(logp[b, t])
    return -total / (B * (T - 1))


def ref_a_star(own, others_sum, beta, mode, gamma, masks) -> torch.Tensor:
    B, T = own.shape
    out = torch.zeros(B, T, dtype=DT)
    for b in range(B):
        for t in range(T):
            past = ref_past(own, b, t, mode, gamma, eq10=True)
            other = float(others_sum[b, t])
            keep = masks is None or ref_case(past, other) in set(masks)
            out[b, t] = float(own[b, t]) + (beta * past * other if keep else 0.0)
    return out


MASK_OPTIONS = [None] + [[name] for name in SIGN_CASES] + [list(SIGN_CASES), ["cooperative", "spiteful"]]


# --------------------------------------------------------------------------------------
# past_advantage_mean
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,gamma", [("mean", None), ("discounted", 0.9)])
def test_past_aggregate_matches_loop_and_is_zero_at_t0(mode, gamma):
    own = torch.randn(3, 7, dtype=DT, generator=_gen(0))
    past = past_advantage_mean(own, mode=mode, gamma=gamma)
    assert past.shape == own.shape
    assert torch.all(past[:, 0] == 0)
    for b, t in itertools.product(range(3), range(7)):
        assert float(past[b, t]) == pytest.approx(ref_past(own, b, t, mode, gamma), rel=1e-12, abs=1e-12)


def test_past_aggregate_trailing_dims_and_errors():
    own = torch.randn(2, 5, 4, dtype=DT, generator=_gen(1))
    for mode, gamma in (("mean", None), ("discounted", 0.8)):
        past = past_advantage_mean(own, mode=mode, gamma=gamma)
        for p in range(4):
            torch.testing.assert_close(past[..., p], past_advantage_mean(own[..., p].contiguous(), mode=mode, gamma=gamma))
    with pytest.raises(ValueError, match="gamma"):
        past_advantage_mean(own, mode="discounted")
    with pytest.raises(ValueError, match="'mean', 'discounted'"):
        past_advantage_mean(own, mode="ema")


def test_discounted_aggregation_by_hand_eq8_and_eq10():
    """Three steps, gamma 0.5, worked by hand from the paper's Eq. 8 and Eq. 10.

    Own advantages A = (1, 2, 4), the other's B = (3, 5, 7), beta 2.
    Eq. 8 weight at t: gamma^{t+1} sum_{k<t} gamma^{t-k} A_k:
      t=1: 0.25 * (0.5 * 1) = 0.125;  t=2: 0.125 * (0.25 * 1 + 0.5 * 2) = 0.15625.
    Eq. 10 weight at t: gamma * sum_{k<t} gamma^{t-k} A_k:
      t=1: 0.5 * 0.5 = 0.25;  t=2: 0.5 * 1.25 = 0.625.
    A* = A + beta * weight * B = (1, 2 + 2 * 0.25 * 5, 4 + 2 * 0.625 * 7) = (1, 4.5, 12.75).
    loss_aa (Eq. 8 form) = -mean_{t>=1} weight_t * B_t * logp_t with logp = 1:
      -(0.125 * 5 + 0.15625 * 7) / 2 = -0.859375.
    """
    own = torch.tensor([[1.0, 2.0, 4.0]], dtype=DT)
    other = torch.tensor([[3.0, 5.0, 7.0]], dtype=DT)
    torch.testing.assert_close(past_advantage_mean(own, mode="discounted", gamma=0.5),
                               torch.tensor([[0.0, 0.125, 0.15625]], dtype=DT))
    torch.testing.assert_close(past_advantage_mean(own, mode="discounted", gamma=0.5, time_discount=False),
                               torch.tensor([[0.0, 0.25, 0.625]], dtype=DT))
    a_star = aligned_advantages(own, other, beta=2.0, mode="discounted", gamma=0.5)
    torch.testing.assert_close(a_star, torch.tensor([[1.0, 4.5, 12.75]], dtype=DT))
    loss = advantage_alignment_term(own, other, torch.ones_like(own), mode="discounted", gamma=0.5)
    assert float(loss) == pytest.approx(-0.859375)


def test_discounted_past_long_horizon_is_finite():
    own = torch.randn(2, 1000, dtype=torch.float32, generator=_gen(2))
    past = past_advantage_mean(own, mode="discounted", gamma=0.5)
    assert torch.isfinite(past).all()


# --------------------------------------------------------------------------------------
# Advantage Alignment term (SPEC section 5)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,gamma", [("mean", None), ("discounted", 0.96)])
@pytest.mark.parametrize("masks", MASK_OPTIONS)
@pytest.mark.parametrize("n_others", [1, 3])
def test_aa_term_matches_explicit_double_loop(mode, gamma, masks, n_others):
    g = _gen(10 + n_others)
    B, T = 4, 6
    own = torch.randn(B, T, dtype=DT, generator=g)
    others = torch.randn(B, T, n_others, dtype=DT, generator=g)
    logp = torch.randn(B, T, dtype=DT, generator=g)
    expected = ref_aa_loss(own, others.sum(-1), logp, mode, gamma, masks)
    # stacked [B, T, n_others] and pre-summed [B, T] inputs give the same value
    got_stacked = advantage_alignment_term(own, others, logp, mode=mode, gamma=gamma, masks=masks)
    got_summed = advantage_alignment_term(own, others.sum(-1), logp, mode=mode, gamma=gamma, masks=masks)
    assert got_stacked.shape == ()
    assert float(got_stacked) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert float(got_summed) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_aa_masks_partition_the_term():
    """The four single-case terms add up to the unmasked term (every step is in one case)."""
    g = _gen(20)
    own, others, logp = (torch.randn(5, 8, dtype=DT, generator=g) for _ in range(3))
    full = advantage_alignment_term(own, others, logp)
    parts = sum(advantage_alignment_term(own, others, logp, masks=[m]) for m in SIGN_CASES)
    torch.testing.assert_close(parts, full)
    assert float(advantage_alignment_term(own, others, logp, masks=[])) == 0.0
    # a single name given as a string is one case, not a set of characters
    torch.testing.assert_close(
        advantage_alignment_term(own, others, logp, masks="vengeful"),
        advantage_alignment_term(own, others, logp, masks={"vengeful"}),
    )


@pytest.mark.parametrize("mode,gamma", [("mean", None), ("discounted", 0.9)])
@pytest.mark.parametrize("masks", [None, ["cooperative", "empathetic"]])
def test_aa_term_is_exactly_zero_when_others_advantages_are_zero(mode, gamma, masks):
    g = _gen(30)
    own = torch.randn(4, 10, generator=g)
    logp = torch.randn(4, 10, generator=g, requires_grad=True)
    for others in (torch.zeros(4, 10), torch.zeros(4, 10, 3)):
        loss = advantage_alignment_term(own, others, logp, mode=mode, gamma=gamma, masks=masks)
        assert float(loss.detach()) == 0.0
        (grad,) = torch.autograd.grad(loss, logp)
        assert torch.all(grad == 0)


def test_aa_gradient_flows_only_through_log_probs_and_matches_formula():
    g = _gen(40)
    B, T = 3, 5
    own = torch.randn(B, T, dtype=DT, generator=g, requires_grad=True)
    others = torch.randn(B, T, 2, dtype=DT, generator=g, requires_grad=True)
    logp = torch.randn(B, T, dtype=DT, generator=g, requires_grad=True)
    loss = advantage_alignment_term(own, others, logp)
    g_own, g_others, g_logp = torch.autograd.grad(loss, (own, others, logp), allow_unused=True)
    assert g_own is None and g_others is None
    # d loss / d logp[b, t] = - past_t * sum_j Aj_t / (B (T-1)) for t >= 1, 0 at t = 0
    expected = torch.zeros(B, T, dtype=DT)
    for b in range(B):
        for t in range(1, T):
            expected[b, t] = -ref_past(own.detach(), b, t, "mean", None) * float(others[b, t].detach().sum()) / (B * (T - 1))
    torch.testing.assert_close(g_logp, expected)


def test_aa_unknown_mask_names_raise_with_allowed_values():
    x = torch.randn(2, 4)
    with pytest.raises(ValueError) as err:
        advantage_alignment_term(x, x, x, masks=["cooperative", "selfish"])
    msg = str(err.value)
    assert "selfish" in msg
    for name in ("cooperative", "empathetic", "vengeful", "spiteful"):
        assert name in msg
    with pytest.raises(ValueError, match="spiteful"):
        aligned_advantages(x, x, beta=1.0, masks=["nice"])


def test_aa_shape_errors_and_single_step():
    x = torch.randn(2, 4)
    with pytest.raises(ValueError):
        advantage_alignment_term(x, torch.randn(2, 5), x)
    with pytest.raises(ValueError):
        advantage_alignment_term(x, x, torch.randn(2, 5))
    one = torch.randn(2, 1, requires_grad=True)
    loss = advantage_alignment_term(one.detach(), one.detach(), one)
    assert float(loss.detach()) == 0.0 and torch.isfinite(loss)


def test_aa_trailing_player_dim_means_over_all_players():
    g = _gen(50)
    own = torch.randn(2, 5, 3, dtype=DT, generator=g)
    others = torch.randn(2, 5, 3, 2, dtype=DT, generator=g)
    logp = torch.randn(2, 5, 3, dtype=DT, generator=g)
    got = advantage_alignment_term(own, others, logp)
    per_player = [
        advantage_alignment_term(own[..., p].contiguous(), others[..., p, :].contiguous(), logp[..., p].contiguous())
        for p in range(3)
    ]
    torch.testing.assert_close(got, torch.stack(per_player).mean())


def test_inputs_are_not_modified():
    g = _gen(60)
    own, others, logp, old = (torch.randn(3, 6, generator=g) for _ in range(4))
    copies = [t.clone() for t in (own, others, logp, old)]
    advantage_alignment_term(own, others, logp, masks=["vengeful"])
    aligned_advantages(own, others, beta=2.0)
    proximal_adalign_loss(logp, old, own, others, beta=1.0, clip_eps=0.2)
    gae(own, others, logp, torch.zeros(3, 6, dtype=torch.bool), 0.9, 0.95)
    for t, c in zip((own, others, logp, old), copies):
        assert torch.equal(t, c)


# --------------------------------------------------------------------------------------
# REINFORCE / AdAlign loss
# --------------------------------------------------------------------------------------


def test_reinforce_and_adalign_loss_combination():
    g = _gen(70)
    own, others = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    logp = torch.randn(4, 6, generator=g, requires_grad=True)
    entropy = torch.rand(4, 6, generator=g)
    loss_pg = reinforce_loss(own, logp)
    torch.testing.assert_close(loss_pg, -(own * logp).mean())
    loss, info = adalign_loss(own, others, logp, entropy, beta=0.3, entropy_coef=0.15)
    expected = loss_pg + 0.3 * advantage_alignment_term(own, others, logp) - 0.15 * entropy.mean()
    torch.testing.assert_close(loss, expected)
    assert set(info) >= {"loss", "loss_pg", "loss_aa", "entropy"}
    assert not info["loss"].requires_grad
    # beta = 0 is plain policy gradient (others may even be omitted)
    loss0, _ = adalign_loss(own, None, logp, entropy, beta=0.0, entropy_coef=0.15)
    torch.testing.assert_close(loss0, loss_pg - 0.15 * entropy.mean())
    with pytest.raises(ValueError):
        adalign_loss(own, None, logp, beta=1.0)


# --------------------------------------------------------------------------------------
# Proximal AdAlign (SPEC section 6)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode,gamma", [("mean", None), ("discounted", 0.99)])
@pytest.mark.parametrize("masks", [None, ["empathetic"], list(SIGN_CASES)])
@pytest.mark.parametrize("n_others", [1, 3])
def test_aligned_advantages_match_loop(mode, gamma, masks, n_others):
    g = _gen(80 + n_others)
    own = torch.randn(3, 7, dtype=DT, generator=g)
    others = torch.randn(3, 7, n_others, dtype=DT, generator=g)
    a_star = aligned_advantages(own, others, beta=1.5, mode=mode, gamma=gamma, masks=masks)
    torch.testing.assert_close(a_star, ref_a_star(own, others.sum(-1), 1.5, mode, gamma, masks))
    assert torch.equal(a_star[:, 0], own[:, 0])


def test_proximal_with_beta_zero_equals_ppo_clip_exactly():
    g = _gen(90)
    own, others = torch.randn(8, 10, generator=g), torch.randn(8, 10, 6, generator=g)
    old = torch.randn(8, 10, generator=g)
    logp = (old + 0.3 * torch.randn(8, 10, generator=g)).requires_grad_()
    loss_p, info_p = proximal_adalign_loss(logp, old, own, others, beta=0.0, clip_eps=0.1)
    loss_ppo, info_ppo = ppo_clip_loss(logp, old, own, 0.1)
    assert torch.equal(loss_p, loss_ppo)
    assert torch.equal(info_p["approx_kl"], info_ppo["approx_kl"])
    (gp,) = torch.autograd.grad(loss_p, logp)
    (gq,) = torch.autograd.grad(loss_ppo, logp)
    assert torch.equal(gp, gq)
    # and with beta != 0 it is the PPO loss on A*
    loss_b, _ = proximal_adalign_loss(logp, old, own, others, beta=1.2, clip_eps=0.1)
    loss_ref, _ = ppo_clip_loss(logp, old, aligned_advantages(own, others, beta=1.2), 0.1)
    assert torch.equal(loss_b, loss_ref)


@pytest.mark.parametrize("mode,gamma", [("mean", None), ("discounted", 0.96)])
def test_proximal_loss_of_a_minibatch_is_the_batch_loss_of_its_rows(mode, gamma):
    # the PPO loop calls the loss on minibatches of rows: each row's A* depends on that row alone
    g = _gen(91)
    own, others = 3 + 5 * torch.randn(8, 9, generator=g), torch.randn(8, 9, generator=g) * 7
    old = torch.randn(8, 9, generator=g)
    logp = old + 0.1 * torch.randn(8, 9, generator=g)
    idx = torch.tensor([5, 0, 6])
    loss, info = proximal_adalign_loss(logp[idx], old[idx], own[idx], others[idx], beta=1.3, clip_eps=0.2,
                                       mode=mode, gamma=gamma)
    a_star = aligned_advantages(own, others, beta=1.3, mode=mode, gamma=gamma)[idx]
    expected, _ = ppo_clip_loss(logp[idx], old[idx], a_star, 0.2)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(info["aligned_adv_std"], a_star.std(correction=0))


def test_others_sum_adds_the_other_players_of_each_game():
    g = _gen(92)
    n, games, T = 3, 4, 5
    adv = torch.randn(games * n, T, generator=g)  # rows game * n + seat
    out = others_sum(adv, n)
    for game in range(games):
        for seat in range(n):
            row = game * n + seat
            expected = sum(adv[game * n + j] for j in range(n) if j != seat)
            torch.testing.assert_close(out[row], expected)
    assert not out.requires_grad


def test_ppo_clip_loss_formula_and_diagnostics():
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.05, 1.0]]))  # ratios vs old = 0
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -2.0, 3.0]])
    loss, info = ppo_clip_loss(logp, old, adv, clip_eps=0.2)
    # min(r A, clip(r) A): 1.2, 0.5, -2.1, 3.0
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 2.1 + 3.0) / 4, rel=1e-6)
    assert float(info["clip_fraction"]) == pytest.approx(0.5)
    r = torch.tensor([1.5, 0.5, 1.05, 1.0])
    assert float(info["approx_kl"]) == pytest.approx(float(((r - 1) - r.log()).mean()), rel=1e-6)
    _, info_same = ppo_clip_loss(old, old, adv, 0.2)
    assert float(info_same["approx_kl"]) == 0.0 and float(info_same["clip_fraction"]) == 0.0


def test_normalize_advantages():
    x = torch.randn(50, 7, generator=_gen(92)) * 4 + 2
    n = normalize_advantages(x)
    assert float(n.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(n.std(correction=0)) == pytest.approx(1.0, abs=1e-5)
    assert torch.isfinite(normalize_advantages(torch.ones(1, 1))).all()


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    B=st.integers(1, 3),
    T=st.integers(1, 12),
    n=st.integers(1, 3),
    beta=st.floats(0, 5),
    mode=st.sampled_from(["mean", "discounted"]),
)
def test_aligned_advantages_finite_and_first_step_unchanged(data, B, T, n, beta, mode):
    own = torch.from_numpy(data.draw(arrays(np.float32, (B, T), elements=finite)))
    others = torch.from_numpy(data.draw(arrays(np.float32, (B, T, n), elements=finite)))
    a_star = aligned_advantages(own, others, beta=beta, mode=mode, gamma=0.96)
    assert a_star.shape == own.shape
    assert torch.isfinite(a_star).all()
    assert torch.equal(a_star[:, 0], own[:, 0])
    logp = torch.zeros(B, T, requires_grad=True)
    loss = advantage_alignment_term(own, others, logp, mode=mode, gamma=0.96)
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------------------
# GAE and return targets
# --------------------------------------------------------------------------------------


def test_gae_hand_computed_with_done_in_the_middle():
    gamma, lam = 0.9, 0.95
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    values = torch.tensor([[0.5, 1.0, 1.5]])
    next_values = torch.tensor([[1.0, 9.0, 2.0]])  # 9.0 is ignored: the episode ends after t=1
    dones = torch.tensor([[False, True, False]])
    # delta_0 = 1 + 0.9*1.0 - 0.5 = 1.4 ; delta_1 = 2 - 1.0 = 1.0 ; delta_2 = 3 + 0.9*2.0 - 1.5 = 3.3
    # A_2 = 3.3 ; A_1 = 1.0 (no recursion across the done) ; A_0 = 1.4 + 0.9*0.95*1.0 = 2.255
    adv, ret = gae(rewards, values, next_values, dones, gamma, lam)
    torch.testing.assert_close(adv, torch.tensor([[2.255, 1.0, 3.3]]))
    torch.testing.assert_close(ret, torch.tensor([[2.755, 2.0, 4.8]]))


def _random_episode_batch(seed, B=3, T=9, extra=()):
    g = _gen(seed)
    rewards = torch.randn(B, T, *extra, dtype=DT, generator=g)
    values = torch.randn(B, T, *extra, dtype=DT, generator=g)
    dones = torch.rand(B, T, *extra, generator=g) < 0.25
    bootstrap = torch.randn(B, *extra, dtype=DT, generator=g)
    # next_values[t] = values[t+1] inside the window, the bootstrap at the end, junk at dones
    next_values = torch.cat([values[:, 1:], bootstrap.unsqueeze(1)], dim=1)
    next_values = torch.where(dones, torch.full_like(next_values, 123.0), next_values)
    return rewards, values, next_values, dones, bootstrap


def test_gae_lambda_one_is_return_minus_value_and_lambda_zero_is_td_error():
    rewards, values, next_values, dones, bootstrap = _random_episode_batch(100)
    gamma = 0.96
    adv1, ret1 = gae(rewards, values, next_values, dones, gamma, 1.0)
    mc = monte_carlo_returns(rewards, dones, gamma, bootstrap=bootstrap)
    torch.testing.assert_close(adv1, mc - values)
    torch.testing.assert_close(ret1, mc)
    adv0, _ = gae(rewards, values, next_values, dones, gamma, 0.0)
    torch.testing.assert_close(adv0, td0_targets(rewards, next_values, dones, gamma) - values)


def test_gae_trailing_dims_detached_and_truncation():
    rewards, values, next_values, dones, _ = _random_episode_batch(101, extra=(2,))
    values = values.clone().requires_grad_()
    adv, ret = gae(rewards, values, next_values, dones, 0.9, 0.95)
    assert not adv.requires_grad and not ret.requires_grad
    for p in range(2):
        a_p, _ = gae(rewards[..., p], values[..., p], next_values[..., p], dones[..., p], 0.9, 0.95)
        torch.testing.assert_close(adv[..., p], a_p)
    # truncation after t=1: bootstrap from next_values[1] but do not recurse across it
    r = torch.tensor([[1.0, 1.0, 1.0]])
    v = torch.zeros(1, 3)
    nv = torch.tensor([[0.0, 10.0, 0.0]])
    d = torch.zeros(1, 3, dtype=torch.bool)
    tr = torch.tensor([[False, True, False]])
    adv_t, _ = gae(r, v, nv, d, 0.5, 1.0, truncated=tr)
    torch.testing.assert_close(adv_t, torch.tensor([[1.0 + 0.5 * 6.0, 6.0, 1.0]]))


def test_monte_carlo_and_td0_hand_computed():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    dones = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    g = monte_carlo_returns(rewards, dones, 0.5, bootstrap=torch.tensor([8.0]))
    # G_3 = 4 + 0.5*8 = 8 ; G_2 = 3 + 4 = 7 ; G_1 = 2 (done) ; G_0 = 1 + 1 = 2
    torch.testing.assert_close(g, torch.tensor([[2.0, 2.0, 7.0, 8.0]]))
    torch.testing.assert_close(monte_carlo_returns(rewards, dones, 0.5), torch.tensor([[2.0, 2.0, 5.0, 4.0]]))
    nv = torch.tensor([[10.0, 10.0, 10.0, 10.0]], requires_grad=True)
    y = td0_targets(rewards, nv, dones, 0.9)
    torch.testing.assert_close(y, torch.tensor([[10.0, 2.0, 12.0, 13.0]]))
    assert not y.requires_grad


# --------------------------------------------------------------------------------------
# Critic helpers
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [1.0, 2.0])
def test_critic_huber_loss(delta):
    values = torch.tensor([0.0, 0.5, 3.0, -4.0], requires_grad=True)
    targets = torch.tensor([0.0, 0.0, 0.0, 0.0], requires_grad=True)
    loss = critic_loss(values, targets, huber_delta=delta)
    x = values.detach().abs()
    expected = torch.where(x <= delta, 0.5 * x**2, delta * (x - 0.5 * delta)).mean()
    torch.testing.assert_close(loss, expected)
    g_v, g_t = torch.autograd.grad(loss, (values, targets), allow_unused=True)
    assert g_t is None and torch.isfinite(g_v).all()


def test_ema_update():
    torch.manual_seed(0)
    src = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    tgt = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    src(torch.randn(5, 3))  # move the BatchNorm running stats of the source
    before = {k: v.clone() for k, v in tgt.state_dict().items()}
    src_state = {k: v.clone() for k, v in src.state_dict().items()}
    ema_update_(tgt, src, 0.1)
    for k, v in tgt.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9 * before[k] + 0.1 * src_state[k])
        else:
            assert torch.equal(v, src_state[k])
        assert torch.equal(src.state_dict()[k], src_state[k])  # source untouched
    assert all(p.grad is None for p in tgt.parameters())
    ema_update_(tgt, src, 1.0)
    for k, v in tgt.state_dict().items():
        torch.testing.assert_close(v, src_state[k])
    with pytest.raises(ValueError):
        ema_update_(tgt, src, 1.5)
    with pytest.raises(ValueError):
        ema_update_(tgt, torch.nn.Linear(3, 4), 0.1)


# --------------------------------------------------------------------------------------
# TanhNormal (SPEC section 7)
# --------------------------------------------------------------------------------------


def _cdf(a: torch.Tensor, loc: float, scale: float) -> torch.Tensor:
    x = torch.atanh((a - 2.5) / 2.5)
    return torch.distributions.Normal(torch.tensor(loc, dtype=DT), torch.tensor(scale, dtype=DT)).cdf(x)


@pytest.mark.parametrize("m,log_std", [(0.3, -0.5), (-1.0, 0.0), (2.0, -1.0)])
def test_tanh_normal_density_integrates_to_one_and_matches_cdf(m, log_std):
    dist = TanhNormal(torch.tensor([m], dtype=DT), torch.tensor([log_std], dtype=DT))
    grid = torch.linspace(0.0, 5.0, 400_001, dtype=DT)[1:-1]
    dens = torch.exp(dist.log_prob(grid.unsqueeze(-1)))
    assert dens.shape == grid.shape
    assert float(torch.trapezoid(dens, grid)) == pytest.approx(1.0, abs=2e-3)
    loc, scale = 2 * math.tanh(m), math.exp(log_std)
    a = torch.tensor([0.05, 0.7, 1.9, 2.5, 3.3, 4.2, 4.95], dtype=DT)
    h = 1e-5
    fd = (_cdf(a + h, loc, scale) - _cdf(a - h, loc, scale)) / (2 * h)
    torch.testing.assert_close(torch.exp(dist.log_prob(a.unsqueeze(-1))), fd, rtol=1e-5, atol=1e-8)


def test_tanh_normal_sums_over_items_and_latent_consistency():
    g = _gen(200)
    m = torch.randn(4, 3, dtype=DT, generator=g)
    log_std = torch.tensor([-0.5, -0.5, -0.5], dtype=DT)
    dist = TanhNormal(m, log_std)
    a, x = dist.rsample_with_latent()
    assert a.shape == (4, 3) and dist.log_prob(a).shape == (4,)
    torch.testing.assert_close(dist.log_prob(a), dist.log_prob_latent(x))
    per_item = [TanhNormal(m[:, i : i + 1], log_std[i : i + 1]).log_prob(a[:, i : i + 1]) for i in range(3)]
    torch.testing.assert_close(dist.log_prob(a), sum(per_item))
    s = dist.sample(torch.Size([1000]))
    assert s.shape == (1000, 4, 3) and not s.requires_grad
    assert float(s.min()) >= 0.0 and float(s.max()) <= 5.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tanh_normal_gradients_finite_at_bounds_and_large_mean(dtype):
    proposals = torch.tensor([[0.0, 1e-7, 5 - 1e-7], [5.0, 2.5, 4.999]], dtype=dtype)
    for m_val in (0.0, 30.0, -30.0, 1e4, -1e4):
        m = torch.full((2, 3), m_val, dtype=dtype, requires_grad=True)
        log_std = torch.full((3,), -1.0, dtype=dtype, requires_grad=True)
        a = proposals.clone().requires_grad_()
        lp = TanhNormal(m, log_std).log_prob(a)
        assert torch.isfinite(lp).all()
        g_m, g_s, g_a = torch.autograd.grad(lp.sum(), (m, log_std, a))
        for grad in (g_m, g_s, g_a):
            assert torch.isfinite(grad).all()


def test_tanh_normal_mode_entropy_and_rsample_grad():
    m = torch.tensor([[0.4, -1.2, 3.0]], requires_grad=True)
    log_std = torch.tensor([-0.7, -0.7, -0.7], requires_grad=True)
    dist = TanhNormal(m, log_std)
    torch.testing.assert_close(dist.mode(), 2.5 * torch.tanh(2 * torch.tanh(m)) + 2.5)
    torch.testing.assert_close(dist.deterministic(), dist.mode())
    torch.testing.assert_close(dist.base_entropy(), torch.distributions.Normal(2 * torch.tanh(m), log_std.exp()).entropy().sum(-1))
    # Monte Carlo entropy against a numerical -∫ p log p for a single item
    one = TanhNormal(torch.tensor([0.4], dtype=DT), torch.tensor([-0.7], dtype=DT))
    grid = torch.linspace(0, 5, 200_001, dtype=DT)[1:-1]
    lp = one.log_prob(grid.unsqueeze(-1))
    exact = float(-torch.trapezoid(lp.exp() * lp, grid))
    torch.manual_seed(0)
    assert float(one.entropy(n_samples=20_000)) == pytest.approx(exact, abs=0.03)
    a = dist.rsample()
    (g,) = torch.autograd.grad(a.sum() + dist.entropy().sum(), m)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
