"""The shared shape of every game's rules.

Each game is written once, as a *batched* rule set: pure functions of a state (a
dataclass of tensors whose first dimension is the batch of independent games), the
players' actions and explicitly passed random noise. The PettingZoo view, the
Gymnasium view and the trainers' vectorised view all call these same functions, so
there is no second copy of any game's dynamics.

Randomness never comes from a global generator: a rule that needs chance takes an
array of uniform noise drawn by the caller from its own generator (``reset`` and
``step`` draw it). This makes every transition a pure function, so the
rules of ``B`` games stepped together can be compared with ``B`` games stepped one by one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Generic, TypeVar

import gymnasium
import numpy as np
import torch

from social_dilemmas import xp

__all__ = [
    "BatchedGame",
    "GameState",
    "agent_names",
    "ACTION_RULE",
    "check_device",
    "check_flag",
    "check_action_tensor",
    "check_real_numbers",
    "check_obs_dtype",
]

#: The one rule for the type of an action, the same in every view (PettingZoo, Gymnasium,
#: the batched view): an action is made of real numbers, integers or floats (a discrete
#: action given as a float must have an integral value). ``True`` and ``False`` are
#: refused, as are complex numbers, strings and other objects: a bool would silently
#: mean the action 1 or 0.
ACTION_RULE = "integers or floats (bools, complex numbers, strings and other objects are refused)"

#: torch dtypes an action tensor may have (torch's unsigned types wider than 8 bits lack
#: the comparisons the checks need: a tensor of them is refused; the numpy views convert
#: numpy's to int64)
ACTION_DTYPES = (
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
)


def agent_names(n_players: int) -> list[str]:
    """The agent names of a game with ``n_players`` players: ``player_0``, ``player_1``, ..."""
    return [f"player_{i}" for i in range(n_players)]


@dataclasses.dataclass
class GameState:
    """Base of every game's state: a dataclass of arrays, all torch tensors on one device
    or all numpy arrays. ``t`` is the number of steps played, int64 ``[B]``."""

    t: Any

    @property
    def batch_size(self) -> int:
        return int(self.t.shape[0])

    def index(self, idx: Any) -> GameState:
        """The state of the games selected by ``idx`` (a slice, index array or mask)."""
        return type(self)(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    def numpy(self) -> GameState:
        """The same state as numpy arrays (copied to the host)."""
        return type(self)(**{f.name: to_numpy(getattr(self, f.name)) for f in dataclasses.fields(self)})

    def torch(self, device: torch.device | str = "cpu") -> GameState:
        """The same state as torch tensors on ``device``."""
        return type(self)(**{f.name: torch.as_tensor(getattr(self, f.name), device=device) for f in dataclasses.fields(self)})


def to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


S = TypeVar("S", bound=GameState)


class BatchedGame(Generic[S]):
    """The rules of one game for a batch of ``B`` independent games.

    The rules are written once and run on torch tensors (any device) or on numpy arrays
    (see :mod:`social_dilemmas.xp`). Subclasses define:

    * ``init(noise) -> state``: the start of ``B`` games from uniform noise
      ``[B, reset_noise_size]``;
    * ``transition(state, actions, noise) -> (state, rewards)``: one simultaneous move
      of all players; ``actions`` is ``[B, n_players, *action_shape]``, ``rewards`` is
      float32 ``[B, n_players]``, ``noise`` is uniform ``[B, step_noise_size]``;
    * ``observe(state) -> obs``: float32 ``[B, n_players, *obs_shape]``, each player's
      view from its own side.

    Games whose observations are 0/1 planes list ``compact_obs_dtypes`` (``torch.uint8``):
    :meth:`observe_as` gives the same values in that dtype, 4 times fewer bytes than float32
    (the batched view's ``obs_dtype``).

    The game never terminates on its own; the views truncate after ``max_steps``.
    """

    #: registry name, e.g. ``"coin_game"``
    name: ClassVar[str]
    #: human-readable title used in docs and renderers
    title: ClassVar[str]
    n_players: int = 2
    max_steps: int
    #: ``"discrete"`` (actions are ints) or ``"continuous"`` (float vectors)
    action_kind: ClassVar[str]
    #: uniform numbers per game consumed by ``init`` and by ``transition``
    reset_noise_size: int = 0
    step_noise_size: int = 0
    #: dtypes besides float32 that hold every observation exactly (0/1 planes: ``torch.uint8``)
    compact_obs_dtypes: ClassVar[tuple[torch.dtype, ...]] = ()

    # -- spaces -------------------------------------------------------------------------
    def observation_space(self) -> gymnasium.spaces.Box:
        """The observation space of one player (a float32 ``Box``)."""
        raise NotImplementedError

    def action_space(self) -> gymnasium.spaces.Space:
        """The action space of one player."""
        raise NotImplementedError

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation_space().shape)

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.action_space().shape or ())

    @property
    def action_dtype(self) -> torch.dtype:
        return torch.int64 if self.action_kind == "discrete" else torch.float32

    # -- rules --------------------------------------------------------------------------
    def init(self, noise: Any) -> S:
        raise NotImplementedError

    def transition(self, state: S, actions: Any, noise: Any) -> tuple[S, Any]:
        raise NotImplementedError

    def observe(self, state: S) -> Any:
        raise NotImplementedError

    def observe_as(self, state: S, dtype: torch.dtype) -> torch.Tensor:
        """``observe(state)`` (torch tensors) in ``dtype``: ``torch.float32`` or one of
        ``compact_obs_dtypes``, the same values. The default converts float32 observations;
        a game may build them in the compact dtype directly."""
        obs = self.observe(state)
        return obs if dtype == torch.float32 else obs.to(dtype)

    # -- conveniences built on the rules ------------------------------------------------
    def reset(
        self, batch_size: int, generator: torch.Generator | np.random.Generator, device: torch.device | str | None = None
    ) -> S:
        """``init`` with fresh noise: torch tensors on the generator's device for a
        ``torch.Generator``, numpy arrays for a ``numpy.random.Generator``."""
        return self.init(xp.uniform(generator, (batch_size, self.reset_noise_size), device))

    def step(self, state: S, actions: Any, generator: torch.Generator | np.random.Generator) -> tuple[S, Any]:
        """``transition`` with fresh noise from ``generator`` (of the state's library)."""
        device = state.t.device if isinstance(state.t, torch.Tensor) else None
        return self.transition(state, actions, xp.uniform(generator, (state.batch_size, self.step_noise_size), device))

    def action_metrics(self, actions: torch.Tensor) -> dict[str, float]:
        """Statistics of a batch of actions ``[..., *action_shape]`` that tell how the players
        behave (the IPD: the rate of cooperation); trainers log them. None by default."""
        return {}

    def validate_actions(self, actions: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the player and the allowed values if any action is invalid.

        ``actions`` has shape ``[B, n_players, *action_shape]``. This check synchronises
        with the device, so the trainers' fast path skips it. The default checks the action
        space: integers in ``[0, n)`` for a ``Discrete(n)`` space, finite values within the
        bounds for a ``Box``; games override it for other rules.
        """
        space = self.action_space()
        if hasattr(space, "n"):
            n = int(space.n)
            check_discrete_actions(actions.reshape(actions.shape[0], self.n_players), n, f"integers in [0, {n})")
            return
        low, high = np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)
        if low.min() != low.max() or high.min() != high.max():
            lo = torch.as_tensor(low, dtype=actions.dtype, device=actions.device)
            hi = torch.as_tensor(high, dtype=actions.dtype, device=actions.device)
            bad = (~torch.isfinite(actions) | (actions < lo) | (actions > hi)).flatten(2).any(-1)
            if bool(bad.any()):
                game, player = (int(i) for i in bad.nonzero()[0][:2])
                raise ValueError(f"invalid action {actions[game, player].tolist()} for player_{player}: allowed values "
                                 f"are finite floats within the action space's bounds {low.tolist()} .. {high.tolist()}")
            return
        check_box_actions(actions.reshape(actions.shape[0], self.n_players, -1), float(low.min()), float(high.max()))

    # -- rendering: a small record of game 0 of a batch, kept by the views -------------
    def new_record(self, state: S) -> dict[str, Any]:
        """A fresh record of the episode of game 0 for rendering (scores, last rewards)."""
        return {"scores": np.zeros(self.n_players), "rewards": None}

    def update_record(self, record: dict[str, Any], prev: S, actions: Any, rewards: Any, state: S) -> None:
        """Add one step of game 0 (``prev --actions--> state``) to ``record``."""
        r = to_numpy(rewards[0]).astype(np.float64)
        record["scores"] = record["scores"] + r
        record["rewards"] = r

    def frame(self, state: S, record: dict[str, Any]) -> Any:
        """The renderer frame of game 0 of ``state`` (a dataclass of ``renderers.frames``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({fields})"

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for ``repr`` and checkpoints."""
        raise NotImplementedError


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Validate a constructor argument that must be an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_finite_number(name: str, value: Any) -> float:
    """Validate a constructor argument that must be a finite real number."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return out


def check_discrete_actions(actions: torch.Tensor, n: int, allowed: str) -> None:
    """Raise ``ValueError`` naming the first player whose action is not an integer in ``[0, n)``.

    ``actions``: ``[B, n_players]``.
    """
    if actions.dtype.is_floating_point:
        bad = (actions != actions.round()) | ~torch.isfinite(actions) | (actions < 0) | (actions >= n)
    else:
        bad = (actions < 0) | (actions >= n)
    if bool(bad.any()):
        game, player = (int(i) for i in bad.nonzero()[0][:2])
        raise ValueError(
            f"invalid action {actions[game, player].item()!r} for player_{player}"
            + (f" (game {game})" if actions.shape[0] > 1 else "")
            + f": allowed values are {allowed}"
        )


def check_box_actions(actions: torch.Tensor, low: float, high: float) -> None:
    """Raise ``ValueError`` naming the first player with a NaN/inf or out-of-range component.

    ``actions``: ``[B, n_players, d]`` floats.
    """
    finite = torch.isfinite(actions)
    bad = (~finite | (actions < low) | (actions > high)).flatten(2).any(-1)
    if bool(bad.any()):
        game, player = (int(i) for i in bad.nonzero()[0][:2])
        value = actions[game, player].tolist()
        why = "contains NaN or inf" if not bool(finite[game, player].all()) else f"is outside [{low}, {high}]"
        raise ValueError(
            f"invalid action {value} for player_{player}"
            + (f" (game {game})" if actions.shape[0] > 1 else "")
            + f": {why}; allowed values are finite floats in [{low}, {high}] per component"
        )


def available_devices() -> list[str]:
    """The torch devices this process can put the games on (``"cpu"`` always)."""
    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(device: Any, name: str = "device") -> torch.device:
    """``device`` as a ``torch.device`` that holds data in this process, or a ``ValueError``
    naming ``name`` and the devices available here (``meta`` holds no data: refused)."""
    allowed = f"allowed values here: {available_devices()} (a str or torch.device)"
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, int, np.integer)):
        raise ValueError(f"{name} must be a torch device, got {device!r}; {allowed}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} {device!r} is not a torch device (or none is available); {allowed}") from None
    if dev.type == "cpu":
        return dev
    if dev.type == "meta":
        raise ValueError(f"{name} {device!r} holds no data, so games cannot run on it; {allowed}")
    if dev.type == "cuda":
        ok = torch.cuda.is_available() and (dev.index is None or dev.index < torch.cuda.device_count())
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        ok = mps is not None and mps.is_available()
    else:
        try:
            torch.Generator(device=dev)
            torch.empty(1, device=dev)
            ok = True
        except Exception:
            ok = False
    if not ok:
        raise ValueError(f"{name} {device!r} is not available in this process; {allowed}")
    return dev


def check_obs_dtype(game: BatchedGame, value: Any, name: str = "obs_dtype") -> torch.dtype:
    """``value`` (a torch or numpy dtype, or its name such as ``"uint8"``) as the torch dtype
    of ``game``'s observations: ``torch.float32`` or one of ``game.compact_obs_dtypes``;
    otherwise a ``ValueError`` naming ``name`` and the allowed values."""
    allowed = {str(d).removeprefix("torch."): d for d in (torch.float32, *game.compact_obs_dtypes)}
    if isinstance(value, torch.dtype):
        key = str(value).removeprefix("torch.")
    elif isinstance(value, str):
        key = value
    else:
        try:  # a numpy dtype or scalar type
            key = np.dtype(value).name if isinstance(value, np.dtype) or issubclass(value, np.generic) else None
        except TypeError:
            key = None
    if key not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)} for {game.name}, got {value!r}")
    return allowed[key]


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False`` (or a numpy bool); otherwise a ``ValueError``
    naming ``name``: a string such as ``"no"`` must not silently mean yes."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {value!r}")


