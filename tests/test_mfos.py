"""M-FOS (trainers.algorithms.mfos) and the analytic memory-one IPD it plays (social_dilemmas.ipd)."""

from __future__ import annotations

import math

import pytest
import torch

from social_dilemmas.ipd import IPD, memory_one_values
from social_dilemmas.match import play
from social_dilemmas.policies import MemoryOnePolicy, make_policy
from social_dilemmas.vector import VectorGame
from trainers import algorithms
from trainers.algorithms.mfos import MetaAgent, MFOSConfig, _naive_steps, meta_episode, meta_returns, ppo_update
from trainers.evaluation.cooperation import cooperation_table
from trainers.players import load_player
from trainers.presets import make_config
from trainers.run import train

TFT = [1.0, 1.0, 0.0, 1.0, 0.0]
ALL_C, ALL_D = [1.0] * 5, [0.0] * 5


def values(a, b, gamma):
    return memory_one_values(torch.tensor([a], dtype=torch.float64), torch.tensor([b], dtype=torch.float64), gamma)[0]


@pytest.mark.parametrize("a, b, gamma, expected", [
    (ALL_C, ALL_D, 0.96, (-3 / 0.04, 0.0)),
    (TFT, TFT, 0.96, (-1 / 0.04, -1 / 0.04)),
    (TFT, ALL_D, 0.9, (-3 + 0.9 * -2 / 0.1, 0.9 * -2 / 0.1)),
    ([0.5] * 5, [0.5] * 5, 0.96, (-1.5 / 0.04, -1.5 / 0.04)),
    # constant 0.8 against constant 0.3: a's round = .24(-1) + .56(-3) + .06(0) + .14(-2) = -2.2,
    # b's = .24(-1) + .56(0) + .06(-3) + .14(-2) = -0.7
    ([0.8] * 5, [0.3] * 5, 0.9, (-2.2 / 0.1, -0.7 / 0.1)),
    # TFT against a coin flip: round 0 a: C, b: C or D (a -2, b -0.5), then both coin flips (-1.5 each)
    (TFT, [0.5] * 5, 0.5, (-2 - 1.5, -0.5 - 1.5)),
    # b's entries are from its own side: b (C at the start, D after CC, C after its DC = a's CD)
    # alternates C, D, C, ... against Always Cooperate: a gets -1, -3, ..., b -1, 0, ...
    (ALL_C, [1.0, 0.0, 0.0, 1.0, 0.0], 0.5, ((-1 - 3 * 0.5) / 0.75, -1 / 0.75)),
])
def test_memory_one_values_by_hand(a, b, gamma, expected):
    assert values(a, b, gamma).tolist() == pytest.approx(expected, abs=1e-9)


def test_memory_one_values_match_monte_carlo_play_of_the_batched_ipd():
    """Two random memory-one players over 100 rounds of the batched IPD (gamma^100 < 3e-5):
    the discounted returns agree with the analytic values within 4 standard errors."""
    gen = torch.Generator().manual_seed(0)
    pa, pb = torch.rand(1, 5, generator=gen), torch.rand(1, 5, generator=gen)
    gamma, n, rounds = 0.9, 8000, 100
    exact = memory_one_values(pa.double(), pb.double(), gamma)[0]
    vec = VectorGame(IPD(max_steps=rounds), n)
    obs, _ = vec.reset(seed=1)
    a, b = MemoryOnePolicy(pa), MemoryOnePolicy(pb)
    a.reset(n, generator=torch.Generator().manual_seed(2))
    b.reset(n, generator=torch.Generator().manual_seed(3))
    returns, discount = torch.zeros(n, 2, dtype=torch.float64), 1.0
    for _ in range(rounds):
        obs, rewards, *_ = vec.step(torch.stack((a.act(obs[:, 0]), b.act(obs[:, 1])), 1))
        returns += discount * rewards.double()
        discount *= gamma
    error = (returns.mean(0) - exact).abs()
    assert bool((error < 4 * returns.std(0) / math.sqrt(n) + 1e-3).all()), (returns.mean(0), exact)


def test_memory_one_values_reject_bad_shapes_and_discounts():
    with pytest.raises(ValueError, match="coop_a and coop_b"):
        memory_one_values(torch.ones(2, 4), torch.ones(2, 4), 0.9)
    with pytest.raises(ValueError, match="gamma"):
        memory_one_values(torch.ones(2, 5), torch.ones(2, 5), 1.0)


