"""Training configuration: one dataclass, a docstring per field, presets per game (SPEC section 7)."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "PRESETS", "FAST", "ENVS", "ALGOS", "preset", "field_docs", "add_config_arguments", "config_from_args"]

ENVS = ("ipd", "coin_game", "negotiation", "commons_harvest_open")
ALGOS = ("adalign", "proximal_adalign", "ppo", "ppo_shared_reward")


@dataclass
class TrainConfig:
    """Everything a training run depends on. Saved as ``DIR/config.json``."""

    env: str = "ipd"
    """Game: ipd, coin_game, negotiation (commons_harvest_open needs the Melting Pot extra)."""
    algo: str = "adalign"
    """adalign (REINFORCE form, SPEC 5) or proximal_adalign (PPO form, SPEC 6); beta = 0 gives plain PG / PPO."""
    seed: int = 0
    """Seed of every random number the run draws (games, actions, opponents, initial weights)."""
    iterations: int = 1000
    """Number of updates: each collects one batch of whole episodes, then trains on it."""
    device: str = "auto"
    """auto (CUDA when present, else CPU), cpu or cuda."""
    env_kwargs: dict = field(default_factory=dict)
    """Arguments of the game's constructor, e.g. {"max_steps": 50} (JSON on the command line)."""

    batch_size: int = 2048
    """Parallel games per update."""
    max_steps: int = 16
    """Trajectory length: episode length of the training games."""
    gamma: float = 0.9
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    actor_lr: float = 1e-4
    """Actor learning rate (Adam)."""
    critic_lr: float = 1e-3
    """Critic learning rate (Adam)."""
    anneal_lr: bool = False
    """Decay the actor's learning rate linearly to 0 over ``iterations`` (the policy settles instead of drifting)."""
    entropy_coef: float = 0.15
    """Weight of the entropy bonus."""
    beta: float = 0.3
    """Weight of the advantage-alignment term (0: the plain policy-gradient / PPO learner)."""
    aggregation: str = "mean"
    """Past own advantages: mean (running mean, the released code) or discounted (paper Eq. 8)."""
    sign_masks: list = field(default_factory=list)
    """Sign cases of the alignment term to keep (cooperative, empathetic, vengeful, spiteful); empty keeps all."""
    grad_clip: float = 0.0
    """Gradient-norm clip of actor and critic (0: none)."""
    hidden: int = 64
    """Width of the GRU (and of the encoders)."""
    actor_recurrent: bool = True
    """GRU actor (remembers the whole episode); false: a feed-forward actor that sees the current
    observation only (on the IPD a memory-one policy of the last round, which cannot count rounds)."""
    network_arch: str = "transformer"
    """commons_harvest_open: the memory after the Nature CNN, transformer (gated, GTrXL-style) or gru."""
    network_width: int = 192
    """commons_harvest_open: width of the CNN's output, of the transformer or GRU, and of the actor and critic heads."""
    network_layers: int = 3
    """commons_harvest_open: transformer layers (the GRU has one)."""
    network_heads: int = 4
    """commons_harvest_open: attention heads of each transformer layer; must divide network_width."""
    network_context: int = 15
    """commons_harvest_open: steps of the current episode the transformer sees (the current step included)."""
    critic_target: str = "td0"
    """Critic targets: td0 (one-step, from the target network) or mc (Monte Carlo returns)."""
    target_tau: float = 0.005
    """EMA rate of the critic's target network."""
    advantage_values: str = "target"
    """Critic giving the values inside GAE: target (EMA network, as the released code) or online."""
    value_norm: bool = True
    """Critic predicts in units of running return statistics (PopArt); makes early advantages unbiased."""
    critic_warmup: int = 0
    """Updates at the start in which only the critic learns (unbiased advantages from the first actor update)."""
    alignment_warmup: int = 0
    """Updates at the start in which the alignment term is off (beta 0): the agent first learns the
    selfish game, so the agent replay buffer holds selfish opponents to learn reciprocity against."""
    normalize_advantages: bool = False
    """Normalise advantages (zero mean, unit std) before the alignment term."""

    self_play_prob: float = 1.0
    """Probability that an update plays the current agent against itself; otherwise the
    opponent is a past snapshot from the agent replay buffer (only seat 0 learns)."""
    snapshot_every: int = 10
    """Updates between snapshots added to the agent replay buffer."""
    replay_capacity: int = 10000
    """Most snapshots kept in the agent replay buffer (oldest dropped first)."""
    trajectory_replay: float = 0.0
    """Fraction of each batch replaced by trajectories replayed from earlier batches (Negotiation: 0.05)."""

    ppo_epochs: int = 4
    """proximal_adalign: optimisation epochs per batch."""
    ppo_minibatches: int = 4
    """proximal_adalign: minibatches per epoch."""
    clip_eps: float = 0.2
    """proximal_adalign: PPO clip range."""
    target_kl: float = 0.05
    """proximal_adalign: stop the epochs of a batch when the approximate KL passes this (0: never)."""

    save_every: int = 50
    """Updates between checkpoints (written atomically); the last update is always saved."""
    log_every: int = 1
    """Updates between rows of metrics.csv."""
    eval_every: int = 0
    """Updates between evaluations against the game's scripted players and against itself
    (eval/ columns of metrics.csv, such as eval/self and eval/exploitation; 0: never).
    The training reward alone hides whether an agent is exploitable."""
    eval_games: int = 64
    """Games per match of an evaluation (of the training length, seeded the same every time)."""
    tensorboard: bool = True
    """Write TensorBoard logs under DIR/tb."""

    def validate(self) -> TrainConfig:
        """Raise ``ValueError`` naming the field and the allowed values for any bad setting."""
        from social_dilemmas.policies import SCRIPTED
        from trainers.losses import SIGN_CASES

        def need(ok: bool, name: str, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r} is invalid: {allowed}")

        need(self.env in ENVS, "env", f"allowed values are {list(ENVS)}")
        need(self.algo in ALGOS, "algo", f"allowed values are {list(ALGOS)}")
        need(self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device", "allowed values are auto, cpu, cuda")
        for name in ("iterations", "batch_size", "max_steps", "hidden", "snapshot_every", "replay_capacity",
                     "ppo_epochs", "ppo_minibatches", "save_every", "log_every", "network_width", "network_layers",
                     "network_heads", "network_context"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "must be an integer >= 1")
        for name in ("critic_warmup", "alignment_warmup", "eval_every"):
            need(isinstance(getattr(self, name), int) and getattr(self, name) >= 0, name, "must be an integer >= 0")
        need(isinstance(self.eval_games, int) and self.eval_games >= 1, "eval_games", "must be an integer >= 1")
        need(self.eval_every == 0 or self.env in SCRIPTED, "eval_every",
             f"must be 0 for {self.env} (scripted players exist for {', '.join(SCRIPTED)})")
        need(self.network_arch in ("transformer", "gru"), "network_arch", "allowed values are transformer, gru")
        need(self.network_arch != "transformer" or self.network_width % self.network_heads == 0, "network_width",
             f"must be divisible by network_heads = {self.network_heads}")
        need(0 < self.gamma <= 1, "gamma", "must be in (0, 1]")
        need(0 <= self.gae_lambda <= 1, "gae_lambda", "must be in [0, 1]")
        for name in ("actor_lr", "critic_lr"):
            need(self.__dict__[name] > 0, name, "must be > 0")
        for name in ("entropy_coef", "beta", "grad_clip", "target_kl"):
            need(self.__dict__[name] >= 0, name, "must be >= 0")
        need(0 < self.target_tau <= 1, "target_tau", "must be in (0, 1]")
        need(0 <= self.self_play_prob <= 1, "self_play_prob", "must be in [0, 1]")
        need(0 <= self.trajectory_replay < 1, "trajectory_replay", "must be in [0, 1)")
        need(0 < self.clip_eps < 1, "clip_eps", "must be in (0, 1)")
        need(self.aggregation in ("mean", "discounted"), "aggregation", "allowed values are mean, discounted")
        need(self.critic_target in ("td0", "mc"), "critic_target", "allowed values are td0, mc")
        need(self.advantage_values in ("target", "online"), "advantage_values", "allowed values are target, online")
        need(all(m in SIGN_CASES for m in self.sign_masks), "sign_masks", f"allowed values are {list(SIGN_CASES)}")
        need(isinstance(self.env_kwargs, dict), "env_kwargs", "must be a JSON object")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config fields {unknown}; known fields: {sorted(names)}")
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        return cls.from_json(Path(path).read_text())


#: SPEC section 7 (paper tables and released configs). Fields not named keep the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "ipd": dict(batch_size=2048, max_steps=16, gamma=0.9, actor_lr=1e-4, critic_lr=1e-3, entropy_coef=0.15,
                beta=0.3, grad_clip=0.0),
    "coin_game": dict(batch_size=512, max_steps=50, gamma=0.96, actor_lr=2e-3, critic_lr=5e-3, entropy_coef=0.1,
                      beta=0.25, grad_clip=10.0, self_play_prob=0.5),
    "negotiation": dict(batch_size=16384, max_steps=50, gamma=0.96, actor_lr=1e-3, critic_lr=1e-3,
                        entropy_coef=0.005, beta=3.0, grad_clip=1.0, trajectory_replay=0.05),
    "commons_harvest_open": dict(batch_size=6, max_steps=15, gamma=0.99, actor_lr=1e-5, critic_lr=1e-5,
                                 entropy_coef=0.1, beta=1.0, grad_clip=10.0, algo="proximal_adalign",
                                 clip_eps=0.1, normalize_advantages=True),
}


