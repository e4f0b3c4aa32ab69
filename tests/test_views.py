"""The views over the rules: PettingZoo ``ParallelEnv``, Gymnasium single-agent and vector
envs, and the trainers' ``VectorGame``; their seeding, autoreset and bad-input errors."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pettingzoo
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test

import social_dilemmas
from social_dilemmas import CoinGame, Policy, make_policy
from social_dilemmas.parallel import SocialDilemmaParallelEnv
from social_dilemmas.vector import VectorGame

GAMES = ["ipd", "coin_game", "negotiation"]
IDS = {
    "ipd": "social_dilemmas/IPD-v0",
    "coin_game": "social_dilemmas/CoinGame-v0",
    "negotiation": "social_dilemmas/Negotiation-v0",
}
AGENTS = ["player_0", "player_1"]


def sample_joint(env, rng: np.random.Generator) -> dict:
    """One valid action per agent, drawn from ``rng`` (reproducible)."""
    out = {}
    for agent in AGENTS:
        space = env.action_space(agent)
        if isinstance(space, gymnasium.spaces.Discrete):
            out[agent] = int(rng.integers(space.n))
        else:
            out[agent] = rng.uniform(space.low, space.high).astype(np.float32)
    return out


def torch_actions(game, gen: torch.Generator, b: int) -> torch.Tensor:
    if game.action_kind == "discrete":
        return torch.randint(int(game.action_space().n), (b, game.n_players), generator=gen)
    return 5.0 * torch.rand((b, game.n_players, *game.action_shape), generator=gen)


# -- PettingZoo ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_pettingzoo_parallel_api_test_passes_for_registered_id(name):
    env = pettingzoo.make("parallel", IDS[name])
    assert isinstance(env, pettingzoo.ParallelEnv)
    parallel_api_test(env, num_cycles=60)


def test_ids_are_registered_with_pettingzoo_and_gymnasium():
    for env_id in IDS.values():
        assert env_id in pettingzoo.parallel_registry
        assert env_id in gymnasium.registry


@pytest.mark.parametrize("name", GAMES)
def test_parallel_env_by_name_plays_with_player_0_and_player_1(name):
    env = social_dilemmas.parallel_env(name)
    assert isinstance(env, SocialDilemmaParallelEnv)
    assert env.possible_agents == AGENTS
    obs, infos = env.reset(seed=0)
    assert env.agents == AGENTS
    assert list(obs) == AGENTS and list(infos) == AGENTS
    obs, rewards, terms, truncs, infos = env.step(sample_joint(env, np.random.default_rng(0)))
    for d in (obs, rewards, terms, truncs, infos):
        assert list(d) == AGENTS
    assert all(isinstance(r, float) for r in rewards.values())


@pytest.mark.parametrize("name", GAMES)
def test_parallel_env_accepts_game_arguments(name):
    env = social_dilemmas.parallel_env(name, max_steps=3)
    assert env.game.max_steps == 3


@pytest.mark.parametrize("name", GAMES)
def test_spaces_are_the_same_object_on_every_call(name):
    env = social_dilemmas.parallel_env(name)
    for agent in AGENTS:
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent) is env.action_space(agent)
    env.reset(seed=1)
    assert env.observation_space("player_0") is env.observation_space("player_0")


@pytest.mark.parametrize("name, default_steps", [("ipd", 16), ("coin_game", 16), ("negotiation", 50)])
def test_episode_is_truncated_after_max_steps_and_agents_are_emptied(name, default_steps):
    env = social_dilemmas.parallel_env(name)
    rng = np.random.default_rng(0)
    for episode in range(2):
        env.reset(seed=3) if episode == 0 else env.reset()
        for t in range(1, default_steps + 1):
            assert env.agents == AGENTS
            _, _, terms, truncs, _ = env.step(sample_joint(env, rng))
            assert terms == {"player_0": False, "player_1": False}
            assert truncs == {"player_0": t == default_steps, "player_1": t == default_steps}
        assert env.agents == []


def test_ipd_parallel_view_follows_the_rules():
    env = social_dilemmas.parallel_env("ipd")
    obs, _ = env.reset(seed=0)
    assert obs["player_0"].tolist() == [0, 0, 0, 0]
    obs, rewards, _, _, _ = env.step({"player_0": 1, "player_1": 0})
    assert rewards == {"player_0": 0.0, "player_1": -3.0}
    assert obs["player_0"].tolist() == [0, 1, 1, 0] and obs["player_1"].tolist() == [1, 0, 0, 1]


def test_negotiation_parallel_view_shows_the_proposals_just_made():
    env = social_dilemmas.parallel_env("negotiation")
    obs, _ = env.reset(seed=0)
    assert not obs["player_0"][6:9].any() and not obs["player_0"][12:15].any()
    p0, p1 = np.array([1, 2, 3], np.float32), np.array([5, 0, 0.5], np.float32)
    obs, _, _, _, _ = env.step({"player_0": p0, "player_1": p1})
    np.testing.assert_allclose(obs["player_0"][6:9], p0 / 10, rtol=1e-6)
    np.testing.assert_allclose(obs["player_0"][12:15], p1 / 10, rtol=1e-6)
    np.testing.assert_allclose(obs["player_1"][6:9], p1 / 10, rtol=1e-6)


# -- determinism --------------------------------------------------------------------------
def pz_trajectory(name: str, seed: int, steps: int = 240, action_seed: int = 99):
    """Every observation and reward of ``steps`` steps as a flat list of arrays, resetting
    (without a seed) after each episode; and the first observations of the episodes."""
    env = social_dilemmas.parallel_env(name)
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    out, starts = [obs[a] for a in AGENTS], [obs]
    for _ in range(steps):
        if not env.agents:
            obs, _ = env.reset()
            starts.append(obs)
            out += [obs[a] for a in AGENTS]
        obs, rewards, _, _, _ = env.step(sample_joint(env, rng))
        out += [obs[a] for a in AGENTS] + [np.array([rewards[a] for a in AGENTS])]
    return out, starts


def same_arrays(a: list, b: list) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", GAMES)
def test_parallel_view_same_seed_same_actions_gives_same_trajectory_across_resets(name):
    a, starts = pz_trajectory(name, seed=123)
    b, _ = pz_trajectory(name, seed=123)
    assert len(starts) >= 4  # several episodes, reset() without a seed in between
    assert same_arrays(a, b)


@pytest.mark.parametrize("name", ["coin_game", "negotiation"])
def test_parallel_view_another_seed_gives_another_trajectory(name):
    a, _ = pz_trajectory(name, seed=123)
    b, _ = pz_trajectory(name, seed=124)
    assert not same_arrays(a, b)


@pytest.mark.parametrize("name", ["coin_game", "negotiation"])
def test_parallel_view_reset_without_seed_continues_the_generator(name):
    # the episodes after reset() depend on the first seed, and differ from one another
    _, starts_a = pz_trajectory(name, seed=5)
    _, starts_b = pz_trajectory(name, seed=6)
    later_a = [s["player_0"] for s in starts_a[1:]]
    later_b = [s["player_0"] for s in starts_b[1:]]
    assert not same_arrays(later_a, later_b)
    assert any(not np.array_equal(x, later_a[0]) for x in later_a[1:])


def vector_trajectory(name: str, seed: int, steps: int = 200, b: int = 64):
    vec = social_dilemmas.make_vec(name, num_envs=b)
    gen = torch.Generator().manual_seed(1234)
    obs, _ = vec.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, rewards, term, trunc, info = vec.step(torch_actions(vec.game, gen, b))
        out += [obs, rewards, trunc]
        if "final_obs" in info:
            out.append(info["final_obs"])
    return out


@pytest.mark.parametrize("name", GAMES)
def test_vector_game_same_seed_same_actions_gives_same_trajectory(name):
    a, b = vector_trajectory(name, 7), vector_trajectory(name, 7)
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["coin_game", "negotiation"])
def test_vector_game_another_seed_gives_another_trajectory(name):
    a, b = vector_trajectory(name, 7), vector_trajectory(name, 8)
    assert not all(torch.equal(x, y) for x, y in zip(a, b))


def gym_trajectory(name: str, seed: int, opponent=None, steps: int = 200):
    kwargs = {} if opponent is None else {"opponent": opponent}
    env = gymnasium.make(IDS[name], **kwargs)
    env.action_space.seed(77)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        out += [obs, reward, info["opponent_rewards"]]
        if trunc:
            obs, _ = env.reset()
            out.append(obs)
    return out


def same_gym_trajectory(a, b) -> bool:
    return same_arrays([np.asarray(x) for x in a], [np.asarray(y) for y in b])


@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_view_same_seed_gives_same_trajectory_against_scripted_opponent(name):
    a = gym_trajectory(name, 3, opponent="always_defect")
    b = gym_trajectory(name, 3, opponent="always_defect")
    assert same_gym_trajectory(a, b)


@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_view_same_seed_gives_same_trajectory_against_default_random_opponent(name):
    a = gym_trajectory(name, 3)
    b = gym_trajectory(name, 3)
    assert same_gym_trajectory(a, b)


def test_gymnasium_vector_view_reset_without_seed_is_reproducible_against_default_random_opponent():
    def run():
        env = gymnasium.make_vec(IDS["ipd"], num_envs=8)
        out = [env.reset(seed=1)[0]]
        for episode in range(3):
            if episode:
                out.append(env.reset()[0])
            for _ in range(16):
                obs, rewards, _, _, _ = env.step(np.zeros(8, dtype=np.int64))
                out += [obs, rewards]
        return out

    assert same_arrays(run(), run())


def test_gymnasium_view_accepts_the_largest_64_bit_seed():
    seed = 2**64 - 1
    social_dilemmas.parallel_env("ipd").reset(seed=seed)  # accepted by the PettingZoo view
    env = gymnasium.make(IDS["ipd"])
    obs, _ = env.reset(seed=seed)
    assert obs.tolist() == [0, 0, 0, 0]


def test_gymnasium_view_first_episode_against_random_opponent_is_reproducible():
    a = gym_trajectory("negotiation", 3, steps=50)
    b = gym_trajectory("negotiation", 3, steps=50)
    assert same_gym_trajectory(a, b)


@pytest.mark.parametrize("name", ["coin_game", "negotiation"])
def test_gymnasium_view_another_seed_gives_another_trajectory(name):
    assert not same_gym_trajectory(gym_trajectory(name, 3, "always_defect"), gym_trajectory(name, 4, "always_defect"))


# -- VectorGame autoreset -----------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_vector_game_autoresets_on_the_truncation_step(name):
    b, max_steps = 6, 5
    vec = social_dilemmas.make_vec(name, num_envs=b, max_steps=max_steps)
    game = vec.game
    gen = torch.Generator().manual_seed(0)
    vec.reset(seed=0)
    for _episode in range(2):
        for _ in range(max_steps - 1):
            _, _, term, trunc, info = vec.step(torch_actions(game, gen, b))
            assert not trunc.any() and not term.any() and "final_obs" not in info
        actions = torch_actions(game, gen, b)
        # replay the last step and the reset with a copy of the view's generator
        shadow = torch.Generator()
        shadow.set_state(vec.generator.get_state())
        last_state, last_rewards = game.step(vec.state, actions, shadow)
        fresh = game.reset(b, shadow)
        obs, rewards, term, trunc, info = vec.step(actions)
        assert trunc.dtype == torch.bool and trunc.shape == (b,) and trunc.all()
        assert not term.any()
        assert torch.equal(rewards, last_rewards)
        assert torch.equal(info["final_obs"], game.observe(last_state))
        assert info["_final_obs"].all()
        assert torch.equal(obs, game.observe(fresh))  # already the next episode's first observation
        assert vec.state.t.tolist() == [0] * b
        if name == "ipd":
            assert not obs.any()
        if name == "negotiation":
            assert not obs[..., 6:9].any() and not obs[..., 12:15].any()
    # the step after a truncation is an ordinary first step
    _, _, _, trunc, info = vec.step(torch_actions(game, gen, b))
    assert not trunc.any() and "final_obs" not in info
    assert vec.state.t.tolist() == [1] * b


def test_vector_game_returns_tensors_of_the_documented_shapes():
    vec = social_dilemmas.make_vec("coin_game", num_envs=4)
    assert isinstance(vec, VectorGame)
    obs, info = vec.reset(seed=0)
    assert obs.shape == (4, 2, 4, 3, 3) and obs.dtype == torch.float32 and info == {}
    obs, rewards, term, trunc, _ = vec.step(torch.zeros(4, 2, dtype=torch.int64))
    assert obs.shape == (4, 2, 4, 3, 3) and rewards.shape == (4, 2) and rewards.dtype == torch.float32
    assert term.shape == trunc.shape == (4,)


# -- Gymnasium single-agent view ----------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_env_checker_passes(name):
    env = gymnasium.make(IDS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # advice about non-normalised Box action spaces
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_view_is_player_0_with_the_games_spaces(name):
    env = gymnasium.make(IDS[name], max_steps=4)
    game = social_dilemmas.make_game(name)
    assert env.observation_space == game.observation_space()
    assert env.action_space == game.action_space()
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    for t in range(1, 5):
        obs, reward, term, trunc, info = env.step(env.action_space.sample())
        assert isinstance(reward, float) and term is False and trunc == (t == 4)
        assert len(info["opponent_rewards"]) == 1


def test_gymnasium_view_reports_the_opponents_reward():
    env = gymnasium.make(IDS["ipd"], opponent="always_defect")
    env.reset(seed=0)
    _, reward, _, _, info = env.step(0)
    assert reward == -3.0 and info["opponent_rewards"] == [0.0]


def other_cell(obs: np.ndarray) -> int:
    return int(np.argmax(obs[1]))


def opponent_view(obs: np.ndarray) -> np.ndarray:
    """player_1's Coin Game observation, from player_0's: swap me/other and my/other's coin."""
    return obs[[1, 0, 3, 2]]


