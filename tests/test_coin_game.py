"""Rules of the Coin Game (SPEC section 2), on the batched functions with hand-built states."""

from __future__ import annotations

import itertools

import gymnasium
import numpy as np
import pytest
import torch

from social_dilemmas.coin_game import CoinGame, CoinGameState

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3
OFFSETS = {LEFT: (0, -1), RIGHT: (0, 1), UP: (-1, 0), DOWN: (1, 0)}


def cell(row: int, col: int, size: int = 3) -> int:
    return row * size + col


def rc(c: int, size: int = 3) -> tuple[int, int]:
    return divmod(int(c), size)


def make_state(pos, coin, owner, t: int = 0) -> CoinGameState:
    """A batch of Coin Game states: ``pos`` ``[(cell_0, cell_1), ...]``, ``coin`` and ``owner`` per game."""
    pos_t = torch.tensor(pos, dtype=torch.int64).reshape(-1, 2)
    b = pos_t.shape[0]
    return CoinGameState(
        t=torch.full((b,), t, dtype=torch.int64),
        pos=pos_t,
        coin=torch.tensor(coin, dtype=torch.int64).reshape(b),
        owner=torch.tensor(owner, dtype=torch.int64).reshape(b),
    )


def move(game: CoinGame, state: CoinGameState, actions, noise=None):
    actions = torch.tensor(actions, dtype=torch.int64).reshape(-1, 2)
    if noise is None:
        noise = torch.zeros(actions.shape[0], 1)
    return game.transition(state, actions, torch.as_tensor(noise, dtype=torch.float32).reshape(-1, 1))


def expected_cell(c: int, action: int, size: int) -> int:
    r, col = rc(c, size)
    dr, dc = OFFSETS[action]
    return cell((r + dr) % size, (col + dc) % size, size)


# -- moves --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [3, 5])
def test_every_action_from_every_cell_moves_by_its_offset_on_the_torus(size):
    game = CoinGame(size=size)
    n = size * size
    starts = [(c0, c1) for c0 in range(n) for c1 in range(n)]
    for a0, a1 in itertools.product(range(4), repeat=2):
        state = make_state(starts, coin=[(c0 + 1) % n for c0, _ in starts], owner=[0] * len(starts))
        new, _ = move(game, state, [(a0, a1)] * len(starts))
        expected = [[expected_cell(c0, a0, size), expected_cell(c1, a1, size)] for c0, c1 in starts]
        assert new.pos.tolist() == expected


@pytest.mark.parametrize("size", [3, 5])
@pytest.mark.parametrize(
    "edge, action, wrap",
    [
        ("left", LEFT, lambda i, s: ((i, 0), (i, s - 1))),
        ("right", RIGHT, lambda i, s: ((i, s - 1), (i, 0))),
        ("top", UP, lambda i, s: ((0, i), (s - 1, i))),
        ("bottom", DOWN, lambda i, s: ((s - 1, i), (0, i))),
    ],
)
def test_moving_off_an_edge_wraps_to_the_opposite_edge(size, edge, action, wrap):
    game = CoinGame(size=size)
    for i in range(size):
        start, end = wrap(i, size)
        # both players walk off the same edge from the same cell; the coin is elsewhere
        coin = next(c for c in range(size * size) if c not in (cell(*start, size), cell(*end, size)))
        state = make_state([(cell(*start, size), cell(*start, size))], coin=[coin], owner=[0])
        new, _ = move(game, state, [(action, action)])
        assert [rc(c, size) for c in new.pos[0].tolist()] == [end, end], (edge, i)


def test_there_is_no_stay_action():
    game = CoinGame()
    assert game.action_space() == gymnasium.spaces.Discrete(4)
    state = make_state([(cell(1, 1), cell(0, 0))] * 4, coin=[cell(2, 2)] * 4, owner=[0] * 4)
    new, _ = move(game, state, [(a, a) for a in range(4)])
    assert all(p != cell(1, 1) for p in new.pos[:, 0].tolist())


# -- rewards ------------------------------------------------------------------------------
def test_picking_up_own_coin_gives_plus_one_and_no_penalty():
    game = CoinGame()
    # player_0 at (0,0) steps right onto its coin at (0,1); player_1 at (2,2) steps up to (1,2)
    state = make_state([(cell(0, 0), cell(2, 2))], coin=[cell(0, 1)], owner=[0])
    _, rewards = move(game, state, [(RIGHT, UP)])
    assert rewards.tolist() == [[1.0, 0.0]]
    # and the same from player_1's side
    state = make_state([(cell(2, 2), cell(0, 0))], coin=[cell(0, 1)], owner=[1])
    _, rewards = move(game, state, [(UP, RIGHT)])
    assert rewards.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("penalty", [-2.0, -3.0])
