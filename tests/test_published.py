"""The published Coin Game league's agents (AdAlign, LOQA, POLA) as players of our Coin Game.

The agents are test fixtures in ``../shared/published_league`` (never copied into the
project); without that folder these tests skip, saying so.
"""

from __future__ import annotations

import glob
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import social_dilemmas
from social_dilemmas.policies import load_saved_player, make_policy, resolve_player, saved_player_format
from trainers.common import CheckpointError
from trainers.evaluation.league import run_league, same_seed_self_play
from trainers.published import POLA_ACTION_ORDER, FlaxGRUNet, published_players, read_published

ROOT = Path(os.environ.get("SOCIAL_DILEMMAS_PUBLISHED_LEAGUE",
                           Path(__file__).resolve().parents[2] / "shared" / "published_league"))
needs_fixtures = pytest.mark.skipif(not ROOT.is_dir(), reason=f"the published league's agents are not at {ROOT} "
                                    "(set SOCIAL_DILEMMAS_PUBLISHED_LEAGUE to a copy)")


def one(pattern: str) -> str:
    return sorted(glob.glob(str(ROOT / pattern)))[0]


def flax_step(p: dict, x: np.ndarray, h: np.ndarray, relu_after_second: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One step of the authors' ScanPOLAGruCell, written from flax's GRUCell equations (float64)."""
    def dense(name, v):
        return v @ np.asarray(p[name]["kernel"], np.float64) + np.asarray(p[name]["bias"], np.float64)

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    z = np.maximum(dense("linear1", x), 0.0)
    if "linear2" in p:
        z = dense("linear2", z)
    g = {k: np.asarray(p["GRUCell"][k]["kernel"], np.float64) for k in ("ir", "iz", "in", "hr", "hz", "hn")}
    b = {k: np.asarray(p["GRUCell"][k]["bias"], np.float64) for k in ("ir", "iz", "in", "hn")}
    r = sigmoid(z @ g["ir"] + b["ir"] + h @ g["hr"])
    u = sigmoid(z @ g["iz"] + b["iz"] + h @ g["hz"])
    n = np.tanh(z @ g["in"] + b["in"] + r * (h @ g["hn"] + b["hn"]))
    h = (1.0 - u) * n + u * h
    return dense("linear_end", h), h


def coin_observations(steps: int, seed: int = 0) -> np.ndarray:
    """A real game's observations of seat 0, ``[steps, 4, 3, 3]``."""
    game = social_dilemmas.make_game("coin_game")
    gen = torch.Generator().manual_seed(seed)
    state = game.reset(1, gen)
    out = []
    for _ in range(steps):
        out.append(game.observe(state)[0, 0].numpy())
        state, _ = game.step(state, torch.randint(4, (1, 2), generator=gen), gen)
    return np.stack(out)


@needs_fixtures
@pytest.mark.parametrize("pattern, hidden, layers", [
    ("advantage_alignment/minimal_state_25400_*", 64, 1),
    ("advantage_alignment/aa_baseline_minimal_state_*", 64, 1),
    ("loqa/*", 128, 2),
    ("pola/*.pkl", 64, 1),
])
def test_forward_pass_matches_the_flax_gru_cell_by_hand(pattern, hidden, layers):
    path = one(pattern)
    agent = read_published(path)
    assert (agent.hidden, agent.layers_before_gru) == (hidden, layers)
    net = FlaxGRUNet.from_flax(agent.actor, agent.action_order)
    obs = coin_observations(5)
    h = np.zeros(hidden)
    expected = []
    for t in range(len(obs)):
        logits, h = flax_step(agent.actor, obs[t].reshape(-1).astype(np.float64), h)
        if agent.action_order is not None:
            logits = logits[list(agent.action_order)]
        expected.append(logits)
    # step by step through the memory interface, as a match plays it
    state = net.initial_memory(1, "cpu")
    start = torch.tensor([True])
    for t in range(len(obs)):
        dist, _, state = net.step(state, torch.as_tensor(obs[t:t + 1]), start)
        start = torch.tensor([False])
        np.testing.assert_allclose(dist.logits.detach().double().numpy()[0], expected[t] - np.log(np.exp(expected[t]).sum()),
                                   atol=1e-5)
    # and the whole sequence at once
    dist, _ = net.forward_sequence(net.initial_memory(1, "cpu"), torch.as_tensor(obs[None]),
                                   torch.tensor([[True] + [False] * (len(obs) - 1)]))
    np.testing.assert_allclose(dist.logits[0].detach().double().numpy(),
                               np.stack([e - np.log(np.exp(e).sum()) for e in expected]), atol=1e-5)


@needs_fixtures
def test_pola_logits_are_permuted_to_our_action_order():
    agent = read_published(one("pola/*.pkl"))
    assert agent.kind == "pola" and agent.action_order == POLA_ACTION_ORDER
    raw = FlaxGRUNet.from_flax(agent.actor)  # the network's own order
    ours = FlaxGRUNet.from_flax(agent.actor, agent.action_order)
    x = torch.as_tensor(coin_observations(1))
    a = raw.step(raw.initial_memory(1, "cpu"), x, None)[0].logits[0]
    b = ours.step(ours.initial_memory(1, "cpu"), x, None)[0].logits[0]
    assert torch.allclose(b, a[list(POLA_ACTION_ORDER)])


@needs_fixtures
def test_q_network_matches_the_hand_computation_with_the_time_step_appended():
    agent = read_published(one("loqa/*"))
    q = FlaxGRUNet.from_flax(agent.qvalue, time_input=True)
    obs = coin_observations(4, seed=3)
    h = np.zeros(q.hidden)
    expected = []
    for t in range(len(obs)):
        out, h = flax_step(agent.qvalue, np.concatenate([obs[t].reshape(-1), [t]]).astype(np.float64), h)
        expected.append(out)
    got = q.q_values(torch.as_tensor(obs[None]))[0].detach().double().numpy()
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-4)


