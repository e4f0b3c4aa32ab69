"""Ray for the sweeps and the leagues: a session (local or a cluster), Tune trials, remote tasks.

* :func:`ray_session`: with no address, starts Ray on this machine (no set-up, no
  dashboard, its session and logs under ``OUT/ray_tmp``, its workers at the niceness of this
  process rather than Ray's default 15), and stops it at the end; with
  ``address`` (``HOST:PORT`` of a cluster's head, ``auto``, ``ray://HOST:PORT``) joins that
  cluster, after checking that something listens there;
* :func:`run_tune_trials`: every trial of a sweep (:mod:`trainers.sweep`) as a Ray Tune
  trial of one CPU (``cpus_per_trial``), retried from its run folder's checkpoint when its
  worker dies, with Tune's table of trials on standard output;
* :func:`train_on_ray`: training runs as Tune trials without a sweep's folder (the
  reproduction scripts);
* :func:`ray_map`: a function over items as Ray tasks (the league's matches).

Ray's unix sockets live in its session folder, whose path must stay short (about 100
characters in all): when ``OUT/ray_tmp`` would be too long, Ray's folder is
``/tmp/sdray-<hash of OUT>`` while Ray runs, ``OUT/ray_tmp`` links to it, and its files move
into ``OUT/ray_tmp`` when Ray stops (a killed driver leaves them in /tmp, behind the link).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ray_session", "run_tune_trials", "train_on_ray", "ray_map", "check_address", "ray_temp_dir", "RAY_MISSING"]

RAY_MISSING = "Ray is not installed: pip install -c constraints.txt -e '.[ray]' (or pip install 'ray[tune]')"
#: The longest Ray temp folder whose session's socket paths stay within the 107 bytes of a unix socket.
_MAX_TEMP_DIR = 40


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no prompt, no network call
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's table of trials (CLIReporter)
    try:
        import ray
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """A ``ConnectionError`` naming ``--address`` when nothing accepts connections at
    ``HOST:PORT`` within ``timeout`` seconds (``auto`` is left to Ray)."""
    if address == "auto":
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--address {address!r} is invalid: give the head node's HOST:PORT (ray start --head prints "
                         "it, port 6379 by default), ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise ConnectionError(f"--address {address}: no Ray cluster reachable there ({e.strerror or e}); start one "
                              "with ray start --head on that machine, or leave out --address to run on this "
                              "one") from None


def ray_temp_dir(out: Path) -> Path:
    """Ray's session folder for a sweep in ``out``: ``out/ray_tmp``, or a short folder under
    /tmp that ``out/ray_tmp`` links to when that path is too long for Ray's sockets."""
    local = out.resolve() / "ray_tmp"
    if len(str(local)) <= _MAX_TEMP_DIR:
        local.mkdir(parents=True, exist_ok=True)
        return local
    short = Path("/tmp") / f"sdray-{hashlib.sha1(str(local).encode()).hexdigest()[:10]}"
    short.mkdir(parents=True, exist_ok=True)
    if local.is_symlink() and local.resolve() != short.resolve():
        local.unlink()
    if not local.exists():
        local.parent.mkdir(parents=True, exist_ok=True)
        local.symlink_to(short, target_is_directory=True)
    return short


def _keep_logs(short: Path, local: Path) -> None:
    """Move the session folders of a stopped Ray from the short folder ``short`` into
    ``local`` (``OUT/ray_tmp``), replacing the link, and point ``session_latest`` at the last."""
    if local.is_symlink():
        local.unlink()
    local.mkdir(parents=True, exist_ok=True)
    latest = None
    for child in sorted(short.iterdir()):
        if child.name == "session_latest" and child.is_symlink():
            latest = Path(os.readlink(child)).name
            child.unlink()
        elif not (local / child.name).exists():
            shutil.move(str(child), str(local / child.name))
    if latest is not None and (local / latest).exists():
        (local / "session_latest").unlink(missing_ok=True)
        (local / "session_latest").symlink_to(latest, target_is_directory=True)
    with contextlib.suppress(OSError):
        short.rmdir()


@contextlib.contextmanager
def ray_session(out: Path, address: str | None = None, cpus: int | None = None) -> Iterator[str]:
    """Ray for the block (see the module docstring); yields where it runs, in words. A Ray
    already started in this process is used as it is and left running."""
    ray = _import_ray()
    if ray.is_initialized():
        yield "the Ray instance already started"
        return
    if address is not None:
        check_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConnectionError(f"--address {address}: could not join the Ray cluster: {e}") from None
        where = f"the Ray cluster at {address} ({ray.cluster_resources().get('CPU', 0):g} CPUs)"
    else:
        if cpus is not None and cpus < 1:
            raise ValueError(f"--cpus must be an integer >= 1, got {cpus}")
        temp = ray_temp_dir(out)
        cpus = cpus or os.cpu_count() or 1
        # Ray runs its workers at niceness 15 by default: on a machine shared with other jobs the
        # trials would yield to all of them (a sweep of 4 trials on 2 busy CPUs: slower than the
        # same runs one after another in this process, at niceness 0). RAY_worker_niceness=15 restores it.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=str(temp), log_to_driver=False,
                 configure_logging=False)
        where = f"Ray on this machine ({cpus} CPUs; its logs in {out / 'ray_tmp'}/session_latest/logs)"
    try:
        yield where
    finally:
        ray.shutdown()
        if address is None and temp != (out.resolve() / "ray_tmp"):
            with contextlib.suppress(OSError):
                _keep_logs(temp, out.resolve() / "ray_tmp")


