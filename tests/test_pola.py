"""POLA-DiCE: its objective, proximal term and look-ahead against hand computations, and the algorithm end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainers import algorithms, dice, train
from trainers.__main__ import main as cli
from trainers.evaluation.cooperation import cooperation_table
from trainers.evaluation.league import run_league
from trainers.players import load_player
from trainers.presets import make_config


def _grads(value: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(value, inputs, retain_graph=True)


def test_dice_objective_without_baseline_by_hand():
    """rewards (1, 2), gamma 0.5: forward = 1 + 0.5 * 2 = 2; the gradient of log pi(a_0) (and of the
    other player's log pi'(b_0)) is r_0 + gamma r_1 = 2, of log pi(a_1) gamma r_1 = 1."""
    mine = torch.tensor([[-0.2, -0.9]], requires_grad=True)
    other = torch.tensor([[-1.1, -0.4]], requires_grad=True)
    obj = dice.pola_dice_objective(mine, other, torch.tensor([[1.0, 2.0]]), None, gamma=0.5)
    torch.testing.assert_close(obj.detach(), torch.tensor(2.0))
    g_mine, g_other = _grads(obj, mine, other)
    torch.testing.assert_close(g_mine, torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(g_other, torch.tensor([[2.0, 1.0]]))


@pytest.mark.parametrize("lam, expected", [(1.0, [1.5, 0.5]), (0.0, [1.0, 0.5])])
def test_loaded_dice_objective_with_gae_by_hand(lam, expected):
    """rewards (1, 2), values (0.5, 1), gamma 0.5, the episode ends after step 1.
    lambda 1: A = G - V = (2 - 0.5, 2 - 1) = (1.5, 1); lambda 0: A = (1 + 0.5 * 1 - 0.5, 2 - 1) = (1, 1).
    The forward value is 0; d/d log pi(a_t) = gamma^t A_t (box(S_t) - box(S_{t-1}) leaves each
    step's own log-probability): (A_0, 0.5 A_1). Two rows: the mean over the batch."""
    mine = torch.zeros(2, 2, requires_grad=True)
    other = torch.zeros(2, 2, requires_grad=True)
    rewards = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    values = torch.tensor([[0.5, 1.0], [0.5, 1.0]])
    obj = dice.pola_dice_objective(mine, other, rewards, values, gamma=0.5, gae_lambda=lam)
    torch.testing.assert_close(obj.detach(), torch.tensor(0.0))
    g_mine, g_other = _grads(obj, mine, other)
    torch.testing.assert_close(g_mine, torch.tensor([expected, expected]) / 2)
    torch.testing.assert_close(g_other, g_mine)


def test_kl_and_value_loss_by_hand():
    """KL(Bernoulli(0.5) || Bernoulli(0.8)) = 0.5 log(0.5 / 0.8) + 0.5 log(0.5 / 0.2); the value loss
    of rewards (1, 2), gamma 0.5 (returns (2, 2)) and values (0, 1) is 4 + 1."""
    logits = torch.zeros(1, 2)
    ref = torch.log(torch.tensor([[0.8, 0.2]]))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    torch.testing.assert_close(dice.pola_kl(logits, ref), torch.tensor(expected))
    torch.testing.assert_close(dice.pola_kl(ref, ref), torch.tensor(0.0))
    loss = dice.pola_value_loss(torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 2.0]]), 0.5)
    torch.testing.assert_close(loss, torch.tensor(5.0))
    with pytest.raises(ValueError, match="must match"):
        dice.pola_kl(torch.zeros(2, 2), torch.zeros(3, 2))


def test_one_look_ahead_step_differentiated_through_is_the_closed_form():
    """Tabular one-shot policies p = softmax(x) (agent), q = softmax(y) (the other), a fixed batch of
    joint actions (a_b, b_b) with the other's rewards r_b. One look-ahead step
    y' = y - lr * grad_y(-DiCE + beta KL(q_y || q_y0)). Its Jacobian in x is DiCE's second-order
    term, by hand: dy'/dx = lr * mean_b r_b (e_{b_b} - q)(e_{a_b} - p)^T (the KL term does not
    depend on x), and its value moves y by lr * mean_b r_b (e_{b_b} - q) at y = y0."""
    x = torch.tensor([0.3, -0.2], requires_grad=True)
    y0 = torch.tensor([-0.4, 0.1])
    y = y0.clone().requires_grad_(True)
    a = torch.tensor([0, 1, 1, 0])
    b = torch.tensor([1, 1, 0, 0])
    r = torch.tensor([[0.0], [-2.0], [-3.0], [-1.0]])
    lr, beta = 0.7, 2.0
    logp = torch.log_softmax(x, 0)[a].unsqueeze(1)
    logq = torch.log_softmax(y, 0)[b].unsqueeze(1)
    loss = -dice.pola_dice_objective(logq, logp, r, None, gamma=0.9) + beta * dice.pola_kl(y.expand(4, 2), y0.expand(4, 2))
    (g,) = torch.autograd.grad(loss, y, create_graph=True)
    y_new = y - lr * g
    p, q = torch.softmax(x.detach(), 0), torch.softmax(y0, 0)
    eye = torch.eye(2)
    step = lr * sum(r[i, 0] * (eye[b[i]] - q) for i in range(4)) / 4
    torch.testing.assert_close(y_new.detach(), y0 + step)
    jac = torch.stack([torch.autograd.grad(y_new[k], x, retain_graph=True)[0] for k in range(2)])
    expected = lr * sum(r[i, 0] * torch.outer(eye[b[i]] - q, eye[a[i]] - p) for i in range(4)) / 4
    torch.testing.assert_close(jac, expected)