MOVE_TABLE = CoinGame().next_cells(torch.zeros(1, dtype=torch.int64)).numpy()


def check_opponent_moves(env, expected_action, steps: int = 40):
    """Step a 3x3 Coin Game env and check player_1 moves by ``expected_action(opponent_obs)``."""
    obs, _ = env.reset(seed=11)
    for t in range(steps):
        want = expected_action(opponent_view(obs))
        before = other_cell(obs)
        obs, _, _, trunc, _ = env.step(t % 4)
        assert other_cell(obs) == MOVE_TABLE[before, want], t
        if trunc:
            obs, _ = env.reset()


def test_gymnasium_opponent_by_scripted_name():
    """The opponent named "always_defect" takes, every step, a move that brings it closest to
    the coin (its ties are broken at random, so any closest move will do)."""
    env = gymnasium.make(IDS["coin_game"], opponent="always_defect")
    obs, _ = env.reset(seed=11)

    def distance(a: int, b: int) -> int:
        rows, cols = abs(a // 3 - b // 3), abs(a % 3 - b % 3)
        return min(rows, 3 - rows) + min(cols, 3 - cols)

    for t in range(40):
        before, coin = other_cell(obs), int(np.argmax(obs[2] + obs[3]))
        reach = [distance(int(MOVE_TABLE[before, a]), coin) for a in range(4)]
        closest = {int(MOVE_TABLE[before, a]) for a in range(4) if reach[a] == min(reach)}
        obs, _, _, trunc, _ = env.step(t % 4)
        assert other_cell(obs) in closest, t
        if trunc:
            obs, _ = env.reset()


def test_gymnasium_opponent_as_callable_of_one_observation():
    seen = []

    def fn(obs):
        seen.append(obs.copy())
        return len(seen) % 4

    env = gymnasium.make(IDS["coin_game"], opponent=fn)
    calls = []

    def expected(opp_obs):
        calls.append(opp_obs)
        return (len(calls)) % 4

    check_opponent_moves(env, expected)
    assert len(seen) == len(calls)
    for got, want in zip(seen, calls):
        np.testing.assert_array_equal(got, want)  # the callable sees player_1's own observation


def test_gymnasium_opponent_as_policy_object():
    class Down(Policy):
        name = "down"
        resets = 0

        def reset(self, num_envs, device="cpu", generator=None):
            super().reset(num_envs, device, generator)
            Down.resets += 1

        def act(self, obs):
            return torch.full((obs.shape[0],), 3, dtype=torch.int64)

    policy = Down()
    env = gymnasium.make(IDS["coin_game"], opponent=policy)
    assert env.unwrapped.opponent is policy
    check_opponent_moves(env, lambda o: 3)
    assert Down.resets == 3  # one per episode: 40 steps of 16-step episodes


# -- Gymnasium vector view ----------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_gymnasium_make_vec_steps_eight_games_with_same_step_autoreset(name):
    env = gymnasium.make_vec(IDS[name], num_envs=8)
    assert env.num_envs == 8
    assert env.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    max_steps = social_dilemmas.make_game(name).max_steps
    for t in range(1, max_steps + 2):
        obs, rewards, term, trunc, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert rewards.shape == (8,) and not term.any()
        assert trunc.all() == (t == max_steps) and trunc.any() == (t == max_steps)
        if t == max_steps:
            assert info["final_obs"].shape == obs.shape and info["_final_obs"].all()
        else:
            assert "final_obs" not in info


def test_gymnasium_make_vec_final_obs_is_the_last_observation_and_obs_the_first():
    env = gymnasium.make_vec(IDS["ipd"], num_envs=8, opponent="always_defect", max_steps=4)
    env.reset(seed=0)
    cooperate = np.zeros(8, dtype=np.int64)
    for _ in range(3):
        obs, _, _, trunc, _ = env.step(cooperate)
        assert not trunc.any()
    obs, rewards, _, trunc, info = env.step(cooperate)
    assert trunc.all()
    assert info["final_obs"].tolist() == [[1, 0, 0, 1]] * 8  # I cooperated, the other defected
    assert obs.tolist() == [[0, 0, 0, 0]] * 8  # the next episode's first observation
    assert rewards.tolist() == [-3.0] * 8
    obs, _, _, trunc, info = env.step(cooperate)
    assert not trunc.any() and "final_obs" not in info
    assert obs.tolist() == [[1, 0, 0, 1]] * 8


def test_gymnasium_make_vec_same_seed_gives_same_trajectory():
    def run():
        env = gymnasium.make_vec(IDS["coin_game"], num_envs=8)
        env.action_space.seed(1)
        out = [env.reset(seed=4)[0]]
        for _ in range(40):
            obs, r, _, _, info = env.step(env.action_space.sample())
            out += [obs, r] + ([info["final_obs"]] if "final_obs" in info else [])
        return out

    a, b = run(), run()
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


# -- bad input ----------------------------------------------------------------------------
def started(name: str, **kwargs):
    env = social_dilemmas.parallel_env(name, **kwargs)
    env.reset(seed=0)
    return env


def valid_action(name: str):
    return np.zeros(3, np.float32) if name == "negotiation" else 0


def assert_message(excinfo, *parts: str):
    msg = str(excinfo.value)
    for part in parts:
        assert part in msg, (part, msg)


@pytest.mark.parametrize("action", [2, -1, 0.5, "a", None, True])
def test_ipd_rejects_action_outside_its_space_naming_agent_and_allowed_values(action):
    env = started("ipd")
    with pytest.raises(ValueError) as e:
        env.step({"player_0": 0, "player_1": action})
    assert_message(e, "player_1", "0..1")
    assert env.agents == AGENTS  # the game did not advance


@pytest.mark.parametrize("action", [4, -1, 1.5])
def test_coin_game_rejects_action_outside_its_space_naming_agent_and_allowed_values(action):
    env = started("coin_game")
    with pytest.raises(ValueError) as e:
        env.step({"player_0": action, "player_1": 0})
    assert_message(e, "player_0", "0..3")


@pytest.mark.parametrize(
    "action, parts",
    [
        ([5.1, 0, 0], ["player_1", "[0.0, 5.0]"]),
        ([0, -0.1, 0], ["player_1", "[0.0, 5.0]"]),
        ([np.nan, 0, 0], ["player_1", "NaN", "[0.0, 5.0]"]),
        ([0, 0, np.inf], ["player_1", "inf", "[0.0, 5.0]"]),
        ([1.0, 1.0], ["player_1", "(3,)"]),
        ([[1.0, 1.0, 1.0]], ["player_1", "(3,)"]),
        (2.0, ["player_1", "(3,)"]),
    ],
    ids=["above", "below", "nan", "inf", "short", "2d", "scalar"],
)
def test_negotiation_rejects_action_outside_its_space_naming_agent_and_allowed_values(action, parts):
    env = started("negotiation")
    with pytest.raises(ValueError) as e:
        env.step({"player_0": np.zeros(3, np.float32), "player_1": np.asarray(action, dtype=np.float64)})
    assert_message(e, *parts)


def test_negotiation_accepts_the_bounds_exactly():
    env = started("negotiation")
    _, rewards, _, _, _ = env.step({"player_0": np.full(3, 5.0), "player_1": np.zeros(3)})
    assert rewards["player_1"] == 0.0


@pytest.mark.parametrize("name", GAMES)
def test_missing_agent_is_rejected_naming_it(name):
    env = started(name)
    with pytest.raises(ValueError) as e:
        env.step({"player_0": valid_action(name)})
    assert_message(e, "player_1")


@pytest.mark.parametrize("name", GAMES)
def test_unknown_agent_is_rejected_naming_it_and_the_agents(name):
    env = started(name)
    with pytest.raises(ValueError) as e:
        env.step({"player_0": valid_action(name), "player_1": valid_action(name), "player_7": valid_action(name)})
    assert_message(e, "player_7", "player_0", "player_1")


def test_unknown_agent_in_space_lookup_is_rejected():
    env = social_dilemmas.parallel_env("ipd")
    with pytest.raises(ValueError) as e:
        env.observation_space("player_2")
    assert_message(e, "player_2", "player_0")


@pytest.mark.parametrize("name", GAMES)
def test_stepping_after_the_episode_ended_raises_until_reset(name):
    env = started(name, max_steps=2)
    joint = {a: valid_action(name) for a in AGENTS}
    env.step(joint)
    env.step(joint)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(joint)
    env.reset()
    env.step(joint)  # fine again


@pytest.mark.parametrize("name", GAMES)
def test_stepping_before_reset_raises(name):
    env = social_dilemmas.parallel_env(name)
    with pytest.raises(RuntimeError, match="reset"):
        env.step({a: valid_action(name) for a in AGENTS})


def test_gymnasium_view_rejects_bad_learner_action_naming_player_0():
    env = gymnasium.make(IDS["ipd"]).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError) as e:
        env.step(2)
    assert_message(e, "player_0", "0..1")