@pytest.mark.parametrize("picker", [0, 1])
def test_picking_up_the_others_coin_gives_plus_one_and_the_owner_the_penalty(picker, penalty):
    game = CoinGame(penalty=penalty)
    pos = [cell(0, 0), cell(2, 2)]  # the picker starts at (0,0), the owner at (2,2)
    actions = [RIGHT, UP]  # the picker reaches the coin at (0,1), the owner goes to (1,2)
    if picker == 1:
        pos, actions = pos[::-1], actions[::-1]
    owner = 1 - picker
    state = make_state([tuple(pos)], coin=[cell(0, 1)], owner=[owner])
    _, rewards = move(game, state, [tuple(actions)])
    expected = [0.0, 0.0]
    expected[picker], expected[owner] = 1.0, penalty
    assert rewards.tolist() == [expected]


def test_default_penalty_is_minus_two():
    assert CoinGame().penalty == -2.0


@pytest.mark.parametrize("penalty", [-2.0, -3.0])
@pytest.mark.parametrize("owner", [0, 1])
def test_both_on_the_coin_at_once_both_get_one_and_the_owner_also_the_penalty(owner, penalty):
    game = CoinGame(penalty=penalty)
    # player_0 comes from the left, player_1 from below, onto the coin at (1,1)
    state = make_state([(cell(1, 0), cell(2, 1))], coin=[cell(1, 1)], owner=[owner])
    _, rewards = move(game, state, [(RIGHT, UP)])
    expected = [1.0, 1.0]
    expected[owner] += penalty
    assert rewards.tolist() == [expected]


def test_no_reward_when_nobody_reaches_the_coin():
    game = CoinGame()
    state = make_state([(cell(0, 0), cell(0, 0))], coin=[cell(2, 2)], owner=[1])
    new, rewards = move(game, state, [(RIGHT, DOWN)])
    assert rewards.tolist() == [[0.0, 0.0]]
    assert new.coin.tolist() == [cell(2, 2)]


def test_sharing_a_cell_without_the_coin_gives_nothing():
    game = CoinGame()
    state = make_state([(cell(0, 0), cell(0, 2))], coin=[cell(2, 2)], owner=[0])
    new, rewards = move(game, state, [(RIGHT, LEFT)])
    assert new.pos.tolist() == [[cell(0, 1), cell(0, 1)]]
    assert rewards.tolist() == [[0.0, 0.0]]


# -- respawn and ownership ----------------------------------------------------------------
def _pickup_states(game: CoinGame):
    """For every pair of landing cells (q0, q1), equal or not: a state in which player_0
    steps left onto the coin at q0 and player_1 steps left onto q1."""
    n = game.n_cells
    right_of = game.next_cells(torch.zeros(1, dtype=torch.int64))[:, RIGHT]
    pairs = [(q0, q1) for q0 in range(n) for q1 in range(n)]
    state = make_state(
        [(int(right_of[q0]), int(right_of[q1])) for q0, q1 in pairs],
        coin=[q0 for q0, _ in pairs],
        owner=[0] * len(pairs),
    )
    return pairs, state


@pytest.mark.parametrize("size", [3, 5])
def test_respawned_coin_is_never_under_a_player_for_any_noise(size):
    game = CoinGame(size=size)
    pairs, state = _pickup_states(game)  # includes both players landing on one cell
    noises = np.concatenate(
        [np.linspace(0, 1, 401, dtype=np.float32)[:-1], [np.nextafter(np.float32(1), np.float32(0))]]
    )
    for u in noises:
        new, _ = move(game, state, [(LEFT, LEFT)] * len(pairs), noise=[u] * len(pairs))
        assert (new.owner == 1).all()  # every game picked the coin
        assert ((new.coin != new.pos[:, 0]) & (new.coin != new.pos[:, 1])).all(), u
        assert ((new.coin >= 0) & (new.coin < game.n_cells)).all()


@pytest.mark.parametrize("size", [3, 5])
def test_equal_slices_of_respawn_noise_cover_each_free_cell_exactly_once(size):
    # uniform over the free cells: the noise interval [0, 1) is cut into n_free equal parts,
    # one per free cell
    game = CoinGame(size=size)
    n = game.n_cells
    pairs, state = _pickup_states(game)
    landed = {p: [] for p in pairs}
    for j in range(n - 1):  # n - 1 free cells at most
        noise = [(j + 0.5) / (n - len({q0, q1})) for q0, q1 in pairs]
        new, _ = move(game, state, [(LEFT, LEFT)] * len(pairs), noise=noise)
        for k, (q0, q1) in enumerate(pairs):
            if j < n - len({q0, q1}):
                landed[(q0, q1)].append(int(new.coin[k]))
    for (q0, q1), cells in landed.items():
        assert sorted(cells) == sorted(set(range(n)) - {q0, q1}), (q0, q1)