#: Changes to the paper's presets that make a run learn in minutes on a CPU instead of
#: an hour on a GPU (README, "Results"). For the IPD:
#:
#: * advantages from the online critic, trained on Monte Carlo returns with a larger
#:   learning rate and a short warm-up, so the first advantages the actor sees are not
#:   biased by an untrained critic;
#: * a feed-forward (memory-one) actor: with the GRU the agent can count the 16 rounds
#:   and the alignment term teaches it to punish on the running mean of the whole past,
#:   which gives grim-trigger-like agents that do not forgive;
#: * beta 3 (at 0.3 the policy-gradient term wins and the agent always defects), half of
#:   the updates against past snapshots (agent replay), actor lr 1.5e-3 decayed linearly
#:   to 0 over the run so the reciprocal policy found after 100-150 updates settles.
#:
#: For the Coin Game (2000 updates, about 20 minutes on one CPU core):
#:
#: * the same fast critic (online values, Monte Carlo targets, lr 1e-2, 30 warm-up updates);
#: * an alignment warm-up of 150 updates: the agent first learns the selfish game, so the
#:   agent replay buffer holds coin-grabbing snapshots. Without it the agent goes straight
#:   to unconditional cooperation and Always Defect keeps about 80% of what it takes from
#:   Always Cooperate; with it the agent learns to grab back from a grabber;
#: * beta 1 instead of 0.25, so cooperation grows after the warm-up (at 0.25 with the
#:   fast critic the agent stays selfish).
#:
#: For the Negotiation (800 updates of 256 games, about 4 minutes on one CPU core):
#:
#: * the same fast critic. With the paper's lagging target critic the advantages of an
#:   improving agent are biased upwards, the alignment term then rewards giving in every
#:   state, and the agent becomes an unconditional cooperator that Always Defect exploits;
#: * a feed-forward (memory-one) actor that sees the other's last proposal, half of the
#:   updates against past snapshots, 256 games per update;
#: * beta 10 and actor lr 5e-4: with unbiased advantages the alignment term is a
#:   reciprocity signal (give after the other gave, take after it took) that needs a large
#:   weight to hold against the policy gradient, which always pushes every bid up (at beta 3
#:   and lr 3e-3 the agent bids 5 on everything within 50 updates; at beta 10 and lr 1e-3 it
#:   cooperates for a while and falls back there after 500 updates).
#: The fast critic every CPU preset shares: online values, Monte Carlo targets, lr 1e-2, a 30-update warm-up.
_FAST_CRITIC: dict[str, Any] = dict(advantage_values="online", critic_target="mc", critic_lr=1e-2, critic_warmup=30)
FAST: dict[str, dict[str, Any]] = {
    "ipd": dict(**_FAST_CRITIC, actor_recurrent=False, batch_size=1024, actor_lr=1.5e-3, beta=3.0,
                self_play_prob=0.5, anneal_lr=True),
    "coin_game": dict(**_FAST_CRITIC, alignment_warmup=150, beta=1.0),
    "negotiation": dict(**_FAST_CRITIC, actor_recurrent=False, batch_size=256, actor_lr=5e-4, self_play_prob=0.5,
                        beta=10.0),
}


