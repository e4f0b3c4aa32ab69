"""Command line of the trainers.

    python -m trainers train --env ipd --algo adalign --seed 0 --iterations 500 --out runs/ipd
    python -m trainers train --env ipd --fast --iterations 200 --out runs/ipd-fast   # CPU preset: tit-for-tat in ~1 min
    python -m trainers train --resume runs/ipd [--iterations 1000]
    python -m trainers train --env negotiation --algo ppo_shared_reward --out runs/neg-ppo-sr   # SB3 baselines
    python -m trainers cooperation --agent runs/ipd/checkpoint.pt --out runs/ipd/cooperation
    python -m trainers league --env ipd --players always_defect tit_for_tat "runs/ipd-s*/checkpoint.pt" --out runs/league
    python -m trainers sweep --env ipd --algo adalign --fast --seeds 0 1 2 3 --iterations 200 --out runs/sweep
    python -m trainers sweep --resume runs/sweep                                      # continue a killed sweep
    python -m trainers algorithms                                                     # the registered algorithms

Every field of the configuration is an option of ``train`` (``train --help`` lists them
with their meaning, under the run's options and the algorithm's); options not given take
the preset of the chosen game and algorithm (SPEC section 7), so ``--env coin_game --help``
shows the Coin Game's values. The command line is made by tyro from the configuration's
dataclasses and their field docstrings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from pathlib import Path
from typing import Annotated, Any

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec

__all__ = ["main"]

USAGE = """usage: python -m trainers {train,sweep,cooperation,league,algorithms} [OPTIONS]

  train         train an agent (every option: python -m trainers train --help)
  sweep         a grid of training runs (games, algorithms, seeds, options) as Ray Tune trials: sweep.csv
  cooperation   an IPD agent's first move, P(cooperate | previous round) (Fig. 1b), self-play, vs Always Defect
  league        play every player against every player: table, league.csv, heatmap
  algorithms    list the algorithms --algo accepts
"""

_registry = ConstructorRegistry()


@_registry.primitive_rule
def _json_objects(type_info: Any) -> PrimitiveConstructorSpec | None:
    """Dictionaries (``env_kwargs``) are given as one JSON object on the command line."""
    if type_info.type is not dict and getattr(type_info.type, "__origin__", None) is not dict:
        return None

    def parse(args: list[str]) -> dict:
        try:
            value = json.loads(args[0])
        except json.JSONDecodeError as e:
            raise ValueError(f"not JSON ({e}): {args[0]!r}") from None
        if not isinstance(value, dict):
            raise ValueError(f"must be a JSON object such as '{{\"size\": 3}}', got {args[0]!r}")
        return value

    return PrimitiveConstructorSpec(nargs=1, metavar="JSON", instance_from_str=parse,
                                    is_instance=lambda x: isinstance(x, dict), str_from_instance=lambda x: [json.dumps(x)])


def _arg(kind: Any, help: str, flag: bool = False) -> Any:
    markers = [tyro.conf.arg(help=help)] + ([tyro.conf.FlagCreatePairsOff] if flag else [])
    return Annotated[(kind, *markers)]


def _documented(cls: type) -> type:
    """``cls`` (a configuration section) as a dataclass of the same fields whose help is the
    field's docstring with its lines joined (tyro keeps the line breaks of indented docstrings)."""
    from trainers.config import field_docs

    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    fields = []
    for f in dataclasses.fields(cls):
        default = {"default": f.default} if f.default is not dataclasses.MISSING else {"default_factory": f.default_factory}
        fields.append((f.name, Annotated[hints[f.name], tyro.conf.arg(help=docs.get(f.name))], dataclasses.field(**default)))
    documented = dataclasses.make_dataclass(cls.__name__, fields)
    documented.__doc__ = cls.__doc__
    return documented


def _as(cls: type, value: Any) -> Any:
    """The section ``cls`` with the values of ``value`` (a :func:`_documented` copy)."""
    return cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(cls)})


