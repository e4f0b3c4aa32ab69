"""Scripted players and the one policy interface every player of the project follows.

A :class:`Policy` plays one seat of a batch of games. It receives the observations of
its seat, ``[B, *obs_shape]`` tensors on any device, and returns actions
``[B, *action_shape]`` on the same device. Recurrent players keep their memory inside
the object: :meth:`Policy.reset` starts ``B`` fresh games and :meth:`Policy.reset_envs`
clears the memory of the games that have just been reset. The league, the video
recorder, the Gymnasium opponent argument and the trainers' checkpoints all use this
interface.

Scripted players::

    ipd:          always_cooperate, always_defect, random, tit_for_tat, grim_trigger
    coin_game:    always_cooperate, always_defect, random
    negotiation:  always_cooperate, always_defect, random

Coin Game (the published league's definitions, ``league/agent.py`` of the LOQA
repository): *always defect* takes the move that brings it closest to the coin whoever
owns it; *always cooperate* does so when the coin is its own and otherwise takes the move
that leaves it farthest from the coin. Distances are toroidal Manhattan distances after
the move; ties are broken uniformly at random with the player's generator. Negotiation (the
published league's definitions): *always cooperate* proposes ``max_proposal`` for the
items it values more than the other player and 0 for the rest; *always defect* proposes
``max_proposal`` for every item. *random* plays uniformly over the action space.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from social_dilemmas.core import BatchedGame

__all__ = ["Policy", "ScriptedPolicy", "CallablePolicy", "MemoryOnePolicy", "memory_one_cooperation", "make_policy", "resolve_player", "scripted_names", "SCRIPTED", "PLAYER_ENTRY_POINTS",
           "register_player_loader", "saved_player_suffixes", "saved_player_format", "load_saved_player"]


class Policy:
    """A batched player of one seat. Subclasses override :meth:`act` (and the resets if recurrent)."""

    #: a short name for tables and plots
    name: str = "policy"

    def reset(self, num_envs: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None) -> None:
        """Prepare to play ``num_envs`` fresh games on ``device``; random players draw from ``generator``."""
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.generator = generator

    def reset_envs(self, mask: torch.Tensor) -> None:
        """Forget the memory of the games where ``mask`` (``[B]`` bool) is true (they were just reset)."""

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Actions ``[B, *action_shape]`` for observations ``[B, *obs_shape]``."""
        raise NotImplementedError

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        return self.act(obs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class ScriptedPolicy(Policy):
    """A memoryless scripted player: ``fn(game, obs, generator) -> actions``."""

    def __init__(self, game: BatchedGame, name: str, fn: Callable):
        self.game, self.name, self._fn = game, name, fn
        self.generator = None

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        return self._fn(self.game, obs, getattr(self, "generator", None))


class GrimTrigger(Policy):
    """IPD: cooperate until the other player defects once, then defect for the rest of the game."""

    name = "grim_trigger"

    def __init__(self, game: BatchedGame):
        self.game = game
        self.triggered: torch.Tensor | None = None

    def reset(self, num_envs, device="cpu", generator=None) -> None:
        super().reset(num_envs, device, generator)
        self.triggered = torch.zeros(num_envs, dtype=torch.bool, device=self.device)

    def reset_envs(self, mask: torch.Tensor) -> None:
        if self.triggered is not None:
            self.triggered &= ~mask

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        other_defected = obs[:, 3] > 0.5
        if self.triggered is None or self.triggered.shape[0] != obs.shape[0]:
            self.reset(obs.shape[0], obs.device)
        # a fresh game (all-zero observation) starts untriggered even without reset_envs
        fresh = obs.sum(1) == 0
        self.triggered = (self.triggered & ~fresh) | other_defected
        return self.triggered.long()


def memory_one_cooperation(coop: torch.Tensor, obs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """IPD: the probabilities of cooperating ``[B]`` of memory-one policies after the observations
    ``obs`` ``[B, 4]`` (all zeros: the first round), game ``i`` playing row ``rows[i] % K`` of
    ``coop`` ``[K, 5]`` (the order of :data:`social_dilemmas.ipd.MEMORY_ONE_STATES`)."""
    table = coop.to(obs.device)
    chosen = table[rows.to(obs.device).long() % table.shape[0]]
    start = obs.sum(1) == 0
    last = 1 + 2 * (obs[:, 1] > 0.5).long() + (obs[:, 3] > 0.5).long()  # 1 + index of (CC, CD, DC, DD)
    return chosen.gather(1, torch.where(start, torch.zeros_like(last), last).unsqueeze(1)).squeeze(1)


class MemoryOnePolicy(Policy):
    """IPD: a memory-one player, its cooperation probabilities given per game.

    ``coop``: ``[K, 5]`` (or ``[5]``) probabilities of cooperating in the first round and
    after each last round (my action, other's action) in the order of
    :data:`social_dilemmas.ipd.MEMORY_ONE_STATES`. Game ``i`` of a batch plays row
    ``i % K`` (so ``K`` policies play in turn over the games of a match). Actions are drawn
    with the generator of :meth:`reset` (one seeded 0 when none is); ``greedy``: cooperate
    when the probability is at least 0.5. Tit-for-tat is ``[1, 1, 0, 1, 0]``.
    """

    def __init__(self, coop: Any, name: str = "memory_one", greedy: bool = False):
        table = torch.as_tensor(coop, dtype=torch.float32)
        table = table.unsqueeze(0) if table.dim() == 1 else table
        if table.dim() != 2 or table.shape[1] != 5 or table.shape[0] < 1 or not bool(
                ((table >= 0) & (table <= 1)).all()):
            raise ValueError(f"coop must be [K, 5] (or [5]) probabilities in [0, 1], got shape {tuple(table.shape)}")
        self.coop, self.name, self.greedy = table, name, greedy
        self.generator: torch.Generator | None = None

    def probabilities(self, obs: torch.Tensor) -> torch.Tensor:
        """Each game's probability of cooperating ``[B]`` after the IPD observations ``obs`` ``[B, 4]``."""
        return memory_one_cooperation(self.coop, obs, torch.arange(obs.shape[0], device=obs.device))

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        p = self.probabilities(obs)
        if self.greedy:
            return (p < 0.5).long()
        if getattr(self, "generator", None) is None:
            self.generator = torch.Generator(device=obs.device)
            self.generator.manual_seed(0)
        draw = torch.rand(p.shape, generator=self.generator, device=obs.device)
        return (draw >= p).long()  # 0 = cooperate with probability p


# -- the scripted players' rules ---------------------------------------------------------
def _constant(value: int) -> Callable:
    def fn(game, obs, generator):
        return torch.full((obs.shape[0],), value, dtype=torch.int64, device=obs.device)

    return fn


def _random(game, obs, generator):
    b, device = obs.shape[0], obs.device
    space = game.action_space()
    if game.action_kind == "discrete":
        return torch.randint(int(space.n), (b,), generator=generator, device=device)
    low = torch.as_tensor(space.low, device=device)
    high = torch.as_tensor(space.high, device=device)
    return low + (high - low) * torch.rand((b, *space.shape), generator=generator, device=device)


def _ipd_tit_for_tat(game, obs, generator):
    # copy the other's last move; cooperate in the first round (all-zero observation)
    return (obs[:, 3] > 0.5).long()


def _coin_move_distances(game, obs, generator):
    """Per game and action: the toroidal (Manhattan) distance from the cell the action
    leads to to the coin, plus a uniform draw in [0, 0.5) that breaks ties at random
    (distances are integers, so the draw never reorders them). Returns ``(scores [B, 4],
    whether the coin is mine [B])``."""
    size = game.size
    b = obs.shape[0]
    flat = obs.reshape(b, 4, size * size)
    me = flat[:, 0].argmax(1)
    coin = (flat[:, 2] + flat[:, 3]).argmax(1)
    dest = game.next_cells(me)[me]  # [B, 4]
    d_row = (dest // size - (coin // size).unsqueeze(1)).abs()
    d_col = (dest % size - (coin % size).unsqueeze(1)).abs()
    dist = torch.minimum(d_row, size - d_row) + torch.minimum(d_col, size - d_col)
    ties = 0.5 * torch.rand(dest.shape, generator=generator, device=obs.device)
    return dist.float() + ties, flat[:, 2].amax(1) > 0.5


def _coin_defect(game, obs, generator):
    return _coin_move_distances(game, obs, generator)[0].argmin(1)


def _coin_cooperate(game, obs, generator):
    scores, mine = _coin_move_distances(game, obs, generator)
    return torch.where(mine, scores.argmin(1), scores.argmax(1))


def _negotiation_values(game, obs):
    n = game.n_items
    return obs[:, n : 2 * n], obs[:, 3 * n : 4 * n]


def _negotiation_cooperate(game, obs, generator):
    mine, other = _negotiation_values(game, obs)
    return torch.where(mine > other, game.max_proposal, 0.0).float()


def _negotiation_defect(game, obs, generator):
    return torch.full((obs.shape[0], game.n_items), game.max_proposal, dtype=torch.float32, device=obs.device)


SCRIPTED: dict[str, dict[str, Callable]] = {
    "ipd": {
        "always_cooperate": _constant(0),
        "always_defect": _constant(1),
        "random": _random,
        "tit_for_tat": _ipd_tit_for_tat,
        "grim_trigger": GrimTrigger,
    },
    "coin_game": {"always_cooperate": _coin_cooperate, "always_defect": _coin_defect, "random": _random},
    "negotiation": {"always_cooperate": _negotiation_cooperate, "always_defect": _negotiation_defect, "random": _random},
}


def scripted_names(game: str | BatchedGame) -> list[str]:
    """The names of the scripted players of a game."""
    key = game if isinstance(game, str) else game.name
    if key not in SCRIPTED:
        raise ValueError(f"no scripted players for game {key!r}; games with scripted players: {sorted(SCRIPTED)}")
    return list(SCRIPTED[key])


def make_policy(name: str, game: BatchedGame) -> Policy:
    """The scripted player ``name`` for ``game`` (see :func:`scripted_names`)."""
    table = SCRIPTED.get(game.name)
    if table is None or name not in table:
        raise ValueError(
            f"unknown scripted player {name!r} for {game.name}; allowed values: {scripted_names(game.name)}"
        )
    entry = table[name]
    if isinstance(entry, type):
        return entry(game)
    return ScriptedPolicy(game, name, entry)


class CallablePolicy(Policy):
    """Wraps ``fn(observation) -> action`` (one numpy observation, one action) as a batched policy."""

    def __init__(self, fn: Callable, game: BatchedGame):
        self.fn, self.game = fn, game
        self.name = getattr(fn, "__name__", "callable")

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        from social_dilemmas.parallel import to_numpy_action

        arr = obs.detach().cpu().numpy()
        acts = [to_numpy_action(self.game, "the callable player", self.fn(o)) for o in arr]
        return torch.as_tensor(np.asarray(acts), dtype=self.game.action_dtype).to(obs.device)


#: The entry-point group through which installed packages provide loaders of saved players.
#: An entry point's name is the file suffix it loads (``".pt"``) and its object a function
#: ``loader(path, game, **kwargs) -> Policy``. This project's ``pyproject.toml`` declares the
#: trainers' loaders there, so this package never names the trainers and imports a loader
#: only when a file of its suffix is given.
PLAYER_ENTRY_POINTS = "social_dilemmas.players"

_registered_loaders: dict[str, Callable] = {}


def register_player_loader(suffix: str, loader: Callable) -> None:
    """Load saved players ending in ``suffix`` (``".pt"``) with ``loader(path, game, **kwargs)``
    in this process (beside, and before, the installed entry points)."""
    if not isinstance(suffix, str) or not suffix.startswith(".") or len(suffix) < 2:
        raise ValueError(f"suffix must be a file suffix such as '.pt', got {suffix!r}")
    if not callable(loader):
        raise TypeError(f"loader must be callable, got {type(loader).__name__}")
    _registered_loaders[suffix] = loader


@functools.lru_cache(maxsize=1)
def _installed_loaders() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=PLAYER_ENTRY_POINTS)}


def saved_player_suffixes() -> tuple[str, ...]:
    """The suffixes of saved players that can be loaded here (``(".pt", ".zip")`` with the trainers installed)."""
    return tuple(sorted({**_installed_loaders(), **_registered_loaders}))


#: The first byte of a pickle (protocol 2 and later), and the suffix whose loader takes
#: pickles saved without one (the published Coin Game league's ``minimal_state_*`` files).
_PICKLE_MAGIC = b"\x80"
PICKLE_SUFFIX = ".pkl"


def saved_player_format(path: str | Path) -> str | None:
    """The suffix of the loader that takes the saved player ``path``, or None if it is not one.

    A path whose suffix has a loader (:func:`saved_player_suffixes`) is that suffix, whether
    or not the file exists yet. An existing file with another suffix, or none, that starts
    like a pickle goes to the ``.pkl`` loader when one is installed (the published league's
    agents are pickles without a suffix). Anything else is None (a scripted player's name,
    say)."""
    text = str(path)
    suffix = Path(text).suffix
    suffixes = saved_player_suffixes()
    if suffix in suffixes:
        return suffix
    if PICKLE_SUFFIX in suffixes and os.path.isfile(text):
        try:
            with open(text, "rb") as f:
                head = f.read(2)
        except OSError:
            return None
        if len(head) == 2 and head[:1] == _PICKLE_MAGIC and 2 <= head[1] <= 5:
            return PICKLE_SUFFIX
    return None


def load_saved_player(path: str | Path, game: Any, **kwargs: Any) -> Policy:
    """The saved player in ``path`` as a :class:`Policy` for ``game``, through the loader of its
    format (:func:`saved_player_format`: its suffix; a pickle without a known suffix goes to
    the ``.pkl`` loader), found with :func:`register_player_loader`, then the
    :data:`PLAYER_ENTRY_POINTS` group. ``kwargs`` go to the loader (the trainers' take
    ``device`` and ``greedy``)."""
    text = str(path)
    suffix = saved_player_format(text) or Path(text).suffix
    loader = _registered_loaders.get(suffix)
    if loader is None:
        entry = _installed_loaders().get(suffix)
        if entry is None:
            known = ", ".join(saved_player_suffixes()) or "none: install the project (pip install -e .) for its loaders"
            raise ValueError(f"no loader of saved players for {text!r}: the suffixes that load are {known}")
        try:
            loader = entry.load()
        except ImportError as e:
            raise ImportError(f"loading {text!r} needs {entry.value!r}, which could not be imported: {e}") from e
    if not Path(text).exists():
        raise FileNotFoundError(f"player file {text!r} does not exist")
    return loader(text, game, **kwargs)


def resolve_player(player: Any, game: BatchedGame, argument: str = "player") -> Policy:
    """A player for ``game`` as a :class:`Policy`.

    ``player`` is the name of a scripted player (``"tit_for_tat"``...), a path to a saved
    player (a trainer checkpoint ``.pt``, a Stable-Baselines3 model ``.zip``, an agent of the
    published Coin Game league: see :func:`load_saved_player`), a :class:`Policy` instance, or a callable ``fn(observation) -> action``
    taking one numpy observation of its seat. A class (``Policy`` itself, say) is refused:
    pass an instance. Errors name ``argument`` (``"opponent"`` in the Gymnasium view), the
    scripted players and the suffixes of saved players (:func:`saved_player_suffixes`).
    """
    if isinstance(player, Policy):
        return player
    kinds = (f"a scripted player's name ({', '.join(scripted_names(game.name)) if game.name in SCRIPTED else 'none'}), "
             f"a saved player's path ({_saved_kinds()}), a Policy instance or a callable obs -> action")
    if isinstance(player, type):
        raise TypeError(f"{argument} must be {kinds}; got the class {player.__name__}, not an instance of it "
                        f"(call it: {player.__name__}(...))")
    if isinstance(player, (str, Path)):
        text = str(player)
        if saved_player_format(text) is not None:
            return load_saved_player(text, game)
        if text not in SCRIPTED.get(game.name, {}):
            raise ValueError(
                f"unknown {argument} {text!r} for {game.name}: allowed values are the scripted players "
                f"{scripted_names(game.name) if game.name in SCRIPTED else []} or the path of a saved player "
                f"({_saved_kinds()})"
            )
        return make_policy(text, game)
    if hasattr(player, "act") and hasattr(player, "reset"):
        return player
    if callable(player):
        return CallablePolicy(player, game)
    raise TypeError(f"{argument} must be {kinds}; got {type(player).__name__}")


def _saved_kinds() -> str:
    """The saved players' formats, for error messages."""
    suffixes = saved_player_suffixes()
    if not suffixes:
        return "none loads here: install the project (pip install -e .) for its loaders"
    text = "a file ending in " + ", ".join(suffixes)
    if PICKLE_SUFFIX in suffixes:
        text += ", or a pickle without a suffix"
    return text
