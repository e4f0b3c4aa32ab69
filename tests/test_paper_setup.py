"""The published runs' set-up as options (issue 15): what a user sees of an IPD agent (its first
move, self-play, Always Defect), the Q-critic, every game against its own replayed snapshot
with that snapshot's critic, and the paper presets that use them."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import social_dilemmas
from trainers import algorithms, losses, train
from trainers.critics import SeparateCritic
from trainers.evaluation.cooperation import ROWS, cooperation_table, ipd_report, tit_for_tat_checks
from trainers.networks.grouped import grouped_call, stack_states
from trainers.networks.recurrent import Actor, Critic
from trainers.presets import make_config
from trainers.rollout import AgentReplay, Batch, SnapshotOpponents

PAPER_OPTIONS = dict(critic_kind="q", replay_groups=0, replay_critic=True, self_play_prob=0.0, snapshot_every=1)


class TitForTat(nn.Module):
    """Exact tit-for-tat with the trainers' memory interface; ``first``: P(cooperate) on round 0."""

    has_value_head = False

    def __init__(self, first: float):
        super().__init__()
        self.first = first

    def initial_memory(self, rows, device):
        return (torch.zeros(rows, 1, device=device),)

    def begin(self, memory):
        return memory

    def step(self, state, obs, start):
        started = obs.sum(-1) > 0  # the IPD's first observation is all zeros
        p = torch.where(started, obs[:, 2], torch.full_like(obs[:, 2], self.first)).clamp(1e-7, 1 - 1e-7)
        return torch.distributions.Categorical(probs=torch.stack((p, 1 - p), -1)), None, state


def test_ipd_report_sees_the_first_move_self_play_and_always_defect():
    tft = ipd_report(TitForTat(first=1.0), num_games=64)
    assert tft["start"] == pytest.approx(1.0) and tft["CC"] == pytest.approx(1.0) and tft["DC"] == pytest.approx(1.0)
    assert tft["CD"] == pytest.approx(0.0, abs=1e-6) and tft["DD"] == pytest.approx(0.0, abs=1e-6)
    assert tft["self_play"] == pytest.approx(-1.0) and tft["always_defect_gets"] == pytest.approx(-1.875)
    assert all(holds for *_, holds in tit_for_tat_checks(tft))
    # suspicious tit-for-tat: the same reaction to the previous round, but it opens with defection
    stft = ipd_report(TitForTat(first=0.0), num_games=64)
    assert [stft[c] for c in ("CC", "DC")] == pytest.approx([1.0, 1.0])
    assert stft["start"] == pytest.approx(0.0, abs=1e-6) and stft["self_play"] == pytest.approx(-2.0)
    failed = {metric for metric, *_, holds in tit_for_tat_checks(stft) if not holds}
    assert failed == {"start", "self_play"}
    assert list(cooperation_table(TitForTat(1.0), num_games=8)) == [*ROWS, "self_play"]


