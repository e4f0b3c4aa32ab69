"""The scripted players of the published league, and ``match.play`` with them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import social_dilemmas
from social_dilemmas import CoinGame, Negotiation, make_policy, scripted_names
from social_dilemmas.coin_game import CoinGameState
from social_dilemmas.ipd import IPD, IPDState
from social_dilemmas.match import play
from social_dilemmas.negotiation import NegotiationState

C, D = 0, 1
LAST_ROUNDS = [(-1, -1), (C, C), (C, D), (D, C), (D, D)]


def ipd_obs(seat: int) -> torch.Tensor:
    """The observations of ``seat`` after each round of :data:`LAST_ROUNDS` (first: no round yet)."""
    game = IPD()
    state = IPDState(t=torch.zeros(len(LAST_ROUNDS), dtype=torch.int64), last=torch.tensor(LAST_ROUNDS))
    return game.observe(state)[:, seat]


def test_scripted_names_per_game():
    assert set(scripted_names("ipd")) == {"always_cooperate", "always_defect", "random", "tit_for_tat", "grim_trigger"}
    assert set(scripted_names("coin_game")) == {"always_cooperate", "always_defect", "random"}
    assert set(scripted_names(Negotiation())) == {"always_cooperate", "always_defect", "random"}


# -- IPD ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seat", [0, 1])
def test_tit_for_tat_cooperates_first_then_copies_the_others_last_move(seat):
    policy = make_policy("tit_for_tat", IPD())
    policy.reset(len(LAST_ROUNDS))
    actions = policy.act(ipd_obs(seat)).tolist()
    others_last = [C] + [last[1 - seat] for last in LAST_ROUNDS[1:]]
    assert actions == others_last


@pytest.mark.parametrize("name, value", [("always_cooperate", C), ("always_defect", D)])
def test_constant_ipd_players(name, value):
    policy = make_policy(name, IPD())
    policy.reset(len(LAST_ROUNDS))
    for seat in (0, 1):
        actions = policy.act(ipd_obs(seat))
        assert actions.dtype == torch.int64
        assert actions.tolist() == [value] * len(LAST_ROUNDS)


def grim_against(others: list[int], episodes: int = 2):
    """grim_trigger as player_0 against the fixed sequence ``others`` (one per round),
    over ``episodes`` episodes of a VectorGame; returns its actions per episode."""
    game = IPD(max_steps=len(others))
    vec = social_dilemmas.make_vec("ipd", num_envs=1, max_steps=len(others))
    grim = make_policy("grim_trigger", game)
    obs, _ = vec.reset(seed=0)
    grim.reset(1)
    out = []
    for _ in range(episodes):
        mine = []
        for other in others:
            a = grim.act(obs[:, 0])
            mine.append(int(a[0]))
            obs, _, _, trunc, _ = vec.step(torch.tensor([[int(a[0]), other]]))
        grim.reset_envs(trunc)
        out.append(mine)
    return out


def test_grim_trigger_defects_forever_after_one_defection():
    actions = grim_against([C, C, D, C, C, C, C])[0]
    assert actions == [C, C, C, D, D, D, D]


def test_grim_trigger_cooperates_while_the_other_cooperates():
    assert grim_against([C] * 6)[0] == [C] * 6


def test_grim_trigger_forgives_at_the_next_episode():
    first, second = grim_against([D, C, C, C], episodes=2)
    assert first == [C, D, D, D]
    assert second == [C, D, D, D]  # cooperates again in round 1, then triggers again


def test_grim_trigger_forgets_only_the_games_that_were_reset():
    game = IPD()
    grim = make_policy("grim_trigger", game)
    grim.reset(2)
    defected = ipd_obs(0)[[2]].repeat(2, 1)  # the other defected, in both games
    cooperated = ipd_obs(0)[[1]].repeat(2, 1)
    assert grim.act(defected).tolist() == [D, D]
    grim.reset_envs(torch.tensor([True, False]))
    assert grim.act(cooperated).tolist() == [C, D]


def test_grim_trigger_resets_between_episodes_of_the_gymnasium_view():
    # player_0 defects once in episode 1; the grim opponent must start episode 2 cooperating
    env = social_dilemmas.single_agent_env("ipd", opponent="grim_trigger", max_steps=3)
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in (D, C, C)]
    assert rewards == [0.0, -3.0, -3.0]
    env.reset()
    assert env.step(C)[1] == -1.0


# -- Coin Game ----------------------------------------------------------------------------
def toroidal_distance(a: int, b: int, size: int) -> int:
    (ra, ca), (rb, cb) = divmod(a, size), divmod(b, size)
    dr, dc = abs(ra - rb), abs(ca - cb)
    return min(dr, size - dr) + min(dc, size - dc)


def avoid_coin(game: CoinGame, state: CoinGameState) -> torch.Tensor:
    """player_1's first move (in action order) that does not land on the coin."""
    dest = game.next_cells(state.pos)[state.pos[:, 1]]  # [B, 4]
    return (dest != state.coin[:, None]).long().argmax(1)


