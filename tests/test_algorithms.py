"""The shape of the trainers: algorithms as plug-ins, checkpoints of every version as players, no side effects.

* A toy algorithm defined and registered here, with no other edit, trains from Python and
  from the command line, saves, resumes exactly, and plays in the league.
* Checkpoints of the first trainers (tests/data/legacy, format 1) play with the
  probabilities and samples their own code gave; resuming them is refused, naming the file.
* Importing the trainers changes nothing; the packages import one way only.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor

import social_dilemmas
from trainers import algorithms, losses, train
from trainers.algorithms.base import OnPolicy, OnPolicyConfig
from trainers.common import CheckpointError, clip_and_step
from trainers.networks.distributions import entropy
from trainers.players import load_player
from trainers.presets import make_config

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "data" / "legacy"


# -- a toy algorithm, registered from this module --------------------------------------------------------
@dataclass
class ToyConfig(OnPolicyConfig):
    """A policy gradient on advantages scaled by a constant."""

    scale: float = 2.0
    """Factor on the advantages (the toy's own setting)."""


class Toy(OnPolicy):
    """Plain REINFORCE on scaled advantages (a test's algorithm)."""

    name = "toy"
    Config = ToyConfig

    def update_actor(self, batch, est, adv: Tensor, others: Tensor) -> dict[str, float]:
        rows, learn = batch.learning()
        dist, _ = self.actor.forward_sequence(rows.memory, rows.obs, rows.starts)
        loss = losses.reinforce_loss(self.cfg.scale * adv[learn], dist.log_prob(rows.actions))
        loss = loss - self.cfg.entropy_coef * entropy(dist).mean()
        self.check("actor loss", loss)
        norm = clip_and_step(self.actor_opt, loss, self.actor.parameters(), self.cfg.grad_clip)
        return {"train/toy_loss": float(loss.detach()), "train/actor_grad_norm": norm}


algorithms.register(Toy)


def toy_config(**kw):
    return make_config("coin_game", algo="toy", **{"num_games": 8, "max_steps": 6, "hidden": 8, "iterations": 4,
                                                   "save_every": 2, "tensorboard": False, "self_play_prob": 0.5,
                                                   "snapshot_every": 1, **kw})


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_registered_algorithm_trains_saves_resumes_and_plays_in_the_league(tmp_path):
    assert "toy" in algorithms.names()
    full = train(toy_config(scale=3.0), tmp_path / "full", progress=False)
    assert full.iteration == 4 and full.cfg.scale == 3.0
    saved = json.loads((tmp_path / "full" / "config.json").read_text())
    assert saved["run"]["algo"] == "toy" and saved["algorithm"]["scale"] == 3.0
    assert [r["iteration"] for r in rows(tmp_path / "full" / "metrics.csv")] == ["1", "2", "3", "4"]
    assert "train/toy_loss" in rows(tmp_path / "full" / "metrics.csv")[0]
    # resume: the same weights as the uninterrupted run
    train(toy_config(scale=3.0, iterations=2), tmp_path / "split", progress=False)
    resumed = train(out=tmp_path / "split", resume=True, iterations=4, progress=False)
    for k, v in full.actor.state_dict().items():
        assert torch.equal(v, resumed.actor.state_dict()[k]), k
    # a player everywhere: the league (through the games' entry points), and the greedy loader
    from trainers.evaluation.league import run_league

    result = run_league("coin_game", ["always_defect", str(tmp_path / "full" / "checkpoint.pt")], seeds=1, episodes=4)
    assert result.names == ["always_defect", "full"] and torch.isfinite(torch.tensor(result.row_reward)).all()
    player = load_player(tmp_path / "full" / "checkpoint.pt", social_dilemmas.make_game("coin_game"), greedy=True)
    assert player.name == "toy:full"


def test_a_registered_algorithm_trains_from_the_command_line(tmp_path, capsys):
    from trainers.__main__ import main

    code = main(["train", "--algo", "toy", "--env", "ipd", "--scale", "0.5", "--num-games", "4", "--hidden", "8",
                 "--iterations", "2", "--no-tensorboard", "--no-progress", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0 and "trained 2 updates" in capsys.readouterr().out
    assert json.loads((tmp_path / "config.json").read_text())["algorithm"]["scale"] == 0.5
    assert main(["train", "--algo", "toy", "--help"]) == 0
    assert "--scale" in capsys.readouterr().out
    assert main(["algorithms"]) == 0
    assert "toy" in capsys.readouterr().out


def test_registering_a_bad_algorithm_is_refused():
    @dataclass
    class Clashing(OnPolicyConfig):
        """A section that reuses a run setting's name."""

        seed: int = 0
        """Not allowed: the run's."""

    class Bad(Toy):
        name = "bad"
        Config = Clashing

    with pytest.raises(ValueError, match=r"reuses the run section's names \['seed'\]"):
        algorithms.register(Bad)
    with pytest.raises(ValueError, match="an identifier"):
        algorithms.register(Toy, name="not a name")
    with pytest.raises(TypeError, match="is not an algorithm"):
        algorithms.register(int, name="integer")
    with pytest.raises(ValueError, match="algo = 'nope' is invalid: allowed values are .*'adalign'"):
        algorithms.get("nope")


def test_resuming_refuses_settings_that_would_change_what_the_run_learns(tmp_path):
    from trainers.__main__ import main

    base = ["train", "--env", "ipd", "--num-games", "4", "--hidden", "8", "--iterations", "2", "--no-tensorboard",
            "--no-progress", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path)]) == 0
    assert main(["train", "--resume", str(tmp_path), "--iterations", "3", "--beta", "2", "--no-progress"]) == 2
    assert main(["train", "--resume", str(tmp_path), "--iterations", "3", "--eval-every", "1", "--no-progress"]) == 0
    saved = json.loads((tmp_path / "config.json").read_text())["run"]
    assert (saved["iterations"], saved["eval_every"]) == (3, 1)
    assert rows(tmp_path / "metrics.csv")[-1]["eval/self"] != ""


# -- checkpoints of the first trainers -------------------------------------------------------------------
def _legacy_probe(name: str, game, obs_seq):
    expected = json.loads((LEGACY / "expected.json").read_text())[name]
    policy = load_player(LEGACY / name / "checkpoint.pt", game)
    policy.reset(obs_seq[0].shape[0], "cpu")
    for o, probs in zip(obs_seq, expected["probs"]):
        torch.testing.assert_close(policy.distribution(o).probs, torch.tensor(probs), atol=1e-5, rtol=1e-4)
    sampler = load_player(LEGACY / name / "checkpoint.pt", game)
    sampler.reset(obs_seq[0].shape[0], "cpu", torch.Generator().manual_seed(5))
    return [sampler.act(o).tolist() for o in obs_seq], expected["sampled"]


@pytest.mark.parametrize("name", ["ipd_gru", "ipd_memory_one"])
def test_checkpoints_of_the_first_trainers_play_as_they_did(name):
    g = torch.Generator().manual_seed(0)
    obs = [torch.zeros(5, 4)] + [torch.eye(4)[torch.randint(0, 4, (5,), generator=g)] for _ in range(4)]
    sampled, expected = _legacy_probe(name, social_dilemmas.make_game("ipd"), obs)
    assert sampled == expected
    player = social_dilemmas.policies.resolve_player(str(LEGACY / name / "checkpoint.pt"), social_dilemmas.make_game("ipd"))
    assert player.name == f"adalign:{name}"
    with pytest.raises(ValueError, match="holds an agent for ipd, not for coin_game"):
        load_player(LEGACY / name / "checkpoint.pt", social_dilemmas.make_game("coin_game"))


def test_resuming_a_run_of_the_first_trainers_is_refused_naming_the_file(tmp_path):
    shutil.copytree(LEGACY / "ipd_gru", tmp_path / "old")
    with pytest.raises(CheckpointError, match=r"checkpoint\.pt.*earlier version.*format 1.*still plays.*retrain"):
        train(out=tmp_path / "old", resume=True, progress=False)
    from trainers.__main__ import main

    assert main(["train", "--resume", str(tmp_path / "old"), "--no-progress"]) == 2


@pytest.mark.parametrize("content", [b"", b"\x00garbage", None])
def test_a_broken_checkpoint_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "checkpoint.pt"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=str(path)):
        load_player(path, social_dilemmas.make_game("ipd"))


# -- no side effects, one direction of imports ------------------------------------------------------------
def test_importing_the_trainers_changes_nothing():
    code = ("import sys; before = set(sys.modules); import trainers, trainers.presets, trainers.run; "
            "print(sorted(m for m in set(sys.modules) - before if m.startswith(('tensorboard', 'stable_baselines3')))); "
            "print('tensorboard.compat.notf' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["[]", "False"]


def test_the_packages_import_one_way_with_no_cycle_and_no_long_module():
    tool = ROOT.parent / "shared" / "tools" / "import_graph.py"
    if not tool.exists():
        pytest.skip(f"the import-graph tool is not beside the checkout ({tool})")
    proc = subprocess.run([sys.executable, str(tool), str(ROOT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