def test_respawn_frequencies_are_uniform_over_free_cells():
    game = CoinGame()
    rng = np.random.default_rng(0)
    b = 70_000
    for landing in [(cell(0, 0), cell(1, 2)), (cell(2, 1), cell(2, 1))]:  # distinct cells, then a shared one
        right_of = game.next_cells(torch.zeros(1, dtype=torch.int64))[:, RIGHT]
        state = make_state(
            [(int(right_of[landing[0]]), int(right_of[landing[1]]))] * b, coin=[landing[0]] * b, owner=[1] * b
        )
        new, _ = move(game, state, [(LEFT, LEFT)] * b, noise=rng.random(b, dtype=np.float32))
        counts = np.bincount(new.coin.numpy(), minlength=9)
        free = sorted(set(range(9)) - set(landing))
        assert counts[list(landing)].sum() == 0
        expected = b / len(free)
        chi2 = (((counts[free] - expected) ** 2) / expected).sum()
        assert chi2 < 30, (landing, counts)  # df <= 7: p ~ 1e-4
        assert np.all(np.abs(counts[free] / b - 1 / len(free)) < 0.01)


def test_random_play_never_puts_the_coin_under_a_player():
    game = CoinGame()
    gen = torch.Generator().manual_seed(1)
    state = game.reset(4096, gen)
    shared_pickups = 0
    for _ in range(60):
        actions = torch.randint(4, (4096, 2), generator=gen)
        prev = state
        state, rewards = game.step(state, actions, gen)
        assert ((state.coin != state.pos[:, 0]) & (state.coin != state.pos[:, 1])).all()
        picked = (rewards > 0).any(1) | (state.pos == prev.coin[:, None]).any(1)
        shared_pickups += int((picked & (state.pos[:, 0] == state.pos[:, 1])).sum())
    assert shared_pickups > 0  # the case of both players on one cell was exercised


@pytest.mark.parametrize("owner", [0, 1])
def test_ownership_alternates_when_the_coin_is_picked_up(owner):
    game = CoinGame()
    # player_0 picks the coin, then player_1, then both at once
    state = make_state(
        [(cell(0, 0), cell(2, 2)), (cell(2, 2), cell(0, 0)), (cell(1, 0), cell(2, 1))],
        coin=[cell(0, 1), cell(0, 1), cell(1, 1)],
        owner=[owner] * 3,
    )
    new, _ = move(game, state, [(RIGHT, UP), (UP, RIGHT), (RIGHT, UP)], noise=[0.3, 0.6, 0.9])
    assert new.owner.tolist() == [1 - owner] * 3


@pytest.mark.parametrize("owner", [0, 1])
def test_coin_and_owner_stay_when_nobody_picks_it_up(owner):
    game = CoinGame()
    state = make_state([(cell(0, 0), cell(1, 1))], coin=[cell(2, 2)], owner=[owner])
    for noise in (0.0, 0.5, 0.99):
        new, _ = move(game, state, [(RIGHT, LEFT)], noise=[noise])
        assert new.owner.tolist() == [owner]
        assert new.coin.tolist() == [cell(2, 2)]


def test_transition_counts_steps():
    game = CoinGame()
    state = make_state([(0, 4)] * 2, coin=[8] * 2, owner=[0] * 2, t=5)
    new, _ = move(game, state, [(0, 0)] * 2)
    assert new.t.tolist() == [6, 6]


# -- reset --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def many_resets():
    game = CoinGame()
    return game, game.reset(20_000, torch.Generator().manual_seed(0))


def test_reset_never_puts_the_coin_under_a_player(many_resets):
    _, s = many_resets
    assert ((s.coin != s.pos[:, 0]) & (s.coin != s.pos[:, 1])).all()
    assert s.t.tolist() == [0] * 20_000


def test_reset_owner_is_uniform(many_resets):
    _, s = many_resets
    assert set(s.owner.tolist()) == {0, 1}
    assert abs(s.owner.float().mean().item() - 0.5) < 0.02