def test_the_look_ahead_depends_on_the_agent_and_the_outer_step_sees_it(monkeypatch):
    """The algorithm's look-ahead carries the agent's parameters (differentiated through), and a
    rollout against it plays the look-ahead's values; with inner_lr -> 0 the dependence vanishes."""
    cfg = make_config("ipd", "pola", num_games=8, max_steps=3, hidden=4, inner_steps=1, outer_steps=1,
                      tensorboard=False)
    algo = algorithms.get("pola")(cfg)
    mine = {k: v.detach().clone().requires_grad_(True) for k, v in algo.actors[0].named_parameters()}
    theirs = {k: v.detach().clone() for k, v in algo.actors[1].named_parameters()}
    ahead = algo.look_ahead(0, mine, theirs)
    total = sum((v ** 2).sum() for v in ahead.values())
    grads = torch.autograd.grad(total, list(mine.values()), allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    moved = sum(float((ahead[k].detach() - theirs[k]).abs().sum()) for k in theirs)
    assert moved > 0
    algo.close()


def test_pola_trains_resumes_exactly_and_its_checkpoint_plays(tmp_path):
    """Two updates straight equal one update, a resume and another; the checkpoint is agent 1,
    a player of the league and of the cooperation table."""
    small = dict(num_games=8, max_steps=4, hidden=4, outer_steps=2, inner_steps=1, tensorboard=False, save_every=1)
    train(make_config("ipd", "pola", iterations=2, **small), tmp_path / "straight", progress=False)
    train(make_config("ipd", "pola", iterations=1, **small), tmp_path / "resumed", progress=False)
    train(make_config("ipd", "pola", iterations=2, **small), tmp_path / "resumed", resume=True, progress=False)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["state"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["state"]
    for key in ("actor", "actor1", "critic", "critic1"):
        for name in a[key]:
            torch.testing.assert_close(a[key][name], b[key][name], rtol=0, atol=0)
    player = load_player(tmp_path / "straight" / "checkpoint.pt")
    assert player.name.startswith("pola:")
    result = run_league("ipd", [str(tmp_path / "straight" / "checkpoint.pt"), "always_defect"], seeds=1, episodes=4)
    assert result.names[0] == "straight"
    table = cooperation_table(str(tmp_path / "straight" / "checkpoint.pt"), num_games=8)
    assert 0.0 <= table["start"][0] <= 1.0


def test_pola_cli_trains_on_the_coin_game(tmp_path, capsys):
    out = tmp_path / "coin"
    code = cli(["train", "--env", "coin_game", "--algo", "pola", "--fast", "--iterations", "1", "--num-games", "4",
                "--max-steps", "3", "--outer-steps", "1", "--hidden", "4", "--no-progress",
                "--no-tensorboard", "--out", str(out)])
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["run"]["algo"] == "pola" and config["algorithm"]["inner_steps"] == 2
    assert (out / "checkpoint.pt").exists()


def test_presets_are_the_authors_commands():
    ipd = make_config("ipd", "pola")
    assert (ipd.run.num_games, ipd.run.max_steps, ipd.run.iterations) == (2000, 50, 101)
    c = ipd.algorithm
    assert (c.inner_steps, c.outer_steps, c.inner_lr, c.outer_lr, c.value_lr, c.inner_beta, c.outer_beta, c.hidden,
            c.gamma, c.gae_lambda) == (2, 200, 0.005, 0.003, 0.0005, 10.0, 100.0, 64, 0.96, 1.0)
    coin = make_config("coin_game", "pola")
    assert (coin.run.num_games, coin.run.max_steps, coin.run.iterations) == (1000, 50, 251)
    c = coin.algorithm
    assert (c.inner_steps, c.outer_steps, c.inner_lr, c.inner_beta, c.outer_beta) == (4, 200, 0.01, 5.0, 150.0)


def test_pola_settings_are_validated_with_clear_errors():
    with pytest.raises(ValueError, match="inner_steps"):
        make_config("ipd", "pola", inner_steps=0)
    with pytest.raises(ValueError, match="outer_lr"):
        make_config("ipd", "pola", outer_lr=0.0)
    with pytest.raises(ValueError, match="gae_lambda"):
        make_config("ipd", "pola", gae_lambda=1.5)
    with pytest.raises(ValueError, match="rollout_steps"):
        make_config("ipd", "pola", max_steps=10, rollout_steps=5)
    with pytest.raises(ValueError, match="two players with discrete actions"):
        make_config("negotiation", "pola")
