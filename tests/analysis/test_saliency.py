"""Saliency through memory against the analytic gradients of a linear memory."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.analysis import saliency as sal
from popgym_arcade.analysis.records import AnalysisError
from tests.analysis.linear_models import linear_memory, make_linear_policy, make_linear_q

H, W, C, T = 8, 8, 3, 6
LAM = 0.5
ACTIONS = np.array([1.0, -2.0, 0.5, 0.0, 3.0], np.float32)  # sum c_a^2 = 14.25


def pixel_weights():
    return np.random.default_rng(1).normal(size=(H, W, C)).astype(np.float32)


def sequence(length=T, starts=(0,)):
    obs = np.random.default_rng(2).uniform(0.0, 255.0, (length, H, W, C)).astype(np.float32)
    start = np.zeros(length, bool)
    start[list(starts)] = True
    return obs, start, np.arange(length, dtype=np.int32) % 5


def expected_q_maps(weights, n, length=T, reset_after=None):
    """S_t = sum_a c_a^2 lam^(2(n-t)) sum_c W^2 for t <= n (0 before a reset in (t, n], 0 after n)."""
    per_pixel = np.sum(weights**2, axis=-1)
    maps = np.zeros((length, H, W))
    for t in range(n + 1):
        if reset_after is not None and t < reset_after <= n:
            continue
        maps[t] = np.sum(ACTIONS**2) * LAM ** (2 * (n - t)) * per_pixel
    return maps


def test_q_saliency_matches_the_analytic_map():
    weights = pixel_weights()
    apply = make_linear_q(weights, ACTIONS, LAM)
    obs, start, prev_action = sequence()
    maps = np.asarray(sal.saliency_maps(apply, "q", obs, start, prev_action))
    assert maps.shape == (T, H, W)
    np.testing.assert_allclose(maps, expected_q_maps(weights, T - 1), rtol=1e-5)

    middle = np.asarray(sal.saliency_maps(apply, "q", obs, start, prev_action, target_step=2))
    np.testing.assert_allclose(middle, expected_q_maps(weights, 2), rtol=1e-5)
    assert np.all(middle[3:] == 0)
    negative = np.asarray(sal.saliency_maps(apply, "q", obs, start, prev_action, target_step=-4))
    np.testing.assert_allclose(negative, middle)


def test_memory_reset_cuts_the_gradient():
    weights = pixel_weights()
    apply = make_linear_q(weights, ACTIONS, LAM)
    obs, start, prev_action = sequence(starts=(0, 3))
    maps = np.asarray(sal.saliency_maps(apply, "q", obs, start, prev_action))
    np.testing.assert_allclose(maps, expected_q_maps(weights, T - 1, reset_after=3), rtol=1e-5)
    assert np.all(maps[:3] == 0)


def test_policy_saliency_uses_probabilities():
    weights = pixel_weights() / (H * W * C * 64.0)  # h_n of order 1: the softmax is not saturated
    apply = make_linear_policy(weights, ACTIONS, LAM)
    obs, start, prev_action = sequence()
    maps = np.asarray(sal.saliency_maps(apply, "policy", obs, start, prev_action))
    # pi_a = softmax(c h_n): d pi_a / d h_n = pi_a (c_a - sum_b pi_b c_b).
    h_n = float(linear_memory(jnp.asarray(obs), jnp.asarray(start), jnp.asarray(weights), LAM)[-1])
    pi = np.exp(ACTIONS * h_n) / np.exp(ACTIONS * h_n).sum()
    dpi = pi * (ACTIONS - np.sum(pi * ACTIONS))
    per_pixel = np.sum(weights**2, axis=-1)
    expected = np.stack([np.sum(dpi**2) * LAM ** (2 * (T - 1 - t)) * per_pixel for t in range(T)])
    np.testing.assert_allclose(maps, expected, rtol=1e-4)

    logits = make_linear_q(weights, ACTIONS, LAM)
    with pytest.raises(AnalysisError, match="probabilities"):
        sal.saliency_maps(logits, "policy", obs, start, prev_action)


def test_frame_saliency_and_bad_inputs():
    maps = np.ones((3, 2, 2))
    np.testing.assert_allclose(sal.frame_saliency(maps), [4, 4, 4])
    apply = make_linear_q(pixel_weights(), ACTIONS, LAM)
    obs, start, prev_action = sequence()
    with pytest.raises(AnalysisError, match="kind"):
        sal.saliency_maps(apply, "value", obs, start, prev_action)
    with pytest.raises(AnalysisError, match="target_step 6 is outside"):
        sal.saliency_maps(apply, "q", obs, start, prev_action, target_step=T)
    with pytest.raises(AnalysisError, match=r"\[T, H, W, C\]"):
        sal.saliency_maps(apply, "q", obs[0], start, prev_action)
    with pytest.raises(AnalysisError, match="start and prev_action"):
        sal.saliency_maps(apply, "q", obs, start[:-1], prev_action)
    with pytest.raises(AnalysisError):
        sal.frame_saliency(np.ones(3))
    assert sal.default_frame_steps(9, 4) == [0, 3, 6, 9]
    assert sal.default_frame_steps(2, 8) == [0, 1, 2]


def test_saliency_figure(tmp_path):
    pytest.importorskip("matplotlib")
    apply = make_linear_q(pixel_weights(), ACTIONS, LAM)
    obs, start, prev_action = sequence()
    maps = sal.saliency_maps(apply, "q", obs, start, prev_action)
    short = sal.saliency_maps(apply, "q", obs, start, prev_action, target_step=3)
    path = sal.plot_saliency(
        tmp_path / "saliency.png", [obs, obs], [maps, short], target_steps=[T - 1, 3], title="linear memory"
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(AnalysisError):
        sal.plot_saliency(tmp_path / "x.png", [obs], [maps, maps])


class UnhashableModel:
    """A callable holding arrays and defining ``__eq__`` (so unhashable), like an equinox module."""

    __hash__ = None

    def __init__(self, weights):
        self.apply = make_linear_q(weights, ACTIONS, LAM)

    def __eq__(self, other):
        return self is other

    def __call__(self, obs, start, prev_action):
        return self.apply(obs, start, prev_action)


def test_unhashable_apply_is_compiled_once_and_reused():
    weights = pixel_weights()
    model = UnhashableModel(weights)
    assert sal.saliency_function(model) is sal.saliency_function(model)
    assert sal.saliency_function(model) is not sal.saliency_function(UnhashableModel(weights))
    obs, start, prev_action = sequence()
    maps = np.asarray(sal.saliency_maps(model, "q", obs, start, prev_action))
    np.testing.assert_allclose(maps, expected_q_maps(weights, T - 1), rtol=1e-5)
