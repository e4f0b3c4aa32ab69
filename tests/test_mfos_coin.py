"""M-FOS on the Coin Game (trainers.algorithms.mfos_coin): the meta-returns, the conditioning, the
naive learner, resume, the player and the command line."""

from __future__ import annotations

import pytest
import torch

import social_dilemmas
from social_dilemmas.coin_game import CoinGame
from social_dilemmas.match import play
from social_dilemmas.policies import make_policy
from trainers import algorithms
from trainers.algorithms import mfos_coin
from trainers.algorithms.mfos_coin import (
    CircularConv,
    CoinMetaAgent,
    carried_returns,
    coin_meta_episode,
    coin_ppo_update,
    observed_pickups,
)
from trainers.players import load_player
from trainers.presets import make_config
from trainers.run import train

#: A meta-episode of 2 inner episodes of 3 moves (4 meta-steps each) on 4 games, tiny networks.
SMALL = dict(num_games=4, meta_steps=2, max_steps=3, hidden=4, opponent_hidden=4, opponent_epochs=2, ppo_epochs=2,
             tensorboard=False, save_every=1, eval_games=4)


def authors_returns(rewards, gamma, episode_len):
    """The authors' loop (``PPOMFOS.update``) transcribed: the reference for :func:`carried_returns`."""
    out, g, carry = [], 0, 0
    for t, r in enumerate(reversed(list(rewards))):
        if t != 0 and t % episode_len == 0:
            g = carry
        g = r + gamma * g
        carry = r.mean(0, keepdim=True) + gamma * carry
        out.insert(0, g)
    return torch.stack(out)


def test_carried_returns_by_hand():
    # 2 inner episodes of 2 steps, 2 games, gamma 0.5; batch means 2, 1, 3, 3
    rewards = torch.tensor([[1.0, 3.0], [2.0, 0.0], [4.0, 2.0], [0.0, 6.0]])
    # from the end: M_3 = 3, M_2 = 3 + 1.5 = 4.5; the last episode is per game: G_3 = (0, 6), G_2 = (4, 5);
    # the first episode's last step carries the batch mean: G_1 = (2, 0) + 0.5 * 4.5, G_0 = (1, 3) + 0.5 G_1
    expected = torch.tensor([[3.125, 4.125], [4.25, 2.25], [4.0, 5.0], [0.0, 6.0]])
    assert torch.allclose(carried_returns(rewards, 0.5, 2), expected)
    assert torch.allclose(authors_returns(rewards, 0.5, 2), expected)
    x = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(carried_returns(x, 0.9, 4), authors_returns(x, 0.9, 4), atol=1e-6)
    with pytest.raises(ValueError, match="not whole inner episodes of 5"):
        carried_returns(x, 0.9, 5)


@pytest.mark.parametrize("size", [2, 3, 4])
def test_circular_conv_is_the_padded_convolution(size):
    conv = CircularConv(3, 5, size)
    x = torch.randn(6, 3, size, size)
    assert torch.allclose(conv(x), torch.nn.Conv2d.forward(conv, x), atol=1e-5)


def test_pickups_read_from_the_views_give_the_games_rewards():
    vec = social_dilemmas.make_vec("coin_game", 64, max_steps=5)
    gen = torch.Generator().manual_seed(1)
    obs = vec.reset(seed=0)[0]
    for _ in range(12):
        obs2, rewards, _, trunc, info = vec.step(torch.randint(4, (64, 2), generator=gen))
        after = info["final_obs"] if bool(trunc[0]) else obs2
        for seat in range(2):
            on_coin, owner = observed_pickups(obs[:, seat], after[:, seat])
            mine = mfos_coin.coin_rewards(on_coin, owner, vec.game.penalty)[:, 0]
            assert torch.equal(mine, rewards[:, seat])
        obs = obs2