def test_memory_one_player_with_tit_for_tat_probabilities_plays_as_tit_for_tat():
    game = IPD()
    ours = play(game, [MemoryOnePolicy(TFT), make_policy("random", game)], num_envs=64, seed=5).mean
    scripted = play(game, [make_policy("tit_for_tat", game), make_policy("random", game)], num_envs=64, seed=5).mean
    assert ours == pytest.approx(scripted)
    with pytest.raises(ValueError, match="coop must be"):
        MemoryOnePolicy([0.5, 1.5, 0, 0, 0])


def test_naive_learner_step_is_gradient_ascent_on_its_exact_return():
    """The opponent's step equals opponent_lr times the finite-difference gradient of its own value."""
    cfg = MFOSConfig(opponent_lr=0.5, inner_gamma=0.9)
    gen = torch.Generator().manual_seed(4)
    agent_theta, nl_theta = torch.randn(3, 5, generator=gen, dtype=torch.float64), torch.randn(
        3, 5, generator=gen, dtype=torch.float64)
    nxt, vals, _ = _naive_steps([object(), None], [agent_theta, nl_theta], cfg, IPD().payoff)
    assert torch.equal(nxt[0], agent_theta)  # the meta-agent's logits are its action: unchanged
    eps = 1e-6
    for k in range(5):
        step = torch.zeros(5, dtype=torch.float64)
        step[k] = eps
        up = memory_one_values(torch.sigmoid(agent_theta), torch.sigmoid(nl_theta + step), 0.9)[:, 1]
        down = memory_one_values(torch.sigmoid(agent_theta), torch.sigmoid(nl_theta - step), 0.9)[:, 1]
        assert torch.allclose((nxt[1] - nl_theta)[:, k], 0.5 * (up - down) / (2 * eps), atol=1e-6)
    assert torch.allclose(vals, memory_one_values(torch.sigmoid(agent_theta), torch.sigmoid(nl_theta), 0.9))


def test_meta_returns_by_hand():
    # T = 2 rounds, B = 2 meta-episodes, gamma 0.5: G_1 = r_1, G_0 = r_0 + 0.5 r_1
    rewards = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    raw = torch.tensor([[2.0, 0.5], [2.0, 1.0]])
    mean = 5.5 / 4
    std = math.sqrt((4 + 0.25 + 4 + 1) / 4 - mean**2)
    assert torch.allclose(meta_returns(rewards, 0.5), (raw - mean) / (std + 1e-5))


def test_ppo_update_first_epoch_losses_by_hand():
    """At the first epoch the ratio is 1, so the clipped surrogate is -mean(G - V) = mean(V)
    (G normalised), the value loss mean((V - G)^2) and the entropy that of the normal."""
    torch.manual_seed(0)
    cfg = MFOSConfig(hidden=8, meta_steps=2, ppo_epochs=1, lr=1e-3)
    agent = MetaAgent(cfg.hidden)
    gen = torch.Generator().manual_seed(1)
    traj = meta_episode([agent, None], cfg, 3, gen, IPD().payoff)[0]
    with torch.no_grad():
        dist, v = agent(traj.states)
        expected_logp = dist.log_prob(traj.actions).sum(-1)
        g = meta_returns(traj.rewards, cfg.gamma)
        var = torch.nn.functional.softplus(agent.actor(traj.states)[..., 5:])
        ent = (0.5 * torch.log(2 * math.pi * math.e * var)).sum(-1).mean()
    assert torch.allclose(traj.log_probs, expected_logp, atol=1e-6)  # the rollout's log-probabilities
    before = [p.clone() for p in agent.parameters()]
    opt = torch.optim.Adam(agent.parameters(), lr=cfg.lr)
    out = ppo_update(agent, opt, traj, cfg)
    assert out["train/policy_loss"] == pytest.approx(float(v.mean()), abs=1e-6)
    assert out["train/value_loss"] == pytest.approx(float(((v - g) ** 2).mean()), abs=1e-6)
    assert out["train/entropy"] == pytest.approx(float(ent), abs=1e-5)
    assert out["train/approx_kl"] == pytest.approx(0.0, abs=1e-9)
    assert any(not torch.equal(p, q) for p, q in zip(before, agent.parameters()))


