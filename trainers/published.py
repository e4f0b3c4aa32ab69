"""The published Coin Game league as players: the authors' AdAlign, LOQA and POLA agents in our Coin Game.

The agents behind the paper's Figs. 2 and 7 were released by their authors (the LOQA
repository, ``MiladInk/loqa``, folder ``league/checkpoints/``) as pickles of flax
parameters. This module reads those files without JAX and plays them through the
project's one player interface, so they go wherever a player goes::

    python -m trainers league --env coin_game --seeds 10 \\
        --players "adalign=PATH/advantage_alignment/minimal_state_25400_*" \\
        "loqa=PATH/loqa/*" "pola=PATH/pola/*" always_cooperate always_defect
    gymnasium.make("social_dilemmas/CoinGame-v0", opponent="PATH/pola/agents_..._seed1_update250.pkl")

A path ending in ``.pkl``, or any existing pickle without a suffix of its own (the
AdAlign and LOQA files are called ``minimal_state_*``), loads here
(:func:`social_dilemmas.policies.saved_player_format`).

**The two layouts.**

* AdAlign and LOQA (``{"agent0": ..., "agent1": ..., "hp": ...}``): both seats play with
  ``agent0``'s parameters (as in the authors' league). ``agent0["params"]["params"]`` holds
  ``actor_head`` and ``qvalue_head``, each a flax ``ScanPOLAGruCell_0``: ``linear1``
  (ReLU after it), optionally ``linear2`` (no activation after it), a flax ``GRUCell``
  (input kernels ``ir, iz, in`` with biases, hidden kernels ``hr, hz, hn``, ``hn`` with a
  bias) and ``linear_end``. The actor reads the 4x3x3 observation flattened (36 inputs)
  and gives 4 logits; the Q-network reads the same 36 inputs and the time step (37) and
  gives one Q-value per action. AdAlign's actor: 36 -> 64 -> GRU(64) -> 4; LOQA's:
  36 -> 128 -> 128 -> GRU(128) -> 4. ``hp`` is every training setting of the run.
* POLA (a list of the two seats' flax parameters ``{"params": {"linear1", "GRUCell",
  "linear_end"}}``): the first seat plays both seats (the authors' league does the same,
  because POLA's code does not swap the second player's observation channels); its
  actions are ordered ``(right, left, down, up)``, so its logits are permuted to ours.

The flax GRU cell is

    r = sigmoid(x W_ir + b_ir + h W_hr)
    z = sigmoid(x W_iz + b_iz + h W_hz)
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - z) * n + z * h

which is torch's ``nn.GRU`` with the hidden biases of ``r`` and ``z`` at zero; the
weights are copied into one (kernels transposed), starting from a zero memory at the
first step of every game. **Observations**: the authors' Coin Game gives every player its
own view, channels ``[me, other, my coin, other's coin]`` on the 3x3 grid, moves
``left, right, up, down`` as (row, col) offsets on a torus: ours is the same game with the
same layout, so the observation goes in unchanged, flattened channel first.

**Safety.** A pickle can run code when it is read. These files are read with an
unpickler that builds only numpy arrays and dictionaries (flax's ``FrozenDict`` becomes a
``dict``) and refuses anything else, naming the file.
"""

from __future__ import annotations

import glob
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from social_dilemmas.policies import Policy
from trainers.common import CheckpointError
from trainers.policy import AgentPolicy

__all__ = ["PublishedAgent", "FlaxGRUNet", "read_published", "load_published_player", "published_players",
           "PUBLISHED_SETS", "OBS_SHAPE", "POLA_ACTION_ORDER"]

#: The observation the published agents were trained on: the 3x3 Coin Game, 4 channels.
OBS_SHAPE = (4, 3, 3)
#: Our action ``a`` is POLA's action ``POLA_ACTION_ORDER[a]`` (POLA orders right, left, down, up).
POLA_ACTION_ORDER = (1, 0, 3, 2)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _FrozenDict(dict):
    """What flax's ``FrozenDict`` is read as: a plain dictionary."""


class _ParameterUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and dictionaries only."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("flax.core.frozen_dict", "FrozenDict"):
            return _FrozenDict
        if (module, name) in _ALLOWED_GLOBALS:
            if hasattr(np, "_core"):  # numpy 2 moved numpy.core to numpy._core
                module = module.replace("numpy.core.", "numpy._core.")
            else:
                module = module.replace("numpy._core.", "numpy.core.")
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to build {module}.{name}: only numpy arrays and dictionaries are read")


