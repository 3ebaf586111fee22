"""Q(lambda) returns and GAE against hand-computed cases with terminated and truncated steps."""

import jax.numpy as jnp
import numpy as np
import pytest

from popgym_arcade.agents.returns import bootstrap_values, gae, lambda_returns

pytestmark = pytest.mark.xdist_group("agents-returns")

# Four steps: step 1 terminates, step 2 is truncated (final frame worth 25), step 3 runs on.
REWARDS = [1.0, 2.0, 3.0, 4.0]
VALUE_OF_NEXT_OBS = [10.0, 20.0, 30.0, 40.0]  # 20 and 30 are next episodes' first frames
VALUE_OF_FINAL_OBS = [0.0, 0.0, 25.0, 0.0]
TERMINATED = [False, True, False, False]
TRUNCATED = [False, False, True, False]
GAMMA, LAM = 0.5, 0.5


def next_values_and_continues():
    next_values = bootstrap_values(
        jnp.array(VALUE_OF_NEXT_OBS),
        jnp.array(VALUE_OF_FINAL_OBS),
        jnp.array(TERMINATED),
        jnp.array(TRUNCATED),
    )
    continues = 1.0 - (jnp.array(TERMINATED) | jnp.array(TRUNCATED)).astype(jnp.float32)
    return next_values, continues


def test_bootstrap_values_zero_on_termination_final_frame_on_truncation():
    next_values, continues = next_values_and_continues()
    np.testing.assert_allclose(next_values, [10.0, 0.0, 25.0, 40.0])
    np.testing.assert_allclose(continues, [1.0, 0.0, 0.0, 1.0])


def test_lambda_returns_hand_computed():
    next_values, continues = next_values_and_continues()
    returns = lambda_returns(jnp.array(REWARDS), next_values, continues, GAMMA, LAM)
    # G3 = 4 + .5 * 40                      = 24   (last step bootstraps fully)
    # G2 = 3 + .5 * 25                      = 15.5 (truncated: final frame, not the next episode)
    # G1 = 2 + .5 * 0                       = 2    (terminated)
    # G0 = 1 + .5 * ((1 - .5) * 10 + .5 * G1) = 1 + .5 * (5 + 1) = 4
    np.testing.assert_allclose(returns, [4.0, 2.0, 15.5, 24.0])


def test_lambda_returns_limits():
    rewards = jnp.array([1.0, 1.0, 1.0])
    next_values = jnp.array([5.0, 6.0, 7.0])
    continues = jnp.ones(3)
    np.testing.assert_allclose(
        lambda_returns(rewards, next_values, continues, 0.9, 0.0), 1.0 + 0.9 * next_values
    )
    monte_carlo = [1 + 0.9 + 0.81 + 0.729 * 7.0, 1 + 0.9 + 0.81 * 7.0, 1 + 0.9 * 7.0]
    np.testing.assert_allclose(
        lambda_returns(rewards, next_values, continues, 0.9, 1.0), monte_carlo, rtol=1e-6
    )


def test_lambda_returns_batched_over_envs():
    next_values, continues = next_values_and_continues()
    single = lambda_returns(jnp.array(REWARDS), next_values, continues, GAMMA, LAM)
    batched = lambda_returns(
        jnp.stack([jnp.array(REWARDS)] * 3, 1),
        jnp.stack([next_values] * 3, 1),
        jnp.stack([continues] * 3, 1),
        GAMMA,
        LAM,
    )
    np.testing.assert_allclose(batched, np.stack([single] * 3, 1))


def test_gae_hand_computed():
    next_values, continues = next_values_and_continues()
    values = jnp.array([1.0, 1.0, 3.0, 4.0])
    advantages, targets = gae(jnp.array(REWARDS), values, next_values, continues, GAMMA, LAM)
    # deltas: [1 + 5 - 1, 2 + 0 - 1, 3 + 12.5 - 3, 4 + 20 - 4] = [5, 1, 12.5, 20]
    # A3 = 20; A2 = 12.5 (episode boundary after step 2); A1 = 1; A0 = 5 + .25 * A1 = 5.25
    np.testing.assert_allclose(advantages, [5.25, 1.0, 12.5, 20.0])
    np.testing.assert_allclose(targets, [6.25, 2.0, 15.5, 24.0])


def test_gae_with_lambda_one_equals_returns_minus_values():
    rewards, values = jnp.array([1.0, 0.0, 2.0]), jnp.array([0.5, 0.2, 0.1])
    next_values, continues = jnp.array([0.2, 0.1, 3.0]), jnp.ones(3)
    advantages, targets = gae(rewards, values, next_values, continues, 0.9, 1.0)
    returns = lambda_returns(rewards, next_values, continues, 0.9, 1.0)
    np.testing.assert_allclose(targets, returns, rtol=1e-6)
    np.testing.assert_allclose(advantages, returns - values, rtol=1e-6)
