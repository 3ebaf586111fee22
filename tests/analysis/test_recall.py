"""Recall density: thirds by each trajectory's own length, checked against a known memory."""

from __future__ import annotations

import numpy as np
import pytest

from popgym_arcade.analysis import recall as rc
from popgym_arcade.analysis.records import AnalysisError
from tests.analysis.linear_models import make_linear_q, mean_pixel_weights

H = W = 8


def test_thirds_by_relative_position():
    assert rc.third_of_frames(1).tolist() == [2]  # tau = 1
    assert rc.third_of_frames(2).tolist() == [0, 2]
    assert rc.third_of_frames(3).tolist() == [0, 1, 2]
    assert rc.third_of_frames(4).tolist() == [0, 1, 2, 2]  # tau = 0, 1/3, 2/3, 1: edges go up
    assert rc.third_of_frames(5).tolist() == [0, 0, 1, 2, 2]  # tau = 0, .25, .5, .75, 1
    assert rc.third_of_frames(7).tolist() == [0, 0, 1, 1, 2, 2, 2]  # tau = k/6
    np.testing.assert_allclose(rc.relative_positions(5), [0, 0.25, 0.5, 0.75, 1])
    for length in range(1, 40):
        tau = rc.relative_positions(length)
        expected = np.where(tau < 1 / 3 - 1e-12, 0, np.where(tau < 2 / 3 - 1e-12, 1, 2))
        assert rc.third_of_frames(length).tolist() == expected.tolist()
    with pytest.raises(AnalysisError):
        rc.third_of_frames(0)


def test_shares_from_masses():
    np.testing.assert_allclose(rc.recall_shares([1, 1, 2, 0, 4]), [2 / 8, 2 / 8, 4 / 8])
    assert np.all(np.isnan(rc.recall_shares([0.0, 0.0, 0.0])))
    with pytest.raises(AnalysisError):
        rc.recall_shares([-1.0, 2.0])


def linear_trajectory(length, lam=0.5):
    """out[n, a] = c_a * sum_t lam^(n-t) * mean pixel(o_t): frame mass m_t is proportional to lam^(2(n-t))."""
    apply = make_linear_q(mean_pixel_weights(H, W), [1.0, -1.0, 2.0, 0.5, 0.0], lam)
    obs = np.random.default_rng(length).uniform(0.0, 255.0, (length, H, W, 3)).astype(np.float32)
    start = np.zeros(length, bool)
    start[0] = True
    return apply, obs, start, np.zeros(length, np.int32)


def test_trajectory_recall_of_a_known_memory():
    # L = 5, lam = 1/2: m_t ~ 4^-(4-t) = [1, 4, 16, 64, 256] / 256; thirds [0, 0, 1, 2, 2]
    # -> first (1 + 4) / 341, middle 16 / 341, last (64 + 256) / 341.
    apply, obs, start, prev = linear_trajectory(5)
    np.testing.assert_allclose(
        rc.trajectory_recall(apply, "q", obs, start, prev), [5 / 341, 16 / 341, 320 / 341], rtol=1e-5
    )
    # Padding for compilation changes nothing: the statistic still uses L = 5.
    padded = rc.trajectory_recall(apply, "q", obs, start, prev, pad_to=9)
    np.testing.assert_allclose(padded, [5 / 341, 16 / 341, 320 / 341], rtol=1e-5)
    # L = 7: m_t ~ 4^-(6-t); thirds [0, 0, 1, 1, 2, 2, 2] -> (1 + 4, 16 + 64, 256 + 1024 + 4096) / 5461.
    apply, obs, start, prev = linear_trajectory(7)
    np.testing.assert_allclose(
        rc.trajectory_recall(apply, "q", obs, start, prev), [5 / 5461, 80 / 5461, 5376 / 5461], rtol=1e-5
    )
    # A memory that keeps everything (lam = 1) spreads mass by frame count: L = 5 -> 2/5, 1/5, 2/5.
    apply, obs, start, prev = linear_trajectory(5, lam=1.0)
    np.testing.assert_allclose(rc.trajectory_recall(apply, "q", obs, start, prev), [0.4, 0.2, 0.4], rtol=1e-5)
    # One frame: all mass in the last third.
    apply, obs, start, prev = linear_trajectory(1)
    np.testing.assert_allclose(rc.trajectory_recall(apply, "q", obs, start, prev), [0, 0, 1])
    with pytest.raises(AnalysisError, match="pad_to"):
        rc.trajectory_recall(apply, "q", obs, start, prev, pad_to=0)


def test_nested_averages_and_exclusions():
    samples = [
        rc.RecallSample("CartPoleEasy", "mdp", "GRU", 0, (1.0, 0.0, 0.0)),
        rc.RecallSample("CartPoleEasy", "mdp", "GRU", 0, (0.0, 0.0, 1.0)),
        rc.RecallSample("CartPoleEasy", "mdp", "GRU", 0, (np.nan, np.nan, np.nan)),  # zero saliency
        rc.RecallSample("CartPoleEasy", "mdp", "GRU", 1, (0.0, 0.0, 1.0)),
        rc.RecallSample("CartPoleHard", "mdp", "LRU", 0, (0.0, 1.0, 0.0)),
        rc.RecallSample("CartPoleEasy", "pomdp", "GRU", 0, (0.2, 0.3, 0.5)),
    ]
    # GRU on CartPoleEasy: seed 0 -> (.5, 0, .5), seed 1 -> (0, 0, 1), seeds -> (.25, 0, .75);
    # LRU on CartPoleHard -> (0, 1, 0); game CartPole MDP = mean of the two = (.125, .5, .375).
    summary = {s.group: s for s in rc.summarise_recall(samples)}
    mdp = summary[("CartPole", "mdp")]
    np.testing.assert_allclose(mdp.shares, [0.125, 0.5, 0.375])
    assert (mdp.n_trajectories, mdp.n_excluded) == (5, 1)
    np.testing.assert_allclose(summary[("CartPole", "pomdp")].shares, [0.2, 0.3, 0.5])
    by_model = {s.group: s for s in rc.summarise_recall(samples, by=("model",))}
    np.testing.assert_allclose(by_model[("LRU",)].shares, [0, 1, 0])
    with pytest.raises(AnalysisError):
        rc.summarise_recall([])
    with pytest.raises(AnalysisError):
        rc.summarise_recall(samples, by=("colour",))


def summaries_of_two_games():
    samples = [
        rc.RecallSample(env, twin, "GRU", 0, shares)
        for env, twin, shares in (
            ("CartPoleEasy", "mdp", (0.1, 0.3, 0.6)),
            ("CartPoleEasy", "pomdp", (0.3, 0.3, 0.4)),
            ("NavigatorEasy", "mdp", (0.7, 0.1, 0.2)),
        )
    ]
    return rc.summarise_recall(samples)


def test_csv(tmp_path):
    path = rc.recall_to_csv(summaries_of_two_games(), tmp_path / "recall.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "game,twin,first,middle,last,n_trajectories,n_excluded"
    assert lines[1] == "CartPole,mdp,0.1,0.3,0.6,1,0"


def test_figure(tmp_path):
    pytest.importorskip("matplotlib")
    figure = rc.plot_recall_density(summaries_of_two_games(), tmp_path / "recall.png")
    assert figure.read_bytes()[:4] == b"\x89PNG"