def test_first_inner_episode_has_th_ones_and_the_update_sees_the_rollouts_probabilities():
    cfg = make_config("coin_game", "mfos", **SMALL)
    torch.manual_seed(0)
    vec = social_dilemmas.make_vec("coin_game", 4, max_steps=3)
    agent = CoinMetaAgent(3, 4)
    traj = coin_meta_episode(agent, cfg.algorithm, vec, torch.Generator().manual_seed(0))
    assert traj.states.shape == (2, 4, 4, 7, 3, 3) and traj.actions.shape == (2, 4, 4)
    assert torch.equal(traj.th[0], torch.ones(4))  # the first inner episode: th = ones
    assert torch.allclose(traj.th[1], agent.condition(traj.states[0]))  # then from the previous episode
    assert torch.equal(traj.rewards[:, -1], torch.zeros(2, 4))  # the final observation's step has no reward
    assert torch.equal(traj.states[:, -1, :, 6], torch.ones(2, 4, 3, 3))  # ... and its done plane is 1
    assert torch.equal(traj.states[:, :-1, :, 6], torch.zeros(2, 3, 4, 3, 3))
    assert torch.equal(traj.states[:, 1:, :, 5, 0, 0], traj.rewards[:, :-1])  # own reward plane: the last move's
    assert torch.equal(traj.states[:, 1:, :, 4, 0, 0], traj.other_rewards[:, :-1])  # the learner's
    with torch.no_grad():
        log_probs, values, _ = agent.evaluate(traj.states, traj.actions)
    assert torch.allclose(log_probs, traj.log_probs, atol=1e-5)
    assert values.shape == (2, 4, 4)


def test_th_gates_the_actor():
    agent = CoinMetaAgent(3, 4)
    x, memory = torch.rand(5, 7, 3, 3), torch.zeros(1, 5, 4)
    dist, _ = agent.step(x, memory, torch.zeros(4))  # th = 0: only the head's bias is left
    assert torch.allclose(dist.logits, torch.log_softmax(agent.head_a.bias, -1).expand(5, 4), atol=1e-6)
    th = torch.tensor([1.0, 0.0, 0.5, 0.0])
    out = torch.relu(agent.gru_a(agent.enc_a(x)[None], memory)[0][0])
    expected = torch.log_softmax(agent.head_a(out * th), -1)
    assert torch.allclose(agent.step(x, memory, th)[0].logits, expected, atol=1e-6)


def test_the_naive_learner_updates_after_each_inner_episode(monkeypatch):
    seen = []
    original = mfos_coin.InnerPPO.update

    def update(self):
        seen.append((len(self.rewards), [p.clone() for p in self.net.parameters()]))
        return original(self)

    monkeypatch.setattr(mfos_coin.InnerPPO, "update", update)
    cfg = make_config("coin_game", "mfos", **{**SMALL, "meta_steps": 3})
    algo = algorithms.get("mfos")(cfg)
    metrics = algo.train_step()
    assert [n for n, _ in seen] == [3, 3, 3]  # one update per inner episode, on its 3 moves
    for (_, a), (_, b) in zip(seen, seen[1:]):
        assert any(not torch.equal(p, q) for p, q in zip(a, b))  # it learned in between
    assert {"rollout/reward_per_step", "rollout/own_coin_rate", "train/policy_loss"} <= set(metrics)


def test_ppo_update_moves_the_meta_agent():
    cfg = make_config("coin_game", "mfos", **SMALL).algorithm
    torch.manual_seed(0)
    agent = CoinMetaAgent(3, 4)
    traj = coin_meta_episode(agent, cfg, social_dilemmas.make_vec("coin_game", 4, max_steps=3),
                             torch.Generator().manual_seed(0))
    before = {n: p.clone() for n, p in agent.named_parameters()}
    stats = coin_ppo_update(agent, torch.optim.Adam(agent.parameters(), lr=0.01), traj, cfg)
    assert stats["train/ratio_mean"] != 1.0 and stats["train/value_loss"] > 0
    for part in ("enc_a", "gru_a", "head_a", "enc_v", "gru_v", "head_v", "enc_t", "gru_t", "head_t"):
        # the actor, the critic and the conditioning (through the actor's loss) all learn
        assert any(not torch.equal(p, before[n]) for n, p in agent.named_parameters() if n.startswith(part)), part