def walk_to_coin(game: CoinGame, policy_name: str, starts: list[tuple[int, int, int, int]], max_steps: int):
    """For (me, other, coin, owner) in ``starts``: player_0 plays ``policy_name``, player_1
    keeps off the coin; the number of steps until player_0 stands on the coin (or None)."""
    b = len(starts)
    me, other, coin, owner = (torch.tensor(x) for x in zip(*starts))
    state = CoinGameState(t=torch.zeros(b, dtype=torch.int64), pos=torch.stack((me, other), 1), coin=coin, owner=owner)
    policy = make_policy(policy_name, game)
    policy.reset(b)
    reached = [None] * b
    for step in range(1, max_steps + 1):
        obs = game.observe(state)
        actions = torch.stack((policy.act(obs[:, 0]), avoid_coin(game, state)), 1)
        target = state.coin
        state, _ = game.transition(state, actions, torch.rand(b, 1))
        assert (state.pos[:, 1] != target).all()
        for i in range(b):
            if reached[i] is None and int(state.pos[i, 0]) == int(target[i]):
                reached[i] = step
        # once a game has picked its coin it is done with: keep its coin fixed
        state.coin = torch.where(torch.tensor([r is None for r in reached]), state.coin, target)
        state.owner = owner
    return reached


def all_starts(size: int):
    n = size * size
    return [
        (me, other, coin, owner)
        for me, other, coin in itertools.product(range(n), repeat=3)
        for owner in (0, 1)
        if coin not in (me, other)
    ]


def test_coin_always_defect_picks_any_coin_within_two_steps_on_3x3():
    game = CoinGame(size=3)
    starts = all_starts(3)
    reached = walk_to_coin(game, "always_defect", starts, max_steps=2)
    assert all(r is not None for r in reached)


def test_coin_always_defect_walks_a_shortest_toroidal_path():
    game = CoinGame(size=5)
    starts = [(me, other, coin, owner) for me, other, coin, owner in all_starts(5) if other == 12][::3]
    reached = walk_to_coin(game, "always_defect", starts, max_steps=4)
    assert reached == [toroidal_distance(me, coin, 5) for me, _, coin, _ in starts]


def test_coin_always_cooperate_walks_a_shortest_path_to_its_own_coin():
    game = CoinGame(size=5)
    starts = [(me, other, coin, 0) for me, other, coin, owner in all_starts(5) if other == 7 and owner == 0][::3]
    reached = walk_to_coin(game, "always_cooperate", starts, max_steps=4)
    assert reached == [toroidal_distance(me, coin, 5) for me, _, coin, _ in starts]


def test_coin_always_cooperate_never_picks_up_the_others_coin():
    for seat in (0, 1):
        game = CoinGame()
        gen = torch.Generator().manual_seed(seat)
        state = game.reset(256, gen)
        coop = make_policy("always_cooperate", game)
        coop.reset(256)
        own_pickups = 0
        for _ in range(60):
            obs = game.observe(state)
            actions = torch.randint(4, (256, 2), generator=gen)
            actions[:, seat] = coop.act(obs[:, seat])
            prev = state
            state, _ = game.step(state, actions, gen)
            on_coin = state.pos[:, seat] == prev.coin
            assert not (on_coin & (prev.owner != seat)).any()
            own_pickups += int((on_coin & (prev.owner == seat)).sum())
        assert own_pickups > 500  # it does go for its own coins


def test_coin_always_cooperate_self_play_is_never_penalised():
    game = CoinGame()
    result = play(game, [make_policy("always_cooperate", game), make_policy("always_cooperate", game)], num_envs=256)
    assert (result.per_game >= 0).all()
    assert min(result.mean) > 0.2


# -- Negotiation --------------------------------------------------------------------------
def negotiation_obs(values0: list[tuple[float, float, float]], seat: int) -> torch.Tensor:
    game = Negotiation()
    v0 = torch.tensor(values0, dtype=torch.float32)
    b = len(values0)
    state = NegotiationState(
        t=torch.zeros(b, dtype=torch.int64),
        values=torch.stack((v0, 6 - v0), 1),
        proposals=torch.rand(b, 2, 3) * 5,
    )
    return game.observe(state)[:, seat]