def test_q_critic_values_targets_and_td0_advantages_by_hand():
    torch.manual_seed(0)
    cfg = make_config("ipd", critic_kind="q", gae_lambda=0.0, value_norm=False, advantage_values="online", hidden=8,
                      max_steps=3).algorithm
    net = Critic(4, 8, value_norm=False, n_actions=2)
    critic = SeparateCritic(net, cfg, max_steps=3, device=torch.device("cpu"))
    with torch.no_grad():  # a target network different from the online one
        for p in critic.target.parameters():
            p.add_(0.1)
    N, T = 2, 3
    obs = torch.rand(N, T, 4)
    actions = torch.tensor([[0, 1, 1], [1, 0, 0]])
    probs = torch.tensor([[0.2, 0.8]]).expand(N, T, 2).contiguous()
    rewards = torch.tensor([[-1.0, -3.0, 0.0], [-2.0, -1.0, -1.0]])
    dones = torch.zeros(N, T, dtype=torch.bool)
    dones[:, -1] = True
    batch = Batch(obs, actions, torch.zeros(N, T), rewards, torch.zeros(N, T, dtype=torch.bool), dones,
                  torch.zeros(N, T, dtype=torch.bool), torch.ones(N, dtype=torch.bool), (torch.zeros(N, 8),), probs=probs)
    est = critic.estimate(batch)
    time = torch.arange(3.0) / 3
    q, _ = net(obs, time.expand(N, T))
    q_target, _ = critic.target(obs, time.expand(N, T))
    v = (probs * q).sum(-1).detach()
    g = cfg.gamma
    for b in range(N):
        for t in range(T):
            nxt = 0.0 if t == T - 1 else 1.0
            # the TD(0) target of Q(s_t, a_t): r + gamma * Q_target(s_{t+1}, a_{t+1})
            target = rewards[b, t] + nxt * g * (q_target[b, t + 1, actions[b, t + 1]] if t < T - 1 else 0.0)
            assert float(est.targets[b, t]) == pytest.approx(float(target), abs=1e-5)
            assert float(est.values[b, t].detach()) == pytest.approx(float(q[b, t, actions[b, t]].detach()), abs=1e-6)
            # the actor's advantage: r + gamma V(s_{t+1}) - V(s_t), V = sum_a pi(a) Q(a)
            adv = rewards[b, t] + nxt * g * (v[b, t + 1] if t < T - 1 else 0.0) - v[b, t]
            assert float(est.adv[b, t]) == pytest.approx(float(adv), abs=1e-5)


def test_snapshot_opponents_play_each_group_with_its_own_snapshot():
    torch.manual_seed(1)
    snapshots = [Actor(4, 8, n_actions=2) for _ in range(3)]
    template = Actor(4, 8, n_actions=2)
    opponents = SnapshotOpponents(template, [s.state_dict() for s in snapshots])
    rows = 3 * 4  # 4 games per group
    state = opponents.begin(opponents.initial_memory(rows, "cpu"))
    start = torch.ones(rows, dtype=torch.bool)
    for t in range(3):
        obs = torch.rand(rows, 4)
        dist, _, new_state = opponents.step(state, obs, start if t == 0 else None)
        for g, snap in enumerate(snapshots):
            sl = slice(4 * g, 4 * g + 4)
            ref, _, ref_state = snap.step((state[0][sl],), obs[sl], start[sl] if t == 0 else None)
            torch.testing.assert_close(dist.probs[sl], ref.probs)
            torch.testing.assert_close(new_state[0][sl], ref_state[0])
        state = new_state
    with pytest.raises(ValueError, match="equal groups"):
        opponents.initial_memory(10, "cpu")


def test_negotiation_snapshots_keep_their_own_log_std():
    snaps = [Actor(15, 8, action_dim=3, recurrent=False) for _ in range(2)]
    with torch.no_grad():
        snaps[0].log_std.fill_(-1.0)
        snaps[1].log_std.fill_(0.5)
    opponents = SnapshotOpponents(Actor(15, 8, action_dim=3, recurrent=False), [s.state_dict() for s in snaps])
    state = opponents.initial_memory(4, "cpu")
    obs, start = torch.rand(4, 15), torch.ones(4, dtype=torch.bool)
    dist, _, _ = opponents.step(state, obs, start)
    action = torch.tensor([[0.5, 2.5, 4.0]]).expand(4, 3)
    for g, snap in enumerate(snaps):
        sl = slice(2 * g, 2 * g + 2)
        ref, _, _ = snap.step((state[0][sl],), obs[sl], start[sl])
        torch.testing.assert_close(dist.log_prob(action)[sl], ref.log_prob(action[sl]))