def test_gymnasium_view_rejects_bad_opponent_action():
    env = gymnasium.make(IDS["coin_game"], opponent=lambda obs: 9).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="callable|opponent") as e:
        env.step(0)
    assert_message(e, "9", "0..3")


def test_gymnasium_view_stepping_before_reset_raises():
    env = gymnasium.make(IDS["ipd"]).unwrapped
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_unknown_game_name_is_rejected_listing_the_games():
    with pytest.raises(ValueError) as e:
        social_dilemmas.parallel_env("chess")
    assert_message(e, "chess", "ipd", "coin_game", "negotiation")


def test_unknown_game_argument_is_rejected_listing_the_arguments():
    with pytest.raises(TypeError) as e:
        social_dilemmas.parallel_env("coin_game", sise=4)
    assert_message(e, "sise", "size", "penalty")


def test_unknown_scripted_player_is_rejected_listing_the_names():
    with pytest.raises(ValueError) as e:
        make_policy("nice", social_dilemmas.make_game("ipd"))
    assert_message(e, "nice", "tit_for_tat", "grim_trigger", "always_cooperate", "always_defect", "random")


@pytest.mark.parametrize("name", GAMES)
def test_unknown_scripted_opponent_is_rejected_listing_the_names(name):
    with pytest.raises(ValueError) as e:
        gymnasium.make(IDS[name], opponent="tit_for_tatt")
    assert_message(e, "tit_for_tatt", "always_cooperate", "always_defect")


