"""From run folders to trajectories, sequence functions and per-seed analyses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import jax
import numpy as np
import pytest

from popgym_arcade.analysis import introspect as it
from popgym_arcade.analysis.recall import trajectory_recall
from popgym_arcade.analysis.records import AnalysisError
from popgym_arcade.record import RandomPolicy
from tests.analysis.test_study import tiny_study

pytestmark = pytest.mark.xdist_group("study")

BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"


@pytest.fixture(scope="session")
def gru_pomdp(tmp_path_factory):
    return it.run_info(tiny_study(tmp_path_factory) / "runs" / "pqn-GRU-CartPoleEasy-pomdp")


# ---------------------------------------------------------------------------------------------
# Splitting a recording into episodes (no JAX)


def recording(length, done_at):
    frames = np.arange(length, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    dones = np.zeros(length, bool)
    dones[list(done_at)] = True
    return frames, np.arange(length) % 5, np.arange(length, dtype=np.float32), dones


def test_episodes_end_at_their_done_or_at_max_steps():
    frames, actions, rewards, dones = recording(12, done_at=(2, 7))
    episodes = it.split_episodes(frames, actions, rewards, dones, max_steps=4)
    assert [(e.obs[0, 0, 0, 0], e.length, e.finished) for e in episodes] == [
        (0, 3, True),
        (3, 4, False),
        (8, 4, False),
    ]
    second = episodes[1]
    np.testing.assert_array_equal(second.actions, [3, 4, 0, 1])
    np.testing.assert_array_equal(second.prev_action, [0, 3, 4, 0])
    np.testing.assert_array_equal(second.start, [True, False, False, False])
    np.testing.assert_array_equal(second.rewards, [3, 4, 5, 6])
    assert second.episode_return == 18.0 and second.obs.dtype == np.uint8


def test_an_unfinished_last_episode_shorter_than_max_steps_is_dropped():
    frames, actions, rewards, dones = recording(12, done_at=(2, 7))
    episodes = it.split_episodes(frames, actions, rewards, dones, max_steps=5)
    assert [(e.length, e.finished) for e in episodes] == [(3, True), (5, True)]
    frames, actions, rewards, dones = recording(6, done_at=(5,))
    assert [(e.length, e.finished) for e in it.split_episodes(frames, actions, rewards, dones, 6)] == [
        (6, True)
    ]


def test_padding_appends_fresh_episode_starts():
    frames, actions, rewards, dones = recording(5, done_at=(4,))
    (episode,) = it.split_episodes(frames, actions, rewards, dones, max_steps=8)
    obs, start, prev_action = it.padded_inputs(episode, 8)
    assert obs.shape == (8, 2, 2, 3) and obs.dtype == np.float32
    np.testing.assert_array_equal(start, [True] + [False] * 4 + [True] * 3)
    np.testing.assert_array_equal(prev_action[5:], 0)
    assert np.all(obs[5:] == 0) and np.all(obs[:5, 0, 0, 0] == np.arange(5))
    with pytest.raises(AnalysisError, match="cannot pad"):
        it.padded_inputs(episode, 4)


@dataclass(frozen=True)
class RandomAgent(RandomPolicy):
    env_id: str = "CartPoleEasy"
    partial: bool = True
    obs_size: int = 128


def test_long_episodes_take_further_rollouts():
    # With max_steps 2, a 6-step rollout cut at 2 frames usually holds one episode (CartPole lasts
    # longer than 6 steps): more rollouts are needed until there are 3.
    episodes = it.agent_trajectories(RandomAgent(), episodes=3, max_steps=2, seed=0)
    assert len(episodes) == 3
    for episode in episodes:
        assert episode.obs.shape == (2, 128, 128, 3) and episode.start.tolist() == [True, False]
    # The POMDP twin's frames: at t = 0 they equal the MDP frame, later the cart is hidden.
    assert not np.array_equal(episodes[0].obs[0], episodes[0].obs[1])


# ---------------------------------------------------------------------------------------------
# Trained agents


@pytest.fixture(scope="module")
def seed_agents(gru_pomdp):
    return it.load_agents(gru_pomdp)


@pytest.fixture(scope="module")
def episodes(seed_agents):
    return it.agent_trajectories(seed_agents[0].policy, episodes=2, max_steps=8, seed=3)


def test_agents_share_parameters_and_keep_one_apply_each(gru_pomdp, seed_agents):
    assert [a.seed for a in seed_agents] == [0, 1] and {a.kind for a in seed_agents} == {"q"}
    assert seed_agents[0].apply is seed_agents[0].apply  # the same object every time (compile cache key)
    assert seed_agents[0].policy.algorithm is seed_agents[1].policy.algorithm
    assert gru_pomdp.partial and gru_pomdp.memory == "GRU" and gru_pomdp.game == "CartPole"


def test_trajectories_are_the_agents_own_greedy_episodes(seed_agents, episodes):
    agent = seed_agents[0]
    assert len(episodes) == 2
    for episode in episodes:
        assert 1 <= episode.length <= 8 and episode.obs.shape[1:] == (128, 128, 3)
        np.testing.assert_array_equal(episode.prev_action, np.concatenate([[0], episode.actions[:-1]]))
        # Replaying the episode through the sequence function gives back the greedy actions.
        out = np.asarray(agent.apply(episode.obs.astype(np.float32), episode.start, episode.prev_action))
        np.testing.assert_array_equal(out.argmax(axis=-1), episode.actions)


def test_padded_recall_and_saliency_equal_the_unpadded_ones(seed_agents, episodes):
    agent, episode = seed_agents[0], episodes[0]
    obs = episode.obs.astype(np.float32)
    direct = trajectory_recall(agent.apply, "q", obs, episode.start, episode.prev_action)
    padded = it.episode_recall(agent, episode, pad_to=12)
    np.testing.assert_allclose(padded.shares, direct, rtol=1e-4, atol=1e-7)
    assert (padded.env, padded.twin, padded.model, padded.seed) == ("CartPoleEasy", "pomdp", "GRU", 0)
    maps = it.episode_saliency(agent, episode, pad_to=12)
    assert maps.shape == (episode.length, 128, 128) and np.all(maps >= 0) and maps[-1].sum() > 0


def test_a_run_compiles_once_per_seed_and_program_and_replays_each_episode(gru_pomdp):
    settings = it.IntrospectionSettings(episodes=2, max_steps=8, noise_step=2, shuffle_k=3, sigma=128.0)
    first = it.introspect_run(gru_pomdp, settings)  # also compiles the small eager operations
    compiles: list[str] = []

    def listen(name, duration, **kwargs):
        if name == BACKEND_COMPILE:
            compiles.append(name)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        second = it.introspect_run(gru_pomdp, dataclasses.replace(settings, episodes=3))
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    # Per seed: one rollout, one saliency function (saliency and recall), one replay; whatever the
    # number of episodes.
    assert len(compiles) == 2 * 3
    assert len(second.recall) == 2 * 3 and len(first.recall) == 2 * 2
    for trajectory in first.recall:
        assert sum(trajectory.sample.shares) == pytest.approx(1.0) and trajectory.length <= 8
    assert first.saliency is not None and first.saliency.seed == 0
    assert first.saliency.maps.shape == (len(first.saliency.frames), 128, 128)

    assert sum(first.skipped.values()) + len(first.contamination) == 2 * 2 * 2  # seeds x episodes x kinds
    for replay in first.contamination:
        r = replay.result
        assert r.last_perturbed == 2 and replay.summary.last_perturbed == 2
        assert replay.labels()["length"] == len(r.flipped) <= 8
        # Nothing changes before the first perturbed frame (a causal model).
        assert np.all(r.advantage_l2[: r.first_perturbed] == 0)
    assert {e.replay.result.perturbation for e in first.examples} == {"noise", "shuffle"}
    noise = next(e for e in first.examples if e.replay.result.perturbation == "noise")
    changed = np.any(noise.clean.astype(np.float32) != noise.perturbed, axis=(1, 2, 3))
    assert changed.tolist() == [t == 2 for t in range(len(changed))]


def test_bad_settings_are_refused(gru_pomdp):
    with pytest.raises(AnalysisError, match="episodes and max_steps"):
        it.IntrospectionSettings(episodes=0)
    with pytest.raises(AnalysisError, match="noise step"):
        it.introspect_run(gru_pomdp, it.IntrospectionSettings(max_steps=4, noise_step=4, shuffle_k=2))
    with pytest.raises(AnalysisError, match="unknown analyses"):
        it.introspect_run(gru_pomdp, it.IntrospectionSettings(), ("attention",))
    navigator = dataclasses.replace(gru_pomdp, env="NavigatorEasy")
    with pytest.raises(AnalysisError, match="one game"):
        it.require_one_game([gru_pomdp, navigator], "saliency")
