"""LOQA: the loaded-DiCE returns and the shaping term against hand computations, and the algorithm end to end."""

from __future__ import annotations

import math

import pytest
import torch

import social_dilemmas
from trainers import algorithms, dice, train
from trainers.evaluation.league import run_league
from trainers.presets import make_config
from trainers.rollout import SnapshotOpponents


def test_loaded_dice_returns_are_the_returns_with_the_loaded_dice_gradient():
    """rewards (1, 0, 2), gamma 0.5, dice discount 0.8, values (0.5, 1, 0.25):
    G = (1.5, 1, 2), G - V = (1, 0, 1.75); dG_t / dlog pi_k = (0.4)^(k-t) (G_k - V_k) for k >= t."""
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.5, 1.0, 0.25]])
    dones = torch.tensor([[False, False, True]])
    logp = torch.tensor([[-0.3, -1.2, -0.7]], requires_grad=True)
    g = dice.loaded_dice_returns(rewards, logp, values, dones, gamma=0.5, dice_discount=0.8)
    torch.testing.assert_close(g.detach(), torch.tensor([[1.5, 1.0, 2.0]]))
    expected = [[1.0, 0.0, 0.16 * 1.75], [0.0, 0.0, 0.4 * 1.75], [0.0, 0.0, 1.75]]
    for t in range(3):
        (grad,) = torch.autograd.grad(g[0, t], logp, retain_graph=True)
        torch.testing.assert_close(grad[0], torch.tensor(expected[t]))


def test_loaded_dice_returns_stop_at_the_end_of_an_episode():
    """Two episodes of two steps in one row: nothing crosses the boundary, forward or backward."""
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    values = torch.zeros(1, 4)
    dones = torch.tensor([[False, True, False, True]])
    logp = torch.zeros(1, 4, requires_grad=True)
    g = dice.loaded_dice_returns(rewards, logp, values, dones, gamma=0.5, dice_discount=1.0)
    torch.testing.assert_close(g.detach(), torch.tensor([[2.0, 2.0, 5.0, 4.0]]))
    (grad,) = torch.autograd.grad(g[0, 0], logp, retain_graph=True)
    torch.testing.assert_close(grad[0], torch.tensor([2.0, 0.5 * 2.0, 0.0, 0.0]))
    (grad,) = torch.autograd.grad(g[0, 2], logp)
    torch.testing.assert_close(grad[0], torch.tensor([0.0, 0.0, 5.0, 0.5 * 4.0]))


def test_opponent_log_probs_replace_the_taken_actions_q_value():
    q = torch.tensor([[[1.0, 2.0], [0.5, -1.0]]])
    taken = torch.tensor([[0, 1]])
    q_taken = torch.tensor([[3.0, 0.0]])
    out = dice.loqa_opponent_log_probs(q, taken, q_taken, temperature=2.0)
    want0 = 1.5 - math.log(math.exp(1.5) + math.exp(1.0))
    want1 = 0.0 - math.log(math.exp(0.25) + math.exp(0.0))
    torch.testing.assert_close(out, torch.tensor([[want0, want1]]))
    with pytest.raises(ValueError, match="temperature"):
        dice.loqa_opponent_log_probs(q, taken, q_taken, temperature=0.0)