def test_reset_positions_are_uniform_and_may_coincide(many_resets):
    game, s = many_resets
    for player in (0, 1):
        freq = np.bincount(s.pos[:, player].numpy(), minlength=9) / 20_000
        assert np.all(np.abs(freq - 1 / 9) < 0.015), freq
    same = (s.pos[:, 0] == s.pos[:, 1]).float().mean().item()
    assert abs(same - 1 / 9) < 0.015


def test_reset_coin_is_uniform_over_free_cells(many_resets):
    _, s = many_resets
    lo = torch.minimum(s.pos[:, 0], s.pos[:, 1])
    hi = torch.maximum(s.pos[:, 0], s.pos[:, 1])
    for distinct, n_free in ((lo != hi, 7), (lo == hi, 8)):
        coin, lo_, hi_ = s.coin[distinct], lo[distinct], hi[distinct]
        # the coin's rank among the free cells is uniform whatever the players' cells
        rank = coin - (coin > lo_).long() - ((coin > hi_) & (hi_ != lo_)).long()
        freq = np.bincount(rank.numpy(), minlength=n_free) / len(rank)
        assert len(freq) == n_free
        assert np.all(np.abs(freq - 1 / n_free) < 0.03), freq


# -- observations -------------------------------------------------------------------------
def planes(size: int, me: int, other: int, coin: int, mine: bool) -> np.ndarray:
    out = np.zeros((4, size, size), dtype=np.float32)
    out[0][rc(me, size)] = 1
    out[1][rc(other, size)] = 1
    out[2 if mine else 3][rc(coin, size)] = 1
    return out


def test_spaces():
    game = CoinGame(size=5)
    assert game.observation_space() == gymnasium.spaces.Box(0.0, 1.0, (4, 5, 5), np.float32)
    assert CoinGame().observation_space().shape == (4, 3, 3)


@pytest.mark.parametrize("owner", [0, 1])
@pytest.mark.parametrize("library", ["torch", "numpy"])
def test_observation_channels_from_each_players_side(owner, library):
    # [me, other, my coin, other's coin]
    game = CoinGame()
    p0, p1, coin = cell(0, 0), cell(1, 2), cell(2, 1)
    state = make_state([(p0, p1)], coin=[coin], owner=[owner])
    if library == "numpy":
        state = state.numpy()
    obs = np.asarray(game.observe(state))
    assert obs.dtype == np.float32 and obs.shape == (1, 2, 4, 3, 3)
    np.testing.assert_array_equal(obs[0, 0], planes(3, p0, p1, coin, mine=owner == 0))
    np.testing.assert_array_equal(obs[0, 1], planes(3, p1, p0, coin, mine=owner == 1))


def test_observation_when_players_share_a_cell():
    game = CoinGame(size=5)
    shared, coin = cell(3, 4, 5), cell(0, 2, 5)
    obs = game.observe(make_state([(shared, shared)], coin=[coin], owner=[1])).numpy()
    np.testing.assert_array_equal(obs[0, 0], planes(5, shared, shared, coin, mine=False))
    np.testing.assert_array_equal(obs[0, 1], planes(5, shared, shared, coin, mine=True))


def test_observation_is_not_recentred_on_the_player():
    game = CoinGame()
    obs = game.observe(make_state([(cell(2, 2), cell(0, 1))], coin=[cell(1, 0)], owner=[0])).numpy()
    assert obs[0, 0, 0, 2, 2] == 1 and obs[0, 1, 0, 0, 1] == 1


# -- constructor arguments ----------------------------------------------------------------
@pytest.mark.parametrize("size", [1, 0, -3, 2.5, 3.0, "3", True, None])
def test_bad_size_raises_naming_size(size):
    with pytest.raises(ValueError, match="size"):
        CoinGame(size=size)


@pytest.mark.parametrize("size", [2, 4, 7])
def test_other_sizes_are_accepted(size):
    game = CoinGame(size=size)
    s = game.reset(200, torch.Generator().manual_seed(size))
    assert (s.pos < size * size).all() and (s.coin < size * size).all()
    assert ((s.coin != s.pos[:, 0]) & (s.coin != s.pos[:, 1])).all()


@pytest.mark.parametrize("penalty", [np.nan, np.inf, "x", None])
def test_bad_penalty_raises_naming_penalty(penalty):
    with pytest.raises(ValueError, match="penalty"):
        CoinGame(penalty=penalty)


@pytest.mark.parametrize("max_steps", [0, -1, 1.5])
def test_bad_max_steps_raises_naming_max_steps(max_steps):
    with pytest.raises(ValueError, match="max_steps"):
        CoinGame(max_steps=max_steps)


def test_default_arguments():
    game = CoinGame()
    assert (game.size, game.penalty, game.max_steps) == (3, -2.0, 16)
