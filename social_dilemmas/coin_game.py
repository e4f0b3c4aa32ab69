"""Coin Game: the batched rules (the one source of truth)."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium
import numpy as np
import torch

from social_dilemmas import xp
from social_dilemmas.core import (
    BatchedGame,
    GameState,
    check_discrete_actions,
    check_finite_number,
    check_positive_int,
    to_numpy,
)

__all__ = ["CoinGame", "CoinGameState", "MOVES", "coin_rewards"]

#: (row, col) offsets of the actions 0 left, 1 right, 2 up, 3 down. There is no stay action.
MOVES = ((0, -1), (0, 1), (-1, 0), (1, 0))
ACTION_NAMES = ("left", "right", "up", "down")
_PLAYERS = np.array([0, 1], dtype=np.int64)
_SWAP = [1, 0]
_PLAYERS_CACHE: dict = {}
#: games per chunk of a torch step, reset or observation on the tables: the temporaries are
#: sized by the chunk (at most 512 KiB each, about 4 MB together), not the batch. The batch sizes
#: most trainers use fit in one chunk, which runs the kernels the step ran before the chunks. Internal;
#: results do not depend on it.
_CHUNK = 1 << 16


def _chunks(*tensors: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
    """``tensors`` (of one batch, along dim 0) cut into pieces of at most ``_CHUNK`` games: the
    tensors themselves when the batch fits in one (no views to make: small batches pay nothing)."""
    b = tensors[0].shape[0]
    if b <= _CHUNK:
        return [tensors]
    return [tuple(t[lo: lo + _CHUNK] for t in tensors) for lo in range(0, b, _CHUNK)]


def _into_chunks(fn, fixed: tuple, b: int, out_shape: tuple[int, ...], out_dtype: torch.dtype, *tensors: torch.Tensor):
    """``fn(*fixed, *tensors, out=None)`` (a new ``[b, *out_shape]`` tensor) for a batch that fits
    in one chunk (``index_select`` is a little faster without ``out=``); else one output filled
    chunk by chunk by ``fn(*fixed, *chunk_of_tensors, out=chunk_of_output)``."""
    if b <= _CHUNK:
        return fn(*fixed, *tensors, out=None)
    out = torch.empty((b, *out_shape), dtype=out_dtype, device=tensors[0].device)
    for *parts, out_c in _chunks(*tensors, out):
        fn(*fixed, *parts, out=out_c)
    return out


@dataclasses.dataclass
class CoinGameState(GameState):
    """Cells are flat indices ``row * size + col``.

    * ``pos``: int64 ``[B, 2]``, each player's cell;
    * ``coin``: int64 ``[B]``, the coin's cell;
    * ``owner``: int64 ``[B]``, the player who owns the coin.
    """

    pos: torch.Tensor
    coin: torch.Tensor
    owner: torch.Tensor


def _free_cell(u, pos, n_cells: int):
    """A uniformly random cell not occupied by either player, from uniform noise ``u`` ``[B]``.

    The ``j``-th free cell is found without scanning the board: count ``j`` over all cells
    and step over the (sorted) occupied cells.
    """
    lib = xp.lib(pos)
    lo = lib.minimum(pos[:, 0], pos[:, 1])
    hi = lib.maximum(pos[:, 0], pos[:, 1])
    distinct = lo != hi
    n_free = n_cells - 1 - xp.as_int(distinct)
    j = lib.minimum(xp.as_int(u * n_free), n_free - 1)
    cell = j + xp.as_int(j >= lo)
    return cell + xp.as_int((cell >= hi) & distinct)


def coin_rewards(on_coin, owner, penalty: float):
    """The Coin Game's reward rule (its one source: the game's steps and M-FOS's meta-game use
    it). float32 ``[B, 2]``: +1 to every player on the coin (``on_coin`` bool ``[B, 2]``), and
    ``penalty`` to the coin's ``owner`` ``[B]`` if the other player is on it. Numpy or torch
    arrays."""
    is_owner = owner[:, None] == xp.constant(_PLAYERS, owner, _PLAYERS_CACHE)
    stolen = (on_coin & ~is_owner).any(1)[:, None]
    return xp.as_float(on_coin) + xp.as_float(is_owner & stolen) * penalty


def _observation_rows(table, n: int, pos, coin, owner, out=None):
    """The rows of ``table`` (:meth:`_Tables.observations`, viewed as int64 words) of the states
    (``pos``, ``coin``, ``owner``) of a chunk of games, into ``out`` if given."""
    key = pos[:, 0] * (2 * n * n)  # ((p0 * n + p1) * n + coin) * 2 + owner
    key.add_(pos[:, 1], alpha=2 * n).add_(coin, alpha=2).add_(owner)
    return torch.index_select(table, 0, key, out=out)


class _Tables:
    """The rules above evaluated once on every input, so that a torch step looks results up
    (one gather each) instead of computing them in a dozen small kernels:

    * ``rewards[on_0 * 4 + on_1 * 2 + owner]``: :func:`coin_rewards`, float32 ``[8, 2]``;
    * ``free_count[p0 * n + p1]``: (number of free cells, minus one), int64 ``[n * n, 2]``;
      ``free[(p0 * n + p1) * n + j]``: the ``j``-th free cell (:func:`_free_cell`), int64;
    * ``obs[((p0 * n + p1) * n + coin) * 2 + owner]``: both players' planes of that state
      (:meth:`CoinGame._targets`), ``[2 n^3, 8 n]`` per dtype, made on first use.
    """

    def __init__(self, game: CoinGame, device: torch.device):
        n = game.n_cells
        on = np.array([[a, b] for a in (0, 1) for b in (0, 1) for _ in (0, 1)], dtype=bool)
        owner = np.array([0, 1] * 4, dtype=np.int64)
        self.rewards = torch.as_tensor(coin_rewards(on, owner, game.penalty), device=device)
        pairs = np.stack(np.divmod(np.arange(n * n), n), axis=1)  # [n * n, 2]: (p0, p1)
        n_free = n - 1 - (pairs[:, 0] != pairs[:, 1])
        self.free_count = torch.as_tensor(np.stack((n_free, n_free - 1), axis=1), device=device)
        # the j-th free cell: the rule's own function at noise u = (j + 1/2) / n_free
        j = np.arange(n)[None, :]
        u = ((np.minimum(j, n_free[:, None] - 1) + 0.5) / n_free[:, None]).astype(np.float32)
        free = _free_cell(u.reshape(-1), np.repeat(pairs, n, axis=0), n)
        self.free = torch.as_tensor(free, device=device)
        self.game, self.device, self.obs = game, device, {}

    def observations(self, dtype: torch.dtype) -> torch.Tensor:
        table = self.obs.get(dtype)
        if table is None:
            n = self.game.n_cells
            p0, p1, coin, owner = (a.reshape(-1) for a in np.meshgrid(*(np.arange(k) for k in (n, n, n, 2)), indexing="ij"))
            states = CoinGameState(t=np.zeros_like(p0), pos=np.stack((p0, p1), axis=1), coin=coin, owner=owner)
            planes = self.game._targets(states)[..., None] == np.arange(n)
            table = self.obs[dtype] = torch.as_tensor(planes.reshape(len(p0), 8 * n), device=self.device).to(dtype)
        return table


class CoinGame(BatchedGame[CoinGameState]):
    """Coin Game (Lerer & Peysakhovich 2017; Foerster et al. 2018, LOLA).

    ## Description
    Two players, red (``player_0``) and blue (``player_1``), move on a small toroidal grid
    with one coin on it. The coin belongs to one of them. Whoever steps on the coin picks
    it up and gets +1; if a player picks up the *other* player's coin, the owner loses 2.
    Greedy players who grab every coin end up with nothing on average, so the game is a
    sequential social dilemma with the incentive structure of the Prisoner's Dilemma.

    ## Action space
    ``Discrete(4)`` per player; moves wrap around the edges. There is no stay action.

    | Num | Action | (row, col) offset |
    |-----|--------|-------------------|
    | 0   | left   | (0, -1)           |
    | 1   | right  | (0, +1)           |
    | 2   | up     | (-1, 0)           |
    | 3   | down   | (+1, 0)           |

    ## Observation space
    ``Box(0, 1, (4, size, size), float32)`` per player: four binary planes from the
    player's own point of view (every player sees itself in channel 0). The view is not
    re-centred on the player. The batched view can give the same planes as uint8
    (``make_vec(..., obs_dtype="uint8")``, a ``Box(0, 1, ..., uint8)``): 36 bytes per
    player instead of 144; the trainers use it.

    | Channel | Plane                        |
    |---------|------------------------------|
    | 0       | my position                  |
    | 1       | the other player's position  |
    | 2       | the coin, if it is mine      |
    | 3       | the coin, if it is the other's |

    ## Rewards
    After both players move, every player standing on the coin gets +1. If a player who
    does not own the coin is on it, the owner also gets ``penalty`` (default -2). When
    both step on the coin at once, both get +1 and the owner also gets the penalty.
    Per step a reward lies in ``[penalty, 1 + penalty]`` or ``[0, 1]``, i.e. within
    ``[min(penalty, 0), 1]``.

    ## Coin respawn
    When the coin is picked up, a new coin appears on a uniformly random cell occupied by
    no player, and it belongs to the other player (``owner <- 1 - owner``).

    ## Starting state
    The first owner is uniform; the players' cells are uniform and may coincide; the coin
    is on a uniformly random cell free of players.

    ## Episode end
    The game never terminates; every view truncates after ``max_steps`` steps.

    ## Arguments
    * ``size``: side of the square grid, at least 2 (default 3).
    * ``penalty``: the owner's reward when the other player picks up its coin (default
      -2 as in LOLA, LOQA and the published league; the paper's text says -3).
    * ``max_steps``: steps per episode, default 16 (the published league's evaluation
      length; the training presets use 50).

    ## Version history
    * v0: initial release.
    """

    name = "coin_game"
    title = "Coin Game"
    action_kind = "discrete"
    reset_noise_size = 4
    step_noise_size = 1
    compact_obs_dtypes = (torch.uint8,)

    def __init__(self, size: int = 3, penalty: float = -2.0, max_steps: int = 16):
        self.size = check_positive_int("size", size, minimum=2)
        self.penalty = check_finite_number("penalty", penalty)
        self.max_steps = check_positive_int("max_steps", max_steps)
        self.n_cells = self.size * self.size
        rows, cols = np.divmod(np.arange(self.n_cells), self.size)
        nxt = np.stack(
            [((rows + dr) % self.size) * self.size + (cols + dc) % self.size for dr, dc in MOVES], axis=1
        )
        # next_cell[cell * 4 + action]
        self._next_flat = nxt.reshape(-1).astype(np.int64)
        self._cache: dict = {}
        self._cache_players: dict = {}
        self._cells = np.arange(self.n_cells, dtype=np.int64)
        self._cache_cells: dict = {}
        self._tables_on: dict = {}
        self._obs_space = gymnasium.spaces.Box(0.0, 1.0, (4, self.size, self.size), np.float32)
        self._act_space = gymnasium.spaces.Discrete(4)

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "penalty": self.penalty, "max_steps": self.max_steps}

    def observation_space(self) -> gymnasium.spaces.Box:
        return self._obs_space

    def action_space(self) -> gymnasium.spaces.Discrete:
        return self._act_space

    @property
    def reward_range(self) -> tuple[float, float]:
        return min(self.penalty, 0.0), 1.0 + max(self.penalty, 0.0)

    def next_cells(self, like) -> Any:
        """The move table ``[n_cells, 4]``: the cell reached from each cell by each action
        (on ``like``'s library and device)."""
        return xp.constant(self._next_flat, like, self._cache).reshape(self.n_cells, 4)

    # -- rules --------------------------------------------------------------------------
    def init(self, noise) -> CoinGameState:
        tables = self._tables(noise.device) if xp.is_torch(noise) else None
        if tables is not None:
            return self._init_looked_up(tables, noise)
        owner = xp.as_int(noise[:, 0] * 2).clip(max=1)
        pos = xp.as_int(noise[:, 1:3] * self.n_cells).clip(max=self.n_cells - 1)
        coin = _free_cell(noise[:, 3], pos, self.n_cells)
        return CoinGameState(t=xp.zeros_like_int(noise, (noise.shape[0],)), pos=pos, coin=coin, owner=owner)

    def _tables(self, device: torch.device) -> _Tables | None:
        """The looked-up rules on ``device`` (None for boards over 64 cells: tables too big)."""
        if self.n_cells > 64:
            return None
        tables = self._tables_on.get(device)
        if tables is None:
            tables = self._tables_on[device] = _Tables(self, device)
        return tables

    def transition(self, state: CoinGameState, actions, noise) -> tuple[CoinGameState, Any]:
        lib = xp.lib(state.pos)
        tables = self._tables(state.pos.device) if xp.is_torch(state.pos) else None
        if tables is not None:  # the same rules, looked up
            return self._transition_looked_up(tables, state, actions, noise[:, 0])
        pos = xp.constant(self._next_flat, state.pos, self._cache)[state.pos * 4 + xp.as_int(actions)]
        on_coin = pos == state.coin[:, None]  # [B, 2]
        rewards = coin_rewards(on_coin, state.owner, self.penalty)
        picked = on_coin.any(1)
        coin = lib.where(picked, _free_cell(noise[:, 0], pos, self.n_cells), state.coin)
        owner = lib.where(picked, 1 - state.owner, state.owner)
        return CoinGameState(t=state.t + 1, pos=pos, coin=coin, owner=owner), rewards

    def _init_looked_up(self, tables: _Tables, noise) -> CoinGameState:
        """:meth:`init` on torch tensors, the state in one allocation and the temporaries sized
        by a chunk of games (as :meth:`_transition_looked_up`)."""
        b, n = noise.shape[0], self.n_cells
        block = torch.empty(5 * b, dtype=torch.int64, device=noise.device)  # pos, coin, owner, t
        pos, coin, owner = block[: 2 * b].view(b, 2), block[2 * b: 3 * b], block[3 * b: 4 * b]
        scale = torch.tensor([2.0, n, n], device=noise.device)
        work = torch.empty(5 * min(b, _CHUNK), dtype=torch.int64, device=noise.device)
        for u, pos_c, coin_c, owner_c in _chunks(noise, pos, coin, owner):
            scaled = u[:, :3] * scale
            owner_c.copy_(scaled[:, 0]).clamp_(max=1)  # copy_ truncates, as as_int
            pos_c.copy_(scaled[:, 1:]).clamp_(max=n - 1)
            del scaled
            self._free_cell_looked_up(tables, u[:, 3], pos_c, work, out=coin_c)
        return CoinGameState(t=block[4 * b:].zero_(), pos=pos, coin=coin, owner=owner)

    def _transition_looked_up(self, tables: _Tables, state: CoinGameState, actions, u):
        """:meth:`transition` from the tables: the same numbers in fewer kernels. The new
        state's four tensors are views of one allocation and the rewards another, written in
        place (``out=``) chunk by chunk of at most ``_CHUNK`` games, so the integer and bool
        temporaries are sized by the chunk (a few MB), not the batch: at a million games a
        step allocates the new state and the rewards and little else (``benchmarks/memory.py``)."""
        b, dev = state.batch_size, state.pos.device
        block = torch.empty(5 * b, dtype=torch.int64, device=dev)  # pos, coin, owner, t
        work = torch.empty(5 * min(b, _CHUNK), dtype=torch.int64, device=dev)  # move (later counts), key, pair, j
        pos, coin, owner = block[: 2 * b].view(b, 2), block[2 * b: 3 * b], block[3 * b: 4 * b]
        rewards = _into_chunks(self._transition_chunk, (tables, work), b, (2,), torch.float32,
                               state.pos, state.coin, state.owner, actions, u, pos, coin, owner)
        t = torch.add(state.t, 1, out=block[4 * b:])
        return CoinGameState(t=t, pos=pos, coin=coin, owner=owner), rewards

    def _transition_chunk(self, tables: _Tables, work, old_pos, old_coin, old_owner, actions, u, pos, coin, owner, out):
        """One chunk of :meth:`_transition_looked_up`: the new ``pos``, ``coin`` and ``owner``
        written in place, the rewards returned (into ``out`` if given); ``work``: int64, at least
        5 x the chunk long, for the temporaries."""
        c = old_pos.shape[0]
        nxt = xp.constant(self._next_flat, old_pos, self._cache)
        move = torch.mul(old_pos, 4, out=work[: 2 * c].view(c, 2)).add_(xp.as_int(actions))
        torch.index_select(nxt, 0, move.view(-1), out=pos.view(-1))
        on_coin = pos == old_coin[:, None]  # [c, 2]
        key = torch.mul(on_coin[:, 0], 4, out=work[2 * c: 3 * c])  # on_0 * 4 + on_1 * 2 + owner
        key.add_(on_coin[:, 1], alpha=2).add_(old_owner)
        del on_coin
        rewards = torch.index_select(tables.rewards, 0, key, out=out)
        picked = key >= 2
        self._free_cell_looked_up(tables, u, pos, work, out=coin)
        torch.where(picked, coin, old_coin, out=coin)
        torch.bitwise_xor(old_owner, picked, out=owner)
        return rewards

    def _free_cell_looked_up(self, tables: _Tables, u, pos, work, out):
        """:func:`_free_cell` from the tables (``work``: int64, at least ``5 B`` long, to hold
        temporaries, its first 2 B and its fifth B are written; ``out``: int64 ``[B]`` for the
        result)."""
        n, b = self.n_cells, pos.shape[0]
        pair = torch.mul(pos[:, 0], n, out=work[3 * b: 4 * b]).add_(pos[:, 1])
        count = torch.index_select(tables.free_count, 0, pair, out=work[: 2 * b].view(b, 2))
        j = work[4 * b: 5 * b].copy_(u * count[:, 0])  # copy_ truncates, as .long()
        torch.minimum(j, count[:, 1], out=j)
        return torch.index_select(tables.free, 0, pair.mul_(n).add_(j), out=out)

    def _targets(self, state: CoinGameState):
        """Per game, player and channel the cell lit in that plane (-1: none), int64 ``[B, 2, 4]``:
        my cell, the other's cell, the coin in plane 2 if it is mine, else in plane 3."""
        lib, pos, coin = xp.lib(state.pos), state.pos, state.coin[:, None]
        mine = state.owner[:, None] == xp.constant(_PLAYERS, pos, self._cache_players)  # [B, 2]
        return lib.stack((pos, pos[:, _SWAP], lib.where(mine, coin, -1), lib.where(mine, -1, coin)), axis=2)

    def observe(self, state: CoinGameState):
        if xp.is_torch(state.pos):
            return self.observe_as(state, torch.float32)
        planes = self._targets(state)[..., None] == xp.constant(self._cells, state.pos, self._cache_cells)
        return xp.as_float(planes).reshape(state.batch_size, 2, 4, self.size, self.size)

    def observe_as(self, state: CoinGameState, dtype: torch.dtype) -> torch.Tensor:
        """The observations (torch tensors) in ``dtype`` (float32 or uint8): on boards of up
        to 16 cells each game's row of a table of every state's planes (looked up chunk by
        chunk of games, as the step); on larger ones one comparison of every plane's lit cell
        with every cell."""
        tables = self._tables(state.pos.device) if self.n_cells <= 16 else None
        if tables is not None:
            n, b = self.n_cells, state.batch_size
            # rows of 8n (uint8) or 32n (float32) bytes, copied as int64 words: fewer elements
            table = tables.observations(dtype).view(torch.int64)
            out = _into_chunks(_observation_rows, (table, n), b, table.shape[1:], torch.int64,
                               state.pos, state.coin, state.owner)
            return out.view(dtype).view(b, 2, 4, self.size, self.size)
        target = self._targets(state).unsqueeze(-1)  # [B, 2, 4, 1]
        out = torch.empty((state.batch_size, 2, 4, self.n_cells), dtype=dtype, device=target.device)
        torch.eq(target, xp.constant(self._cells, target, self._cache_cells), out=out)
        return out.view(state.batch_size, 2, 4, self.size, self.size)

    def validate_actions(self, actions: torch.Tensor) -> None:
        check_discrete_actions(actions, 4, "0 (left), 1 (right), 2 (up), 3 (down)")

    # -- rendering ----------------------------------------------------------------------
    def new_record(self, state: CoinGameState) -> dict[str, Any]:
        record = super().new_record(state)
        record["coins_picked"] = np.zeros((2, 2), dtype=np.int64)
        return record

    def update_record(self, record, prev, actions, rewards, state) -> None:
        super().update_record(record, prev, actions, rewards, state)
        coin, owner = int(prev.coin[0]), int(prev.owner[0])
        for player, cell in enumerate(to_numpy(state.pos[0]).tolist()):
            if cell == coin:
                record["coins_picked"][player, owner] += 1

    def frame(self, state: CoinGameState, record: dict[str, Any]) -> Any:
        from renderers.frames import CoinGameFrame

        pos = to_numpy(state.pos[0])
        coin = int(state.coin[0])
        return CoinGameFrame(
            size=self.size,
            positions=np.stack(np.divmod(pos, self.size), axis=1),
            coin=divmod(coin, self.size),
            coin_owner=int(state.owner[0]),
            scores=tuple(float(x) for x in record["scores"]),
            coins_picked=record["coins_picked"].copy(),
            step=int(state.t[0]),
            max_steps=self.max_steps,
        )