def test_loqa_loss_gradient_by_hand():
    """Two steps, one row. With the other's returns G' (dice discount 1), the shaping term's
    gradient on log pi(a_k) is -w/T * sum_t A_t (1 - p'_t) dq_t/dlog pi(a_k),
    dq_t/dlog pi(a_k) = gamma * dG'_{t+1}/dlog pi(a_k) (the last step's q is r' alone)."""
    gamma = 0.5
    adv = torch.tensor([[1.0, -2.0]])
    r_other = torch.tensor([[1.0, 3.0]])
    v_other = torch.tensor([[0.0, 1.0]])
    dones = torch.tensor([[False, True]])
    logp = torch.tensor([[-0.5, -1.0]], requires_grad=True)
    q = torch.tensor([[[0.0, 1.0], [2.0, 0.0]]])
    taken = torch.tensor([[0, 0]])
    g = dice.loaded_dice_returns(r_other, logp, v_other, dones, gamma, 1.0)
    q_taken = r_other + gamma * torch.cat((g[:, 1:], torch.zeros(1, 1)), 1)
    op_logp = dice.loqa_opponent_log_probs(q, taken, q_taken)
    loss, info = dice.loqa_loss(adv, logp, op_logp, torch.zeros(1, 2), entropy_coef=0.0, shaping_weight=0.7)
    (grad,) = torch.autograd.grad(loss, logp)
    # q_0 = 1 + 0.5 * 3 = 2.5 against Q'(s_0, 1) = 1: p'_0 = sigmoid(1.5); q_1 = 3 against 0: p'_1 = sigmoid(3)
    p0 = 1 / (1 + math.exp(-1.5))
    # G'_1 = 3, V'_1 = 1: dG'_1 / dlog pi(a_1) = 2, and q_0 = r'_0 + gamma G'_1
    d_shaping = [0.0, -0.7 / 2 * (1.0 * (1 - p0) * gamma * 2.0)]
    d_pg = [-1.0 / 2, 2.0 / 2]
    torch.testing.assert_close(grad[0], torch.tensor([d_pg[0] + d_shaping[0], d_pg[1] + d_shaping[1]]))
    assert info["loss_shaping"] == pytest.approx(-float((adv * op_logp.detach()).mean()))


def test_loqa_trains_on_the_ipd_and_its_checkpoint_plays(tmp_path):
    cfg = make_config("ipd", "loqa", iterations=3, num_games=32, max_steps=6, hidden=8, tensorboard=False)
    assert cfg.algorithm.exploration_epsilon == 0.2 and cfg.algorithm.critic_kind == "q"
    train(cfg, tmp_path / "run", progress=False)
    result = run_league("ipd", [str(tmp_path / "run" / "checkpoint.pt"), "always_defect"], seeds=1, episodes=4)
    assert result.names[0] == "run"


def test_loqa_with_agent_replay_models_each_opponent_from_its_snapshot_critic(monkeypatch):
    cfg = make_config("coin_game", "loqa", num_games=4, max_steps=4, hidden=8, snapshot_every=1, tensorboard=False)
    algo = algorithms.get("loqa")(cfg)
    algo.train_step()  # the first update plays itself: no snapshot yet
    seen = []
    original = algo.critic.outputs
    monkeypatch.setattr(algo.critic, "outputs", lambda rows, opponents=None: seen.append(opponents) or
                        original(rows, opponents))
    metrics = algo.train_step()
    assert isinstance(algo.opponent, SnapshotOpponents) and algo.opponent.critics is not None
    assert any(o is algo.opponent for o in seen)  # the other players' Q-values: their snapshots' critics
    assert math.isfinite(metrics["train/loss_shaping"])


def test_loqa_coin_game_cpu_preset_learns_the_critic_first_then_plays_snapshot_groups():
    cfg = make_config("coin_game", "loqa", fast=True, iterations=3, num_games=32, max_steps=4, hidden=8,
                      critic_warmup=1, snapshot_every=1, tensorboard=False)
    assert (cfg.algorithm.critic_target, cfg.algorithm.value_norm, cfg.algorithm.replay_groups) == ("mc", True, 16)
    algo = algorithms.get("loqa")(cfg)
    before = [p.detach().clone() for p in algo.actor.parameters()]
    first = algo.train_step()  # the critic-only update: the actor does not move
    assert "train/loss_shaping" not in first
    assert all(torch.equal(a, b) for a, b in zip(before, algo.actor.parameters()))
    algo.train_step()
    metrics = algo.train_step()  # snapshots exist now: every game plays a past snapshot, in 16 groups
    assert isinstance(algo.opponent, SnapshotOpponents) and algo.opponent.groups == 16
    assert math.isfinite(metrics["train/loss_shaping"])
    assert not all(torch.equal(a, b) for a, b in zip(before, algo.actor.parameters()))


def test_loqa_settings_are_validated_with_clear_errors():
    with pytest.raises(ValueError, match="critic_kind"):
        make_config("ipd", "loqa", critic_kind="value")
    with pytest.raises(ValueError, match="opponent_temperature"):
        make_config("ipd", "loqa", opponent_temperature=0.0)
    with pytest.raises(ValueError, match="dice_discount"):
        make_config("ipd", "loqa", dice_discount=1.5)
    with pytest.raises(ValueError, match="exploration_epsilon"):
        make_config("ipd", "adalign", exploration_epsilon=-0.1)
    with pytest.raises(ValueError, match="exploration_epsilon"):
        make_config("negotiation", "adalign", exploration_epsilon=0.1)