@needs_fixtures
def test_published_files_are_players_everywhere_a_player_is_accepted():
    game = social_dilemmas.make_game("coin_game", max_steps=16)
    loqa, pola = one("loqa/*"), one("pola/*.pkl")
    assert saved_player_format(loqa) == ".pkl"  # a pickle without a suffix
    assert saved_player_format(pola) == ".pkl"
    assert resolve_player(loqa, game).name.startswith("published-gru:")
    assert load_saved_player(pola, game, greedy=True).greedy
    env = social_dilemmas.single_agent_env("coin_game", opponent=pola)
    env.reset(seed=0)
    env.step(0)
    league = run_league(game, [f"loqa={ROOT}/loqa/*", "always_defect"], seeds=2, episodes=4)
    assert league.names == ["loqa", "always_defect"]


@needs_fixtures
def test_published_adalign_behaves_in_our_coin_game_as_in_the_paper():
    """Fig. 2: AdAlign cooperates with itself and with Always Cooperate and is not exploited
    by Always Defect (10 seeds, 32 16-step games each, the authors' protocol)."""
    game = social_dilemmas.make_game("coin_game", max_steps=16)
    spec = f"aa={ROOT}/advantage_alignment/minimal_state_25400_*"
    assert np.mean(same_seed_self_play(game, spec, seeds=10, episodes=32)) > 0.2  # paper 0.25
    result = run_league(game, [spec, "always_cooperate", "always_defect"], seeds=10, episodes=32)
    aa_vs_ac, ac_vs_aa = result.row_reward[0, 1], result.col_reward[0, 1]
    ad_vs_aa, ad_vs_ac = result.col_reward[0, 2], result.col_reward[1, 2]
    assert abs(aa_vs_ac - 0.45) < 0.03 and abs(ac_vs_aa - 0.09) < 0.03  # paper 0.45 / 0.09
    assert abs(ad_vs_aa - 0.19) < 0.03 and ad_vs_aa < 0.5 * ad_vs_ac  # paper 0.19: not exploited