def test_opponent_of_unsupported_type_is_rejected_listing_the_accepted_kinds():
    with pytest.raises(TypeError) as e:
        social_dilemmas.single_agent_env("ipd", opponent=3)
    assert_message(e, "scripted", "Policy", "callable", "int")


@pytest.mark.parametrize("num_envs", [0, -2, 2.5, "8", True, None])
def test_bad_num_envs_is_rejected_naming_it(num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        social_dilemmas.make_vec("ipd", num_envs=num_envs)


@pytest.mark.parametrize("name", GAMES)
def test_vector_game_rejects_actions_of_the_wrong_shape(name):
    vec = social_dilemmas.make_vec(name, num_envs=4)
    vec.reset(seed=0)
    good = torch_actions(vec.game, torch.Generator().manual_seed(0), 4)
    for bad in (good[:3], good[:, :1], good.reshape(-1), good[None]):
        with pytest.raises(ValueError) as e:
            vec.step(bad)
        assert_message(e, str(list(good.shape)))


def test_vector_game_stepping_before_reset_raises():
    vec = social_dilemmas.make_vec("ipd", num_envs=2)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(torch.zeros(2, 2, dtype=torch.int64))


@pytest.mark.parametrize(
    "name, actions, parts",
    [
        ("ipd", [[0, 1], [0, 2], [1, 1]], ["player_1", "game 1", "0 (cooperate) or 1 (defect)"]),
        ("ipd", [[0, 1], [0, 0], [-1, 1]], ["player_0", "game 2", "0 (cooperate) or 1 (defect)"]),
        ("ipd", [[0.5, 1.0], [0.0, 0.0], [1.0, 1.0]], ["player_0", "game 0", "0 (cooperate) or 1 (defect)"]),
        ("coin_game", [[0, 3], [4, 0], [1, 2]], ["player_0", "game 1", "0 (left), 1 (right), 2 (up), 3 (down)"]),
        (
            "negotiation",
            [[[0, 0, 0], [0, 0, 0]]] * 2 + [[[0, 0, 0], [0, 5.5, 0]]],
            ["player_1", "game 2", "[0.0, 5.0]"],
        ),
        ("negotiation", [[[0, 0, np.nan], [0, 0, 0]]] * 3, ["player_0", "game 0", "NaN", "[0.0, 5.0]"]),
    ],
    ids=["ipd-2", "ipd-neg", "ipd-frac", "coin-4", "neg-above", "neg-nan"],
)
def test_validating_vector_game_rejects_invalid_actions_naming_player_and_allowed_values(name, actions, parts):
    vec = social_dilemmas.make_vec(name, num_envs=3, validate=True)
    vec.reset(seed=0)
    with pytest.raises(ValueError) as e:
        vec.step(torch.tensor(actions))
    assert_message(e, *parts)


def test_gymnasium_vector_view_rejects_fractional_discrete_actions():
    env = gymnasium.make_vec(IDS["ipd"], num_envs=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="player_0"):
        env.step(np.array([0.5, 0.0, 1.0, 1.0]))


def test_gymnasium_vector_view_rejects_out_of_range_and_misshapen_actions():
    env = gymnasium.make_vec(IDS["ipd"], num_envs=4)
    env.reset(seed=0)
    with pytest.raises(ValueError) as e:
        env.step(np.array([0, 2, 0, 0]))
    assert_message(e, "player_0", "game 1")
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(3, dtype=np.int64))


