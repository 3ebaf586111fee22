"""One harness for every registered id: smoke tests in both twins and sizes, and invariants.

Invariants checked on long random rollouts (16 envs x 400 steps, both twins stepped from the
same states): the twins share state and reward; frames at t = 0 are equal in both twins; the
POMDP hides something after t = 0; every finished episode's return is within the game's
``return_range``; a key determines the rollout; different keys give different initial states.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import popgym_arcade
from popgym_arcade.registration import REGISTERED_ENVIRONMENTS
from tests.environments.harness import rollout_records, trees_equal, twin_rollout, twins

IDS = list(REGISTERED_ENVIRONMENTS)
KEY = jax.random.key(0)


def _grouped(*values):
    """A test parameter pinned to its id's xdist group, so one worker compiles each id."""
    return pytest.param(*values, marks=pytest.mark.xdist_group(name=values[0]))


SMOKE_CASES = [_grouped(i, partial, 128) for i in IDS for partial in (False, True)]
SMOKE_CASES += [_grouped(i, partial, 256) for i in IDS if i.endswith("Easy") for partial in (False, True)]


@pytest.mark.parametrize("env_id, partial_obs, obs_size", SMOKE_CASES)
def test_make_reset_step(env_id, partial_obs, obs_size):
    env, params = popgym_arcade.make(env_id, partial_obs=partial_obs, obs_size=obs_size)
    assert env.partial_obs == partial_obs and env.obs_size == obs_size
    assert env.num_actions == 5 and env.action_space(params).n == 5
    space = env.observation_space(params)
    assert space.shape == (obs_size, obs_size, 3)
    assert isinstance(env.name, str) and env.name and env.__doc__

    traces = []

    @jax.jit
    def step(key, state, action):
        traces.append(None)
        return env.step(key, state, action, params)

    obs, state = env.reset(KEY, params)
    assert obs.shape == (obs_size, obs_size, 3) and obs.dtype == jnp.uint8
    assert bool(space.contains(obs))
    obs, next_state, reward, terminated, truncated, info = step(KEY, state, jnp.int32(4))
    assert bool(space.contains(obs))
    assert reward.shape == () and reward.dtype == jnp.float32
    assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert {"terminated", "truncated", "discount", "final_state"} <= set(info)
    # Same structure and dtypes out of reset and step: a second call must not retrace.
    assert jax.tree.structure(state) == jax.tree.structure(next_state)
    assert [x.dtype for x in jax.tree.leaves(state)] == [x.dtype for x in jax.tree.leaves(next_state)]
    step(jax.random.key(1), next_state, jnp.int32(2))
    assert len(traces) == 1
    # Out-of-range actions are no-ops: both give the same transition.
    below = step(KEY, state, jnp.int32(-1))
    above = step(KEY, state, jnp.int32(7))
    assert bool(trees_equal(below[1], above[1])) and float(below[2]) == float(above[2])
    assert len(traces) == 1


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_twins_share_state_and_reward(env_id):
    records = rollout_records(env_id)
    assert records["twins_agree"].all(), "MDP and POMDP diverged from the same state, key and action"


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_first_frames_equal(env_id):
    mdp, pomdp, params = twins(env_id)
    keys = jax.random.split(KEY, 4)
    obs_m, _ = jax.vmap(mdp.reset, in_axes=(0, None))(keys, params)
    obs_p, _ = jax.vmap(pomdp.reset, in_axes=(0, None))(keys, params)
    np.testing.assert_array_equal(obs_m, obs_p)
    assert rollout_records(env_id)["reset_frame_equal"].all(), "an auto-reset POMDP frame differs from the MDP's"


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_pomdp_hides_something(env_id):
    assert rollout_records(env_id)["frames_differ"].any(), "the POMDP never differed from the MDP"


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_returns_within_bounds(env_id):
    mdp, _, _ = twins(env_id)
    low, high = getattr(mdp, "return_range", (-1.0, 1.0))
    returns = rollout_records(env_id)["episode_return"]
    finished = returns[np.isfinite(returns)]
    assert np.all(finished >= low - 1e-5) and np.all(finished <= high + 1e-5), (finished.min(), finished.max())
    rewards = rollout_records(env_id)["reward"]
    assert np.all(np.isfinite(rewards))


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_same_key_same_rollout(env_id):
    first = rollout_records(env_id)
    again = twin_rollout(env_id)(jax.random.key(0))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name], err_msg=name)


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_different_keys_different_initial_states(env_id):
    mdp, _, params = twins(env_id)
    _, states = jax.vmap(mdp.reset, in_axes=(0, None))(jax.random.split(KEY, 8), params)
    leaves = [np.asarray(x).reshape(8, -1) for x in jax.tree.leaves(states)]
    flat = np.concatenate([x.astype(np.float64) for x in leaves], axis=1)
    assert len({row.tobytes() for row in flat}) > 1, "all keys gave the same initial state"


def _key_dependent_columns(tree, num_keys):
    """The leaves of a batched pytree as ``[num_keys, n]`` floats, only columns that vary."""
    flat = np.concatenate([np.asarray(x, np.float64).reshape(num_keys, -1) for x in jax.tree.leaves(tree)], 1)
    return flat[:, flat.std(axis=0) > 0]


@pytest.mark.parametrize("env_id", [_grouped(i) for i in IDS])
def test_a_shared_step_key_is_sound(env_id):
    """A game that sets ``independent_step_key = False`` hands ``step``'s whole key to both its
    transition and the auto-reset. That is sound only if its transitions ignore the key, or if
    what they draw from it is independent of what the reset draws: check both on random states."""
    mdp, _, params = twins(env_id)
    if mdp.independent_step_key:
        pytest.skip("step splits its key")
    _, states = jax.vmap(mdp.reset, in_axes=(0, None))(jax.random.split(KEY, 8), params)
    actions = jnp.arange(8, dtype=jnp.int32) % mdp.num_actions

    @jax.jit
    def transitions(key):
        keys = jax.random.split(key, 8)
        return jax.vmap(mdp.step_state, in_axes=(0, 0, 0, None))(keys, states, actions, params)

    if bool(trees_equal(transitions(jax.random.key(1)), transitions(jax.random.key(2)))):
        return  # deterministic rules: the reset may have all of the key
    num_keys = 512
    keys = jax.random.split(jax.random.key(3), num_keys)
    one_state = jax.tree.map(lambda x: x[0], states)
    stepped = jax.vmap(mdp.step_state, in_axes=(0, None, None, None))(keys, one_state, jnp.int32(0), params)
    fresh = jax.vmap(mdp.reset_state, in_axes=(0, None))(keys, params)
    step_columns = _key_dependent_columns(stepped, num_keys)
    reset_columns = _key_dependent_columns(fresh, num_keys)
    correlation = np.corrcoef(step_columns, reset_columns, rowvar=False)
    n = step_columns.shape[1]
    assert n > 0 and reset_columns.shape[1] > 0
    correlation = correlation[:n, n:]  # step columns against reset columns
    assert np.abs(correlation).max() < 0.25, "the step reads the words its auto-reset uses"