@needs_fixtures
def test_published_players_finds_every_set_and_names_what_is_missing(tmp_path):
    specs = published_players(ROOT)
    assert [s.split("=")[0] for s in specs] == ["AdAlign", "AdAlign-NB", "LOQA", "POLA"]
    assert all(len(glob.glob(s.split("=", 1)[1])) == 10 for s in specs)
    with pytest.raises(FileNotFoundError, match="no LOQA agents under"):
        published_players(tmp_path, ("LOQA",))
    with pytest.raises(ValueError, match="allowed values"):
        published_players(ROOT, ("MFOS",))


@needs_fixtures
def test_a_published_agent_refuses_another_game():
    with pytest.raises(ValueError, match="3x3 Coin Game"):
        load_saved_player(one("pola/*.pkl"), social_dilemmas.make_game("ipd"))
    with pytest.raises(ValueError, match="3x3 Coin Game"):
        load_saved_player(one("pola/*.pkl"), social_dilemmas.make_game("coin_game", size=4))


class Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_damaged_or_foreign_files_get_an_error_naming_the_file(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"agent0": Boom()}))
    with pytest.raises(CheckpointError, match="evil.pkl.*refusing to build"):
        read_published(evil)
    short = tmp_path / "minimal_state_1"
    short.write_bytes(pickle.dumps({"agent0": {"params": {}}})[:10])
    assert saved_player_format(short) == ".pkl"
    with pytest.raises(CheckpointError, match="minimal_state_1.*could not be read"):
        read_published(short)
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"weights": np.zeros(3)}))
    with pytest.raises(CheckpointError, match="other.pkl.*neither"):
        load_saved_player(other, social_dilemmas.make_game("coin_game"))
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle")
    with pytest.raises(CheckpointError, match="notes.pkl"):
        read_published(text)
    wide = tmp_path / "wide.pkl"
    params = {"linear1": {"kernel": np.zeros((37, 8), np.float32), "bias": np.zeros(8, np.float32)},
              "GRUCell": {}, "linear_end": {}}
    wide.write_bytes(pickle.dumps([{"params": params}]))
    with pytest.raises(CheckpointError, match="wide.pkl.*37 inputs"):
        read_published(wide)
    assert saved_player_format(tmp_path / "plain.txt") is None


def test_a_text_file_without_a_suffix_is_not_a_saved_player(tmp_path):
    notes = tmp_path / "always_cooperate"
    notes.write_text("hello")
    assert saved_player_format(notes) is None
    assert make_policy("always_cooperate", social_dilemmas.make_game("coin_game")).name == "always_cooperate"


def test_scripted_coin_players_follow_the_published_league_definitions():
    """Always Defect takes a move that brings it closest to the coin, ties broken at random;
    Always Cooperate leaves the other's coin by the move that takes it farthest away."""
    game = social_dilemmas.make_game("coin_game")
    obs = torch.zeros(512, 4, 3, 3)
    obs[:, 0, 0, 0] = 1  # me at (0, 0)
    obs[:, 1, 2, 2] = 1
    obs[:, 3, 1, 1] = 1  # the other's coin at (1, 1): right and down are equally close
    gen = torch.Generator().manual_seed(0)
    defect = make_policy("always_defect", game)
    defect.reset(512, "cpu", gen)
    moves = defect.act(obs)
    assert set(moves.tolist()) == {1, 3}
    assert 0.4 < (moves == 1).float().mean() < 0.6
    coop = make_policy("always_cooperate", game)
    coop.reset(512, "cpu", gen)
    away = coop.act(obs)  # left or up wrap to (0, 2) / (2, 0): distance 2, the farthest
    assert set(away.tolist()) == {0, 2}
    obs[:, 3], obs[:, 2] = 0, 0
    obs[:, 2, 1, 1] = 1  # now its own coin
    assert set(coop.act(obs).tolist()) == {1, 3}