def test_mfos_coin_game_resumes_exactly_and_plays_in_the_league(tmp_path):
    straight = train(make_config("coin_game", "mfos", iterations=2, **SMALL), tmp_path / "a", progress=False)
    assert type(straight).__name__ == "MFOSCoinGame"
    train(make_config("coin_game", "mfos", iterations=1, **SMALL), tmp_path / "b", progress=False)
    resumed = train(None, tmp_path / "b", resume=True, progress=False, iterations=2)
    for x, y in zip(straight.agent.state_dict().values(), resumed.agent.state_dict().values()):
        assert torch.equal(x, y)
    assert torch.equal(straight.th, resumed.th) and not torch.equal(straight.th, torch.ones(4))
    player = load_player(tmp_path / "a" / "checkpoint.pt", CoinGame())
    assert torch.equal(player.net.th, straight.th.cpu())
    # its first move is the meta-agent's with zero reward planes and the saved th
    vec = social_dilemmas.make_vec("coin_game", 8)
    obs = vec.reset(seed=3)[0]
    x = torch.cat((obs[:, 0], torch.zeros(8, 3, 3, 3)), 1)
    expected = straight.agent.step(x, torch.zeros(1, 8, 4), straight.th)[0].probs
    assert torch.allclose(player.distribution(obs[:, 0]).probs, expected, atol=1e-6)
    result = play(CoinGame(), [player, make_policy("always_defect", CoinGame())], num_envs=8, seed=0)
    assert all(-2 <= r <= 1 for r in result.mean)
    with pytest.raises(ValueError, match="holds an agent for coin_game, not for ipd"):
        load_player(tmp_path / "a" / "checkpoint.pt", social_dilemmas.spec("ipd"))
    metrics = straight.evaluate()
    assert {"eval/self", "eval/vs_always_defect", "eval/vs_always_cooperate"} <= set(metrics)


def test_mfos_coin_game_from_the_command_line_and_in_the_league(tmp_path, capsys):
    from trainers.__main__ import main

    out = tmp_path / "run"
    assert main(["train", "--env", "coin_game", "--algo", "mfos", "--iterations", "1", "--num-games", "4",
                 "--meta-steps", "1", "--max-steps", "3", "--hidden", "4", "--opponent-epochs", "1",
                 "--ppo-epochs", "1", "--no-tensorboard", "--out", str(out), "--no-progress"]) == 0
    assert (out / "checkpoint.pt").exists() and (out / "metrics.csv").exists()
    league = tmp_path / "league"
    assert main(["league", "--env", "coin_game", "--players", f"mfos={out}/checkpoint.pt", "always_cooperate",
                 "always_defect", "random", "--seeds", "1", "--episodes", "2", "--out", str(league),
                 "--no-progress"]) == 0
    table = (league / "league.csv").read_text()
    assert "mfos" in table and "always_defect" in table


def test_mfos_coin_game_settings_are_checked():
    with pytest.raises(ValueError, match="^opponent = 'self' is invalid: on coin_game the allowed value is nl"):
        make_config("coin_game", "mfos", opponent="self")
    with pytest.raises(ValueError, match="^env = 'negotiation' is invalid: M-FOS is implemented for ipd, coin_game"):
        make_config("negotiation", "mfos")
    with pytest.raises(ValueError, match="^opponent_epochs = 0 is invalid"):
        make_config("coin_game", "mfos", opponent_epochs=0)
    cfg = make_config("coin_game", "mfos")
    assert (cfg.run.num_games, cfg.run.iterations, cfg.run.max_steps, cfg.algorithm.meta_steps) == (512, 1000, 15, 16)
    assert (cfg.algorithm.lr, cfg.algorithm.ppo_epochs, cfg.algorithm.gamma, cfg.algorithm.hidden) == (2e-4, 16, 0.995, 16)
    assert (cfg.algorithm.opponent_lr, cfg.algorithm.opponent_epochs, cfg.algorithm.inner_gamma) == (0.005, 80, 0.96)