def _to_plain(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(k): _to_plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_to_plain(v) for v in tree]
    return tree


@dataclass
class PublishedAgent:
    """One published agent, read (:func:`read_published`).

    ``kind``: ``"gru"`` (the AdAlign and LOQA files) or ``"pola"``. ``actor``: the actor's
    flax parameters (``linear1``, optional ``linear2``, ``GRUCell``, ``linear_end``), numpy
    arrays. ``qvalue``: the Q-network's (AdAlign / LOQA), or None. ``hp``: the run's saved
    settings (empty for POLA). ``action_order``: our action ``a`` is the agent's action
    ``action_order[a]``.
    """

    path: str
    kind: str
    actor: dict[str, Any]
    qvalue: dict[str, Any] | None = None
    hp: dict[str, Any] = field(default_factory=dict)
    action_order: tuple[int, ...] | None = None

    @property
    def hidden(self) -> int:
        """The actor's GRU width."""
        return int(np.asarray(self.actor["GRUCell"]["hn"]["kernel"]).shape[0])

    @property
    def layers_before_gru(self) -> int:
        return 2 if "linear2" in self.actor else 1


def _cell(params: Any, where: str) -> dict[str, Any]:
    """The parameters of a ``ScanPOLAGruCell_0`` (or the POLA network's top level)."""
    if isinstance(params, dict) and "ScanPOLAGruCell_0" in params:
        params = params["ScanPOLAGruCell_0"]
    missing = [k for k in ("linear1", "GRUCell", "linear_end") if not isinstance(params, dict) or k not in params]
    if missing:
        raise CheckpointError(f"{where} has no {', '.join(missing)}: not a published Coin Game agent's network")
    return params


def read_published(path: str | Path) -> PublishedAgent:
    """Read a published agent's file (either layout, see the module docstring). A file that
    is missing, not a pickle, holds anything but arrays and dictionaries, or has another
    layout is an error naming it."""
    text = str(path)
    where = f"published agent {text!r}"
    try:
        data = Path(text).read_bytes()
    except IsADirectoryError:
        raise CheckpointError(f"{where} is a folder, not a file") from None
    except FileNotFoundError:
        raise FileNotFoundError(f"{where} does not exist") from None
    try:
        tree = _to_plain(_ParameterUnpickler(io.BytesIO(data)).load())
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError, KeyError,
            MemoryError, OverflowError) as e:
        raise CheckpointError(f"{where} could not be read ({type(e).__name__}: {e})") from None
    if isinstance(tree, dict) and "agent0" in tree:
        try:
            params = tree["agent0"]["params"]["params"]
            actor = _cell(params["actor_head"], f"{where} (actor_head)")
            qvalue = _cell(params["qvalue_head"], f"{where} (qvalue_head)") if "qvalue_head" in params else None
        except (KeyError, TypeError):
            raise CheckpointError(f"{where} has no agent0.params.params.actor_head: not a published Coin Game agent") from None
        agent = PublishedAgent(text, "gru", actor, qvalue, dict(tree.get("hp") or {}))
    elif isinstance(tree, list) and tree and isinstance(tree[0], dict) and "params" in tree[0]:
        agent = PublishedAgent(text, "pola", _cell(tree[0]["params"], where), action_order=POLA_ACTION_ORDER)
    else:
        raise CheckpointError(f"{where} is neither an AdAlign / LOQA agent (a dict with agent0) nor a POLA agent "
                              "(a list of seats' parameters)")
    in_dim = np.asarray(agent.actor["linear1"]["kernel"]).shape[0]
    if in_dim != int(np.prod(OBS_SHAPE)):
        raise CheckpointError(f"{where}: the actor reads {in_dim} inputs, not the 3x3 Coin Game's {int(np.prod(OBS_SHAPE))}")
    return agent


