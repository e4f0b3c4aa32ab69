"""Sweeps: a grid of training runs (games x algorithms x seeds x option values), each a Ray Tune trial.

    python -m trainers sweep --env ipd --algo adalign --fast --seeds 0 1 2 3 --iterations 200 --out runs/sweep
    python -m trainers sweep --grid sweep.yaml --out runs/sweep --address HEAD_IP:6379   # on a Ray cluster
    python -m trainers sweep --resume runs/sweep                                         # after the driver was killed

A trial is one run of :func:`trainers.run.train`, made by :func:`trainers.presets.make_config`
from its game, algorithm, seed, ``fast``, ``iterations`` and option values (``--set
NAME=V1,V2``: every value of every option is crossed with the rest). Every trial's
configuration is built and validated before Ray starts: an unknown option or a bad value
is a ``ValueError`` naming it and the algorithm, and no trial runs.

The sweep folder ``OUT`` holds:

* ``sweep.json``: the sweep (its grid and every trial's configuration). A folder holding
  another sweep is refused (:class:`SweepFolderError`), and so is a trial's folder that
  exists without one; ``resume`` continues the sweep saved there;
* ``<trial>/``: each trial's run folder (``config.json``, ``metrics.csv``, ``checkpoint.pt``,
  as :mod:`trainers.run`), and ``sweep_trial.json``: the trial's seconds of training (every
  attempt's, counted while it runs), its attempts and the Ray node of the last one
  (:mod:`trainers.sweep_trial`);
* ``sweep.csv``: one row per trial: its options, status, updates done, the last row of its
  ``metrics.csv``, seconds and run folder;
* ``ray/``: Ray Tune's experiment records; ``ray_tmp``: Ray's session and logs, when Ray was
  started here (:mod:`trainers.ray_runner`).

Trials checkpoint through the run folder's own atomic checkpoints: a trial whose worker dies
is retried (up to ``max_failures`` times) and continues from its last ``checkpoint.pt``,
exactly as an uninterrupted run (:func:`trainers.run.train` with ``resume=True``); a resumed
sweep skips the trials that finished and continues the others from their checkpoints. The
folder must be one every Ray node can read and write (a shared file system on a cluster).

Ray is imported only when a sweep runs (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainers.config import Config
from trainers.sweep_trial import last_metrics

__all__ = ["SweepSpec", "SweepFolderError", "parse_values", "load_grid", "make_trials", "check_sweep_folder",
           "trial_finished", "write_sweep_csv", "sweep", "SWEEP_FORMAT"]

#: Version of ``sweep.json``'s layout.
SWEEP_FORMAT = 1
#: The settings a trial's grid gives by its own fields, not as ``--set`` options.
RESERVED = ("env", "algo", "seed", "iterations")
_GRID_KEYS = ("env", "algo", "seeds", "fast", "iterations", "set")


class SweepFolderError(ValueError):
    """The sweep folder holds another sweep, or run folders of no sweep: nothing was changed."""


@dataclass
class SweepSpec:
    """The grid of a sweep: every game x algorithm x seed x combination of option values."""

    env: list[str] = field(default_factory=lambda: ["ipd"])
    algo: list[str | None] = field(default_factory=lambda: [None])
    seeds: list[int] = field(default_factory=lambda: [0])
    fast: bool = False
    iterations: int | None = None
    options: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))


def parse_values(text: str) -> list[Any]:
    """The values of one ``--set NAME=V1,V2`` option: a JSON list (``[1, 2]``), or
    comma-separated values, each read as JSON (numbers, ``true``, ``{"size": 3}``) or else
    kept as text."""
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"not a JSON list ({e}): {text!r}") from None
        return values if values else _empty(text)
    if text.startswith("{"):
        parts = [text]
    else:
        parts = [p.strip() for p in text.split(",")]
    values = []
    for part in parts:
        try:
            values.append(json.loads(part))
        except json.JSONDecodeError:
            values.append(part)
    return values if values and parts != [""] else _empty(text)


def _empty(text: str) -> list[Any]:
    raise ValueError(f"no value in {text!r}")


def parse_set(items: list[str]) -> dict[str, list[Any]]:
    """``["beta=1,3", "actor_lr=0.01"]`` -> ``{"beta": [1, 3], "actor_lr": [0.01]}``."""
    options: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not name:
            raise ValueError(f"--set {item!r}: write NAME=VALUE or NAME=V1,V2,... (for example beta=1,3)")
        try:
            options[name] = parse_values(values)
        except ValueError as e:
            raise ValueError(f"--set {item!r}: {e}") from None
    return options


def load_grid(path: str | Path) -> dict[str, Any]:
    """A grid file (YAML or JSON): keys ``env``, ``algo``, ``seeds`` (each a value or a list),
    ``fast``, ``iterations`` and ``set`` (option -> a value or a list of values)::

        env: ipd
        algo: [adalign]
        seeds: [0, 1, 2, 3]
        fast: true
        iterations: 200
        set: {beta: [1.0, 3.0]}
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--grid {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"--grid {path}: not YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--grid {path}: must be a mapping with keys {', '.join(_GRID_KEYS)}")
    unknown = sorted(set(data) - set(_GRID_KEYS))
    if unknown:
        raise ValueError(f"--grid {path}: unknown keys {unknown}; the keys are {', '.join(_GRID_KEYS)} "
                         "(options of the runs go under set:)")
    if not isinstance(data.get("set", {}), dict):
        raise ValueError(f"--grid {path}: set must be a mapping of option -> value or list of values")
    return data


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def make_spec(grid: dict[str, Any] | None = None, **given: Any) -> SweepSpec:
    """A :class:`SweepSpec` from a grid file's contents (:func:`load_grid`) and the command
    line's values (``given``, ``None`` where not given; they win over the file's)."""
    grid = dict(grid or {})
    for key, value in given.items():
        if value is not None and value != [] and value != {}:
            grid[key] = value
    options = {k: _as_list(v) for k, v in (grid.get("set") or {}).items()}
    for name in RESERVED:
        if name in options:
            flag = "--seeds" if name == "seed" else f"--{name}"
            raise ValueError(f"--set {name}: give the {name} of the trials with {flag}, not as an option")
    seeds = _as_list(grid.get("seeds", [0]))
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds = {seeds!r} is invalid: must be integers >= 0")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds = {seeds!r} repeats a seed")
    iterations = grid.get("iterations")
    if iterations is not None and (not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1):
        raise ValueError(f"iterations = {iterations!r} is invalid: must be an integer >= 1")
    return SweepSpec(env=_as_list(grid.get("env", "ipd")), algo=_as_list(grid.get("algo", None)), seeds=seeds,
                     fast=bool(grid.get("fast", False)), iterations=iterations, options=options)


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9.+]+", "_", text).strip("_") or "_"