def test_replayed_opponents_advantages_come_from_their_snapshots_critics():
    cfg = make_config("ipd", num_games=8, max_steps=5, hidden=8, iterations=6, tensorboard=False, gae_lambda=0.0,
                      replay_groups=4, **{k: v for k, v in PAPER_OPTIONS.items() if k != "replay_groups"})
    algo = algorithms.get("adalign")(cfg)
    for _ in range(3):
        algo.train_step()
    batch = algo.collect()
    assert isinstance(algo.opponent, SnapshotOpponents) and algo.opponent.groups == 4
    assert int(batch.learn.sum()) == 8  # seat 0 of every game learns; the snapshots' seats do not
    est = algo.critic.estimate(batch, algo.opponent)
    theirs = (~batch.learn).nonzero().squeeze(1)
    # each group's opponent advantages, from a critic network holding that snapshot's weights
    time = algo.critic.time.expand(len(theirs), 5)
    for g in range(4):
        rows = theirs[2 * g:2 * g + 2]
        critic = copy.deepcopy(algo.critic.net)
        critic.load_state_dict({k: v[g] for k, v in algo.opponent.critics.items()})
        part = batch.rows(rows)
        q, _ = critic(part.obs, time[:2])
        v = (part.probs * q).sum(-1)
        next_v = torch.cat((v[:, 1:], torch.zeros_like(v[:, :1])), 1)
        adv = part.rewards + cfg.algorithm.gamma * next_v * (~part.dones) - v
        torch.testing.assert_close(est.adv[rows], adv, atol=1e-5, rtol=1e-5)
    # the learning rows keep the current critic's advantages
    plain = algo.critic.estimate(batch)
    torch.testing.assert_close(est.adv[batch.learn], plain.adv[batch.learn])


def test_paper_replay_options_resume_exactly(tmp_path):
    kw = dict(num_games=8, max_steps=5, hidden=8, tensorboard=False, save_every=2, **PAPER_OPTIONS)
    full = train(make_config("ipd", iterations=4, **kw), tmp_path / "full", progress=False)
    train(make_config("ipd", iterations=2, **kw), tmp_path / "split", progress=False)
    resumed = train(out=tmp_path / "split", resume=True, iterations=4, progress=False)
    assert len(resumed.agents.critic_snapshots) == len(full.agents.critic_snapshots) == 4
    for k, v in full.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k]), k
    for k, v in full.critic.net.state_dict().items():
        assert torch.equal(v, resumed.critic.net.state_dict()[k]), k


def test_agent_replay_draws_one_snapshot_per_game_and_drops_the_oldest():
    import random

    replay = AgentReplay(self_play_prob=0.0, every=1, capacity=3, groups=0, with_critic=True)
    actor, critic = Actor(4, 8, n_actions=2), Critic(4, 8, n_actions=2)
    assert replay.opponent(actor, random.Random(0), num_games=6) is None  # no snapshot yet: self-play
    for i in range(1, 6):
        with torch.no_grad():
            actor.net.head[-1].bias.fill_(float(i))
        replay.after_update(i, actor, critic)
    assert len(replay.snapshots) == len(replay.critic_snapshots) == 3
    assert [float(s["net.head.0.bias"][0]) for s in replay.snapshots] == [3.0, 4.0, 5.0]
    opponents = replay.opponent(actor, random.Random(0), num_games=6)
    assert opponents.groups == 6 and set(opponents.stacked["net.head.0.bias"][:, 0].tolist()) <= {3.0, 4.0, 5.0}


def test_paper_options_are_validated_with_clear_errors():
    # groups that do not divide the games: the largest divisor below is used
    odd = algorithms.get("adalign")(make_config("ipd", num_games=12, replay_groups=16, hidden=8, max_steps=4))
    assert odd.agents.groups == 12
    assert algorithms.get("adalign")(make_config("ipd", num_games=12, replay_groups=5, hidden=8,
                                                 max_steps=4)).agents.groups == 4
    with pytest.raises(ValueError, match="critic_kind.*discrete"):
        make_config("negotiation", critic_kind="q", shared_encoder=False)
    with pytest.raises(ValueError, match="critic_kind.*allowed values are value, q"):
        make_config("ipd", critic_kind="advantage")
    with pytest.raises(ValueError, match="replay_critic.*trajectory_replay"):
        make_config("negotiation", replay_critic=True, trajectory_replay=0.05, shared_encoder=False)