def test_make_vec_accepts_numpy_integers_and_huge_seeds():
    vec = social_dilemmas.make_vec("ipd", np.int64(4))
    obs, _ = vec.reset(seed=2**70)
    assert obs.shape == (4, 2, 4)


def test_numeric_constructor_arguments_refuse_strings():
    with pytest.raises(ValueError, match="max_proposal"):
        social_dilemmas.make_game("negotiation", max_proposal="5")


@pytest.mark.parametrize("name", GAMES)
def test_vector_game_continues_exactly_from_its_state_dict(name):
    # what a resumed training run relies on: the games, the step counter and the generator
    vec = social_dilemmas.make_vec(name, num_envs=5, max_steps=4)
    vec.reset(seed=3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):  # past an episode end
        vec.step(torch_actions(vec.game, gen, 5))
    saved = vec.state_dict()
    copy = social_dilemmas.make_vec(name, num_envs=5, max_steps=4)
    copy.load_state_dict(saved)
    for _ in range(9):
        actions = torch_actions(vec.game, gen, 5)
        for x, y in zip(vec.step(actions)[:4], copy.step(actions)[:4]):
            assert torch.equal(x, y)
    with pytest.raises(ValueError, match="the saved games are 5 x"):
        social_dilemmas.make_vec(name, num_envs=4, max_steps=4).load_state_dict(saved)