ALL_VALUES = [tuple(v) for v in itertools.product((1.0, 5.0), repeat=3)]


@pytest.mark.parametrize("seat", [0, 1])
def test_negotiation_always_cooperate_asks_five_exactly_for_the_items_it_values_more(seat):
    policy = make_policy("always_cooperate", Negotiation())
    policy.reset(len(ALL_VALUES))
    proposals = policy.act(negotiation_obs(ALL_VALUES, seat))
    mine = np.array(ALL_VALUES) if seat == 0 else 6 - np.array(ALL_VALUES)
    assert proposals.dtype == torch.float32
    np.testing.assert_array_equal(proposals.numpy(), np.where(mine == 5, 5.0, 0.0))


def test_negotiation_always_cooperate_asks_nothing_for_items_valued_equally():
    game = Negotiation(value_low=3.0, value_high=3.0)
    obs = game.observe(game.reset(4, torch.Generator().manual_seed(0)))
    policy = make_policy("always_cooperate", game)
    policy.reset(4)
    for seat in (0, 1):
        assert not policy.act(obs[:, seat]).any()


def test_negotiation_always_defect_asks_five_for_everything():
    policy = make_policy("always_defect", Negotiation())
    policy.reset(len(ALL_VALUES))
    for seat in (0, 1):
        np.testing.assert_array_equal(policy.act(negotiation_obs(ALL_VALUES, seat)).numpy(), np.full((8, 3), 5.0))


def test_negotiation_always_cooperate_self_play_reaches_the_best_joint_reward():
    game = Negotiation()
    result = play(game, [make_policy("always_cooperate", game), make_policy("always_cooperate", game)], num_envs=128)
    np.testing.assert_allclose(result.per_game.sum(1).numpy(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(result.mean, [0.5, 0.5], atol=0.02)


# -- random -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ipd", "coin_game", "negotiation"])
def test_random_player_stays_in_the_action_space_and_is_reproducible(name):
    game = social_dilemmas.make_game(name)
    obs = game.observe(game.reset(2000, torch.Generator().manual_seed(0)))[:, 0]

    def draw(seed):
        policy = make_policy("random", game)
        policy.reset(2000, "cpu", torch.Generator().manual_seed(seed))
        return policy.act(obs)

    a, b, c = draw(1), draw(1), draw(2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    space = game.action_space()
    assert all(space.contains(x) for x in (a.numpy() if game.action_kind == "continuous" else a.tolist()))
    if game.action_kind == "discrete":
        assert set(a.tolist()) == set(range(space.n))  # every action is played
    else:
        assert a.min() < 0.1 and a.max() > 4.9  # spread over the whole box


# -- match.play ---------------------------------------------------------------------------
def ipd_match(p0: str, p1: str, **kwargs):
    game = IPD()
    return play(game, [make_policy(p0, game), make_policy(p1, game)], num_envs=8, **kwargs)


@pytest.mark.parametrize(
    "p0, p1, expected",
    [
        ("always_defect", "always_cooperate", (0.0, -3.0)),
        ("always_cooperate", "always_cooperate", (-1.0, -1.0)),
        ("always_defect", "always_defect", (-2.0, -2.0)),
        ("tit_for_tat", "always_defect", (-33 / 16, -30 / 16)),
        ("tit_for_tat", "tit_for_tat", (-1.0, -1.0)),
        ("grim_trigger", "always_defect", (-33 / 16, -30 / 16)),
        ("grim_trigger", "tit_for_tat", (-1.0, -1.0)),
    ],
)
def test_ipd_match_of_scripted_players_gives_hand_computed_rewards_per_step(p0, p1, expected):
    result = ipd_match(p0, p1, episodes=2)
    np.testing.assert_allclose(result.mean, expected, rtol=1e-6)
    assert result.per_game.shape == (16, 2)
    np.testing.assert_allclose(result.per_game.numpy(), np.tile(expected, (16, 1)), rtol=1e-6)


def test_match_rejects_wrong_number_of_players():
    game = IPD()
    with pytest.raises(ValueError, match="players"):
        play(game, [make_policy("random", game)])


def test_match_is_reproducible_from_its_seed():
    game = CoinGame()
    a = play(game, [make_policy("random", game), make_policy("always_defect", game)], num_envs=64, seed=3)
    b = play(game, [make_policy("random", game), make_policy("always_defect", game)], num_envs=64, seed=3)
    assert torch.equal(a.per_game, b.per_game)