def make_trials(spec: SweepSpec) -> dict[str, Config]:
    """Every trial of ``spec``: its name (``ENV-ALGO-sSEED``, then ``-NAMEVALUE`` for each
    option given several values) -> its validated configuration. A ``ValueError`` names an
    unknown option or a bad value and the algorithm, before anything runs."""
    from trainers.presets import make_config

    names = list(spec.options)
    trials: dict[str, Config] = {}
    for env, algo in itertools.product(spec.env, spec.algo):
        for values in itertools.product(*(spec.options[n] for n in names)):
            overrides = dict(zip(names, values))
            extra = {"iterations": spec.iterations} if spec.iterations is not None else {}
            try:
                base = make_config(env, algo, fast=spec.fast, **extra, **overrides)
            except (TypeError, ValueError) as e:
                where = f"{algo or 'the default algorithm'} on {env}"
                shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
                raise ValueError(f"trial {where}{f' with {shown}' if shown else ''}: {e}") from None
            for seed in spec.seeds:
                config = make_config(env, algo, fast=spec.fast, seed=seed, **extra, **overrides)
                varied = "".join(f"-{n}{_label(v)}" for n, v in overrides.items() if len(spec.options[n]) > 1)
                name = f"{env}-{base.run.algo}-s{seed}{varied}"
                if name in trials:
                    raise ValueError(f"the grid names trial {name!r} twice: an env, algo or option value is repeated")
                trials[name] = config
    return trials


def _manifest(trials: dict[str, Config], spec: SweepSpec | None) -> dict[str, Any]:
    return {"format": SWEEP_FORMAT, "grid": spec.to_dict() if spec is not None else None,
            "trials": {name: json.loads(cfg.to_json()) for name, cfg in trials.items()}}


def check_sweep_folder(out: Path, trials: dict[str, Config] | None, resume: bool) -> dict[str, Any]:
    """The sweep to run in ``out``: the saved ``sweep.json`` when ``resume`` (``trials``
    None: all of it), else a new one of ``trials``. A :class:`SweepFolderError` (nothing
    changed) when ``out`` is a file, holds another sweep or, for a new sweep, holds a sweep
    already or a trial's folder."""
    path = out / "sweep.json"
    if out.exists() and not out.is_dir():
        raise SweepFolderError(f"--out {out} is a file, not a folder")
    saved = None
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            if not isinstance(saved, dict) or saved.get("format") != SWEEP_FORMAT or \
                    not isinstance(saved.get("trials"), dict):
                raise ValueError(f"format {saved.get('format') if isinstance(saved, dict) else None!r}")
        except (ValueError, UnicodeDecodeError) as e:
            raise SweepFolderError(f"{path} is not a sweep of this version ({e}); give another --out") from None
    if resume:
        if saved is None:
            raise SweepFolderError(f"--resume {out}: no sweep.json there; is this a sweep's folder?")
        if trials is not None:
            new = _manifest(trials, None)["trials"]
            differ = sorted(set(new) ^ set(saved["trials"])) or [n for n in new if new[n] != saved["trials"][n]]
            if differ:
                raise SweepFolderError(f"{out} holds another sweep (trial {differ[0]!r} differs); nothing was "
                                       "changed: give another --out")
        return saved
    if saved is not None:
        if _manifest(trials, None)["trials"] == saved["trials"]:
            raise SweepFolderError(f"--out {out} holds this sweep already: continue it with --resume {out}; "
                                   "nothing was changed")
        raise SweepFolderError(f"--out {out} holds another sweep (its grid differs); nothing was changed: "
                               "give another --out")
    taken = [name for name in trials if (out / name).exists()]
    if taken:
        raise SweepFolderError(f"--out {out}: {out / taken[0]} exists and belongs to no sweep; nothing was changed: "
                               "give another --out")
    return {**_manifest(trials, None), "grid": None}


