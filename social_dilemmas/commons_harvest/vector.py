"""The batched view of Commons Harvest Open for the trainers: :class:`CommonsHarvestVec`,
``num_envs`` games in worker processes, torch tensors ``[num_envs, 7, ...]`` out.

The worker function :func:`_vec_worker` is a module-level function so that
multiprocessing's ``"spawn"`` context can import it. The parent writes the Lua prelude
once and passes its folder to every worker, which puts it in the substrate module's
cache (``substrate._level_dir``, read through the module so that the worker fills the
very cache :func:`~social_dilemmas.commons_harvest.substrate.build_substrate` reads).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import sys
import time
import traceback
import weakref
from multiprocessing.connection import wait as _wait_for
from typing import Any

import numpy as np
import torch

from social_dilemmas.commons_harvest import substrate
from social_dilemmas.commons_harvest.observations import ACTION_NAMES, N_PLAYERS, _check_action
from social_dilemmas.commons_harvest.parallel import CommonsHarvestOpen
from social_dilemmas.core import check_positive_int
from social_dilemmas.parallel import check_seed

__all__ = ["CommonsHarvestVec"]


def _vec_worker(index: int, conn, shared, env_kwargs: dict, level_dir: str | None) -> None:
    """One worker: a CommonsHarvestOpen stepped on command; observations go to shared memory.

    Melting Pot is loaded without its bots (no TensorFlow: see
    :func:`.substrate._import_meltingpot_substrates_only`). Leaves with ``os._exit`` once its level
    is closed: an interpreter with torch and Melting Pot loaded takes seconds to finalise,
    and the worker has nothing else to clean up (the Lua prelude's folder belongs to the
    parent)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    env = None
    code = 0
    try:
        if level_dir is not None:
            with substrate._level_lock:
                substrate._level_dir["dir"] = level_dir
        substrate._import_meltingpot_substrates_only()
        env = CommonsHarvestOpen(**env_kwargs)
        n = len(env.possible_agents)
        shape = (n, *env.obs_format.shape)
        size = int(np.prod(shape))
        buf = np.frombuffer(shared, dtype=np.uint8, count=size, offset=index * size).reshape(shape)
        while True:
            try:
                cmd, arg = conn.recv()
            except (EOFError, OSError):  # the parent is gone
                break
            if cmd == "reset":
                np.stack(env._reset_list(arg), out=buf)
                conn.send(("ok", None))
            elif cmd == "step":
                start = time.perf_counter()
                obs, rewards, terminated, truncated = env._step_list(arg)
                final = None
                if terminated or truncated:
                    final = np.stack(obs)
                    obs = env._reset_list(None)
                np.stack(obs, out=buf)
                busy = time.perf_counter() - start
                conn.send(("ok", (np.array(rewards, dtype=np.float32), terminated, truncated, final, busy)))
            elif cmd == "close":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except BaseException:
        code = 1
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        if env is not None:
            with contextlib.suppress(Exception):
                env.close()
        with contextlib.suppress(Exception):
            conn.close()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _check_device(device: Any) -> torch.device:
    """``torch.device(device)``, checked usable here (a tensor can be made on it); else a
    ValueError naming ``device``. Run before any worker starts."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r} ({e})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but CUDA is not available here (torch {torch.__version__}); "
                         "use device='cpu'")
    try:
        torch.empty(0, device=dev)
    except (AssertionError, RuntimeError) as e:
        raise ValueError(f"device={device!r} cannot be used here: {e}") from None
    return dev


def _check_timeout(timeout: Any) -> float:
    """A positive, finite number of seconds, else a ValueError naming ``timeout``."""
    if isinstance(timeout, (bool, str, bytes)):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"timeout must be a positive finite number of seconds, got {timeout!r}")
    return value


def _shutdown_workers(processes: list, conns: list, timeout: float = 2.0) -> None:
    """Asks every worker to stop, then terminates and kills the ones that do not (a worker
    still starting up, or stuck); closes the pipes."""
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.send(("close", None))
    deadline = time.monotonic() + timeout
    for p in processes:
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        with contextlib.suppress(Exception):
            if p.is_alive():
                p.terminate()
                p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()
    processes.clear()
    conns.clear()


class CommonsHarvestVec:
    """``num_envs`` games of Commons Harvest Open stepped in parallel worker processes.

    ``reset(seed)`` returns ``(obs, info)`` and ``step(actions)`` returns ``(obs, rewards,
    terminated, truncated, info)``:

    * ``actions``: ints ``[num_envs, 7]`` (a tensor, an array or nested lists);
    * ``obs``: uint8 tensor ``[num_envs, 7, *obs_shape]`` (``[num_envs, 7, 88, 88, 3]`` by
      default) on ``device``;
    * ``rewards``: float32 ``[num_envs, 7]``; ``terminated`` / ``truncated``: bool ``[num_envs]``.

    Autoreset (Gymnasium's *same-step* mode, as :class:`social_dilemmas.vector.VectorGame`):
    on the step a game ends it is reset at once; the returned ``obs`` of that game is
    already the first of its next episode, and the last observation of the finished one is
    ``info["final_obs"]`` (same shape as ``obs``, filled where ``info["_final_obs"]``).
    All games start together and last ``max_steps``, so they end on the same step.

    Seeding: ``reset(seed=s)`` seeds game ``i`` with the ``i``-th child of
    ``numpy.random.SeedSequence(s)``; the same seed gives the same trajectories.

    Processes: one per game, started with the ``"spawn"`` context (or ``"forkserver"``;
    never ``fork``, unsafe once torch or TensorFlow run threads). Each worker imports the
    calling script again, so a script must create the view under the usual guard::

        from social_dilemmas.commons_harvest import CommonsHarvestVec

        if __name__ == "__main__":
            vec = CommonsHarvestVec(num_envs=2)
            obs, info = vec.reset(seed=0)

    Without it each worker, importing the script, would create a view of its own: that
    raises a ``RuntimeError`` in the worker saying so, and the worker's death makes the
    parent's ``reset`` raise one that names the guard too. Observations travel through
    shared memory, the rest through pipes. A worker that dies or raises makes the call
    raise ``RuntimeError`` naming the worker (with its traceback when it raised), after
    every worker was stopped; a worker silent for ``timeout`` seconds raises
    ``TimeoutError``. :meth:`close` stops every worker (also run when the object is
    garbage collected and at interpreter exit); it leaves no process behind.

    Arguments:
        num_envs: number of games (and worker processes), at least 1.
        device: torch device of the returned tensors; checked usable before any worker
            starts (``"cuda"`` without CUDA is a ValueError).
        context: ``"spawn"`` (default) or ``"forkserver"``.
        timeout: seconds to wait for a worker's answer to ``step``, a positive finite number
            (``reset``, which may import Melting Pot and build the level, gets ``max(timeout, 300)``).
        **kwargs: the arguments of :class:`CommonsHarvestOpen` (``max_steps``, ``resize``,
            ``grayscale``, ``channels_first``, ``deterministic``; no rendering).
    """

    def __init__(self, num_envs: int, device: torch.device | str = "cpu", context: str = "spawn",
                 timeout: float = 60.0, **kwargs: Any):
        if getattr(multiprocessing.current_process(), "_inheriting", False):  # multiprocessing's own test
            raise RuntimeError(
                "CommonsHarvestVec was created while a worker process was importing the main script: its workers "
                "start with 'spawn', which imports the script again in each of them, so the code that creates a "
                "CommonsHarvestVec must be under `if __name__ == \"__main__\":`"
            )
        self.num_envs = check_positive_int("num_envs", num_envs)
        if context not in ("spawn", "forkserver"):
            raise ValueError(f"context must be 'spawn' or 'forkserver', got {context!r}")
        timeout = _check_timeout(timeout)
        if kwargs.get("render_mode") is not None:
            raise ValueError("render_mode is not supported by the batched view; render a CommonsHarvestOpen instead")
        kwargs.pop("render_mode", None)
        allowed = {"max_steps", "resize", "grayscale", "channels_first", "deterministic"}
        if set(kwargs) - allowed:
            raise TypeError(f"unexpected arguments {sorted(set(kwargs) - allowed)}; allowed: {sorted(allowed)}")
        probe = CommonsHarvestOpen(**kwargs)  # validates the arguments; builds nothing
        self.device = _check_device(device)
        self.timeout = timeout
        self.n_players = N_PLAYERS
        self.max_steps = probe.max_steps
        self.obs_format = probe.obs_format
        self.spec_info = probe.spec_info
        #: what a player or a trainer needs to know of the game (``VectorGame.game`` plays this role there)
        self.game = probe.spec_info
        self.observation_space = probe.observation_space("player_0")
        self.action_space = probe.action_space("player_0")
        self._obs_shape = (self.num_envs, N_PLAYERS, *self.obs_format.shape)
        ctx = multiprocessing.get_context(context)
        self._shared = ctx.RawArray("B", int(np.prod(self._obs_shape)))
        self._obs = np.frombuffer(self._shared, dtype=np.uint8).reshape(self._obs_shape)
        self._processes: list = []
        self._conns: list = []
        self._finalizer = weakref.finalize(self, _shutdown_workers, self._processes, self._conns)
        self._started = False
        #: seconds each worker spent stepping (and autoresetting) its game, for diagnostics
        self.worker_busy_seconds = np.zeros(self.num_envs)
        # the Lua prelude is written once, here, and shared by the workers
        level_dir = substrate._deterministic_level_directory() if probe.deterministic else None
        try:
            for i in range(self.num_envs):
                parent, child = ctx.Pipe()
                p = ctx.Process(target=_vec_worker, args=(i, child, self._shared, kwargs, level_dir),
                                name=f"commons-harvest-worker-{i}", daemon=True)
                p.start()
                child.close()
                self._processes.append(p)
                self._conns.append(parent)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"CommonsHarvestVec(num_envs={self.num_envs}, obs_shape={self.obs_format.shape}, device={str(self.device)!r})"

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [p.pid for p in self._processes]

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this CommonsHarvestVec is closed")

    def _send(self, i: int, message: tuple) -> None:
        try:
            self._conns[i].send(message)
        except (BrokenPipeError, EOFError, OSError):
            self._fail(i, None)

    def _gather(self, timeout: float) -> list:
        """Every worker's answer to the command just sent, in worker order.

        A worker that dies closes its end of the pipe, which makes the pipe readable (recv
        then raises EOFError), so waiting on the pipes alone also catches deaths."""
        results: list = [None] * self.num_envs
        pending = dict(zip(self._conns, range(self.num_envs)))
        deadline = time.monotonic() + timeout
        while pending:
            ready = _wait_for(list(pending), max(0.0, deadline - time.monotonic()))
            if not ready:
                i = min(pending.values())
                pid = self._processes[i].pid
                self.close()
                raise TimeoutError(f"Commons Harvest worker {i} (pid {pid}) did not answer within {timeout:.0f} s; "
                                   "all workers were stopped")
            for conn in ready:
                i = pending.pop(conn)
                message = None
                with contextlib.suppress(EOFError, OSError):
                    message = conn.recv()
                if message is None:
                    self._fail(i, None)
                status, payload = message
                if status != "ok":
                    self._fail(i, payload)
                results[i] = payload
        return results

    def _fail(self, i: int, error: str | None):
        proc = self._processes[i]
        pid = proc.pid
        with contextlib.suppress(Exception):
            proc.join(1.0)
        code = proc.exitcode
        self.close()
        if error is not None:
            raise RuntimeError(f"Commons Harvest worker {i} (pid {pid}) raised an error; all workers were stopped. "
                               f"Its traceback:\n{error}")
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        hint = ""
        if not self._started and code is not None and code > 0:
            hint = (" before it answered; its error is on stderr. A common cause: the script that creates the "
                    "CommonsHarvestVec lacks the `if __name__ == \"__main__\":` guard (each worker imports the "
                    "script again)")
        raise RuntimeError(f"Commons Harvest worker {i} (pid {pid}) died ({how}){hint}; all workers were stopped")

    def reset(self, seed: int | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Starts every game; returns ``(obs, info)``."""
        self._check_open()
        seed = check_seed(seed)
        seeds = ([int(s.generate_state(1)[0] >> 1) for s in np.random.SeedSequence(seed).spawn(self.num_envs)]
                 if seed is not None else [None] * self.num_envs)
        for i in range(self.num_envs):
            self._send(i, ("reset", seeds[i]))
        self._gather(max(self.timeout, 300.0))
        self._started = True
        return self._out(self._obs), {}

    def _out(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.copy()).to(self.device)

    def step(self, actions: Any):
        """One step of every player of every game (see the class docstring)."""
        self._check_open()
        if not self._started:
            raise RuntimeError("step() called before reset()")
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        acts = np.asarray(actions)
        if acts.shape != (self.num_envs, N_PLAYERS):
            raise ValueError(f"actions must have shape [num_envs, 7] = [{self.num_envs}, 7], got {list(acts.shape)}")
        if not np.issubdtype(acts.dtype, np.integer):
            if not (np.issubdtype(acts.dtype, np.floating) and np.all(np.isfinite(acts)) and np.all(acts == np.round(acts))):
                raise ValueError(f"actions must be integers 0..7, got dtype {acts.dtype}")
        bad = (acts < 0) | (acts >= len(ACTION_NAMES))
        if bad.any():
            g, p = (int(x) for x in np.argwhere(bad)[0])
            _check_action(f"player_{p} of game {g}", acts[g, p].item())
        acts = acts.astype(np.int64).tolist()
        for i in range(self.num_envs):
            self._send(i, ("step", acts[i]))
        results = self._gather(self.timeout)
        rewards, terminated, truncated, finals, busy = zip(*results)
        self.worker_busy_seconds += busy
        rewards = torch.from_numpy(np.stack(rewards)).to(self.device)
        terminated = torch.from_numpy(np.array(terminated, dtype=bool)).to(self.device)
        truncated = torch.from_numpy(np.array(truncated, dtype=bool)).to(self.device)
        info: dict[str, Any] = {}
        done = np.array([f is not None for f in finals])
        if done.any():
            final = np.zeros(self._obs_shape, dtype=np.uint8)
            for i, f in enumerate(finals):
                if f is not None:
                    final[i] = f
            info["final_obs"] = torch.from_numpy(final).to(self.device)
            info["_final_obs"] = torch.from_numpy(done).to(self.device)
        return self._out(self._obs), rewards, terminated, truncated, info

    def close(self) -> None:
        """Stops every worker process (idempotent)."""
        self._finalizer()

    def __enter__(self) -> CommonsHarvestVec:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