def _trial_name(trial: Any) -> str:
    return trial.config["trial"]


def _tune_trainable(tune_config: dict, configs: dict, out: str, threads: int) -> None:
    """One Tune trial: :func:`trainers.sweep.train_trial` of the trial named in ``tune_config``."""
    import ray
    from ray import tune

    from trainers.presets import config_from_dict
    from trainers.sweep_trial import train_trial

    name = tune_config["trial"]

    def report(row: dict[str, float]) -> None:
        tune.report({"updates": int(row.get("iteration", 0)),
                     "reward_per_step": row.get("rollout/reward_per_step", math.nan)})

    train_trial(config_from_dict(configs[name]), Path(out) / name, threads=threads, report=report,
                node=ray.get_runtime_context().get_node_id())


def run_tune_trials(trials: dict[str, Any], out: Path, cpus_per_trial: int = 1, max_failures: int = 3,
                    verbose: bool = True) -> dict[str, str]:
    """Run ``trials`` (name -> :class:`~trainers.config.Config`) as Tune trials in the
    connected Ray, each into ``out/<name>``; Tune's records in ``out/ray``. Returns trial ->
    error (the last line of its exception) of the trials that failed ``max_failures + 1`` times."""
    _import_ray()
    from ray import tune

    if cpus_per_trial < 1:
        raise ValueError(f"--cpus-per-trial must be an integer >= 1, got {cpus_per_trial}")
    out = Path(out).resolve()
    trainable = tune.with_resources(
        tune.with_parameters(_tune_trainable, configs={n: c.to_dict() for n, c in trials.items()}, out=str(out),
                             threads=cpus_per_trial),
        {"cpu": cpus_per_trial})
    reporter = tune.CLIReporter(metric_columns=["updates", "reward_per_step"], parameter_columns=[],
                                max_report_frequency=15, print_intermediate_tables=True)
    tuner = tune.Tuner(
        trainable, param_space={"trial": tune.grid_search(list(trials))},
        tune_config=tune.TuneConfig(trial_name_creator=_trial_name, trial_dirname_creator=_trial_name,
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=time.strftime("sweep-%Y%m%d-%H%M%S"), storage_path=str(out / "ray"),
                                  failure_config=tune.FailureConfig(max_failures=max_failures),
                                  progress_reporter=reporter, verbose=1 if verbose else 0))
    results = tuner.fit()
    errors = {}
    for result in results:
        if result.error is not None:
            lines = [x for x in str(result.error).strip().splitlines() if x.strip()]
            errors[result.config["trial"]] = lines[-1] if lines else type(result.error).__name__
    return errors


def train_on_ray(runs: dict[str, Any], out: Path, address: str | None = None, cpus: int | None = None,
                 max_failures: int = 3, verbose: bool = True) -> dict[str, float]:
    """Train ``runs`` (run folder name -> configuration) into ``out/<name>`` as Tune trials
    (:func:`run_tune_trials`) in a :func:`ray_session`, without a sweep's ``sweep.json`` (the
    reproduction scripts, which decide themselves which runs to reuse). Returns each run's
    seconds of training; a ``RuntimeError`` names the runs that failed."""
    import json

    with ray_session(out, address=address, cpus=cpus) as where:
        if verbose:
            print(f"training {len(runs)} runs as Ray Tune trials on {where}", flush=True)
        errors = run_tune_trials(runs, out, max_failures=max_failures, verbose=verbose)
    if errors:
        raise RuntimeError("training failed: " + "; ".join(f"{n}: {e}" for n, e in errors.items()))
    seconds = {}
    for name in runs:
        try:
            seconds[name] = float(json.loads((Path(out) / name / "sweep_trial.json").read_text())["seconds"])
        except (OSError, ValueError, KeyError):
            seconds[name] = float("nan")
    return seconds


def ray_map(fn: Callable[..., Any], items: Sequence[tuple], done: Callable[[], None] | None = None,
            cpus: float = 1) -> list[Any]:
    """``[fn(*args) for args in items]``, each call a Ray task of ``cpus`` CPUs in the
    connected Ray; ``done()`` after each task ends. A failed task's error is raised."""
    ray = _import_ray()
    remote = ray.remote(num_cpus=cpus)(fn)
    refs = [remote.remote(*args) for args in items]
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        if done is not None:
            for _ in ready:
                done()
    return ray.get(refs)