def check_action_tensor(actions: Any, shape: tuple[int, ...], who: str) -> torch.Tensor:
    """Refuse, with an error naming ``who`` and the allowed values, actions that are not a
    torch tensor of ``shape`` with a real dtype (see :data:`ACTION_RULE`). Looks at the
    type, dtype and shape only: no value is read, so nothing waits for the device."""
    if not isinstance(actions, torch.Tensor):
        raise TypeError(
            f"{who} must be a torch.Tensor of shape {list(shape)} holding {ACTION_RULE}, "
            f"got {type(actions).__name__} (convert with torch.as_tensor)"
        )
    if actions.dtype not in ACTION_DTYPES:
        raise TypeError(
            f"{who} have dtype {actions.dtype}; allowed values are {ACTION_RULE}: "
            f"dtypes {[str(d).removeprefix('torch.') for d in ACTION_DTYPES]}"
        )
    if tuple(actions.shape) != shape:
        raise ValueError(f"{who} must have shape [num_envs, n_players, *action_shape] = {list(shape)}, "
                         f"got {list(actions.shape)}")
    return actions


def check_real_numbers(value: Any, name: str, allowed: str) -> np.ndarray:
    """``value`` as a float64 array if it is made of real numbers (ints or floats, as python
    numbers, numpy or torch); otherwise a ``ValueError`` naming ``name`` and ``allowed``.
    Bools, complex numbers, strings, dicts and ragged nests are refused."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (str, bytes, dict, set)):
        arr = None
    else:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError):  # ragged nests
            arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        if arr is not None and arr.dtype.kind == "O":  # a nest of python numbers and others: look inside
            items = arr.reshape(-1).tolist()
            if items and all(isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
                             for x in items):
                return arr.astype(np.float64, copy=False)
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return arr.astype(np.float64, copy=False)
