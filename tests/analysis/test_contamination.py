"""Memory contamination on models whose dependence on the perturbed frame is known."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.analysis import contamination as ct
from popgym_arcade.analysis.records import AnalysisError

H = W = 8
T = 8
K = 2
# Second Q column: a threshold per step; the first column is the remembered brightness of frame K.
THRESHOLDS = np.array([250, 250, 150, 150, 250, 150, 250, 250], np.float32)


def frames(means):
    return jnp.stack([jnp.full((H, W, 3), m, jnp.float32) for m in means])


def remembers_frame(k, thresholds=THRESHOLDS):
    """out[t] = [mean pixel(o_k) if t >= k else 0, thresholds[t]]: memory holds frame k only."""

    def apply(obs, start, prev_action):
        del start, prev_action
        remembered = jnp.where(jnp.arange(obs.shape[0]) >= k, jnp.mean(obs[k]), 0.0)
        return jnp.stack([remembered, jnp.asarray(thresholds[: obs.shape[0]])], axis=-1)

    return apply


def ignores_frame(k):
    """out[t] = [sum_{s <= t, s != k} mean pixel(o_s), 100]: a running memory that skips frame k."""

    def apply(obs, start, prev_action):
        del start, prev_action
        x = jnp.mean(obs, axis=(1, 2, 3)) * (jnp.arange(obs.shape[0]) != k)
        return jnp.stack([jnp.cumsum(x), jnp.full(obs.shape[0], 100.0)], axis=-1)

    return apply


def inputs(means=(10, 20, 100, 40, 50, 60, 70, 80)):
    return frames(means), np.eye(1, T, 0, dtype=bool)[0], np.zeros(T, np.int32)


def test_noise_only_touches_its_frame_and_is_clipped():
    obs, _, _ = inputs()
    noisy = ct.add_frame_noise(obs, K, 1000.0, jax.random.key(0))
    assert np.array_equal(np.delete(np.asarray(noisy), K, 0), np.delete(np.asarray(obs), K, 0))
    assert float(noisy[K].min()) == 0.0 and float(noisy[K].max()) == 255.0
    assert np.array_equal(ct.add_frame_noise(obs, K, 0.0, jax.random.key(0)), obs)
    with pytest.raises(AnalysisError, match="sigma"):
        ct.add_frame_noise(obs, K, -1.0, jax.random.key(0))
    with pytest.raises(AnalysisError, match="outside"):
        ct.add_frame_noise(obs, T, 1.0, jax.random.key(0))


def test_shuffle_permutes_only_the_first_k_frames():
    obs, _, _ = inputs()
    for seed in range(2):
        shuffled, perm = ct.shuffle_first_frames(obs, 2, jax.random.key(seed))
        assert perm.tolist() == [1, 0]  # the only non-identity permutation of two frames
        np.testing.assert_array_equal(shuffled[:2], obs[::-1][-2:])
        np.testing.assert_array_equal(shuffled[2:], obs[2:])
    shuffled, perm = ct.shuffle_first_frames(obs, 5, jax.random.key(3))
    assert sorted(perm.tolist()) == list(range(5)) and perm.tolist() != list(range(5))
    np.testing.assert_array_equal(shuffled[:5], np.asarray(obs)[perm])
    with pytest.raises(AnalysisError, match="k must lie"):
        ct.shuffle_first_frames(obs, 1, jax.random.key(0))


def test_model_that_ignores_the_frame_does_not_change():
    obs, start, prev = inputs()
    result = ct.noise_contamination(
        ignores_frame(K), "q", obs, start, prev, step=K, sigma=80.0, key=jax.random.key(0)
    )
    assert (
        np.all(result.advantage_l2 == 0)
        and np.all(result.advantage_max_abs == 0)
        and not result.flipped.any()
    )
    summary = ct.summarise_contamination(result)
    assert (summary.flip_horizon, summary.flip_fraction, summary.mean_change) == (-1, 0.0, 0.0)
    assert summary.n_later_steps == T - 1 - K
    # ... while noise on another frame does reach it.
    other = ct.noise_contamination(
        ignores_frame(K), "q", obs, start, prev, step=1, sigma=80.0, key=jax.random.key(0)
    )
    assert np.all(other.advantage_l2[1:] > 0) and other.advantage_l2[0] == 0


def test_model_that_remembers_the_frame_flips_at_known_steps():
    obs, start, prev = inputs()
    perturbed = obs.at[K].set(200.0)
    result = ct.compare_replays(
        remembers_frame(K), "q", obs, perturbed, start, prev, first_perturbed=K, last_perturbed=K
    )
    # Clean [100, c_t] picks action 1; perturbed [200, c_t] picks 0 where c_t = 150: t = 2, 3, 5.
    assert np.flatnonzero(result.flipped).tolist() == [2, 3, 5]
    # dA = ([200 - c, c - 200] - [100 - c, c - 100]) / 2 = [50, -50] from K on: L2 50 sqrt 2, max 50.
    np.testing.assert_allclose(result.advantage_l2, [0, 0] + [50 * math.sqrt(2)] * 6, rtol=1e-6)
    np.testing.assert_allclose(result.advantage_max_abs, [0, 0] + [50] * 6, rtol=1e-6)
    assert np.all(np.isnan(result.kl))
    summary = ct.summarise_contamination(result)
    assert summary.flip_horizon == 3  # t = 5 is 3 steps after the perturbed step 2
    assert summary.last_flipped_step == 5
    assert summary.flip_fraction == pytest.approx(2 / 5)  # later steps 3..7: flips at 3 and 5
    assert summary.mean_change == pytest.approx(50 * math.sqrt(2))
    assert summary.flipped_at_perturbation and summary.change_at_perturbation == pytest.approx(
        50 * math.sqrt(2)
    )

    noisy = ct.noise_contamination(
        remembers_frame(K), "q", obs, start, prev, step=K, sigma=30.0, key=jax.random.key(4)
    )
    shift = float(jnp.mean(ct.add_frame_noise(obs, K, 30.0, jax.random.key(4))[K]) - 100.0)
    np.testing.assert_allclose(noisy.advantage_l2[K:], abs(shift) / math.sqrt(2), rtol=1e-4)
    assert np.all(noisy.advantage_l2[:K] == 0)


def test_shuffle_contamination_offsets():
    obs, start, prev = inputs()
    result = ct.shuffle_contamination(remembers_frame(0), "q", obs, start, prev, k=3, key=jax.random.key(1))
    assert result.perturbation == "shuffle" and result.last_perturbed == 2
    moved = result.first_perturbed
    assert 0 <= moved <= 1
    # The model remembers frame 0; after shuffling frame 0 holds o_p(0) (mean 10, 20 or 100).
    assert result.offsets.tolist() == list(range(-2, T - 2))
    change = result.advantage_l2
    assert np.allclose(change, change[0])  # one remembered value changes every step equally


def test_policy_kl_and_greedy_flip():
    result = ct.compare_outputs(
        "policy", [[0.6, 0.4], [0.5, 0.5]], [[0.6, 0.4], [0.25, 0.75]], first_perturbed=1, last_perturbed=1
    )
    assert result.kl[0] == 0.0
    assert result.kl[1] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert result.flipped.tolist() == [False, True]
    np.testing.assert_allclose(result.change, result.kl)
    assert ct.policy_kl(np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]]))[0] == pytest.approx(math.log(2))

    def logits(obs, start, prev_action):
        return jnp.ones((obs.shape[0], 2)) * 3.0

    obs, start, prev = inputs()
    with pytest.raises(AnalysisError, match="probabilities"):
        ct.noise_contamination(logits, "policy", obs, start, prev, step=1, sigma=1.0, key=jax.random.key(0))


def two_replays():
    a = ct.compare_outputs(
        "q", np.zeros((4, 2)), [[0, 0], [0, 2], [0, 4], [0, 0]], first_perturbed=1, last_perturbed=1
    )
    b = ct.compare_outputs(
        "q", np.zeros((3, 2)), [[0, 0], [0, 0], [0, 2]], first_perturbed=0, last_perturbed=0
    )
    return a, b


def test_curves_by_offset_and_csv(tmp_path):
    a, b = two_replays()
    # a: ||dA|| = [0, sqrt2, 2 sqrt2, 0], offsets -1..2; b: [0, 0, sqrt2], offsets 0..2.
    curve = ct.change_by_offset([a, b])
    assert curve.offsets.tolist() == [0, 1, 2] and curve.count.tolist() == [2, 2, 2]
    s2 = math.sqrt(2)
    np.testing.assert_allclose(curve.mean_change, [s2 / 2, s2, s2 / 2])
    np.testing.assert_allclose(curve.flip_rate, [0.5, 0.5, 0.5])
    assert np.all(curve.low <= curve.mean_change) and np.all(curve.high >= curve.mean_change)
    assert ct.change_by_offset([a, b], max_offset=1).offsets.tolist() == [0, 1]

    path = ct.contamination_to_csv(
        [ct.summarise_contamination(a), ct.summarise_contamination(b)],
        tmp_path / "c.csv",
        labels=[{"model": "GRU"}, {"model": "LRU"}],
    )
    header = path.read_text().splitlines()[0]
    assert header.startswith("model,perturbation,kind,last_perturbed,flip_horizon,last_flipped_step")
    with pytest.raises(AnalysisError):
        ct.compare_outputs("q", np.zeros((3, 2)), np.zeros((4, 2)), first_perturbed=0, last_perturbed=0)


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    a, b = two_replays()
    obs, start, prev = inputs()
    result = ct.noise_contamination(
        remembers_frame(K), "q", obs, start, prev, step=K, sigma=60.0, key=jax.random.key(0)
    )
    curves = ct.plot_contamination_curves({"GRU": [result, a], "LRU": [b]}, tmp_path / "curves.png")
    assert curves.read_bytes()[:4] == b"\x89PNG"
    example = ct.plot_contamination_example(
        obs, ct.add_frame_noise(obs, K, 60.0, jax.random.key(0)), result, tmp_path / "ex.png"
    )
    assert example.read_bytes()[:4] == b"\x89PNG"