def test_meta_episode_against_a_naive_learner_follows_the_authors_reset():
    """The first state is the agent's random initial logits and the learner's before its first
    step; each later state is the logits played in the round before."""
    cfg = MFOSConfig(hidden=8, meta_steps=3)
    agent = MetaAgent(cfg.hidden)
    traj = meta_episode([agent, None], cfg, 4, torch.Generator().manual_seed(7), IPD().payoff)[0]
    gen = torch.Generator().manual_seed(7)
    init_agent, init_nl = torch.randn(4, 5, generator=gen), torch.randn(4, 5, generator=gen)
    assert torch.allclose(traj.states[0], torch.sigmoid(torch.cat((init_agent, init_nl), -1)))
    assert torch.allclose(traj.states[1][:, :5], torch.sigmoid(traj.actions[0]))
    nl_after_reset = _naive_steps([agent, None], [init_agent, init_nl], cfg, IPD().payoff)[0][1]
    assert torch.allclose(traj.states[1][:, 5:], torch.sigmoid(nl_after_reset), atol=1e-6)
    played = memory_one_values(torch.sigmoid(traj.actions[0]), torch.sigmoid(nl_after_reset), cfg.inner_gamma)
    assert torch.allclose(traj.rewards[0], (1 - cfg.inner_gamma) * played[:, 0], atol=1e-6)
    assert torch.allclose(traj.other_rewards[0], (1 - cfg.inner_gamma) * played[:, 1], atol=1e-6)


SMALL = dict(num_games=8, meta_steps=4, hidden=16, tensorboard=False, save_every=2, eval_games=8)


def test_mfos_trains_resumes_exactly_and_its_checkpoint_plays_in_the_league(tmp_path):
    straight = train(make_config("ipd", "mfos", iterations=4, **SMALL), tmp_path / "a", progress=False)
    train(make_config("ipd", "mfos", iterations=2, **SMALL), tmp_path / "b", progress=False)
    resumed = train(None, tmp_path / "b", resume=True, progress=False, iterations=4)
    for x, y in zip(straight.agents[0].state_dict().values(), resumed.agents[0].state_dict().values()):
        assert torch.equal(x, y)
    player = load_player(tmp_path / "a" / "checkpoint.pt", IPD())
    assert player.net.coop.shape == (8, 5)
    assert torch.allclose(player.net.coop, straight.shaped_policies()[0])
    # the player plays its policies: the same games as the memory-one players of its table, greedy
    as_table = play(IPD(), [MemoryOnePolicy(player.net.coop, greedy=True), make_policy("random", IPD())], 16, seed=1)
    greedy = load_player(tmp_path / "a" / "checkpoint.pt", IPD(), greedy=True)
    assert play(IPD(), [greedy, make_policy("random", IPD())], 16, seed=1).mean == pytest.approx(as_table.mean)
    table = cooperation_table(tmp_path / "a" / "checkpoint.pt", num_games=8)  # python -m trainers cooperation
    first = player.net.coop[torch.arange(16) % 8, 0].mean()
    assert table["start"][0] == pytest.approx(float(first), abs=1e-6)
    result = play(IPD(), [player, make_policy("tit_for_tat", IPD())], num_envs=16, seed=0)
    assert all(-3 <= r <= 0 for r in result.mean)
    metrics = straight.evaluate()
    assert {"eval/meta_reward_per_step", "eval/vs_always_defect", "eval/self"} <= set(metrics)


def test_mfos_self_play_updates_both_meta_agents():
    cfg = make_config("ipd", "mfos", opponent="self", nl_prob_decay=1.0, iterations=1, **SMALL)
    algo = algorithms.get("mfos")(cfg)
    before = [[p.clone() for p in a.parameters()] for a in algo.agents]
    metrics = algo.train_step()
    assert metrics["rollout/against_naive_learner"] == 0.0  # probability 0 of a naive-learner update
    assert metrics["rollout/reward_per_step"] == pytest.approx(metrics["rollout/opponent_reward_per_step_1"])
    for agent, old in zip(algo.agents, before):
        assert any(not torch.equal(p, q) for p, q in zip(agent.parameters(), old))


@pytest.mark.parametrize("overrides, name", [(dict(opponent="lola"), "opponent"), (dict(meta_steps=0), "meta_steps"),
                                             (dict(inner_gamma=1.0), "inner_gamma"), (dict(lr=0.0), "lr"),
                                             (dict(gamma=1.5), "gamma")])
def test_mfos_settings_are_validated_with_clear_errors(overrides, name):
    with pytest.raises(ValueError, match=f"^{name} = "):
        make_config("ipd", "mfos", **overrides)


def test_mfos_refuses_games_other_than_the_ipd_and_the_coin_game():
    with pytest.raises(ValueError, match="^env = 'negotiation' is invalid: M-FOS is implemented for ipd, coin_game"):
        make_config("negotiation", "mfos")


def test_mfos_trains_from_the_command_line(tmp_path):
    from trainers.__main__ import main

    out = tmp_path / "run"
    assert main(["train", "--env", "ipd", "--algo", "mfos", "--iterations", "1", "--num-games", "4",
                 "--meta-steps", "2", "--hidden", "8", "--no-tensorboard", "--out", str(out), "--no-progress"]) == 0
    assert (out / "checkpoint.pt").exists() and (out / "metrics.csv").exists()