def trial_finished(folder: Path, config: Config) -> bool:
    """Whether the run folder ``folder`` holds a checkpoint of all of ``config``'s updates."""
    path = folder / "checkpoint.pt"
    if not path.exists():
        return False
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a damaged checkpoint: the trial's own resume reports it
        return False
    return isinstance(ckpt, dict) and int(ckpt.get("iteration", 0)) >= config.run.iterations


#: Columns of sweep.csv before the options and the metrics.
CSV_HEAD = ["trial", "env", "algo", "seed", "status", "updates", "iterations"]


def write_sweep_csv(out: Path, manifest: dict[str, Any], errors: dict[str, str]) -> list[dict[str, Any]]:
    """``out/sweep.csv``: one row per trial of ``manifest`` (see the module docstring);
    ``errors``: trial -> the error of a trial that failed. Returns the rows."""
    from trainers.presets import config_from_dict

    grid = manifest.get("grid") or {}
    options = list(grid.get("options") or {})
    rows, metric_names = [], []
    for name, data in manifest["trials"].items():
        config = config_from_dict(data, where=f"{out}/sweep.json")
        folder = out / name
        last = last_metrics(folder / "metrics.csv")
        try:
            record = json.loads((folder / "sweep_trial.json").read_text())
        except (OSError, ValueError):
            record = {}
        done = trial_finished(folder, config)
        status = "finished" if done else ("error" if name in errors else "unfinished")
        settings = {**config.run.to_dict(), **config.algorithm.to_dict()}
        row = {"trial": name, "env": config.run.env, "algo": config.run.algo, "seed": config.run.seed,
               "status": status, "updates": int(last.get("iteration", 0)), "iterations": config.run.iterations,
               **{o: json.dumps(settings.get(o)) if isinstance(settings.get(o), (dict, list)) else settings.get(o)
                  for o in options},
               **{k: v for k, v in last.items() if k != "iteration"},
               "seconds": round(float(record.get("seconds", 0.0)), 2), "attempts": record.get("attempts", 0),
               "folder": str(folder), "error": errors.get(name, "")}
        metric_names += [k for k in last if k != "iteration" and k not in metric_names]
        rows.append(row)
    columns = CSV_HEAD + options + metric_names + ["seconds", "attempts", "folder", "error"]
    with (out / "sweep.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return rows


def sweep(out: str | Path, spec: SweepSpec | None = None, *, resume: bool = False, address: str | None = None,
          cpus: int | None = None, cpus_per_trial: int = 1, max_failures: int = 3, verbose: bool = True,
          trials: dict[str, Config] | None = None) -> dict[str, Any]:
    """Run the sweep of ``spec`` (or of the given ``trials``: name -> configuration) in the
    folder ``out`` on Ray: a local Ray instance of ``cpus`` CPUs, or the cluster at
    ``address``. ``resume``: continue the sweep saved in ``out`` (``spec`` and ``trials``
    None), running only the trials that did not finish. Returns ``{"rows": sweep.csv's rows,
    "errors": trial -> error, "skipped": finished trials not run again}``."""
    from trainers.common import atomic_write
    from trainers.presets import config_from_dict
    from trainers.ray_runner import ray_session, run_tune_trials

    out = Path(out)
    if spec is not None and trials is None:
        trials = make_trials(spec)
    if not resume and not trials:
        raise ValueError("the sweep has no trials")
    manifest = check_sweep_folder(out, trials, resume)
    if not resume:
        manifest["grid"] = spec.to_dict() if spec is not None else None
    configs = {name: config_from_dict(data, where=f"{out}/sweep.json") for name, data in manifest["trials"].items()}
    for config in configs.values():
        config.validate()
    skipped = [name for name, cfg in configs.items() if trial_finished(out / name, cfg)]
    todo = {name: cfg for name, cfg in configs.items() if name not in skipped}
    errors: dict[str, str] = {}
    if todo:
        with ray_session(out, address=address, cpus=cpus) as where:
            out.mkdir(parents=True, exist_ok=True)
            if not resume:  # written once Ray is reachable: an unreachable --address leaves no sweep behind
                atomic_write(out / "sweep.json", lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2)))
            if verbose:
                print(f"sweep: {len(todo)} trials to run ({len(skipped)} finished already) on {where}", flush=True)
            errors = run_tune_trials(todo, out, cpus_per_trial=cpus_per_trial, max_failures=max_failures,
                                     verbose=verbose)
    rows = write_sweep_csv(out, manifest, errors)
    return {"rows": rows, "errors": errors, "skipped": skipped}