def test_grouped_critic_matches_each_snapshot():
    critics = [Critic(4, 8, n_actions=2) for _ in range(2)]
    obs, time = torch.rand(2, 3, 5, 4), torch.rand(2, 3, 5)
    out, _ = grouped_call(critics[0], stack_states([c.state_dict() for c in critics]), obs, time, vmappable=True)
    for g, c in enumerate(critics):
        ref, _ = c(obs[g], time[g])
        torch.testing.assert_close(out[g], ref)


def test_evaluation_logs_the_first_move(tmp_path):
    run = train(make_config("ipd", num_games=8, max_steps=4, hidden=8, iterations=2, eval_every=2, eval_games=16,
                            tensorboard=False), tmp_path, progress=False)
    metrics = run.evaluate()
    assert 0.0 <= metrics["eval/first_cooperation"] <= 1.0
    assert {"eval/self", "eval/always_defect_gets"} <= set(metrics)
    assert social_dilemmas.make_game("ipd").action_metrics(torch.zeros(3, 2)) == {"cooperation": 1.0}


def test_negotiation_released_options_shape_the_proposals_distribution():
    actor = Actor(15, 8, action_dim=3, log_std_bounds=(-2.0, 10.0), atanh_limit=0.99)
    with torch.no_grad():
        actor.log_std.fill_(-5.0)
    dist, _, _ = actor.step(actor.initial_memory(2, "cpu"), torch.rand(2, 15), torch.ones(2, dtype=torch.bool))
    assert torch.allclose(dist.scale, torch.tensor(-2.0).exp())  # the log-std clamp
    # |u| is clamped to 0.99 before atanh: a proposal of 5 has the density of 4.975
    torch.testing.assert_close(dist.log_prob(torch.full((2, 3), 5.0)), dist.log_prob(torch.full((2, 3), 4.975)))
    free = Actor(15, 8, action_dim=3)
    free.load_state_dict(actor.state_dict())
    loose, _, _ = free.step(free.initial_memory(2, "cpu"), torch.rand(2, 15), torch.ones(2, dtype=torch.bool))
    assert torch.allclose(loose.scale, torch.tensor(-5.0).exp())


def test_negotiation_paper_preset_takes_two_actor_steps_with_weight_decay_and_the_sample_entropy(monkeypatch):
    cfg = make_config("negotiation", num_games=4, max_steps=4, hidden=8, iterations=1, tensorboard=False,
                      trajectory_replay=0.0)
    section = cfg.algorithm
    assert (section.actor_updates, section.log_prob_floor, section.entropy_bonus, section.weight_decay,
            section.critic_target, section.atanh_limit, (section.log_std_min, section.log_std_max)) == \
        (2, -10.0, "sample", 1e-4, "mc", 0.99, (-2.0, 10.0))
    algo = algorithms.get("adalign")(cfg)
    # the actor and its value head (the shared encoder's critic) both decay
    assert [g["weight_decay"] for g in algo.actor_opt.param_groups] == [1e-4, 1e-4]
    separate = algorithms.get("adalign")(make_config("negotiation", num_games=4, max_steps=4, hidden=8,
                                                     shared_encoder=False))
    assert separate.critic.opt.param_groups[0]["weight_decay"] == 1e-4
    seen, bonuses = [], []
    real_step, real_loss = torch.optim.Adam.step, losses.adalign_loss

    def counting(self, *a, **kw):
        seen.append(self is algo.actor_opt)
        return real_step(self, *a, **kw)

    def capturing(own, others, log_probs, bonus, **kw):
        bonuses.append((log_probs.detach(), bonus.detach()))
        return real_loss(own, others, log_probs, bonus, **kw)

    monkeypatch.setattr(torch.optim.Adam, "step", counting)
    monkeypatch.setattr(losses, "adalign_loss", capturing)
    algo.train_step()
    assert seen.count(True) == 2  # two actor steps on the batch (and one critic step)
    # the entropy bonus is minus the log-probability of the proposals taken, clamped at -10
    assert len(bonuses) == 2
    for log_probs, bonus in bonuses:
        assert float(log_probs.min()) >= -10.0
        torch.testing.assert_close(bonus, -log_probs)
    with pytest.raises(ValueError, match="actor_updates.*ppo_epochs"):
        make_config("negotiation", "proximal_adalign", actor_updates=2)