def _error(e: BaseException, code: int = 2) -> int:
    """Print the CLI's one ``error:`` line for ``e`` and return the exit status ``code``: an
    ``OSError`` of a file (a full disk, a read-only folder) as ``FILE: what happened``."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
    else:
        print(f"error: {e}", file=sys.stderr)
    return code


def _out_folder(out: str) -> None:
    """A ``NotADirectoryError`` when the output folder ``out`` is a file."""
    if Path(out).exists() and not Path(out).is_dir():
        raise NotADirectoryError(f"--out {out} is a file, not a folder")


def _cli(cls: type, argv: list[str], command: str, default: Any = None) -> Any:
    return tyro.cli(cls, args=argv, default=default, prog=f"python -m trainers {command}", registry=_registry,
                    description=(cls.__doc__ or "").strip())


# -- train --------------------------------------------------------------------------------------------
def _train_command(section: type) -> type:
    """The ``train`` command's dataclass: the command's own options, the run's section and the algorithm's."""
    from trainers.config import RunConfig

    fields = [
        ("out", _arg(str | None, "run folder for config.json, metrics.csv, tb/ and checkpoint.pt (default runs/ENV-ALGO-sSEED)"),
         dataclasses.field(default=None)),
        ("resume", _arg(str | None, "continue the run in this folder exactly where it stopped (options that would change "
                                    "what it learns are refused)"), dataclasses.field(default=None)),
        ("fast", _arg(bool, "start from the CPU preset of the game and algorithm (AdAlign: the IPD in about a minute, "
                            "the Coin Game in 20 minutes, the Negotiation in 4) instead of the paper's", flag=True),
         dataclasses.field(default=False)),
        ("threads", _arg(int | None, "CPU threads of torch (default: torch's own choice); 1 is much faster on a machine "
                                     "busy with other jobs, where threads fight over the cores"),
         dataclasses.field(default=None)),
        ("no_progress", _arg(bool, "no progress bar", flag=True), dataclasses.field(default=False)),
        ("run", Annotated[_documented(RunConfig), tyro.conf.OmitArgPrefixes], dataclasses.field(default=None)),
        ("algorithm", Annotated[_documented(section), tyro.conf.OmitArgPrefixes], dataclasses.field(default=None)),
    ]
    cls = dataclasses.make_dataclass("TrainCommand", fields)
    cls.__doc__ = "Train an agent. Options not given take the game's preset for the algorithm (SPEC section 7)."
    return cls


def _pre_parse(argv: list[str]) -> argparse.Namespace:
    pre = argparse.ArgumentParser(add_help=False)
    for name in ("--env", "--algo", "--resume", "--out"):
        pre.add_argument(name, default=None)
    pre.add_argument("--fast", action="store_true")
    return pre.parse_known_args(argv)[0]


def _train(argv: list[str]) -> int:
    from trainers import algorithms
    from trainers.common import CheckpointError, RunFolderInUse, TrainingDiverged
    from trainers.config import Config
    from trainers.presets import load_config, make_config
    from trainers.run import train

    first = _pre_parse(argv)
    try:
        if first.resume:
            if first.fast:
                raise ValueError("--fast starts a new run; a resumed run keeps its config.json")
            if first.out is not None and Path(first.out).resolve() != Path(first.resume).resolve():
                raise ValueError(f"--out {first.out}: a resumed run stays in its folder, --resume {first.resume}; "
                                 "give one of the two")
            saved_path = Path(first.resume) / "config.json"
            if not saved_path.exists():
                raise FileNotFoundError(f"--resume {first.resume}: no config.json there; is this a training run's folder?")
            base = load_config(saved_path)
        else:
            base = make_config(first.env or "ipd", first.algo, fast=first.fast)
        cls = _train_command(algorithms.get(base.run.algo).Config)
    except (ValueError, OSError) as e:
        return _error(e)
    fields = {f.name: f.type for f in dataclasses.fields(cls)}
    run_type, section_type = (typing.get_args(fields[k])[0] for k in ("run", "algorithm"))
    default = cls(run=run_type(**base.run.to_dict()), algorithm=section_type(**base.algorithm.to_dict()))
    args = _cli(cls, argv, "train", default=default)
    if args.threads is not None:
        if args.threads < 1:
            print(f"error: --threads must be an integer >= 1, got {args.threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    config = Config(_as(type(base.run), args.run), _as(type(base.algorithm), args.algorithm))
    try:
        if args.resume:
            algo = train(config, args.resume, resume=True, progress=not args.no_progress)
        else:
            config.validate()
            out = args.out or f"runs/{config.run.env}-{config.run.algo}-s{config.run.seed}"
            algo = train(config, out, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, NotADirectoryError, CheckpointError, RunFolderInUse) as e:
        return _error(e)
    except TrainingDiverged as e:
        return _error(e, 3)
    except OSError as e:  # a file that cannot be written: a full disk, a read-only folder
        return _error(e, 1)
    print(f"trained {algo.iteration} updates; run folder: {algo.out}")
    return 0


# -- cooperation, league, algorithms ---------------------------------------------------------------------
@dataclasses.dataclass
class CooperationCommand:
    """How an IPD agent plays (the paper's Fig. 1b and what a user sees): P(cooperate) on its first move and after
    each previous round in self-play, its self-play reward and what Always Defect earns against it, with the
    tit-for-tat targets; writes cooperation.csv, tit_for_tat.csv and cooperation.png."""

    agent: str
    """The agent: a trainer checkpoint (DIR/checkpoint.pt)."""
    out: str
    """Folder for cooperation.csv and cooperation.png."""
    games: int = 1024
    """Self-play games to average over."""
    seed: int = 0
    """Seed of the games and of the agent's actions."""


def _cooperation(argv: list[str]) -> int:
    from trainers.common import CheckpointError
    from trainers.evaluation.cooperation import write_cooperation

    args = _cli(CooperationCommand, argv, "cooperation")
    try:
        if args.games < 1:
            raise ValueError(f"--games must be an integer >= 1, got {args.games}")
        _out_folder(args.out)
        result = write_cooperation(args.agent, args.out, args.games, args.seed)
    except (ValueError, FileNotFoundError, NotADirectoryError, ImportError, CheckpointError) as e:
        return _error(e)
    except OSError as e:
        return _error(e, 1)
    print("round            P(cooperate)")
    for name, (mean, std) in result["table"].items():
        if name != "self_play":
            print(f"{name:<16} {mean:.3f} +- {std:.3f}")
    print("\ntit-for-tat      target     measured")
    for metric, op, threshold, value, holds in result["checks"]:
        print(f"{metric:<18} {op} {threshold:<6} {value:7.3f}  {'ok' if holds else 'NOT MET'}")
    print(f"wrote {args.out}/cooperation.csv, tit_for_tat.csv and cooperation.png")
    return 0


@dataclasses.dataclass
class LeagueCommand:
    """Play every ordered pair of players (scripted names, .pt checkpoints, .zip SB3 models, the published Coin
    Game league's agents (.pkl, or their minimal_state_* files), or quoted globs of several seeds, optionally
    NAME=SPEC) and write DIR/league.csv, DIR/league.png and DIR/league.json."""

    env: str
    """The game: ipd, coin_game, negotiation."""
    players: list[str]
    """The players (a scripted player's name, a saved player's path, a quoted glob of several seeds, NAME=SPEC)."""
    out: str
    """Folder for league.csv, league.png and league.json."""
    seeds: int = 3
    """Instances per player: glob matches, or seeds of a scripted player."""
    episodes: int = 32
    """Games per pair of instances."""
    seed: int = 0
    """Base seed of the games."""
    device: str = "cpu"
    """Device of the games and the trained players: cpu, cuda, cuda:N."""
    focal: int | None = None
    """Games of more than two players: seats of the row (focal) player (default n_players - 2)."""
    greedy: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """Trained players play their most likely action."""
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    """Arguments of the game's constructor, e.g. {"max_steps": 16}."""
    no_progress: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """No progress bar."""
    ray: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """Play the matches (cells) as Ray tasks on this machine (Ray's logs in OUT/ray_tmp)."""
    address: str | None = None
    """Play the matches as Ray tasks on the Ray cluster at HOST:PORT (ray start --head prints it)."""


def _league(argv: list[str]) -> int:
    from trainers.common import resolve_device
    from trainers.evaluation.league import format_table, league

    args = _cli(LeagueCommand, argv, "league")
    try:
        device = resolve_device(args.device)
        _out_folder(args.out)
        kwargs = dict(seeds=args.seeds, episodes=args.episodes, seed=args.seed, device=device, focal=args.focal,
                      greedy=args.greedy, progress=not args.no_progress, env_kwargs=args.env_kwargs)
        if args.ray or args.address:
            from trainers.ray_runner import ray_map, ray_session

            with ray_session(Path(args.out), address=args.address) as where:
                print(f"league: the matches run as Ray tasks on {where}", flush=True)
                result = league(args.env, args.players, args.out, map_cells=ray_map, **kwargs)
        else:
            result = league(args.env, args.players, args.out, **kwargs)
    except (ValueError, FileNotFoundError, NotADirectoryError, TypeError, ImportError, ConnectionError) as e:
        return _error(e)
    except OSError as e:
        return _error(e, 1)
    print(format_table(result))
    print(f"wrote {args.out}/league.csv, {args.out}/league.png and {args.out}/league.json")
    return 0


@dataclasses.dataclass
class SweepCommand:
    """Run a sweep: every game x algorithm x seed x option value (--set NAME=V1,V2, or a --grid file) is a training
    run, each a Ray Tune trial (trainers.sweep). Writes OUT/sweep.json, a run folder per trial, OUT/sweep.csv."""

    out: str | None = None
    """The sweep's folder (a new one; --resume continues one)."""
    env: list[str] = dataclasses.field(default_factory=list)
    """Games of the grid (default ipd)."""
    algo: list[str] = dataclasses.field(default_factory=list)
    """Algorithms of the grid (default: the game's)."""
    seeds: list[int] = dataclasses.field(default_factory=list)
    """Seeds of the grid (default 0)."""
    fast: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """Start every run from the CPU preset of its game and algorithm (as train --fast)."""
    iterations: int | None = None
    """Updates of every run (default: the preset's)."""
    set: list[str] = dataclasses.field(default_factory=list)
    """Options of the runs, NAME=VALUE or NAME=V1,V2 (every value crossed with the rest), e.g. beta=1,3."""
    grid: str | None = None
    """A YAML file of the grid: env, algo, seeds, fast, iterations, set (the flags given win over it)."""
    resume: str | None = None
    """Continue the sweep in this folder: the trials that finished are not run again."""
    address: str | None = None
    """Join the Ray cluster at HOST:PORT (ray start --head prints it) instead of starting Ray on this machine."""
    cpus: int | None = None
    """CPUs of the Ray started on this machine (default: all)."""
    cpus_per_trial: int = 1
    """CPUs (and torch threads) of each trial."""
    max_failures: int = 3
    """Retries of a trial whose worker dies (each from the trial's last checkpoint)."""
    quiet: Annotated[bool, tyro.conf.FlagCreatePairsOff] = False
    """No table of trials while the sweep runs."""


def _sweep(argv: list[str]) -> int:
    from trainers.sweep import load_grid, make_spec, parse_set, sweep

    args = _cli(SweepCommand, argv, "sweep")
    run = dict(address=args.address, cpus=args.cpus, cpus_per_trial=args.cpus_per_trial,
               max_failures=args.max_failures, verbose=not args.quiet)
    try:
        if args.max_failures < 0:
            raise ValueError(f"--max-failures must be an integer >= 0, got {args.max_failures}")
        if args.resume:
            given = [f"--{k.replace('_', '-')}" for k in ("out", "env", "algo", "seeds", "iterations", "set", "grid")
                     if getattr(args, k)] + (["--fast"] if args.fast else [])
            if given:
                raise ValueError(f"--resume {args.resume} continues the sweep saved there; {', '.join(given)} "
                                 "cannot be given with it")
            out, result = args.resume, sweep(args.resume, resume=True, **run)
        else:
            if args.out is None:
                raise ValueError("--out is required: the sweep's folder")
            grid = load_grid(args.grid) if args.grid else {}
            options = {**(grid.get("set") or {}), **parse_set(args.set)}
            spec = make_spec(grid, env=args.env or None, algo=args.algo or None, seeds=args.seeds or None,
                             fast=True if args.fast else None, iterations=args.iterations, set=options or None)
            out, result = args.out, sweep(args.out, spec, **run)
    except (ValueError, FileNotFoundError, NotADirectoryError, ImportError, ConnectionError) as e:
        return _error(e)
    except OSError as e:
        return _error(e, 1)
    print(f"{'trial':<40} {'status':<10} {'updates':>7} {'reward/step':>11} {'seconds':>8}")
    for row in result["rows"]:
        reward = row.get("rollout/reward_per_step")
        print(f"{row['trial']:<40} {row['status']:<10} {row['updates']:>7} "
              f"{'' if reward is None else f'{reward:.4f}':>11} {row['seconds']:>8.1f}")
    for name, error in result["errors"].items():
        print(f"error: trial {name} failed: {error}", file=sys.stderr)
    print(f"wrote {out}/sweep.csv ({len(result['skipped'])} trials had finished before)")
    return 1 if result["errors"] else 0


def _algorithms(argv: list[str]) -> int:
    from trainers import algorithms

    if argv:
        print("usage: python -m trainers algorithms   (lists the algorithms; it takes no options)", file=sys.stderr)
        return 2
    for name in algorithms.names():
        cls = algorithms.get(name)
        doc = (cls.__doc__ or "").strip().split("\n")[0]
        print(f"{name:<20} {doc}")
    return 0


COMMANDS = {"train": _train, "sweep": _sweep, "cooperation": _cooperation, "league": _league, "algorithms": _algorithms}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE + "\n" + __doc__)
        return 0 if argv else 2
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"error: unknown command {argv[0]!r}; the commands are {', '.join(COMMANDS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except SystemExit as e:  # tyro's --help and its errors
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)


if __name__ == "__main__":
    sys.exit(main())