def preset(env: str, fast: bool = False, **overrides: Any) -> TrainConfig:
    """The SPEC preset of ``env`` (with the :data:`FAST` changes if ``fast``) and ``overrides``, validated."""
    if env not in PRESETS:
        raise ValueError(f"env = {env!r} is invalid: allowed values are {list(ENVS)}")
    extra = FAST.get(env, {}) if fast else {}
    return TrainConfig(**{"env": env, **PRESETS[env], **extra, **overrides}).validate()


def field_docs(cls: type = TrainConfig) -> dict[str, str]:
    """The docstring written under each field of a dataclass."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def add_config_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per field with the field's docstring as help; defaults come from the preset."""
    docs = field_docs()
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        opt = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, "")
        if f.type in ("bool", bool):
            parser.add_argument(opt, dest=f.name, default=None, action=argparse.BooleanOptionalAction, help=help_text)
        elif f.type in ("dict", dict):
            parser.add_argument(opt, dest=f.name, default=None, type=json.loads, metavar="JSON", help=help_text)
        elif f.type in ("list", list):
            parser.add_argument(opt, dest=f.name, default=None, nargs="*", help=help_text)
        else:
            typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            choices = {"env": ENVS, "algo": ALGOS, "network_arch": ("transformer", "gru")}.get(f.name)
            parser.add_argument(opt, dest=f.name, default=None, type=typ, choices=choices, help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset of ``args.env`` (its :data:`FAST` variant with ``args.fast``) with every
    option given on the command line applied."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    env = given.pop("env", "ipd")
    fast = bool(getattr(args, "fast", False))
    if fast and env not in FAST:
        raise ValueError(f"--fast is available for env in {sorted(FAST)}, not for {env!r}")
    return preset(env, fast=fast, **given)