def test_exploration_replaces_that_share_of_the_actions_at_random():
    """A policy that always cooperates, with epsilon 0.5: about a quarter of the actions are
    defections (half are redrawn, half of those defect); the log-probabilities are those of
    the actions played."""
    cfg = make_config("ipd", "adalign", num_games=256, max_steps=8, hidden=8, tensorboard=False,
                      exploration_epsilon=0.5)
    algo = algorithms.get("adalign")(cfg)
    with torch.no_grad():
        head = algo.actor.net.head[-1] if isinstance(algo.actor.net.head, torch.nn.Sequential) else algo.actor.net.head
        head.weight.zero_()
        head.bias.copy_(torch.tensor([20.0, -20.0]))
    batch = algo.collect()
    defect = batch.actions.float().mean().item()
    assert 0.2 < defect < 0.3
    assert bool((batch.log_probs[batch.actions == 1] < -30).all())
    game = social_dilemmas.make_game("ipd")
    assert game.action_space().n == 2


def _ipd_states() -> torch.Tensor:
    """The IPD observations [me C, me D, other C, other D] of a game's rounds: start, CC, CD, DC, DD, CC."""
    return torch.tensor([[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0.]])


def test_table_actor_has_one_independent_entry_per_ipd_state():
    """LOQA's IPD actor (``actor_table``): steps and whole sequences give the same logits, the
    vmappable cell too, and the gradient of one state's log-probability moves that state's row only."""
    from trainers.networks.grouped import grouped_call
    from trainers.networks.recurrent import Actor

    actor = Actor(4, 8, n_actions=2, recurrent=False, table=True)
    with torch.no_grad():
        actor.net.table.normal_()
    obs = _ipd_states().unsqueeze(0)  # [1, 6, 4]
    starts = torch.zeros(1, 6, dtype=torch.bool)
    starts[:, 0] = True
    dist, _ = actor.forward_sequence(actor.initial_memory(1, "cpu"), obs, starts)
    state, stepped = actor.initial_memory(1, "cpu"), []
    for t in range(6):
        d, _, state = actor.step(state, obs[:, t], starts[:, t])
        stepped.append(d.logits)
    assert torch.allclose(dist.logits, torch.stack(stepped, 1))
    # the first round and the later CC rounds are different rows; both CC rounds the same one
    assert not torch.allclose(dist.logits[0, 0], dist.logits[0, 1])
    assert torch.equal(dist.logits[0, 1], dist.logits[0, 5])
    weights = {k: v.detach().unsqueeze(0) for k, v in actor.named_parameters()}
    h = torch.ones(1, 6, 8)
    h[0, 0] = 0.0
    out, _, _ = grouped_call(actor, weights, obs, h)
    assert torch.allclose(out[0].log_softmax(-1), dist.logits[0])
    actor.zero_grad()
    dist.log_prob(torch.zeros(1, 6, dtype=torch.long))[0, 2].backward()  # CD, cooperate
    moved = (actor.net.table.grad.abs().sum(-1) > 0).nonzero().flatten().tolist()
    assert moved == [int(actor.net.index(obs[0, 2], torch.ones(1)))]


def test_table_actor_refuses_what_it_cannot_index(tmp_path):
    from trainers.networks.recurrent import Actor, TableNet

    actor = Actor(4, 8, n_actions=2, recurrent=False, table=True)
    with pytest.raises(ValueError, match="0 or 1"):
        actor.step(actor.initial_memory(1, "cpu"), torch.tensor([[0.5, 0.5, 1.0, 0.0]]), None)
    with pytest.raises(ValueError, match="at most 15 entries"):
        TableNet(36, 4)
    with pytest.raises(ValueError, match="actor_recurrent false"):
        Actor(4, 8, n_actions=2, recurrent=True, table=True)
    with pytest.raises(ValueError, match="actor_table"):
        train(make_config("coin_game", "adalign", actor_table=True, actor_recurrent=False, iterations=1), tmp_path / "c")
    with pytest.raises(ValueError, match="actor_table"):
        train(make_config("ipd", "adalign", actor_table=True, actor_recurrent=True, iterations=1), tmp_path / "i")