def _batch(games: int, n: int = 2, T: int = 3, tag: float = 0.0) -> Batch:
    rows = games * n
    ids = tag + torch.arange(rows, dtype=torch.float32)  # every row carries its own number
    return Batch(ids.view(rows, 1, 1).expand(rows, T, 1).clone(), torch.zeros(rows, T, dtype=torch.long),
                 torch.zeros(rows, T), ids.view(rows, 1).expand(rows, T).clone(), torch.zeros(rows, T, dtype=torch.bool),
                 torch.zeros(rows, T, dtype=torch.bool), torch.zeros(rows, T, dtype=torch.bool),
                 torch.ones(rows, dtype=torch.bool), (ids.view(rows, 1).clone(),))


def test_trajectory_buffer_keeps_whole_games_drops_the_oldest_and_replays_a_fraction():
    from trainers.rollout import TrajectoryReplay

    gen = torch.Generator().manual_seed(0)
    replay = TrajectoryReplay(fraction=0.25, n_players=2, capacity=6, add=4)
    first = replay.mix(_batch(8, tag=0.0), gen)
    assert torch.equal(first.rewards, _batch(8, tag=0.0).rewards)  # nothing stored yet: the batch as it came
    assert replay.size == 4 and replay.cursor == 4
    second = replay.mix(_batch(8, tag=100.0), gen)
    replayed = (second.rewards[:, 0] < 100).nonzero().squeeze(1)
    assert len(replayed) == 2 * 2  # 25% of 8 games, both seats of each
    for r in replayed.view(-1, 2):  # a replayed game keeps its two seats together, from the first batch
        assert int(second.rewards[r[0], 0]) % 2 == 0 and second.rewards[r[1], 0] == second.rewards[r[0], 0] + 1
        assert torch.equal(second.memory[0][r].squeeze(1), second.rewards[r, 0])
    assert replay.size == 6 and replay.cursor == 2  # 4 + 4 games into 6 slots: the oldest two overwritten
    stored = replay.buffer.rewards[:, 0]
    assert int((stored >= 100).sum()) == 8 and int((stored < 100).sum()) == 4


def test_trajectory_buffer_resumes_exactly(tmp_path):
    kw = dict(num_games=8, max_steps=4, hidden=8, tensorboard=False, save_every=2, trajectory_replay=0.25,
              trajectory_capacity=12, trajectory_add=4)
    full = train(make_config("negotiation", iterations=4, **kw), tmp_path / "full", progress=False)
    train(make_config("negotiation", iterations=2, **kw), tmp_path / "split", progress=False)
    resumed = train(out=tmp_path / "split", resume=True, iterations=4, progress=False)
    assert resumed.trajectories.size == full.trajectories.size == 12
    torch.testing.assert_close(resumed.trajectories.buffer.obs, full.trajectories.buffer.obs)
    for k, v in full.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k]), k