class FlaxGRUNet(nn.Module):
    """The authors' ``ScanPOLAGruCell`` in torch: ``linear1`` -> ReLU -> [``linear2``] -> GRU -> ``linear_end``.

    Follows the memory interface of :mod:`trainers.networks` (memory ``(h,)``, zero at the
    first step of a game), so :class:`~trainers.policy.AgentPolicy` plays it. ``time_input``
    (the Q-network): the time step is appended to the 36 inputs (:meth:`q_values`).
    ``action_order``: output ``a`` is the flax network's output ``action_order[a]``.
    """

    has_value_head = False

    def __init__(self, in_dim: int, hidden: int, layers_before_gru: int = 1, n_out: int = 4,
                 action_order: tuple[int, ...] | None = None, time_input: bool = False):
        super().__init__()
        if layers_before_gru not in (1, 2):
            raise ValueError(f"layers_before_gru must be 1 or 2, got {layers_before_gru!r}")
        self.in_dim, self.hidden, self.time_input = in_dim, hidden, time_input
        self.linear1 = nn.Linear(in_dim + int(time_input), hidden)
        self.linear2 = nn.Linear(hidden, hidden) if layers_before_gru == 2 else None
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.linear_end = nn.Linear(hidden, n_out)
        order = torch.arange(n_out) if action_order is None else torch.as_tensor(action_order)
        self.register_buffer("action_order", order, persistent=False)

    @classmethod
    def from_flax(cls, params: dict[str, Any], action_order: tuple[int, ...] | None = None,
                  time_input: bool = False, where: str = "the network") -> FlaxGRUNet:
        """A network holding the flax parameters ``params`` (``linear1``, optional ``linear2``,
        ``GRUCell``, ``linear_end``); a missing or misshapen array is an error naming ``where``."""
        try:
            k1 = np.asarray(params["linear1"]["kernel"], dtype=np.float32)
            hidden = int(np.asarray(params["GRUCell"]["hn"]["kernel"]).shape[0])
            n_out = int(np.asarray(params["linear_end"]["kernel"]).shape[1])
            net = cls(k1.shape[0] - int(time_input), hidden, 2 if "linear2" in params else 1, n_out, action_order, time_input)
            sd = net._state_from_flax(params)
            net.load_state_dict(sd, strict=False)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where}: the flax parameters do not fit the published network ({type(e).__name__}: {e})") from None
        return net.eval()

    def _state_from_flax(self, p: dict[str, Any]) -> dict[str, Tensor]:
        def t(x: Any) -> Tensor:
            return torch.as_tensor(np.asarray(x, dtype=np.float32))

        g = p["GRUCell"]
        zeros = torch.zeros(self.hidden)
        sd = {
            "linear1.weight": t(p["linear1"]["kernel"]).T, "linear1.bias": t(p["linear1"]["bias"]),
            # torch's gate order is (r, z, n), its kernels [out, in]
            "gru.weight_ih_l0": torch.cat([t(g[k]["kernel"]).T for k in ("ir", "iz", "in")]),
            "gru.bias_ih_l0": torch.cat([t(g[k]["bias"]) for k in ("ir", "iz", "in")]),
            "gru.weight_hh_l0": torch.cat([t(g[k]["kernel"]).T for k in ("hr", "hz", "hn")]),
            "gru.bias_hh_l0": torch.cat([zeros, zeros, t(g["hn"]["bias"])]),
            "linear_end.weight": t(p["linear_end"]["kernel"]).T, "linear_end.bias": t(p["linear_end"]["bias"]),
        }
        if self.linear2 is not None:
            sd["linear2.weight"] = t(p["linear2"]["kernel"]).T
            sd["linear2.bias"] = t(p["linear2"]["bias"])
        own = self.state_dict()
        for k, v in sd.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise ValueError(f"{k} is {tuple(v.shape)}, the network needs {tuple(own[k].shape)}")
        return sd

    def run(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` ``[B, T, inputs]``, ``h`` ``[B, hidden]`` -> (outputs ``[B, T, n_out]`` in our action
        order, final ``h``)."""
        z = torch.relu(self.linear1(x))
        if self.linear2 is not None:
            z = self.linear2(z)
        z, hn = self.gru(z, h.unsqueeze(0).contiguous())
        return self.linear_end(z).index_select(-1, self.action_order), hn.squeeze(0)

    def q_values(self, obs_seq: Tensor) -> Tensor:
        """The Q-network's values ``[B, T, n_out]`` for whole games ``obs_seq`` ``[B, T, *obs]``
        (time steps 0..T-1 appended, as in training)."""
        if not self.time_input:
            raise ValueError("q_values needs the Q-network (time_input=True)")
        b, steps = obs_seq.shape[:2]
        time = torch.arange(steps, dtype=torch.float32, device=obs_seq.device).view(1, steps, 1).expand(b, steps, 1)
        x = torch.cat([obs_seq.reshape(b, steps, -1).float(), time], -1)
        return self.run(x, obs_seq.new_zeros(b, self.hidden, dtype=torch.float32))[0]

    # -- the memory interface of trainers.networks ----------------------------------------
    def initial_memory(self, rows: int, device: torch.device | str) -> tuple[Tensor]:
        return (torch.zeros(rows, self.hidden, device=device),)

    def begin(self, memory: tuple[Tensor]) -> tuple[Tensor]:
        return memory

    def step(self, state: tuple[Tensor], obs: Tensor, start: Tensor | None):
        h = state[0] if start is None else state[0].masked_fill(start.unsqueeze(-1), 0.0)
        out, h = self.run(obs.flatten(1).float().unsqueeze(1), h)
        return torch.distributions.Categorical(logits=out.squeeze(1)), None, (h,)

    def end(self, memory: tuple[Tensor], state: tuple[Tensor], obs: Tensor, starts: Tensor) -> tuple[Tensor]:
        return tuple(x.detach() for x in state)

    def forward_sequence(self, memory: tuple[Tensor], obs: Tensor, starts: Tensor):
        """Whole games ``obs`` ``[M, T, *obs]`` (episodes start only at ``t = 0``) -> (distribution, None)."""
        if bool(starts[:, 1:].any()):
            raise ValueError("the published agents' sequences must start their games at t = 0 only")
        h = memory[0].masked_fill(starts[:, :1], 0.0)
        out, _ = self.run(obs.flatten(2).float(), h)
        return torch.distributions.Categorical(logits=out), None


def _check_game(game: Any, where: str) -> None:
    if game is None:
        return
    name = getattr(game, "name", None)
    shape = tuple(game.observation_space().shape) if hasattr(game, "observation_space") else None
    if name != "coin_game" or shape != OBS_SHAPE:
        what = f"{name} with observations {list(shape) if shape else '?'}"
        raise ValueError(f"{where} plays the 3x3 Coin Game (observations {list(OBS_SHAPE)}), not {what}")


def load_published_player(path: str | Path, game: Any = None, device: str | torch.device = "cpu",
                          greedy: bool = False) -> Policy:
    """The published agent in ``path`` as a player of ``game`` (the 3x3 Coin Game; None: not
    checked). It samples its actions with the generator the match gives it, or with
    ``greedy`` plays its most likely action. The loader of ``.pkl`` files and suffix-less
    pickles (``social_dilemmas.players`` entry point)."""
    agent = read_published(path)
    where = f"published agent {str(path)!r}"
    _check_game(game, where)
    net = FlaxGRUNet.from_flax(agent.actor, agent.action_order, where=where).to(device)
    name = f"published-{agent.kind}:{Path(str(path)).name}"
    return AgentPolicy(net, name=name, greedy=greedy, obs_shape=OBS_SHAPE)


#: The published league's sets of agents: display name -> the glob of its files under the
#: folder of the project's copy (``../shared/published_league``) and under the authors'
#: ``league/checkpoints/`` folder (either may be given to :func:`published_players`).
PUBLISHED_SETS: dict[str, tuple[str, ...]] = {
    "AdAlign": ("advantage_alignment/minimal_state_25400_*", "advantage_alignment_seeds/minimal_state_25400_*"),
    "AdAlign-NB": ("advantage_alignment/aa_baseline_minimal_state_*", "advantage_alignment_seeds/aa_baseline_minimal_state_*"),
    "LOQA": ("loqa/*_minimal_state_*", "loqa_ckpt_10_seeds_v1/*/minimal_state_6000"),
    "POLA": ("pola/*.pkl", "pola_20230921/*.pkl"),
}


def published_players(root: str | Path, names: tuple[str, ...] | None = None, prefix: str = "") -> list[str]:
    """League players (``"NAME=GLOB"``) of the published sets found under ``root`` (the
    project's copy or the authors' ``league/checkpoints``): ``names`` of
    :data:`PUBLISHED_SETS` (None: all), each shown as ``prefix + name``. A missing folder,
    or a set with no file under it, is an error naming it."""
    unknown = [n for n in (names or ()) if n not in PUBLISHED_SETS]
    if unknown:
        raise ValueError(f"unknown published set(s) {unknown}; allowed values: {list(PUBLISHED_SETS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"published league folder {str(root)!r} does not exist (a copy of the LOQA repository's "
                                "league/checkpoints, or the project's ../shared/published_league)")
    chosen = PUBLISHED_SETS if names is None else {n: PUBLISHED_SETS[n] for n in names}
    players = []
    for name, patterns in chosen.items():
        found = [p for p in patterns if glob.glob(str(root / p))]
        if not found:
            raise FileNotFoundError(f"no {name} agents under {str(root)!r} (looked for {' or '.join(patterns)})")
        players.append(f"{prefix}{name}={root / found[0]}")
    return players