def test_keep_best_writes_the_best_training_return_agent_as_a_player(tmp_path):
    import csv

    from trainers.players import load_player

    cfg = make_config("ipd", num_games=8, max_steps=4, hidden=8, iterations=6, tensorboard=False, keep_best=True,
                      save_every=3, seed=2)  # seed 2: the best update is not the last
    train(cfg, tmp_path, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    rewards = [float(r["rollout/reward_per_step"]) for r in rows]
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["iteration"] == 1 + rewards.index(max(rewards)) and best["best_return"] == pytest.approx(max(rewards), abs=1e-4)
    assert best["iteration"] < 6 and set(best["state"]) == {"actor"}
    policy = load_player(tmp_path / "best.pt", social_dilemmas.make_game("ipd"))
    policy.reset(2, "cpu")
    assert policy.act(torch.zeros(2, 4)).shape == (2,)
    # resuming keeps the best return so far: best.pt is only replaced by a better update
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["best_return"] == pytest.approx(max(rewards), abs=1e-4)


def test_negotiation_critic_without_the_time_input():
    cfg = make_config("negotiation", num_games=4, max_steps=4, hidden=8, iterations=1, tensorboard=False,
                      shared_encoder=False)  # a separate critic (the preset's is the actor's value head)
    assert cfg.algorithm.critic_time is False
    algo = algorithms.get("adalign")(cfg)
    assert algo.critic.net.net.encoder[0].in_features == 15  # the observation only
    algo.train_step()
    timed = algorithms.get("adalign")(make_config("negotiation", num_games=4, max_steps=4, hidden=8, critic_time=True,
                                                  shared_encoder=False))
    assert timed.critic.net.net.encoder[0].in_features == 16


def test_shared_encoder_value_head_learns_with_the_actor_and_the_checkpoint_plays(tmp_path):
    from trainers.advantages import monte_carlo_returns
    from trainers.critics import ValueHead
    from trainers.players import load_player

    cfg = make_config("negotiation", num_games=8, max_steps=5, hidden=8, iterations=2, tensorboard=False,
                      trajectory_capacity=40, trajectory_add=4)
    assert cfg.algorithm.shared_encoder  # the released run's encoder, shared by actor and critic
    algo = algorithms.get("adalign")(cfg)
    assert isinstance(algo.critic, ValueHead) and algo.actor.has_value_head
    before = [p.detach().clone() for p in algo.actor.value_parameters()]
    batch = algo.collect()
    est = algo.critic.estimate(batch)
    # Monte Carlo targets for whole episodes (critic_target mc), GAE on the rollout's own values
    torch.testing.assert_close(est.targets, monte_carlo_returns(batch.rewards, batch.dones, cfg.algorithm.gamma))
    metrics = algo.update(batch)
    assert metrics["train/critic_loss"] > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, algo.actor.value_parameters()))
    # the values of a whole sequence are those of the steps
    dist, values = algo.actor.forward_sequence(batch.memory, batch.obs, batch.starts)
    state = algo.actor.begin(batch.memory)
    for t in range(batch.obs.shape[1]):
        step_dist, value, state = algo.actor.step(state, batch.obs[:, t], batch.starts[:, t])
        torch.testing.assert_close(value, values[:, t])
    train(cfg, tmp_path, progress=False)
    player = load_player(tmp_path / "checkpoint.pt", social_dilemmas.make_game("negotiation"))
    player.reset(2, "cpu")
    assert player.act(torch.zeros(2, 15)).shape == (2, 3)
    with pytest.raises(ValueError, match="shared_encoder.*self_play_prob 1"):
        make_config("negotiation", shared_encoder=True, self_play_prob=0.5)


@pytest.mark.parametrize("options, used", [
    (dict(advantage_values="online", critic_target="mc"), False),  # the Coin Game's CPU preset
    (dict(advantage_values="target", critic_target="mc"), True),
    (dict(advantage_values="online", critic_target="td0"), True),
])
def test_the_target_critic_runs_only_when_its_values_are_used(options, used):
    cfg = make_config("coin_game", num_games=4, max_steps=4, hidden=8, tensorboard=False, **options)
    algo = algorithms.get("adalign")(cfg)
    assert isinstance(algo.critic, SeparateCritic)
    calls = []
    algo.critic.target.register_forward_hook(lambda *_: calls.append(1))
    algo.critic.estimate(algo.collect())
    assert bool(calls) == used
